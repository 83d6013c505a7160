#!/usr/bin/env bash
# The SOCKS relay benchmark: sockd against the two floor relays of
# ../shared/bench (floorsocks on epoll, floorsocks_uring on io_uring: the
# least CPU a relay can spend per session), Dante (danted, Debian's
# dante-server) and microsocks, each doing the same job on loopback, driven
# by bench/socks_load.cpp. One script, one run, one set of tables, every
# figure also a ratio to the floor relays measured in the same run; results
# and the targets in docs/performance.md ("SOCKS relay").
#
#   bash bench/socks.sh                # about 15 minutes
#   QUICK=1 bash bench/socks.sh        # a smoke run of about 3 minutes
#
# The session-rate cases run in every arrangement of ARRANGEMENTS (default
# both): "unpinned" (relay, load generator and target servers share every
# CPU, as on a small appliance that also runs the resolver) and "pinned"
# (relay on CPU 1, everything else on CPU 0), each with both close orders
# (the target closes first; the client closes first). Bulk, the
# username/password case, idle memory and the long client-closes-first run
# are measured in the first arrangement only.
#
# Environment:
#   QUICK=1            short runs (1 s rates, 6 s client-closes-first, 500 idle sessions)
#   SERVERS="..."      which relays, default "floor floor_uring dante microsocks sockd sockd_epoll" (each
#                      left out, with a note, if absent); sockd is sockd with `io` at its default (auto:
#                      the io_uring path where the kernel allows it), sockd_epoll the same binary with
#                      `io = "epoll"` (the Asio/epoll fallback)
#   ARRANGEMENTS="..." default "unpinned pinned"; PIN=1 alone means "pinned"
#   FLOOR_SRC=DIR      where floorsocks.c and floorsocks_uring.c are (default ../shared/bench)
#   BUILD_DIR=DIR      where socks_load and sockd are built (default build/release, the release preset)
#   NO_BUILD=1         do not configure or build; use the binaries already in BUILD_DIR
#   SOCKD=FILE         the sockd binary to measure (default BUILD_DIR/sockd/sockd)
#   SOCKD_BEFORE=FILE  a second sockd binary (an earlier build), measured as the relay "sockd_before" in
#                      the same run, for before/after comparisons; added to SERVERS unless they are given.
#                      "sockd_before_epoll" (only when named) is that binary with `io = "epoll"`
#   RATE_SECONDS, LONG_SECONDS, BULK_SECONDS, IDLE_SESSIONS   override the durations and sizes
#   PAIRS=N            instead of the tables: the paired comparison. For every arrangement, close order
#                      and 50 and 500 clients, N pairs of runs of each PAIR_SERVERS entry "A:B", A then B
#                      or B then A (flipped every pair), RATE_SECONDS each (default 2), each run on a relay
#                      started afresh (what a start fixes varies between starts). Prints, per cell, A's CPU per
#                      session and sessions/s as ratios to B's: the ratio of the sums, the geometric mean
#                      of the pairs' ratios with its 95 % interval, the range, and the pairs beyond
#                      PAIR_CPU_MAX (default 1.10) and under PAIR_RATE_MIN (default 0.95). The machine's
#                      drift moves both runs of a pair alike, so pairs see through it where one run does not.
#   PAIR_SERVERS="..."  default "sockd:floor_uring sockd_epoll:floor" (the ring against the io_uring floor,
#                      the epoll fallback against the epoll floor)
#   OUT=DIR            where logs and the raw results go (default build/bench-socks)
#
# Only 127.0.0.1 is used. Every server the script starts is stopped by its
# PID on exit; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=${QUICK:-0}
pairs_n=${PAIRS:-0}
if [ "$pairs_n" != 0 ]; then
  rate_s=${RATE_SECONDS:-2}; long_s=0; bulk_s=0; idle_n=0; held_max=0
elif [ "$quick" = 1 ]; then
  rate_s=${RATE_SECONDS:-1}; long_s=${LONG_SECONDS:-6}; bulk_s=${BULK_SECONDS:-1}
  idle_n=${IDLE_SESSIONS:-500}; held_max=2000
