#!/usr/bin/env bash
# The whole appliance in gw of the network test bed (docs/testbed.md): the
# supervisor diode-gateway, run as root, with two internal interfaces (lan
# and a second LAN, lan2, made by netbed_add_lan) and the external one towards net.
# Checked as an administrator and the LANs' users would see it:
#   - curl in each LAN through SOCKS by name (socks5h; the name resolved by
#     Diode's own resolver from the bed's fake root) and by address; dig in
#     each LAN answered by Diode's resolver; an iface= rule that lets lan
#     reach the web server and not lan2;
#   - every child: uid/gid not 0, no capability at all, NoNewPrivs; the
#     supervisor keeps exactly CAP_SETUID, CAP_SETGID, CAP_SETPCAP and CAP_KILL;
#   - kill -9 of lan's sockd: lan2's open session keeps flowing, lan's relay
#     serves again within 2 s;
#   - SIGHUP with a broken sockd.conf keeps the old rules; a good change
#     decides new sessions while an old one goes on; a changed
#     max_sessions_per_client in gateway.toml takes effect;
#   - from net nothing of Diode answers, neither SOCKS nor DNS;
#   - status, hits and metrics after a bounded load match what the clients did;
#   - SIGTERM with a session open: it ends within the drain time, exit 0, no
#     process left;
#   - systemd socket activation (systemd-socket-activate): named sockets
#     handed to the supervisor are used instead of its own.
set -euo pipefail
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
GATEWAY=${GATEWAY:-$DIODE_BINARY_DIR/gateway/diode-gateway}
DIODECTL=${DIODECTL:-$DIODE_BINARY_DIR/gateway/diodectl}
SOCKD_CHECK=${SOCKD_CHECK:-$DIODE_BINARY_DIR/tools/sockd-check/sockd-check}
HOLDER=$DIODE_SOURCE_DIR/tests/integration/gateway_holder.py
PY=/usr/bin/python3
netbed_up
netbed_forwarding off
# The children read their files as the unprivileged user.
chmod 755 "$NB_DIR"

