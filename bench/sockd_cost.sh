#!/usr/bin/env bash
# What one relayed session costs sockd in user space, counted rather than
# timed: the instructions executed per session (valgrind's callgrind, which
# counts every instruction). The count does not depend on what else the
# machine is doing, so two builds can be compared exactly where the timed
# benchmark (bench/socks.sh) is within its run-to-run spread. Its companion
# for the kernel side is bench/socks_syscalls.sh (system calls per session,
# strace). Results and their use in docs/performance.md ("Before and after
# the session plan").
#
#   bash bench/sockd_cost.sh                                    # the release build
#   SOCKD_BEFORE=/path/to/older/sockd bash bench/sockd_cost.sh  # and an earlier build, with ratios
#
# For each build and each close order (the target closes first; the client
# closes first), 50 clients of bench/socks_load make 64-byte sessions
# through the relay on 127.0.0.1, in two runs under callgrind, of SMALL and
# SESSIONS sessions; the difference of their totals divided by the
# difference of the counts is the figure, so start-up and shutdown cancel out.
#
# Environment:
#   BUILD_DIR=DIR       where sockd and socks_load are built (default build/release)
#   SOCKD=FILE          the sockd to measure (default BUILD_DIR/sockd/sockd)
#   SOCKD_BEFORE=FILE   a second sockd (an earlier build) measured the same way
#   BEFORE_CONF=FILE    its configuration (default: sockd's, with io = "epoll"; a build from before
#                       the io key, such as 1138280 or 4f1f718, takes bench/conf/gateway.toml)
#   IO=epoll            sockd's [sockd] io, and the only one: valgrind cannot run the io_uring
#                       path (the kernel writes its completions into memory valgrind does not
#                       see written, and its sessions never end under it), so `auto` would hang
#                       where io_uring is available; the ring's counts are bench/socks_syscalls.sh's
#   SESSIONS=N SMALL=N  session counts (default 2500 and 500)
#   OUT=DIR             logs and raw counts (default build/bench-sockd-cost)
#
# Needs valgrind (scripts/setup.sh installs it). Run as root or not: sockd
# runs as `nobody` when started by root, so that callgrind's output stays
# writable after sockd's privilege drop. Only 127.0.0.1 is used; every
# process is stopped by its PID on exit; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build/release}
sockd=${SOCKD:-$build_dir/sockd/sockd}
load=$build_dir/bench/socks_load
sessions=${SESSIONS:-2500}
small=${SMALL:-500}
out=${OUT:-build/bench-sockd-cost}
mkdir -p "$out"
out=$(cd "$out" && pwd)
chmod 1777 "$out"
conf=bench/conf/gateway.toml
IO=${IO:-epoll}
if [ "$IO" != epoll ]; then
  echo "bench/sockd_cost.sh: valgrind cannot run sockd's io_uring path: IO=epoll only (see the header)" >&2
  exit 2
fi
# bench/conf with the one difference, io = "epoll", in a copy of its own.
rm -rf "$out/conf"
cp -r bench/conf "$out/conf"
sed -i "s/^\\[sockd\\]\$/[sockd]\\nio = \"$IO\"/" "$out/conf/gateway.toml"
chmod -R a+rX "$out/conf"
conf=$out/conf/gateway.toml
command -v valgrind >/dev/null || { echo "bench/sockd_cost.sh: valgrind is missing (scripts/setup.sh)" >&2; exit 1; }
for f in "$sockd" "$load" ${SOCKD_BEFORE:+"$SOCKD_BEFORE"}; do
  [ -x "$f" ] || { echo "bench/sockd_cost.sh: $f is not built (cmake --build --preset release)" >&2; exit 1; }
done
[ "$small" -lt "$sessions" ] || { echo "bench/sockd_cost.sh: SMALL must be below SESSIONS" >&2; exit 1; }

as_user=()
[ "$(id -u)" = 0 ] && as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

# pids, cleanup (the EXIT trap), free_port, serve_targets.
# shellcheck source=bench/lib_relay.sh
source bench/lib_relay.sh
serve_targets

# start BIN PORT LOG [wrapper...]: starts sockd (under the wrapper) and waits
# until it listens; sets $relay.
start() {
  local bin=$1 port=$2 log=$3; shift 3
  local c=$conf
  [ "$bin" = "${SOCKD_BEFORE:-}" ] && c=${BEFORE_CONF:-$conf}
  "$@" "$bin" --config "$c" --listen "127.0.0.1:$port" >"$log" 2>&1 &
  relay=$!
  pids+=("$relay")
  for _ in $(seq 600); do   # valgrind starts slowly: at most 60 s
    ss -ltnH "sport = :$port" | grep -q . && return 0
    kill -0 "$relay" 2>/dev/null || break
    sleep 0.1
  done
  echo "sockd did not start (log: $log)" >&2
  exit 1
}

# stop PID: SIGTERM, then wait for it (sockd drains in well under a second
# with no session left).
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# drive PORT CLOSE COUNT LOG: COUNT sessions at 50 clients; fails unless all
# of them succeeded.
drive() {
  local port=$1 close=$2 count=$3 log=$4 target=$echo_close
  [ "$close" = client ] && target=$echo
  "$load" rate --proxy "127.0.0.1:$port" --target "127.0.0.1:$target" --clients 50 \
    --count "$count" --close "$close" --timeout 60 >"$log" 2>&1
  grep -q " errors=0 " "$log" || { echo "sessions failed (log: $log)" >&2; exit 1; }
}

declare -A I
builds=(sockd)
[ -n "${SOCKD_BEFORE:-}" ] && builds=(sockd_before sockd)
for b in "${builds[@]}"; do
  bin=$sockd
  [ "$b" = sockd_before ] && bin=$SOCKD_BEFORE
  for close in target client; do
    for n in "$small" "$sessions"; do
      port=$(free_port)
      start "$bin" "$port" "$out/$b.$close.$n.cg.log" "${as_user[@]}" valgrind --tool=callgrind \
        "--callgrind-out-file=$out/$b.$close.$n.callgrind"
      drive "$port" "$close" "$n" "$out/$b.$close.$n.cg.load"
      stop "$relay"
      I[$b.$close.$n]=$(grep -o 'Collected : [0-9]*' "$out/$b.$close.$n.cg.log" | grep -o '[0-9]*$')
    done
    I[$b.$close]=$(( (I[$b.$close.$sessions] - I[$b.$close.$small]) / (sessions - small) ))
    echo "$b close=$close: ${I[$b.$close]} instructions/session" |
      tee -a "$out/raw.txt"
  done
done

echo
echo "| build | close order | user-space instructions per session |"
echo "|---|---|---|"
for close in target client; do
  for b in "${builds[@]}"; do
    ratio=
    if [ "$b" = sockd ] && [ -n "${SOCKD_BEFORE:-}" ]; then
      ratio=$(awk -v c="${I[sockd.$close]}" -v d="${I[sockd_before.$close]}" \
                  'BEGIN { printf " (after/before: %.3f)", c / d }')
    fi
    echo "| $b | $close first | ${I[$b.$close]}$ratio |"
  done
done