else
  rate_s=${RATE_SECONDS:-5}; long_s=${LONG_SECONDS:-60}; bulk_s=${BULK_SECONDS:-3}
  idle_n=${IDLE_SESSIONS:-5000}; held_max=20000
fi
servers=${SERVERS:-floor floor_uring dante microsocks sockd sockd_epoll${SOCKD_BEFORE:+ sockd_before}}
pair_servers=${PAIR_SERVERS:-sockd:floor_uring sockd_epoll:floor}
if [ "$pairs_n" != 0 ]; then servers=$(sed 's/[: ]\+/\n/g' <<<"$pair_servers" | awk 'NF && !seen[$0]++' | xargs); fi
if [ -n "${ARRANGEMENTS:-}" ]; then arrangements=$ARRANGEMENTS
elif [ "${PIN:-0}" = 1 ]; then arrangements=pinned
else arrangements="unpinned pinned"; fi
[ "$(nproc)" -ge 2 ] || arrangements=unpinned
floor_src=${FLOOR_SRC:-$root/../shared/bench}
build_dir=${BUILD_DIR:-build/release}
out=${OUT:-build/bench-socks}
mkdir -p "$out"
out=$(cd "$out" && pwd)
raw=$out/raw.txt
: >"$raw"

if [ "${NO_BUILD:-0}" != 1 ]; then
  if [ "$build_dir" = build/release ]; then
    cmake --preset release >/dev/null
  fi
  if ! cmake --build "$build_dir" --target socks_load >"$out/build.log" 2>&1; then
    tail -n 30 "$out/build.log" >&2
    echo "socks_load did not build (log: $out/build.log)" >&2
    exit 1
  fi
  cmake --build "$build_dir" --target sockd >>"$out/build.log" 2>&1 ||
    echo "note: sockd did not build (log: $out/build.log); it is left out" >&2
fi
# The floor relays are plain C; built here, each left out if it does not build.
if [ -f "$floor_src/floorsocks.c" ]; then
  gcc -O2 -pthread -o "$out/floorsocks" "$floor_src/floorsocks.c" >>"$out/build.log" 2>&1 ||
    echo "note: floorsocks did not build (log: $out/build.log)" >&2
  gcc -O2 -pthread -o "$out/floorsocks_uring" "$floor_src/floorsocks_uring.c" -luring >>"$out/build.log" 2>&1 ||
    echo "note: floorsocks_uring did not build (liburing-dev? log: $out/build.log)" >&2
fi
build_abs=$build_dir
[ "${build_dir#/}" != "$build_dir" ] || build_abs=$root/$build_dir   # BUILD_DIR may be absolute
load=$build_abs/bench/socks_load
sockd_bin=${SOCKD:-$build_abs/sockd/sockd}
[ -x "$load" ] || { echo "socks_load not found at $load" >&2; exit 1; }

# Descriptors: the idle cases hold one per session in the generator and in
# the echo server, two per session in the relay.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard"

# set_arrangement pinned|unpinned: how the next relays and loads are placed.
set_arrangement() {
  arrangement=$1
  if [ "$1" = pinned ]; then
    pin_relay=(taskset -c 1); pin_load=(taskset -c 0)
  else
    pin_relay=(); pin_load=()
  fi
  # The target servers started before: placed like the load generator.
  if [ -n "${serve_pid:-}" ]; then
    if [ "$1" = pinned ]; then taskset -a -pc 0 "$serve_pid" >/dev/null
    else taskset -a -pc "0-$(($(nproc) - 1))" "$serve_pid" >/dev/null; fi
  fi
}
set_arrangement "${arrangements%% *}"
clk_tck=$(getconf CLK_TCK)

# ------------------------------------------------------------------ process bookkeeping
started_pids=()
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do
    stop_tree "$pid"
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The PID and all its descendants (Dante forks; children of children too).
tree_pids() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      keep[root] = 1; changed = 1
      while (changed) {
        changed = 0
        for (i in pids) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
      }
      for (p in keep) print p
    }'
}

# Stops one started process and what it forked: SIGTERM, up to 5 s, then SIGKILL.
stop_tree() {
  local pid=$1 tree i
  kill -0 "$pid" 2>/dev/null || return 0
  tree=$(tree_pids "$pid")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  for p in $tree; do kill -9 "$p" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}

