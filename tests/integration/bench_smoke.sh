#!/usr/bin/env bash
# bench.socks_load_smoke: runs the socks_load example of docs/performance.md
# ("SOCKS relay", the block marked socks-load-example) as written, against
# microsocks on a free loopback port, and checks every result line; then
# checks that failures are counted, not hidden, and that the benchmark's
# relay configurations in bench/conf load. About 5 seconds.
# Environment: SOCKS_LOAD (the binary), SOCKD (optional), DIODE_SOURCE_DIR.
set -euo pipefail
command -v microsocks >/dev/null || { echo "microsocks is not installed: skipped"; exit 77; }
doc=$DIODE_SOURCE_DIR/docs/performance.md
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -- "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { grep -o "\b$1=[^ ]*" <<<"$2" | head -1 | cut -d= -f2; }

# The example, from the doc, with its fixed port 1081 replaced by a free one.
example=$(awk '/^```sh socks-load-example/ { on = 1; next } /^```/ { on = 0 } on' "$doc")
[ -n "$example" ] || fail "no socks-load-example block in $doc"
port=$(free_port)
example=${example//1081/$port}
bin_dir=$(cd "$(dirname "$SOCKS_LOAD")" && pwd)

printf '%s\n' "$example" >"$work/example.sh"
output=$work/output
# The example runs in a session of its own, so that whatever it leaves
# running is stopped by its process group's id.
( cd "$work" && PATH=$bin_dir:$PATH exec setsid bash -e example.sh ) >"$output" 2>&1 &
example_pid=$!
pids+=("-$example_pid")
for i in $(seq 300); do
  kill -0 "$example_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$example_pid" 2>/dev/null && fail "the example ran for more than 30 s"
wait "$example_pid" || fail "the example failed: $(cat "$output")"
cat "$output"

mapfile -t rates < <(grep '^result mode=rate' "$output")
[ "${#rates[@]}" -eq 2 ] || fail "expected 2 rate results, got ${#rates[@]}"
for r in "${rates[@]}"; do
  [ "$(field sessions "$r")" -ge 10 ] || fail "too few sessions: $r"
  [ "$(field errors "$r")" = 0 ] || fail "errors: $r"
  [ "$(field p99_us "$r")" -ge "$(field p50_us "$r")" ] || fail "p99 below p50: $r"
done
bulk=$(grep '^result mode=bulk' "$output") || fail "no bulk result"
[ "$(field bytes "$bulk")" -gt 1000000 ] || fail "bulk moved too little: $bulk"
[ "$(field errors "$bulk")" = 0 ] || fail "bulk errors: $bulk"
idle=$(grep '^result mode=idle' "$output") || fail "no idle result"
[ "$(field held "$idle")" = 20 ] && [ "$(field verified "$idle")" = 20 ] || fail "idle: $idle"

# Failures are counted and make the exit status non-zero: nothing listens on
# a port we just freed, so all three attempts fail at connect.
closed=$(free_port)
set +e
res=$("$SOCKS_LOAD" rate --proxy "127.0.0.1:$closed" --target 127.0.0.1:9 --clients 1 --count 3 --timeout 2)
status=$?
set -e
echo "$res"
[ "$status" = 1 ] || fail "exit status $status against a closed port"
[ "$(field sessions "$res")" = 0 ] && [ "$(field err_connect "$res")" = 3 ] || fail "connect failures not counted: $res"
# The benchmark's relay configurations stay valid as the daemons evolve:
# sockd's (when built) through its own checker, Dante's through danted -V.
if [ -n "${SOCKD:-}" ] && [ -x "$SOCKD" ]; then
  "$SOCKD" --config "$DIODE_SOURCE_DIR/bench/conf/gateway.toml" --check ||
    fail "bench/conf/gateway.toml does not load"
fi
if command -v danted >/dev/null; then
  sed 's/@PORT@/1080/' "$DIODE_SOURCE_DIR/bench/conf/danted.conf" >"$work/danted.conf"
  timeout 10 danted -V -f "$work/danted.conf" >"$work/danted.log" 2>&1 ||
    fail "bench/conf/danted.conf does not load: $(cat "$work/danted.log")"
fi
echo "bench smoke: ok"
