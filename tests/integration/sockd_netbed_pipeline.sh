#!/usr/bin/env bash
# Issue 9's comparison: the same flows (tests/integration/sockd_pipeline.flows)
# through `sockd-check simulate --batch --json` and through a live sockd on
# the test bed's gw, with real clients in lan (PySocks, curl), names
# resolved by the bed's nsd, an identd in lan for the ident flows, BIND with
# its peer in net, UDP; pipeline_compare.py then compares verdict, rule,
# reply and route (the egress the destination saw) flow by flow.
set -euo pipefail
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
export NB_WATCHDOG_SECONDS=100
SOCKD=${SOCKD:-$DIODE_BINARY_DIR/sockd/sockd}
SOCKD_CHECK=${SOCKD_CHECK:-$DIODE_BINARY_DIR/tools/sockd-check/sockd-check}
here=$DIODE_SOURCE_DIR/tests/integration
netbed_up
netbed_forwarding off
nb_gw ip addr add 198.51.100.254/24 dev "$NB_IF_GW_NET"

netbed_start_bg net whoami /usr/bin/python3 -u "$here/pipeline_whoami.py" \
  tcp:198.51.100.7:8000 tcp:198.51.100.7:8002 tcp:198.51.100.7:8003 tcp:198.51.100.7:8004 \
  "tcp:[2001:db8:2::7]:8000" udp:198.51.100.7:8000
for p in 8000 8002 8003 8004; do netbed_wait_tcp gw 198.51.100.7 "$p" 10; done
netbed_wait_tcp gw 2001:db8:2::7 8000 10

conf=$NB_DIR/sockd
mkdir -p "$conf"
{
  netbed_gw_interfaces 1080 0 198.51.100.254/32
  cat <<TOML
[files]
sockd_conf = "sockd.conf"
sockd_route = "sockd.route"
users = "users"

[sockd]
threads = 2
nameserver = "203.0.113.30"
methods = ["userpass", "none"]
identd_timeout = "3s"
TOML
} >"$conf/gateway.toml"
hash=$(/usr/bin/openssl passwd -6 -salt diodebed 'open sesame')
printf 'alice:%s\n' "$hash" >"$conf/users"
cat >"$conf/sockd.conf" <<'CONF'
permit *=alice auth=userpass 192.0.2.0/24 198.51.100.7/32 eq 8004
deny   0.0.0.0/0 198.51.100.7/32 eq 8004
permit ?=I 192.0.2.0/24 198.51.100.7/32 eq 8003
deny   0.0.0.0/0 198.51.100.9/32
permit 192.0.2.0/24 198.51.100.7/32 eq 8002 : /bin/true echo.a.test by IPv4
permit 192.0.2.0/24 2001:db8:2::7/128 eq 8002 : /bin/true echo.a.test by IPv6
permit cmd=connect,bind,udp 192.0.2.0/24 198.51.100.0/24
permit 192.0.2.0/24 2001:db8:2::/48
permit 192.0.2.0/24
CONF
cat >"$conf/sockd.route" <<'ROUTE'
198.51.100.254   198.51.100.7 255.255.255.255
198.51.100.1     0.0.0.0 0.0.0.0
2001:db8:2::1    ::/0
ROUTE

netbed_start_bg gw sockd "$SOCKD" --config "$conf/gateway.toml"
netbed_wait_tcp lan 192.0.2.1 1080 10

fail=0
# The prediction: every expect= of the flows holds, and one object a flow.
set +e
"$SOCKD_CHECK" simulate --config "$conf/gateway.toml" --batch "$here/sockd_pipeline.flows" \
  --json >"$NB_DIR/simulated.jsonl" 2>"$NB_DIR/simulate.err"
rc=$?
set -e
if [ "$rc" -eq 0 ]; then echo "ok   - simulate: every expect= holds"; else
  echo "FAIL - simulate exited $rc"; cat "$NB_DIR/simulate.err" "$NB_DIR/simulated.jsonl"; fail=1; fi

# The live run, from lan.
nb_lan env NB_NET="$NB_NET" /usr/bin/python3 -u "$here/sockd_pipeline_live.py" \
  "$here/sockd_pipeline.flows" "$NB_DIR/sockd.log" "$NB_DIR/live.jsonl" || fail=1

if /usr/bin/python3 "$here/pipeline_compare.py" "$NB_DIR/simulated.jsonl" "$NB_DIR/live.jsonl"; then
  echo "ok   - simulate and sockd agree on every flow"
else
  echo "FAIL - simulate and sockd disagree"
  fail=1
fi
# The race of echo.a.test:8002 (IPv6 refused, IPv4 connected): the hook
# that runs is the one of the rule that permitted IPv4 (line 5), the rule
# the log names; the IPv6 line's hook (line 6) does not run. simulate says so too.
hook_done=no
for _ in $(seq 1 100); do
  if grep -q 'event=hook rule=[^ ]*sockd\.conf:5 ' "$NB_DIR/sockd.log"; then hook_done=yes; break; fi
  sleep 0.1
done
if [ "$hook_done" = yes ] && ! grep -q 'event=hook rule=[^ ]*sockd\.conf:6 ' "$NB_DIR/sockd.log"; then
  echo "ok   - the winner's rule's hook ran (line 5), not the first permitted address's (line 6)"
else
  echo "FAIL - hooks of the race: wanted line 5's only"; grep 'event=hook' "$NB_DIR/sockd.log" || true; fail=1
fi
if grep -q '"run hook of [^"]*sockd.conf:5 (not run here): /bin/true echo.a.test by IPv4"' \
     "$NB_DIR/simulated.jsonl"; then
  echo "ok   - simulate runs the same hook"
else
  echo "FAIL - simulate's steps do not run line 5's hook"; fail=1
fi
if [ "$fail" -ne 0 ]; then
  echo "--- sockd log"; cat "$NB_DIR/sockd.log"
  exit 1
fi
echo "all checks passed"