# utime+stime of every process of the tree plus cutime+cstime (the children
# each has reaped: Dante's ended children), in clock ticks.
cpu_ticks() {
  local top=$1 total=0 p rest f
  for p in $(tree_pids "$top"); do
    rest=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"$rest"
    # f[0] is field 3 (state); fields 14-17 (utime stime cutime cstime) are f[11..14].
    total=$((total + f[11] + f[12] + f[13] + f[14]))
  done
  echo "$total"
}

# Resident memory of the tree in KiB, and the number of processes.
rss_kib() {
  local total=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
proc_count() { tree_pids "$1" | wc -l; }

# A free port for the next relay, below the ephemeral range: the rate runs
# leave up to a minute of TIME_WAIT behind them, which can hold every port
# of the ephemeral range (where bind to port 0 picks) at once.
free_port() {
  python3 - <<'PY'
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(1000):
    port = random.randrange(10000, lo) if lo > 10100 else 0
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    print(s.getsockname()[1])
    break
else:
    raise SystemExit("no free port")
PY
}

# field KEY TEXT: the value of KEY=... in a result line.
field() { grep -o "\b$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }

# ------------------------------------------------------------------ the target servers
"${pin_load[@]}" "$load" serve --port-file "$out/ports" --seconds 3600 >"$out/serve.log" 2>&1 &
serve_pid=$!
started_pids+=("$serve_pid")
for i in $(seq 50); do [ -s "$out/ports" ] && break; sleep 0.1; done
[ -s "$out/ports" ] || { echo "socks_load serve did not start" >&2; exit 1; }
eval "$(cat "$out/ports")"   # echo= echo_close= sink= source=
rm -f "$out/ports"

# ------------------------------------------------------------------ relays
relay_pid=
relay_port=
# start_relay NAME [userpass] [fd-limit]: starts one relay on a fresh port.
start_relay() {
  local name=$1 mode=${2:-none} limit=${3:-$hard}
  relay_port=$(free_port)
  case $name in
    dante)
      sed "s/@PORT@/$relay_port/" bench/conf/danted.conf >"$out/danted.conf"
      ( ulimit -n "$limit"; exec "${pin_relay[@]}" danted -f "$out/danted.conf" -p "$out/danted.pid" ) \
        >"$out/dante.log" 2>&1 &
      ;;
    floor|floor_uring)
      local bin=$out/floorsocks
      [ "$name" = floor_uring ] && bin=$out/floorsocks_uring
      ( ulimit -n "$limit"; exec "${pin_relay[@]}" "$bin" "$relay_port" ) >"$out/$name.log" 2>&1 &
      ;;
    microsocks)
      local auth=()
      [ "$mode" = userpass ] && auth=(-u bench -P bench-pass)
      ( ulimit -n "$limit"; exec "${pin_relay[@]}" microsocks -i 127.0.0.1 -p "$relay_port" "${auth[@]}" ) \
        >/dev/null 2>&1 &
      ;;
    sockd|sockd_before|sockd_epoll|sockd_before_epoll)
      local bin=$sockd_bin conf=bench/conf/gateway.toml
      case $name in sockd_before*) bin=$SOCKD_BEFORE ;; esac
      if [ "${name%_epoll}" != "$name" ]; then
        # bench/conf with the one difference, io = "epoll", in a copy of its own.
        rm -rf "$out/conf-epoll"
        cp -r bench/conf "$out/conf-epoll"
        sed -i 's/^\[sockd\]$/[sockd]\nio = "epoll"/' "$out/conf-epoll/gateway.toml"
        conf=$out/conf-epoll/gateway.toml
      fi
      ( ulimit -n "$limit"; exec "${pin_relay[@]}" "$bin" --config "$conf" \
          --listen "127.0.0.1:$relay_port" ) >>"$out/$name.log" 2>&1 &
      ;;
  esac
  relay_pid=$!
  started_pids+=("$relay_pid")
  local args=()
  [ "$mode" = userpass ] && args=(--user bench --password bench-pass)
  for i in $(seq 50); do
    if "$load" rate --proxy "127.0.0.1:$relay_port" --target "127.0.0.1:$echo_close" --count 1 \
         --clients 1 --timeout 1 "${args[@]}" >/dev/null 2>&1; then
      sleep 0.3
      return 0
    fi
    kill -0 "$relay_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start (log in $out)" >&2
  stop_relay
  return 1
}
stop_relay() { [ -n "$relay_pid" ] && stop_tree "$relay_pid"; relay_pid=; }

