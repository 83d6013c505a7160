#!/bin/bash
# resolver.persist: the cache survives a restart (resolver.cache_file,
# docs/resolver.md "The cache file"). On the network test bed: resolve a
# list, stop the resolver (SIGTERM), start it again, ask the same list:
# every answer comes from the cache file (nsd's query counters do not move,
# the resolver's upstream_queries stays 0) with TTLs lower by at least the
# time that passed. Then a truncated and a foreign file: each is ignored
# with one log line and the resolver starts cold. Needs root.
set -euo pipefail
: "${DIODE_SOURCE_DIR:?}" "${DIODE_BINARY_DIR:?}"
RESOLVER=$DIODE_BINARY_DIR/resolver/diode-resolver
[ -x "$RESOLVER" ] || { echo "FAIL: $RESOLVER not built"; exit 1; }

source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
export NB_WATCHDOG_SECONDS=${NB_WATCHDOG_SECONDS:-150}
netbed_up

pass() { echo "ok $*"; }
log_of() { cat "$NB_DIR/$1.log" 2>/dev/null || true; }
fail() { echo "FAIL: $*"; for r in resolver1 resolver2 resolver3 resolver4; do echo "--- $r"; log_of $r; done; exit 1; }
q() { nb_lan dig +time=6 +tries=1 "@$NB_GW_LAN_IP4" "$@" 2>&1 || true; }
now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }
servers="root nic-test nic-example ns-a ns-b"
upstream() {  # queries the bed's authoritative servers have answered, in all
  local s n=0
  for s in $servers; do n=$((n + $(netbed_dns_queries "$s"))); done
  echo "$n"
}
wait_log() {  # NAME PATTERN: until the line is in NAME's log, at most 20 s
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q "$2" "$NB_DIR/$1.log" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "no '$2' in $1's log"
}
stop() {  # NAME PID: SIGTERM, then wait for the exit (bounded)
  local i rc=0
  kill -TERM "$2"
  for ((i = 0; i < 100; i++)); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$2" 2>/dev/null && fail "$1 did not stop on SIGTERM"
  wait "$2" || rc=$?
  [ "$rc" = 0 ] || fail "$1 exited with status $rc"
}

# The state directory: the resolver drops to the user diode before it
# reads or writes the file, as under systemd's StateDirectory=.
chmod 711 "$NB_DIR"
mkdir -m 700 "$NB_DIR/state"
chown diode:diode "$NB_DIR/state"
cache=$NB_DIR/state/resolver.cache
cat >"$NB_DIR/gateway.toml" <<EOF
[[interface]]
name = "$NB_IF_GW_LAN"
role = "internal"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
socks_port = 0
dns_port = 53

[[interface]]
name = "$NB_IF_GW_NET"
role = "external"
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]

[files]
sockd_conf = ""
sockd_route = ""
users = ""
root_hints = "$NB_ROOT_HINTS"

[sockd]
methods = ["none"]

