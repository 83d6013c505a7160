#!/usr/bin/env bash
# System calls per relayed session: `strace -c -f` attached to a relay (all
# its threads) while bench/socks_load runs a fixed number of 64-byte echo
# sessions through it, once with the target closing first and once with the
# client closing first. Complements bench/socks.sh (CPU and rates) with the
# per-call breakdown; results in docs/performance.md ("The epoll path: system
# calls per session").
#
#   bash bench/socks_syscalls.sh                 # sockd and the epoll floor relay
#   RELAYS="sockd" COUNT=5000 bash bench/socks_syscalls.sh
#
# Environment:
#   RELAYS="..."     which relays, default "floor sockd" (floor: ../shared/bench/floorsocks.c; also
#                    floor_uring, floorsocks_uring.c; sockd is sockd with `io` at bench/conf's default,
#                    auto; sockd_epoll the same binary with io = "epoll")
#   SOCKD=FILE       the sockd binary (default BUILD_DIR/sockd/sockd); SOCKD_BEFORE=FILE adds
#                    "sockd_before", a second binary measured the same way
#   BUILD_DIR=DIR    where socks_load and sockd are built (default build/release; not built here)
#   COUNT, CLIENTS   sessions per run and clients at once (default 2000 and 50)
#   FLOOR_SRC=DIR    where floorsocks.c is (default ../shared/bench)
#   OUT=DIR          logs and raw strace summaries (default build/bench-syscalls)
#
# strace slows the relay down many times over: these are counts, not speeds.
# Only 127.0.0.1 is used; every process started here is stopped by its PID on
# exit; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
relays=${RELAYS:-floor sockd${SOCKD_BEFORE:+ sockd_before}}
build_dir=${BUILD_DIR:-build/release}
count=${COUNT:-2000}
clients=${CLIENTS:-50}
floor_src=${FLOOR_SRC:-$root/../shared/bench}
out=${OUT:-build/bench-syscalls}
mkdir -p "$out"
out=$(cd "$out" && pwd)
load=$root/$build_dir/bench/socks_load
sockd_bin=${SOCKD:-$root/$build_dir/sockd/sockd}
[ -x "$load" ] || { echo "socks_load not found at $load" >&2; exit 1; }
command -v strace >/dev/null || { echo "strace is not installed" >&2; exit 1; }

# pids, cleanup (the EXIT trap), free_port, serve_targets.
# shellcheck source=bench/lib_relay.sh
source "$root/bench/lib_relay.sh"
trap 'exit 130' INT TERM

field() { grep -o "\b$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }

serve_targets

if [[ " $relays " == *" floor "* ]]; then
  gcc -O2 -pthread -o "$out/floorsocks" "$floor_src/floorsocks.c"
fi
if [[ " $relays " == *" floor_uring "* ]]; then
  gcc -O2 -pthread -o "$out/floorsocks_uring" "$floor_src/floorsocks_uring.c" -luring
fi
if [[ " $relays " == *" sockd_epoll "* ]]; then
  # bench/conf with the one difference, io = "epoll", in a copy of its own.
  rm -rf "$out/conf-epoll"
  cp -r bench/conf "$out/conf-epoll"
  sed -i 's/^\[sockd\]$/[sockd]\nio = "epoll"/' "$out/conf-epoll/gateway.toml"
fi

# measure RELAY CLOSE: one strace'd run; prints "relay close sessions total" and per-call lines.
measure() {
  local relay=$1 close=$2 port pid spid res target=$echo_close n
  [ "$close" = client ] && target=$echo
  port=$(free_port)
  case $relay in
    floor) "$out/floorsocks" "$port" >"$out/floor.log" 2>&1 & ;;
    floor_uring) "$out/floorsocks_uring" "$port" >"$out/floor_uring.log" 2>&1 & ;;
    sockd_epoll) "$sockd_bin" --config "$out/conf-epoll/gateway.toml" --listen "127.0.0.1:$port" \
                   >"$out/sockd_epoll.log" 2>&1 & ;;
    sockd) "$sockd_bin" --config bench/conf/gateway.toml --listen "127.0.0.1:$port" >"$out/sockd.log" 2>&1 & ;;
    sockd_before) "$SOCKD_BEFORE" --config bench/conf/gateway.toml --listen "127.0.0.1:$port" \
                    >"$out/sockd_before.log" 2>&1 & ;;
    *) echo "unknown relay $relay" >&2; return 1 ;;
  esac
  pid=$!
  pids+=("$pid")
  for _ in $(seq 50); do
    "$load" rate --proxy "127.0.0.1:$port" --target "127.0.0.1:$echo_close" --count 1 --clients 1 \
      --timeout 1 >/dev/null 2>&1 && break
    sleep 0.1
  done
  # Warm up (pipes, pools, allocator), then attach.
  "$load" rate --proxy "127.0.0.1:$port" --target "127.0.0.1:$target" --count 500 --clients "$clients" \
    --close "$close" --timeout 10 >/dev/null 2>&1 || true
  strace -c -f -qq -o "$out/$relay.$close.strace" -p "$pid" &
  spid=$!
  pids+=("$spid")
  # strace has attached every thread once it reports them in /proc/PID/task/*/status.
  for _ in $(seq 100); do
    n=$(grep -l "^TracerPid:[[:space:]]*$spid\$" /proc/"$pid"/task/*/status 2>/dev/null | wc -l) || true
    [ "$n" -ge "$(ls /proc/"$pid"/task | wc -l)" ] && break
    sleep 0.05
  done
  res=$("$load" rate --proxy "127.0.0.1:$port" --target "127.0.0.1:$target" --count "$count" \
          --clients "$clients" --close "$close" --timeout 60 2>&1) || true
  kill -INT "$spid"
  wait "$spid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  n=$(field sessions "$res")
  echo "$relay $close: $res" >>"$out/raw.txt"
  awk -v relay="$relay" -v order="$close" -v n="${n:-0}" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 {
      calls = $4; name = $NF
      if (name == "total") next
      per[name] = calls; err[name] = NF >= 6 ? $5 : 0; total += calls
    }
    END {
      if (n == 0) { print relay, order, "no sessions"; exit }
      printf "%s %s sessions=%d total=%.1f\n", relay, order, n, total / n
      for (k in per) printf "  %-16s %6.2f  (failed %.2f)\n", k, per[k] / n, err[k] / n
    }' "$out/$relay.$close.strace" | { read -r head; echo "$head"; sort -k2 -rn; }
}

for relay in $relays; do
  for close in target client; do
    measure "$relay" "$close"
  done
done