available() {
  case $1 in
    dante) command -v danted >/dev/null ;;
    microsocks) command -v microsocks >/dev/null ;;
    sockd|sockd_epoll) [ -x "$sockd_bin" ] ;;
    sockd_before|sockd_before_epoll) [ -n "${SOCKD_BEFORE:-}" ] && [ -x "$SOCKD_BEFORE" ] ;;
    floor) [ -x "$out/floorsocks" ] ;;
    floor_uring) [ -x "$out/floorsocks_uring" ] ;;
  esac
}

declare -A R   # R[server.key] = value

# run_rate SERVER KEY CLIENTS SECONDS CLOSE [auth args...]: a rate run with the
# relay's CPU read before and after it.
run_rate() {
  local server=$1 key=$2 clients=$3 seconds=$4 close=$5; shift 5
  local target=$echo_close proxy=(--direct) t0 t1 res
  [ "$close" = client ] && target=$echo
  [ "$server" != direct ] && proxy=(--proxy "127.0.0.1:$relay_port")
  # For the direct runs, the CPU of the echo server: what one accepted
  # connection with a 64-byte echo costs, half of a relay's sockets.
  local measured=$serve_pid
  [ "$server" != direct ] && measured=$relay_pid
  t0=$(cpu_ticks "$measured")
  res=$("${pin_load[@]}" "$load" rate "${proxy[@]}" --target "127.0.0.1:$target" --clients "$clients" \
          --seconds "$seconds" --close "$close" "$@" 2>&1) || true
  echo "$server $key: $res" >>"$raw"
  R[$server.$key.rate]=$(field rate "$res")
  R[$server.$key.p50]=$(field p50_us "$res")
  R[$server.$key.p99]=$(field p99_us "$res")
  R[$server.$key.errors]=$(field errors "$res")
  R[$server.$key.trend]=$(field trend "$res")
  R[$server.$key.per_second]=$(grep '^per_second' <<<"$res" | cut -d' ' -f2-)
  t1=$(cpu_ticks "$measured")
  R[$server.$key.cpu]=$(awk -v d=$((t1 - t0)) -v hz="$clk_tck" -v n="$(field sessions "$res")" \
                           'BEGIN { if (n > 0) printf "%.0f", d / hz * 1e6 / n; else print "-" }')
  local who="relay CPU"
  [ "$server" = direct ] && who="echo server CPU"
  printf '  %-10s %-14s %9s/s  p50 %6s us  p99 %7s us  errors %s  %s %s us/session\n' "$server" "$key" \
    "${R[$server.$key.rate]:-?}" "${R[$server.$key.p50]:-?}" "${R[$server.$key.p99]:-?}" \
    "${R[$server.$key.errors]:-?}" "$who" "${R[$server.$key.cpu]:-?}"
}

# run_bulk SERVER KEY DIRECTION STREAMS
run_bulk() {
  local server=$1 key=$2 dir=$3 streams=$4 target res
  target=$sink; [ "$dir" = down ] && target=$source
  local proxy=(--direct)
  [ "$server" != direct ] && proxy=(--proxy "127.0.0.1:$relay_port")
  res=$("${pin_load[@]}" "$load" bulk "${proxy[@]}" --target "127.0.0.1:$target" --streams "$streams" \
          --seconds "$bulk_s" --direction "$dir" 2>&1) || true
  echo "$server $key: $res" >>"$raw"
  R[$server.$key]=$(field gbit_s "$res")
}

