#!/usr/bin/env bash
# A reload whose check is slow does not stop the supervisor (docs/gateway.md,
# "Signals"): diode-gateway runs as root in gw of the network test bed, with
# --sockd naming a wrapper whose `--check` waits on a FIFO this test holds
# while a file `hold` exists (otherwise it is sockd itself). While that
# check waits:
#   - `diodectl status` answers, both children ready, and the first
#     `diodectl reload` is still waiting for its answer;
#   - a second `diodectl reload` is answered "error reload in progress";
#   - kill -9 of the relay: it is reaped and started again, and relays;
#   - SIGHUP is queued (event=reload_queued) and runs once the first is done;
# then the FIFO releases the check: the first `diodectl reload` answers
# "reloaded", and the queued reload follows. A check that outlives
# gateway.check_timeout (1s in the new gateway.toml) is killed and the
# reload fails, the old configuration kept. SIGTERM while a check waits:
# exit 0, no checker left. Every wait is on an event and bounded.
set -euo pipefail
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
GATEWAY=${GATEWAY:-$DIODE_BINARY_DIR/gateway/diode-gateway}
DIODECTL=${DIODECTL:-$DIODE_BINARY_DIR/gateway/diodectl}
SOCKD=${SOCKD:-$DIODE_BINARY_DIR/sockd/sockd}
netbed_up
netbed_forwarding off
chmod 755 "$NB_DIR"   # the children and the checkers read here as diode