[resolver]
dnssec = false   # the root here is a made-up, unsigned one: nothing to validate
query_documentation_addresses = true
builtin_local_zones = false
upstream_timeout = "800ms"
max_ttl = "10m"
cache_file = "$cache"
EOF
start() {  # NAME: starts the resolver, logging to NAME.log; waits for its cache_load line
  netbed_start_bg gw "$1" "$RESOLVER" --config "$NB_DIR/gateway.toml" --control "$NB_DIR/$1.ctl"
  pid=$NB_LAST_PID
  wait_log "$1" 'event=cache_load'
}
stat_of() { nb_gw "$RESOLVER" --control "$NB_DIR/$1.ctl" stats | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# name type: the list a client asks twice. Positive, across zones (CNAME
# to another TLD), glueless, NXDOMAIN and NODATA.
list=("www.a.test A" "www.a.test AAAA" "alias.a.test A" "www.b.example A" "www.c.test A"
      "nope.a.test A" "v4only.a.test AAAA")
declare -A first_ttl first_status first_data

# --- First run: nothing on disk yet, the list resolved from the servers.
start resolver1
grep -q 'event=cache_load status=none' "$NB_DIR/resolver1.log" || fail "first start: $(log_of resolver1)"
before=$(upstream)
for item in "${list[@]}"; do
  # shellcheck disable=SC2086  # "name type"
  out=$(q $item +noall +answer +authority +comments)
  first_status[$item]=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out" | head -1)
  first_data[$item]=$(awk '/^[^;]/ && NF >= 5 {print $1, $4, $5}' <<<"$out" | sort)
  first_ttl[$item]=$(awk '/^[^;]/ && NF >= 5 {print $2; exit}' <<<"$out")
  [ -n "${first_ttl[$item]}" ] || fail "$item: no record in $out"
done
t1=$(now_us)
[ "${first_status[www.a.test A]}" = NOERROR ] && [ "${first_status[nope.a.test A]}" = NXDOMAIN ] \
  || fail "first answers: ${first_status[*]}"
cold=$(($(upstream) - before))
[ "$cold" -gt 0 ] || fail "the first run asked nobody"
pass "cold: ${#list[@]} questions, $cold upstream queries"

stop resolver1 "$pid"
grep -q 'event=cache_save status=ok' "$NB_DIR/resolver1.log" || fail "no cache_save: $(log_of resolver1)"
[ "$(stat -c '%U %a' "$cache")" = "diode 600" ] || fail "cache file: $(stat -c '%U %a' "$cache")"
pass "saved at stop: $(grep -o 'entries=[0-9]* .*bytes=[0-9]*' "$NB_DIR/resolver1.log")"

# --- Stopped for a while (the time under test, not a synchronisation).
sleep 3

# --- Second run: the same list, from the file alone.
start resolver2
grep -q 'event=cache_load status=ok' "$NB_DIR/resolver2.log" || fail "load: $(log_of resolver2)"
before=$(upstream)
for item in "${list[@]}"; do
  # shellcheck disable=SC2086
  out=$(q $item +noall +answer +authority +comments)
  t2=$(now_us)
  st=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out" | head -1)
  data=$(awk '/^[^;]/ && NF >= 5 {print $1, $4, $5}' <<<"$out" | sort)
  ttl=$(awk '/^[^;]/ && NF >= 5 {print $2; exit}' <<<"$out")
  [ "$st" = "${first_status[$item]}" ] || fail "$item: $st, first $st"
  [ "$data" = "${first_data[$item]}" ] || fail "$item: $data, first ${first_data[$item]}"
  # Whole seconds elapsed between the first answer and this question (at least).
  elapsed=$(((t2 - t1) / 1000000))
  [ "$elapsed" -ge 3 ] || fail "elapsed $elapsed s"
  [ "$ttl" -le $((first_ttl[$item] - elapsed)) ] \
    || fail "$item: TTL $ttl after $elapsed s, first ${first_ttl[$item]}"
  echo "  $item: $st TTL ${first_ttl[$item]} -> $ttl after $elapsed s"
done
[ "$(upstream)" = "$before" ] || fail "warm names reached the servers: $before -> $(upstream)"
[ "$(stat_of resolver2 upstream_queries)" = 0 ] || fail "upstream_queries=$(stat_of resolver2 upstream_queries)"
[ "$(stat_of resolver2 cache_hits)" = "${#list[@]}" ] || fail "cache_hits=$(stat_of resolver2 cache_hits)"
pass "warm after restart: ${#list[@]} cache hits, 0 upstream queries, TTLs aged"
stop resolver2 "$pid"

# --- A truncated file: ignored with one line, cold start, still serving.
size=$(stat -c %s "$cache")
truncate -s $((size / 2)) "$cache"
start resolver3
[ "$(grep -c 'event=cache_load' "$NB_DIR/resolver3.log")" = 1 ] || fail "cache_load lines: $(log_of resolver3)"
grep 'event=cache_load' "$NB_DIR/resolver3.log" | grep -q 'status=ignored.*checksum' \
  || fail "truncated file: $(log_of resolver3)"
before=$(upstream)
[ "$(q www.a.test A +short)" = 198.51.100.80 ] || fail "no answer after a truncated file"
[ "$(upstream)" -gt "$before" ] || fail "cold start did not ask the servers"
pass "truncated file ignored, cold start"
stop resolver3 "$pid"

# --- A foreign file: the same.
printf 'some other program wrote this\n' >"$cache"
chown diode:diode "$cache"
start resolver4
grep 'event=cache_load' "$NB_DIR/resolver4.log" | grep -q 'status=ignored.*magic' \
  || fail "foreign file: $(log_of resolver4)"
[ "$(q www.a.test A +short)" = 198.51.100.80 ] || fail "no answer after a foreign file"
pass "foreign file ignored"
stop resolver4 "$pid"
grep -q 'event=cache_save status=ok' "$NB_DIR/resolver4.log" || fail "no save after a cold start"
! grep -q 'Sanitizer\|runtime error' "$NB_DIR"/resolver*.log || fail "sanitizer report"
echo "resolver persist test passed"