# run_idle SERVER KEY SESSIONS [until-failure]: opens and holds SESSIONS
# relayed sessions, reads the relay's resident memory, then lets them go.
run_idle() {
  local server=$1 key=$2 n=$3 until=${4:-} base rss res ready=$out/idle.ready
  local extra=()
  [ -n "$until" ] && extra=(--until-failure)
  sleep 0.5
  base=$(rss_kib "$relay_pid")
  rm -f "$ready"
  "${pin_load[@]}" "$load" idle --proxy "127.0.0.1:$relay_port" --target "127.0.0.1:$echo" \
    --sessions "$n" --hold 120 --ready-file "$ready" "${extra[@]}" >"$out/idle.out" 2>&1 &
  local idle_pid=$!
  started_pids+=("$idle_pid")
  for i in $(seq 1200); do   # at most 240 s to open them
    [ -s "$ready" ] && break
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.2
  done
  sleep 1
  rss=$(rss_kib "$relay_pid")
  R[$server.$key.procs]=$(proc_count "$relay_pid")
  res=$(cat "$ready" 2>/dev/null || echo "result mode=idle held=0 verified=0")
  stop_tree "$idle_pid"
  echo "$server $key: $res rss_base_kib=$base rss_kib=$rss procs=${R[$server.$key.procs]}" >>"$raw"
  R[$server.$key.held]=$(field verified "$res")
  R[$server.$key.kib]=$(awk -v a="$base" -v b="$rss" -v n="${R[$server.$key.held]:-0}" \
                         'BEGIN { if (n > 0) printf "%.1f", (b - a) / n; else print "-" }')
  printf '  %-10s %-14s held %6s  RSS %s -> %s KiB: %s KiB per session, %s processes\n' "$server" "$key" \
    "${R[$server.$key.held]}" "$base" "$rss" "${R[$server.$key.kib]}" "${R[$server.$key.procs]}"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r)"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "descriptor limit: $hard; arrangements: $arrangements; quick: $quick; raw results: $raw"
{ echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"; echo "date: $(date -u)"; \
  echo "loadavg at start: $(cat /proc/loadavg)"; } >>"$raw"

active=()
for s in $servers; do
  if available "$s"; then active+=("$s"); else echo "note: $s is not installed or built; left out" >&2; fi
done

# ------------------------------------------------------------------ PAIRS=N: the paired comparison
# pair_stats A-VALUES B-VALUES LIMIT BELOW: one cell's figures for A against
# B, the values one pair each, in order: the ratio of the sums, the geometric
# mean of the pairs' ratios and its 95 % interval (Student's t over the
# logarithms), the range, and how many pairs fall beyond LIMIT (above it, or
# below it when BELOW is 1).
pair_stats() {
  awk -v a="$1" -v b="$2" -v lim="$3" -v below="$4" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    split("12.71 4.30 3.18 2.78 2.57 2.45 2.36 2.31 2.26 2.23 2.20 2.18 2.16 2.14 2.13 2.12 2.11 2.10 2.09 2.09", t, " ")
    sa = sb = sl = sll = 0; lo = 1e9; hi = 0; beyond = 0; m = 0
    for (i = 1; i <= n; i++) {
      if (x[i] == "" || x[i] == "-" || y[i] == "" || y[i] == "-" || y[i] + 0 <= 0 || x[i] + 0 <= 0) continue
      r = x[i] / y[i]; m++
      sa += x[i]; sb += y[i]; l = log(r); sl += l; sll += l * l
      if (r < lo) lo = r; if (r > hi) hi = r
      if ((below && r < lim) || (!below && r > lim)) beyond++
    }
    if (m == 0) { print "- | - | - | -"; exit }
    g = exp(sl / m); ci = "-"
    if (m > 1) {
      sd = sqrt((sll - sl * sl / m) / (m - 1)); q = (m - 1 <= 20) ? t[m - 1] : 2.0
      ci = sprintf("%.2f–%.2f", exp(sl / m - q * sd / sqrt(m)), exp(sl / m + q * sd / sqrt(m)))
    }
    printf "%.3f | %.3f (%s) | %.2f–%.2f | %d of %d\n", sa / sb, g, ci, lo, hi, beyond, m
  }'
}