fail=0
expect() {  # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then echo "ok   - $1"; else echo "FAIL - $1: wanted '$2', got '$3'"; fail=1; fi
}
# wait_log FILE PATTERN [TIMEOUT]: until an ERE matches a line of FILE.
wait_log() {
  local deadline=$((${EPOCHREALTIME//[!0-9]/} + ${3:-10} * 1000000))
  while ((${EPOCHREALTIME//[!0-9]/} < deadline)); do
    grep -Eq -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "timed out waiting for /$2/ in $1" >&2
  return 1
}
count_log() { grep -Ec -- "$2" "$1" 2>/dev/null || true; }

# A second LAN on gw: 203.0.113.128/25 (net's servers stay below .128, so
# gw's connected /25 wins over its route to 203.0.113.0/24) and 2001:db8:4::/64.
netbed_add_lan lan2 203.0.113.129/25 203.0.113.130 2001:db8:4::1/64 2001:db8:4::10
LAN2=$NB_LAST_LAN_NS
IF_GW_LAN2=$NB_LAST_LAN_GW_IF
nb_lan2() { ip netns exec "$LAN2" "$@"; }

conf=$NB_DIR/gateway
mkdir -p "$conf"
write_toml() {  # write_toml MAX_SESSIONS_PER_CLIENT
  cat >"$conf/gateway.toml.new" <<TOML
[gateway]
user = "diode"
group = "diode"
runtime_dir = "$NB_DIR/run"
drain_timeout = "3s"
metrics_listen = "127.0.0.1:9167"

[[interface]]
name = "$NB_IF_GW_LAN"
role = "internal"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
socks_port = 1080
dns_port = 53

[[interface]]
name = "$IF_GW_LAN2"
role = "internal"
addresses = ["203.0.113.129/25", "2001:db8:4::1/64"]
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
max_sessions_per_client = $1

[resolver]
dnssec = false   # the root here is a made-up, unsigned one: nothing to validate
query_documentation_addresses = true
builtin_local_zones = false            # test. is the bed's TLD
cache_file = "$NB_DIR/state/resolver.cache"  # this run's own; the supervisor makes state/ for diode
TOML
  mv "$conf/gateway.toml.new" "$conf/gateway.toml"
}
write_toml 64
chmod a+r "$conf/gateway.toml"
cat >"$conf/sockd.conf" <<CONF
# The web server: from the first LAN only.
permit iface=$NB_IF_GW_LAN 0.0.0.0/0 198.51.100.80/32 eq 80
deny   0.0.0.0/0 198.51.100.80/32
# The echo server: from both LANs.
permit 0.0.0.0/0 198.51.100.7/32 eq 7
# Never decides anything here (sockd-check lint --hits reports it).
permit 0.0.0.0/0 198.51.100.9/32 eq 9
CONF
chmod -R a+rX "$conf"

"$GATEWAY" --version | grep -Eq '^diode-gateway \(Diode\) [0-9]+\.[0-9]+\.[0-9]+$'
expect "diode-gateway --version" 0 "$?"
rc=0
nb_gw "$GATEWAY" --check --config "$conf/gateway.toml" >/dev/null 2>&1 || rc=$?
expect "diode-gateway --check on the sample is clean" 0 "$rc"

log=$NB_DIR/gateway.log
netbed_start_bg gw gateway "$GATEWAY" --config "$conf/gateway.toml"
GW_PID=$NB_LAST_PID
wait_log "$log" 'event=ready ' 15
ctl() { nb_gw "$DIODECTL" --socket "$NB_DIR/run/control" "$@"; }
child_pid() { ctl status | awk -v c="child=$1" '$1 == c {sub("pid=", "", $2); print $2}'; }

page=$(cat "$NB_WWW_DIR/hello.txt")

# --- the LANs' users ----------------------------------------------------------
got=$(nb_lan curl -sS --max-time 10 --socks5-hostname 192.0.2.1:1080 http://www.a.test/hello.txt || true)
expect "lan: socks5h by name, resolved by Diode's resolver" "$page" "$got"
got=$(nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" || true)
expect "lan: socks5 by address" "$page" "$got"
got=$(nb_lan dig +short +time=3 +tries=1 @192.0.2.1 www.a.test A || true)
expect "lan: dig answered by Diode's resolver" "$NB_WEB_IP4" "$got"
got=$(nb_lan2 dig +short +time=3 +tries=1 @203.0.113.129 www.a.test AAAA || true)
expect "lan2: dig answered by Diode's resolver" "$NB_WEB_IP6" "$got"
rc=0
nb_lan2 curl -sS --max-time 10 --socks5 203.0.113.129:1080 "http://$NB_WEB_IP4/hello.txt" \
  >/dev/null 2>&1 || rc=$?
expect "lan2: the iface= rule keeps the web server from lan2 (curl exit 97)" 97 "$rc"
wait_log "$log" "event=refused client=203\.0\.113\.130:[0-9]+ .*rule=$conf/sockd\.conf:3 verdict=deny" 5 &&
  expect "lan2: refused by sockd.conf:3, logged" yes yes ||
  expect "lan2: refused by sockd.conf:3, logged" yes no
got=$(printf 'hello through lan2\n' | nb_lan2 $PY -c '
import socks, sys
s = socks.socksocket(); s.set_proxy(socks.SOCKS5, "203.0.113.129", 1080, rdns=True); s.settimeout(10)
s.connect(("echo.a.test", 7)); s.sendall(sys.stdin.buffer.read()); print(s.recv(100).decode().strip())' || true)
expect "lan2: the echo server by name through lan2's relay" "hello through lan2" "$got"

# --- privileges ---------------------------------------------------------------
caps_of() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
for child in "sockd-$NB_IF_GW_LAN" "sockd-$IF_GW_LAN2" resolver; do
  pid=$(child_pid "$child")
  if [ -z "$pid" ] || [ ! -r "/proc/$pid/status" ]; then
    expect "$child is running" yes no
    continue
  fi
  uid=$(awk '$1 == "Uid:" {print $2 $3 $4 $5}' "/proc/$pid/status")
  gid=$(awk '$1 == "Gid:" {print $2 $3 $4 $5}' "/proc/$pid/status")
  want_uid=$(id -u diode)
  want_gid=$(getent group diode | cut -d: -f3)
  expect "$child: real, effective, saved and fs uid are diode's" \
    "$want_uid$want_uid$want_uid$want_uid" "$uid"
  expect "$child: every gid is diode's" "$want_gid$want_gid$want_gid$want_gid" "$gid"
  expect "$child: the one supplementary group is diode's" "$want_gid" \
    "$(awk '$1 == "Groups:" {$1 = ""; print substr($0, 2)}' "/proc/$pid/status")"
  for k in CapInh CapPrm CapEff CapBnd CapAmb; do
    expect "$child: $k empty" 0000000000000000 "$(caps_of "$pid" "$k")"
  done
  expect "$child: NoNewPrivs" 1 "$(caps_of "$pid" NoNewPrivs)"
done
# CAP_KILL (5), CAP_SETGID (6), CAP_SETUID (7), CAP_SETPCAP (8): 0x1e0.
expect "supervisor: CapEff is CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP" 00000000000001e0 "$(caps_of "$GW_PID" CapEff)"
expect "supervisor: CapPrm likewise" 00000000000001e0 "$(caps_of "$GW_PID" CapPrm)"
expect "supervisor: CapBnd likewise" 00000000000001e0 "$(caps_of "$GW_PID" CapBnd)"

# --- from net, nothing answers ------------------------------------------------
for a in 198.51.100.1 192.0.2.1 203.0.113.129; do
  rc=0
  nb_net curl -sS --max-time 3 --socks5 "$a:1080" "http://$NB_WEB_IP4/hello.txt" >/dev/null 2>&1 || rc=$?
  expect "net: no SOCKS on $a (curl fails to connect: exit 7)" 7 "$rc"
  got=$(nb_net dig +short +time=1 +tries=1 "@$a" www.a.test A 2>&1 | grep -c "$NB_WEB_IP4" || true)
  expect "net: no DNS answer from $a" 0 "$got"
done

# --- one relay dies, the other does not notice --------------------------------
stop2=$NB_DIR/holder2.stop
netbed_start_bg "$LAN2" holder2 $PY -u "$HOLDER" 203.0.113.129 1080 echo.a.test 7 "$stop2" 60
H2=$NB_LAST_PID
wait_log "$NB_DIR/holder2.log" '^round 5$' 10
victim=$(child_pid "sockd-$NB_IF_GW_LAN")
before=$(count_log "$log" "event=child_start child=sockd-$NB_IF_GW_LAN ")
killed_at=${EPOCHREALTIME//[!0-9]/}
kill -9 "$victim"
wait_log "$log" "event=child_exit child=sockd-$NB_IF_GW_LAN pid=$victim status=\"signal KILL\"" 5 &&
  expect "the supervisor logs the kill -9 with its signal" yes yes ||
  expect "the supervisor logs the kill -9 with its signal" yes no
served=""
while (( ${EPOCHREALTIME//[!0-9]/} - killed_at < 2000000 )); do
  got=$(nb_lan curl -sS --max-time 1 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" 2>/dev/null || true)
  if [ "$got" = "$page" ]; then served=yes; break; fi
  sleep 0.05
done
expect "lan's relay serves again within 2 s of kill -9" yes "${served:-no}"
expect "the killed relay was started again" $((before + 1)) \
  "$(count_log "$log" "event=child_start child=sockd-$NB_IF_GW_LAN ")"
r_before=$(grep -c '^round' "$NB_DIR/holder2.log")
wait_log "$NB_DIR/holder2.log" "^round $((r_before + 10))\$" 10 &&
  expect "lan2's open session kept flowing" yes yes || expect "lan2's open session kept flowing" yes no

# --- reload -------------------------------------------------------------------
cp "$conf/sockd.conf" "$conf/sockd.conf.good"
printf 'permit 0.0.0.0/0 198.51.100.7/32 eq seven\n' >>"$conf/sockd.conf"
failed_before=$(count_log "$log" 'event=reload_failed')
kill -HUP "$GW_PID"
wait_log "$log" "sockd\.conf:8:[0-9]+: error" 10 &&
  expect "a broken sockd.conf: the error is logged with file:line:col" yes yes ||
  expect "a broken sockd.conf: the error is logged with file:line:col" yes no
wait_log "$log" "event=reload_failed" 5
expect "the supervisor refuses the reload" $((failed_before + 1)) "$(count_log "$log" 'event=reload_failed')"
got=$(nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" || true)
expect "the old rules still decide after a refused reload" "$page" "$got"

# A good change: lan2 loses the echo server, while its open session goes on.
{ grep -v '198.51.100.7' "$conf/sockd.conf.good"; printf 'deny iface=%s 0.0.0.0/0 198.51.100.7/32\npermit 0.0.0.0/0 198.51.100.7/32 eq 7\n' "$IF_GW_LAN2"; } >"$conf/sockd.conf"
# hup_and_wait: SIGHUP, then the supervisor's and its three children's
# lines: `event=reloaded` (supervisor, relays), `event=reload status=ok`
# (the resolver).
hup_and_wait() {
  local before deadline
  before=$(count_log "$log" 'event=reloaded|event=reload status=ok')
  kill -HUP "$GW_PID"
  deadline=$((${EPOCHREALTIME//[!0-9]/} + 10000000))
  while (( $(count_log "$log" 'event=reloaded|event=reload status=ok') < before + 4 )) &&
        ((${EPOCHREALTIME//[!0-9]/} < deadline)); do
    sleep 0.05
  done
  expect "$1: the supervisor and its three children reloaded" $((before + 4)) \
    "$(count_log "$log" 'event=reloaded|event=reload status=ok')"
}
hup_and_wait "a new sockd.conf"
rc=0
nb_lan2 $PY -c '
import socks
s = socks.socksocket(); s.set_proxy(socks.SOCKS5, "203.0.113.129", 1080); s.settimeout(10)
s.connect(("198.51.100.7", 7))' >/dev/null 2>&1 || rc=$?
expect "the new rule refuses a new session from lan2" 1 "$rc"
wait_log "$log" "event=refused client=203\.0\.113\.130:[0-9]+ .*rule=$conf/sockd\.conf:7 verdict=deny" 5 &&
  expect "lan2: refused by the new sockd.conf:7" yes yes ||
  expect "lan2: refused by the new sockd.conf:7" yes no
r_before=$(grep -c '^round' "$NB_DIR/holder2.log")
wait_log "$NB_DIR/holder2.log" "^round $((r_before + 5))\$" 10 &&
  expect "the session opened before the reload continues" yes yes ||
  expect "the session opened before the reload continues" yes no
write_toml 1
chmod a+r "$conf/gateway.toml"
hup_and_wait "max_sessions_per_client = 1 in gateway.toml"
# max_sessions_per_client = 1 now: lan's client holds one session; a second is refused.
stop1=$NB_DIR/holder1.stop
netbed_start_bg lan holder1 $PY -u "$HOLDER" 192.0.2.1 1080 198.51.100.7 7 "$stop1" 60
wait_log "$NB_DIR/holder1.log" '^round 2$' 10
rc=0
nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" >/dev/null 2>&1 || rc=$?
expect "max_sessions_per_client = 1 from the reloaded gateway.toml: a second session is refused" 97 "$rc"
touch "$stop1"
wait_log "$NB_DIR/holder1.log" '^stopped$' 10

# --- status, hits and metrics after a bounded load ----------------------------
metrics_value() {  # metrics_value NAME LABELS-SUBSTRING
  nb_gw curl -sS --max-time 5 http://127.0.0.1:9167/metrics |
    awk -v n="$1" -v l="$2" 'index($1, n "{") == 1 && index($1, l) > 0 {s += $2} END {print s + 0}'
}
permit_before=$(metrics_value diode_sockd_sessions_total 'verdict="permit"')
# The load runs in the background while status and metrics are read.
(
  for i in $(seq 1 20); do
    nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" >/dev/null
  done
) &
load=$!
during=0
while kill -0 "$load" 2>/dev/null && ((during < 50)); do
  ctl status | grep -q "^child=sockd-$NB_IF_GW_LAN .*state=ready" &&
    metrics_value diode_gateway_child_up "child=\"resolver\"" | grep -qx 1 && during=$((during + 1))
done
wait "$load"
[ "$during" -ge 1 ] && expect "status and metrics answer while the load runs" yes yes ||
  expect "status and metrics answer while the load runs" yes no
expect "metrics: 20 more permitted sessions" $((permit_before + 20)) \
  "$(metrics_value diode_sockd_sessions_total 'verdict="permit"')"
hits=$(ctl hits)
echo "$hits" | grep -q "^$conf/sockd.conf:2 hits=" &&
  expect "hits: the web rule is listed" yes yes || expect "hits: the web rule is listed" yes no
web_hits=$(echo "$hits" | awk -v k="$conf/sockd.conf:2" '$1 == k {sub("hits=", "", $2); print $2}')
[ "${web_hits:-0}" -ge 20 ] && expect "hits: the web rule decided the 20 sessions since the reload" yes yes ||
  expect "hits: the web rule decided the 20 sessions since the reload" yes "no ($web_hits)"
ctl hits >"$NB_DIR/hits.txt"
lint=$("$SOCKD_CHECK" lint --rules "$conf/sockd.conf" --hits "$NB_DIR/hits.txt" 2>&1 || true)
if grep -q "sockd\.conf:6:.*\[never-hit\]" <<<"$lint"; then
  expect "sockd-check lint --hits on diodectl hits: the sink rule never decided" yes yes
else
  expect "sockd-check lint --hits on diodectl hits: the sink rule never decided" yes no
  echo "$lint" | tail -n 5
fi
status=$(ctl status)
expect "status: three children, all ready" 3 "$(echo "$status" | grep -c 'state=ready')"
echo "$status" | grep -q "^child=resolver .*cache_entries=" &&
  expect "status: the resolver reports its cache" yes yes || expect "status: the resolver reports its cache" yes no
got=$(nb_gw curl -sS --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:9167/nope || true)
expect "metrics: other paths are 404" 404 "$got"
expect "metrics: the supervisor counts the lan relay's restart" 1 \
  "$(metrics_value diode_gateway_child_restarts_total "child=\"sockd-$NB_IF_GW_LAN\"")"

# --- SIGTERM with a session open ----------------------------------------------
kids=$(ctl status | awk '$1 ~ /^child=/ {sub("pid=", "", $2); print $2}')
kill -TERM "$GW_PID"
start=${EPOCHREALTIME//[!0-9]/}
rc=0
wait "$GW_PID" || rc=$?
elapsed=$(( (${EPOCHREALTIME//[!0-9]/} - start) / 1000 ))
expect "SIGTERM: diode-gateway exits 0" 0 "$rc"
[ "$elapsed" -lt 9000 ] && expect "SIGTERM: done within drain_timeout and its grace" yes yes ||
  expect "SIGTERM: done within drain_timeout and its grace" yes "no (${elapsed} ms)"
rc=0
wait "$H2" || rc=$?
expect "SIGTERM: lan2's open session was ended by the drain (holder saw eof)" 2 "$rc"
left=0
for p in $kids; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
expect "SIGTERM: no child process left" 0 "$left"
expect "SIGTERM: the control socket is gone" no "$( [ -e "$NB_DIR/run/control" ] && echo yes || echo no)"
expect "the supervisor made the cache file's missing folder for diode, 0700" "diode 700" \
  "$(stat -c '%U %a' "$NB_DIR/state" 2>&1)"
expect "SIGTERM: the resolver wrote its cache file there" yes \
  "$( [ -s "$NB_DIR/state/resolver.cache" ] && echo yes || echo no)"

# --- systemd socket activation ------------------------------------------------
# systemd-socket-activate (systemd's own tool) opens lan's SOCKS sockets and
# names them as a .socket unit would; the supervisor takes them instead of
# opening its own, and opens the rest itself.
log2=$NB_DIR/gateway2.log
netbed_start_bg gw gateway2 systemd-socket-activate -l 192.0.2.1:1080 -l '[2001:db8:1::1]:1080' \
  "--fdname=socks.$NB_IF_GW_LAN:socks.$NB_IF_GW_LAN" "$GATEWAY" --config "$conf/gateway.toml"
GW2_PID=$NB_LAST_PID
# systemd-socket-activate starts the service on the first connection, as
# systemd does: curl's connection waits in the listen queue meanwhile.
wait_log "$log2" 'Listening on \[2001:db8:1::1\]:1080' 10
got=$(nb_lan curl -sS --max-time 15 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" || true)
expect "socket activation: lan is served on the inherited socket" "$page" "$got"
wait_log "$log2" 'event=ready ' 15
expect "socket activation: both SOCKS sockets of lan taken from systemd" 2 \
  "$(count_log "$log2" "event=socket_inherited name=socks\.$NB_IF_GW_LAN ")"
rc=0
nb_lan2 dig +short +time=3 +tries=1 @203.0.113.129 www.a.test A | grep -qx "$NB_WEB_IP4" || rc=1
expect "socket activation: the sockets it opened itself serve too (lan2's DNS)" 0 "$rc"
kill -TERM "$GW2_PID"
rc=0
wait "$GW2_PID" || rc=$?
expect "socket activation: SIGTERM, exit 0" 0 "$rc"

if [ "$fail" != 0 ]; then
  echo "--- gateway.log (tail)"; tail -n 60 "$log" || true
fi
exit "$fail"
