#!/usr/bin/env bash
# package_install.sh OLD.deb NEW.deb: Diode's .deb as an administrator meets
# it, on this machine (root), with the network test bed as the world:
#   - dpkg -i of an older build: the user diode, /etc/diode/users root:diode
#     0640, the five conffiles, the unit enabled the Debian way;
#   - gateway.toml edited for this host (the bed's interfaces), then an
#     upgrade to NEW: the edit survives, no prompt;
#   - the unit's own ExecStartPre and ExecStart lines, run with the unit's
#     User=, Group=, capabilities and NoNewPrivileges (setpriv; systemd is
#     not PID 1 here) and a fresh RuntimeDirectory (a private /run): curl
#     from the LAN through the relay by name, dig against the resolver;
#   - Type=notify as systemd sees it (a notify socket of the test's):
#     READY=1, RELOADING=1 then READY=1, WATCHDOG=1, STOPPING=1, each from
#     the main process (NotifyAccess=main);
#   - diodectl status; the unit's ExecReload lines with a sockd.conf change
#     that then decides; SIGTERM, exit 0;
#   - dpkg --purge: nothing of the package left, the user diode kept, and
#     dpkg's database as it was before the test (also on failure: a trap).
set -euo pipefail
old_deb=${1:?usage: package_install.sh OLD.deb NEW.deb}
new_deb=${2:?usage: package_install.sh OLD.deb NEW.deb}
UNIT=/usr/lib/systemd/system/diode.service

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
  echo "timed out waiting for /$2/ in $1" >&2
  return 1
}
dpkg_state() { dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' | sort; }

if [ "$(id -u)" -ne 0 ]; then echo "package_install.sh: needs root (dpkg -i)" >&2; exit 1; fi
if dpkg-query -W -f='${db:Status-Abbrev}' diode 2>/dev/null | grep -q '^[a-z]i'; then
  echo "package_install.sh: a package diode is installed on this machine; this test leaves it alone" >&2
  exit 1
fi
if [ -e /etc/diode ]; then
  echo "package_install.sh: /etc/diode exists (not from a package); this test leaves it alone" >&2
  exit 1
fi

# --- the machine as it was, and the way back to it ----------------------------
before=$(mktemp)
dpkg_state >"$before"
user_before=$(getent passwd diode || true)
# Packaged services never start during the test, even where systemd runs.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made_policy=1
fi
GW_PID=
WATCHDOG=

cleanup() {
  local rc=$?
  set +e
  [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID"
    sleep 2
    kill -KILL "$GW_PID" 2>/dev/null
  fi
  if dpkg-query -W diode >/dev/null 2>&1; then
    dpkg --purge diode >/dev/null 2>&1 || echo "cleanup: dpkg --purge diode failed" >&2
  fi
  [ "$made_policy" = 1 ] && rm -f "$policy"
  if ! diff -u "$before" <(dpkg_state) >&2; then
    echo "FAIL - dpkg's database differs from before the test (above)" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
  rm -f "$before"
  if [ -n "${NB_DIR:-}" ]; then
    [ "$rc" -eq 0 ] || _nb_log_tails
    netbed_down || { [ "$rc" -ne 0 ] || rc=1; }
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
# ctest's TIMEOUT would kill the test without its trap: stop it first.
( sleep 200; echo "package_install.sh: 200 s have passed, stopping" >&2; kill -TERM $$ ) </dev/null >/dev/null 2>&1 &
WATCHDOG=$!
trap 'exit 130' INT

NB_NO_TRAP=1
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
netbed_up
netbed_forwarding off
chmod 755 "$NB_DIR"   # the root hints, read by the user diode

# --- install the older build -----------------------------------------------
export DEBIAN_FRONTEND=noninteractive
dpkg -i "$old_deb" </dev/null
old_version=$(dpkg-deb -f "$old_deb" Version)
new_version=$(dpkg-deb -f "$new_deb" Version)
expect "installed version" "$old_version" "$(dpkg-query -W -f='${Version}' diode)"
expect "the system user diode exists" yes "$(getent passwd diode >/dev/null && echo yes || echo no)"
expect "the system group diode exists" yes "$(getent group diode >/dev/null && echo yes || echo no)"
expect "/etc/diode/users: root:diode 0640" "root:diode 640" "$(stat -c '%U:%G %a' /etc/diode/users)"
expect "/etc/diode/gateway.toml: root:root 644" "root:root 644" "$(stat -c '%U:%G %a' /etc/diode/gateway.toml)"
expect "five conffiles" 5 "$(dpkg-query -W -f='${Conffiles}\n' diode | grep -c '^ /etc/diode/')"
expect "the unit is enabled the Debian way (deb-systemd-helper)" \
  "$UNIT" "$(readlink -f /etc/systemd/system/multi-user.target.wants/diode.service || true)"
expect "no live account in the packaged users file" 0 "$(grep -vc '^#' /etc/diode/users || true)"
for b in /usr/sbin/diode-gateway /usr/sbin/sockd /usr/sbin/diode-resolver /usr/bin/sockd-check /usr/bin/diodectl \
         /usr/bin/diode-socksify; do
  expect "$b --version" "${b##*/} (Diode) $new_version" "$("$b" --version)"
done
socksify_lib=$(/usr/bin/diode-socksify --library 2>&1 || true)
if [[ $socksify_lib == /usr/lib/*/diode/libdiode-socksify.so && -f $socksify_lib ]]; then
  expect "diode-socksify finds the packaged library" yes yes
else
  expect "diode-socksify finds the packaged library" yes "$socksify_lib"
fi
for m in man8/diode-gateway.8 man8/diodectl.8 man8/sockd.8 man8/diode-resolver.8 man1/sockd-check.1 man1/diode-socksify.1 \
         man5/gateway.toml.5 man5/sockd.conf.5 man5/sockd.route.5 man5/socks.conf.5 man5/diode-users.5; do
  expect "/usr/share/man/$m.gz" yes "$([ -f "/usr/share/man/$m.gz" ] && echo yes || echo no)"
done

# --- the administrator edits gateway.toml for this host, then upgrades --------
sed -i -e "s/^name = \"eth1\"/name = \"$NB_IF_GW_LAN\"/" -e "s/^name = \"eth0\"/name = \"$NB_IF_GW_NET\"/" \
  -e "s|^root_hints = .*|root_hints = \"$NB_ROOT_HINTS\"|" \
  -e "s/^dnssec = true.*/dnssec = false   # the bed's root is unsigned/" \
  -e 's/^query_documentation_addresses = false/query_documentation_addresses = true/' \
  -e 's/^builtin_local_zones = true/builtin_local_zones = false/' \
  -e 's/^drain_timeout = .*/drain_timeout = "2s"/' \
  /etc/diode/gateway.toml
edited=$(md5sum </etc/diode/gateway.toml)
dpkg -i "$new_deb" </dev/null
expect "upgraded" "$new_version" "$(dpkg-query -W -f='${Version}' diode)"
expect "the edited gateway.toml survives the upgrade" "$edited" "$(md5sum </etc/diode/gateway.toml)"
expect "no .dpkg-dist or .dpkg-old beside it" "" "$(ls /etc/diode | grep -E '\.dpkg-' || true)"
expect "/etc/diode/users still root:diode 0640" "root:diode 640" "$(stat -c '%U:%G %a' /etc/diode/users)"

# The installed unit, with its programs and manual pages in place.
out=$(systemd-analyze verify "$UNIT" 2>&1) && rc=0 || rc=$?
expect "systemd-analyze verify of the installed unit (Documentation= pages too)" "0 " "$rc $out"

# --- the unit, as systemd would run it ---------------------------------------
unit_value() { sed -n "s/^$1=//p" "$UNIT"; }
user=$(unit_value User)
group=$(unit_value Group)
expect "the unit runs as diode" "diode:diode" "$user:$group"
caps() { tr ' ' '\n' <<<"$1" | sed -n 's/^CAP_//p' | tr 'A-Z' 'a-z' | sed 's/^/+/' | paste -sd, -; }
ambient=$(caps "$(unit_value AmbientCapabilities)")
bounding=$(caps "$(unit_value CapabilityBoundingSet)")
expect "NoNewPrivileges=yes" yes "$(unit_value NoNewPrivileges)"
# The unit's credentials: User=, Group= (with its supplementary groups),
# ambient capabilities, the bounding set, no_new_privs.
as_unit=(setpriv --reuid="$user" --regid="$group" --init-groups --inh-caps="$ambient"
         --ambient-caps="$ambient" --bounding-set=-all,"$bounding" --no-new-privs --)
# A mount namespace of the gateway's own, as the unit's sandbox makes it:
# a fresh RuntimeDirectory=diode (RuntimeDirectoryMode=, owned by User=) in
# a /run of its own (the machine's /run is not touched); ProtectSystem=strict
# and ProtectHome= approximated by read-only binds of the main trees;
# ProtectProc=invisible and ProcSubset=pid by a /proc mounted that way.
runtime_mode=$(unit_value RuntimeDirectoryMode)
# StateDirectory=diode, the same way: a fresh /var/lib/diode in a /var/lib of its own.
expect "StateDirectory=diode" diode "$(unit_value StateDirectory)"
state_mode=$(unit_value StateDirectoryMode)
expect "ProtectSystem=strict" strict "$(unit_value ProtectSystem)"
expect "ProtectProc=invisible" invisible "$(unit_value ProtectProc)"
expect "ProcSubset=pid" pid "$(unit_value ProcSubset)"
with_runtime_dir=(unshare --mount --propagation private -- sh -c '
  set -e
  mount -t tmpfs -o mode=0755 diode-test-run /run
  mkdir -m "$1" /run/diode
  chown "$2:$3" /run/diode
  for d in /usr /etc /var /tmp /home /root /srv /opt; do
    [ -d "$d" ] || continue
    mount --bind "$d" "$d"
    mount -o remount,bind,ro "$d"
  done
  mount -t proc -o hidepid=invisible,subset=pid diode-test-proc /proc
  mount -t tmpfs -o mode=0755 diode-test-var-lib /var/lib
  mkdir -m "$4" /var/lib/diode
  chown "$2:$3" /var/lib/diode
  shift 4
  exec "$@"'
  sh "$runtime_mode" "$user" "$group" "$state_mode")
# ExecStartPre, ExecStart and ExecReload hold no shell syntax but $MAINPID.
read -r -a pre <<<"$(unit_value ExecStartPre)"
read -r -a start <<<"$(unit_value ExecStart)"
mapfile -t reload < <(unit_value ExecReload)
expect "ExecStartPre is the check" "--check" "${pre[1]}"

rc=0
nb_gw "${as_unit[@]}" "${pre[@]}" || rc=$?
expect "ExecStartPre (diode-gateway --check) passes on the edited file" 0 "$rc"

# Type=notify, NotifyAccess=main, WatchdogSec=: systemd's side of sd_notify,
# a datagram socket that records each message with its sender's pid. The
# watchdog is 2 s here (the unit's 30 s would send nothing in this test).
notify_sock=$NB_DIR/notify.sock
notify_log=$NB_DIR/notify.txt
netbed_start_bg gw notify /usr/bin/python3 -c '
import os, socket, struct, sys
path, out = sys.argv[1], open(sys.argv[2], "a", buffering=1)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
out.write("listening\n")
while True:
    data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = next((struct.unpack("iII", d)[0] for l, t, d in anc
                if l == socket.SOL_SOCKET and t == socket.SCM_CREDENTIALS), -1)
    out.write("pid=%d %s\n" % (pid, data.decode(errors="replace").replace("\n", " ")))
' "$notify_sock" "$notify_log"
wait_log "$notify_log" '^listening$' 10
log=$NB_DIR/gateway.log
netbed_start_bg gw gateway env NOTIFY_SOCKET="$notify_sock" WATCHDOG_USEC=2000000 \
  "${with_runtime_dir[@]}" "${as_unit[@]}" "${start[@]}"
GW_PID=$NB_LAST_PID
wait_log "$log" 'event=ready ' 20 || fail=1
# The supervisor itself, $MAINPID: unshare, sh and setpriv exec into it.
gw_main=$GW_PID
[ "$(readlink "/proc/$gw_main/exe" 2>/dev/null)" = /usr/sbin/diode-gateway ] || gw_main=
expect "the supervisor is running" yes "$([ -n "$gw_main" ] && echo yes || echo no)"
if [ -n "$gw_main" ]; then
  expect "the supervisor's uid is diode's" "$(id -u diode)" "$(awk '$1 == "Uid:" {print $3}' "/proc/$gw_main/status")"
  expect "the supervisor's bounding set: CAP_NET_BIND_SERVICE only" 0000000000000400 \
    "$(awk '$1 == "CapBnd:" {print $2}' "/proc/$gw_main/status")"
  expect "the supervisor: NoNewPrivs" 1 "$(awk '$1 == "NoNewPrivs:" {print $2}' "/proc/$gw_main/status")"
  wait_log "$notify_log" "^pid=$gw_main READY=1" 10 || true
  expect "Type=notify: READY=1 from the main process" yes \
    "$(grep -q "^pid=$gw_main READY=1" "$notify_log" && echo yes || echo no)"
  expect "NotifyAccess=main: every message from the main process" 0 \
    "$(grep '^pid=' "$notify_log" | grep -vc "^pid=$gw_main " || true)"
  ctl() { nsenter -t "$gw_main" -m -- /usr/bin/diodectl "$@"; }
  status=$(ctl status || true)
  expect "diodectl status (root, /run/diode/control): two children ready" 2 "$(grep -c 'state=ready' <<<"$status")"
  expect "diodectl status: rss_kib of both children (their /proc under ProtectProc=invisible)" 2 \
    "$(grep -Ec 'state=ready .*rss_kib=[0-9]+' <<<"$status")"
  for pid in $(pgrep -P "$gw_main"); do
    name=$(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -d' ' -f1)
    for k in CapInh CapPrm CapEff CapAmb; do
      expect "child $name: $k empty" 0000000000000000 "$(awk -v k="$k:" '$1 == k {print $2}' "/proc/$pid/status")"
    done
    # Emptying the bounding set needs CAP_SETPCAP, which the unit does not
    # grant: it stays the unit's, and with nothing permitted and
    # NoNewPrivs nothing in it can come back.
    expect "child $name: CapBnd is the unit's" 0000000000000400 "$(awk '$1 == "CapBnd:" {print $2}' "/proc/$pid/status")"
    expect "child $name: NoNewPrivs" 1 "$(awk '$1 == "NoNewPrivs:" {print $2}' "/proc/$pid/status")"
    expect "child $name: uid diode" "$(id -u diode)" "$(awk '$1 == "Uid:" {print $2}' "/proc/$pid/status")"
  done
fi

page=$(cat "$NB_WWW_DIR/hello.txt")
got=$(nb_lan curl -sS --max-time 10 --socks5-hostname 192.0.2.1:1080 http://www.a.test/hello.txt || true)
expect "lan: curl through the relay, by name (Diode's resolver)" "$page" "$got"
got=$(nb_lan dig +short +time=3 +tries=1 @192.0.2.1 www.a.test A || true)
expect "lan: dig answered by Diode's resolver" "$NB_WEB_IP4" "$got"
got=$(nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" || true)
expect "lan: curl through the relay, by address" "$page" "$got"

if [ -z "$gw_main" ]; then
  echo "FAIL - the supervisor did not start; no reload or stop to test" >&2
  exit 1
fi

# A child that dies is started again with the unit's credentials.
relay=$(pgrep -P "$gw_main" -x sockd || true)
if [ -n "$relay" ]; then
  kill -KILL "$relay"
  deadline=$((SECONDS + 10))
  while [ "$(grep -c 'event=child_ready child=sockd-' "$log")" -lt 2 ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  expect "kill -9 of the relay: it is ready again" 2 "$(grep -c 'event=child_ready child=sockd-' "$log")"
  got=$(nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" || true)
  expect "lan: curl through the restarted relay" "$page" "$got"
else
  expect "the relay is a child of the supervisor" yes no
fi

# --- reload, the unit's way: check, then SIGHUP -------------------------------
sed -i "/^# 1\. /i deny    0.0.0.0 0.0.0.0    $NB_WEB_IP4 255.255.255.255" /etc/diode/sockd.conf
for line in "${reload[@]}"; do
  read -r -a cmd <<<"${line//\$MAINPID/$gw_main}"
  rc=0
  if [ "${cmd[0]}" = /bin/kill ]; then "${cmd[@]}" || rc=$?; else nb_gw "${as_unit[@]}" "${cmd[@]}" || rc=$?; fi
  expect "ExecReload: ${cmd[*]}" 0 "$rc"
done
wait_log "$log" 'event=reloaded' 10 && expect "reloaded" yes yes || expect "reloaded" yes no
# RELOADING=1, then READY=1 again, from the main process.
wait_log "$notify_log" "^pid=$gw_main RELOADING=1" 5 || true
reloading_at=$(grep -n "^pid=$gw_main RELOADING=1" "$notify_log" | head -n1 | cut -d: -f1)
expect "sd_notify: RELOADING=1, then READY=1 after it" yes \
  "$([ -n "$reloading_at" ] && tail -n +"$reloading_at" "$notify_log" | grep "^pid=$gw_main READY=1" >/dev/null && echo yes || echo no)"
wait_log "$notify_log" "^pid=$gw_main WATCHDOG=1" 5 2 || true
expect "WatchdogSec: WATCHDOG=1 sent while running (WATCHDOG_USEC=2s: every 1 s)" yes \
  "$([ "$(grep -c "^pid=$gw_main WATCHDOG=1" "$notify_log")" -ge 2 ] && echo yes || echo no)"
rc=0
nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" >/dev/null 2>&1 || rc=$?
expect "after the reload the new deny line decides (curl exit 97)" 97 "$rc"

# --- stop: SIGTERM to the main process (KillMode=mixed) -----------------------
kill -TERM "$gw_main"
rc=0
wait "$GW_PID" || rc=$?
GW_PID=
expect "SIGTERM: the supervisor exits 0" 0 "$rc"
expect "sd_notify: STOPPING=1" 1 "$(grep -c "^pid=$gw_main STOPPING=1" "$notify_log")"
expect "the resolver wrote its cache file in the StateDirectory" 1 \
  "$(grep -c 'event=cache_save status=ok path=/var/lib/diode/resolver.cache' "$log" || true)"
expect "no diode process left" "" "$(pgrep -u diode -f '^/usr/sbin/(diode-gateway|sockd|diode-resolver)( |$)' || true)"

# --- purge ----------------------------------------------------------------------
dpkg --purge diode </dev/null
expect "purged" "" "$(dpkg-query -W -f='${db:Status-Abbrev}' diode 2>/dev/null | grep '^.i' || true)"
for p in /etc/diode /usr/sbin/diode-gateway /usr/bin/diodectl "$UNIT" /usr/share/doc/diode \
         /usr/share/man/man8/diode-gateway.8.gz /etc/systemd/system/multi-user.target.wants/diode.service; do
  expect "gone after purge: $p" no "$([ -e "$p" ] || [ -L "$p" ] && echo yes || echo no)"
done
expect "deb-systemd-helper's state is gone" "" \
  "$(ls /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked 2>/dev/null | grep diode || true)"
expect "the user diode is kept" yes "$(getent passwd diode >/dev/null && echo yes || echo no)"
[ -n "$user_before" ] && expect "the user diode is the one that was there" "$user_before" "$(getent passwd diode)"

exit "$fail"