if [ "$pairs_n" != 0 ]; then
  cpu_max=${PAIR_CPU_MAX:-1.10}
  rate_min=${PAIR_RATE_MIN:-0.95}
  table=()
  for arr in $arrangements; do
    set_arrangement "$arr"
    for pair in $pair_servers; do
      a=${pair%%:*} b=${pair#*:}
      if ! available "$a" || ! available "$b"; then
        echo "note: pair $pair left out ($a or $b is not installed or built)" >&2
        continue
      fi
      echo "== pairs, $arr: $a against $b, $pairs_n pairs per cell of ${rate_s} s runs"
      for close in target client; do
        for c in 50 500; do
          for n in $(seq "$pairs_n"); do   # (start_relay and stop_tree use i)
            order="$a $b"; [ $((n % 2)) = 0 ] && order="$b $a"
            # A relay started afresh for every run: what a start fixes (its
            # threads' places, how SO_REUSEPORT shares the clients between
            # them, its memory's layout) then varies from pair to pair and
            # shows in the interval, instead of tilting a whole cell.
            for s in $order; do
              start_relay "$s" || continue
              run_rate "$s" "pair.$arr.$close.c$c.$n" "$c" "$rate_s" "$close"
              stop_relay
            done
          done
          ca= cb= ra= rb=
          for n in $(seq "$pairs_n"); do
            k=pair.$arr.$close.c$c.$n
            ca+=" ${R[$a.$k.cpu]:--}"; cb+=" ${R[$b.$k.cpu]:--}"
            ra+=" ${R[$a.$k.rate]:--}"; rb+=" ${R[$b.$k.rate]:--}"
          done
          table+=("| $a / $b | $arr | $close | $c | $(pair_stats "$ca" "$cb" "$cpu_max" 0) | $(pair_stats "$ra" "$rb" "$rate_min" 1) |")
        done
      done
    done
  done
  echo
  echo "## Pairs: CPU per session and sessions/s of A as ratios to B ($pairs_n pairs of ${rate_s} s per cell)"
  echo
  echo "Each ratio: of the sums | geometric mean of the pairs (95 % interval) | range | pairs over $cpu_max (CPU) or under $rate_min (rate)."
  echo
  echo "| A / B | arrangement | closes first | clients | CPU: sums | CPU: pairs' mean (95 %) | CPU: range | CPU: over $cpu_max | rate: sums | rate: pairs' mean (95 %) | rate: range | rate: under $rate_min |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${table[@]}"
  echo
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); raw results: $raw"
  exit 0
fi

first=${arrangements%% *}
closes="target client"
for arr in $arrangements; do
  set_arrangement "$arr"
  echo "== session rate, $arr, both close orders; direct baseline first"
  for close in $closes; do
    for c in 1 50 500; do run_rate direct "$arr.$close.c$c" "$c" "$rate_s" "$close"; done
  done
  for s in "${active[@]}"; do
    start_relay "$s" || continue
    for close in $closes; do
      for c in 1 50 500; do run_rate "$s" "$arr.$close.c$c" "$c" "$rate_s" "$close"; done
    done
    stop_relay
  done
done

set_arrangement "$first"
echo "== bulk, username/password and idle memory ($first)"
for s in "${active[@]}"; do
  echo "== $s"
  start_relay "$s" || continue
  for case in "up 1" "up 8" "down 1" "down 8"; do
    set -- $case
    run_bulk direct "direct.$1$2" "$1" "$2"
    R[$s.bulkdirect.$1$2]=${R[direct.direct.$1$2]}
    run_bulk "$s" "bulk.$1$2" "$1" "$2"
    printf '  %-10s bulk %-4s %s streams: %s Gbit/s (direct %s)\n' "$s" "$1" "$2" "${R[$s.bulk.$1$2]:-?}" \
      "${R[$s.bulkdirect.$1$2]:-?}"
  done
  if [ "${s%%_*}" = sockd ]; then
    run_rate "$s" userpass 50 "$rate_s" target --user bench --password bench-pass
  fi
  stop_relay
  if [ "$s" = microsocks ]; then
    start_relay microsocks userpass && run_rate "$s" userpass 50 "$rate_s" target --user bench --password bench-pass
    stop_relay
  fi
  start_relay "$s" && run_idle "$s" idle "$idle_n"
  stop_relay
done

echo "== clients close first, ${long_s} s at 50 clients (TIME_WAIT on the relay's side)"
for s in "${active[@]}"; do
  start_relay "$s" || continue
  run_rate "$s" long 50 "$long_s" client
  echo "  $s sessions per second: ${R[$s.long.per_second]:-}"
  stop_relay
done