fail=0
expect() {  # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then echo "ok   - $1"; else echo "FAIL - $1: wanted '$2', got '$3'"; fail=1; fi
}
wait_log() {  # wait_log FILE ERE [TIMEOUT] [COUNT]: until COUNT lines (default 1) match
  local n deadline=$((${EPOCHREALTIME//[!0-9]/} + ${3:-10} * 1000000))
  while ((${EPOCHREALTIME//[!0-9]/} < deadline)); do
    n=$(grep -Ec -- "$2" "$1" 2>/dev/null) || true
    (( ${n:-0} >= ${4:-1} )) && return 0
    sleep 0.05
  done
  echo "timed out waiting for ${4:-1} lines /$2/ in $1" >&2
  return 1
}
count_log() { grep -Ec -- "$2" "$1" 2>/dev/null || true; }

dir=$NB_DIR/reload
mkdir -m 755 "$dir"
mkfifo -m 0666 "$dir/fifo"
# The wrapper runs as diode (the supervisor drops each checker and child).
cat >"$dir/sockd-wrapper" <<SH
#!/bin/sh
if [ "\$1" = --check ] && [ -e "$dir/hold" ]; then
  read -r line <"$dir/fifo"
fi
exec "$SOCKD" "\$@"
SH
chmod 755 "$dir/sockd-wrapper"

write_toml() {  # write_toml CHECK_TIMEOUT
  cat >"$dir/gateway.toml.new" <<TOML
[gateway]
user = "diode"
group = "diode"
runtime_dir = "$NB_DIR/run"
drain_timeout = "1s"
check_timeout = "$1"

[[interface]]
name = "$NB_IF_GW_LAN"
role = "internal"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
socks_port = 1080
dns_port = 53

[[interface]]
name = "$NB_IF_GW_NET"
role = "external"
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]

[files]
sockd_conf = "sockd.conf"
sockd_route = ""
users = ""
root_hints = "$NB_ROOT_HINTS"

[sockd]
threads = 1
methods = ["none"]

[resolver]
dnssec = false   # the root here is a made-up, unsigned one: nothing to validate
query_documentation_addresses = true
builtin_local_zones = false
TOML
  chmod 644 "$dir/gateway.toml.new"
  mv "$dir/gateway.toml.new" "$dir/gateway.toml"
}
write_toml 60s
printf 'permit 0.0.0.0/0 0.0.0.0/0\n' >"$dir/sockd.conf"
chmod 644 "$dir/sockd.conf"

log=$NB_DIR/gateway.log
netbed_start_bg gw gateway "$GATEWAY" --config "$dir/gateway.toml" --sockd "$dir/sockd-wrapper"
GW_PID=$NB_LAST_PID
wait_log "$log" 'event=ready ' 20
ctl() { nb_gw timeout 10 "$DIODECTL" --socket "$NB_DIR/run/control" "$@"; }
page=$(cat "$NB_WWW_DIR/hello.txt")
checkers() { pgrep -f "^/bin/sh $dir/sockd-wrapper --check" || true; }

# --- a reload whose check waits --------------------------------------------------
touch "$dir/hold"
nb_gw "$DIODECTL" --socket "$NB_DIR/run/control" reload >"$dir/reload1.out" 2>&1 &
reload1=$!
wait_log "$log" 'event=reload_checking by=diodectl checkers=2' 10
expect "the check is waiting on the FIFO (one sockd --check running)" 1 "$(checkers | wc -l)"

out=$(ctl status) && rc=0 || rc=$?
expect "diodectl status answers while the check waits" 0 "$rc"
expect "status: both children ready" 2 "$(grep -c 'state=ready' <<<"$out")"
expect "the first diodectl reload is still waiting" yes "$(kill -0 "$reload1" 2>/dev/null && echo yes || echo no)"

out=$(ctl reload 2>&1) && rc=0 || rc=$?
expect "a second diodectl reload: answered at once, exit 1" 1 "$rc"
expect "a second diodectl reload: 'reload in progress'" "error reload in progress" "$out"

relay=$(pgrep -P "$GW_PID" -x sockd || true)
if [ -n "$relay" ]; then
  kill -KILL "$relay"
  wait_log "$log" 'event=child_ready child=sockd-' 10 2 || true
  expect "kill -9 of the relay while the check waits: reaped and ready again" 2 \
    "$(count_log "$log" 'event=child_ready child=sockd-')"
  got=$(nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" || true)
  expect "lan: curl through the restarted relay" "$page" "$got"
else
  expect "the relay is a child of the supervisor" yes no
fi

kill -HUP "$GW_PID"
wait_log "$log" 'event=reload_queued' 10 || true
expect "SIGHUP while the check waits: queued" 1 "$(count_log "$log" 'event=reload_queued')"
expect "the check is still waiting" 1 "$(checkers | wc -l)"
expect "the first diodectl reload is still waiting, after all that" yes \
  "$(kill -0 "$reload1" 2>/dev/null && echo yes || echo no)"

# Release it: the queued reload's check must not wait.
rm "$dir/hold"
timeout 10 sh -c 'echo go >"$1"' sh "$dir/fifo"
rc=0
wait "$reload1" || rc=$?
expect "the first diodectl reload: exit 0" 0 "$rc"
expect "the first diodectl reload: 'reloaded'" reloaded "$(cat "$dir/reload1.out")"
wait_log "$log" 'event=reload_checking by=queue' 10 || true
expect "the queued reload ran after it" 1 "$(count_log "$log" 'event=reload_checking by=queue')"
wait_log "$log" 'event=reloaded children=' 10 2 || true
expect "two reloads done" 2 "$(count_log "$log" 'event=reloaded children=')"

# --- a check that outlives gateway.check_timeout ------------------------------------
touch "$dir/hold"
write_toml 1s
out=$(ctl reload 2>&1) && rc=0 || rc=$?
expect "a check past check_timeout: diodectl reload exit 1" 1 "$rc"
expect "a check past check_timeout: 'reload failed'" "reload failed" "$(head -n1 <<<"$out")"
expect "the reply names the timeout" 1 "$(grep -c 'killed after 1s (gateway.check_timeout)' <<<"$out")"
wait_log "$log" 'event=reload_failed' 5 || true
expect "event=reload_failed logged" 1 "$(count_log "$log" 'event=reload_failed')"
expect "the killed checker is gone" 0 "$(checkers | wc -l)"
out=$(ctl status) || true
expect "status: reloads=2 reloads_failed=1" yes \
  "$(grep -q '^supervisor .* reloads=2 reloads_failed=1 ' <<<"$out" && echo yes || echo no)"
got=$(nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" || true)
expect "lan: the relay still relays" "$page" "$got"

# --- SIGTERM while a check waits ----------------------------------------------------
write_toml 60s
kill -HUP "$GW_PID"
wait_log "$log" 'event=reload_checking by=signal' 10 || true
expect "a reload by SIGHUP is checking" 1 "$(checkers | wc -l)"
kill -TERM "$GW_PID"
rc=0
wait "$GW_PID" || rc=$?
expect "SIGTERM during a check: the supervisor exits 0" 0 "$rc"
expect "no checker left" 0 "$(checkers | wc -l)"
# This run's processes, and no other test's: they all name its gateway.toml.
left=$(pgrep -f -- "--config $dir/gateway.toml" || true)
expect "no child left (no process naming this run's gateway.toml)" "" "$left"
[ -z "$left" ] || ps -o pid,ppid,user,stat,args -p "$(paste -sd, <<<"$left")" || true

exit "$fail"