if printf '%s\n' "${active[@]}" | grep -qx sockd; then
  held_limit=20000
  [ "$hard" -lt 20000 ] && held_limit=$hard
  echo "== most sessions one sockd holds with a descriptor limit of $held_limit"
  start_relay sockd none "$held_limit" && run_idle sockd held "$held_max" until
  stop_relay
fi

# ------------------------------------------------------------------ the table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b; else print "-" }'; }
cell_rate() { printf '%s (%s / %s)' "${R[$1.$2.rate]:--}" "${R[$1.$2.p50]:--}" "${R[$1.$2.p99]:--}"; }

echo
# Each session-rate cell: sessions/s, and in brackets the ratio to the io_uring
# floor relay's rate in the same arrangement and close order; each CPU cell:
# the relay's CPU per session, and the ratios to floor_uring's and floor's.
floor_ratio() {   # floor_ratio SERVER KEY FIELD FLOOR
  ratio "${R[$1.$2.$3]:-}" "${R[$4.$2.$3]:-}"
}
for arr in $arrangements; do
  for close in $closes; do
    echo "## Session rate, $arr, the $close closes first: sessions/s (ratio to floor_uring), p50 / p99 µs"
    echo
    echo "| server | 1 client | 50 clients | 500 clients | relay CPU per session, 50 clients (ratio to floor_uring / floor) | 500 clients |"
    echo "|---|---|---|---|---|---|"
    for s in direct "${active[@]}"; do
      row="| $s |"
      for c in 1 50 500; do
        k=$arr.$close.c$c
        row+=" ${R[$s.$k.rate]:--} ($(floor_ratio "$s" "$k" rate floor_uring)), ${R[$s.$k.p50]:--} / ${R[$s.$k.p99]:--} |"
      done
      for c in 50 500; do
        k=$arr.$close.c$c
        if [ "$s" = direct ]; then
          row+=" (echo server: ${R[$s.$k.cpu]:--} µs) |"
        else
          row+=" ${R[$s.$k.cpu]:--} µs ($(floor_ratio "$s" "$k" cpu floor_uring) / $(floor_ratio "$s" "$k" cpu floor)) |"
        fi
      done
      echo "$row"
    done
    echo
  done
done
echo "## Variants at 50 clients"
echo
echo "| server | username/password (ratio to none) | clients close first, ${long_s} s: sessions/s | last third / first third | errors | relay CPU per session |"
echo "|---|---|---|---|---|---|"
for s in "${active[@]}"; do
  up="${R[$s.userpass.rate]:-}"
  upc="not measured"
  [ -n "$up" ] && upc="$up ($(ratio "$up" "${R[$s.$first.target.c50.rate]:-}"))"
  echo "| $s | $upc | ${R[$s.long.rate]:--} | ${R[$s.long.trend]:--} | ${R[$s.long.errors]:--} | ${R[$s.long.cpu]:--} µs |"
done
echo
echo "## Bulk: Gbit/s through the relay (ratio to a direct transfer measured just before / to the epoll floor relay)"
echo
echo "| server | up, 1 stream | up, 8 | down, 1 | down, 8 |"
echo "|---|---|---|---|---|"
for s in "${active[@]}"; do
  row="| $s |"
  for k in up1 up8 down1 down8; do
    row+=" ${R[$s.bulk.$k]:--} ($(ratio "${R[$s.bulk.$k]:-}" "${R[$s.bulkdirect.$k]:-}") / $(ratio "${R[$s.bulk.$k]:-}" "${R[floor.bulk.$k]:-}")) |"
  done
  echo "$row"
done
echo
echo "## Idle relayed sessions: resident memory of the relay's processes per session"
echo
echo "| server | sessions held | KiB per session | processes |"
echo "|---|---|---|---|"
for s in "${active[@]}"; do
  echo "| $s | ${R[$s.idle.held]:--} | ${R[$s.idle.kib]:--} | ${R[$s.idle.procs]:--} |"
done
if [ -n "${R[sockd.held.held]:-}" ]; then
  echo
  echo "Most sessions one sockd held (descriptor limit ${held_limit}, asked for up to $held_max): ${R[sockd.held.held]}" \
       "(${R[sockd.held.kib]} KiB per session at that count)."
fi
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); raw results: $raw"
