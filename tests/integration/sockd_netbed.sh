#!/usr/bin/env bash
# sockd on the dual-homed gw of the network test bed (docs/testbed.md), with
# forwarding off so lan reaches net only through the relay: curl from lan with
# socks5h and socks4a to names that sockd resolves with c-ares at the bed's
# nsd (ns1.a.test), over IPv4 and IPv6; the egress from sockd.route; the
# gateway itself and the internal network refused; UDP through the relay to
# net's echo server with PySocks.
set -euo pipefail
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
export NB_WATCHDOG_SECONDS=100
SOCKD=${SOCKD:-$DIODE_BINARY_DIR/sockd/sockd}
netbed_up
netbed_forwarding off

conf=$NB_DIR/sockd
mkdir -p "$conf"
cat >"$conf/gateway.toml" <<TOML
[[interface]]
name = "$NB_IF_GW_LAN"
role = "internal"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
socks_port = 1080
dns_port = 0

[[interface]]
name = "$NB_IF_GW_NET"
role = "external"
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]

[files]
sockd_conf = "sockd.conf"
sockd_route = "sockd.route"
users = ""

[sockd]
threads = 2
nameserver = "203.0.113.30"
methods = ["none"]
TOML
cat >"$conf/sockd.conf" <<'CONF'
permit cmd=connect,bind,udp 192.0.2.0/24
permit cmd=connect,bind,udp 2001:db8:1::/64
CONF
cat >"$conf/sockd.route" <<'ROUTE'
198.51.100.1   0.0.0.0 0.0.0.0
2001:db8:2::1  ::/0
ROUTE

netbed_start_bg gw sockd "$SOCKD" --config "$conf/gateway.toml"
netbed_wait_tcp lan 192.0.2.1 1080 10
netbed_wait_tcp lan 2001:db8:1::1 1080 10

page=$(cat "$NB_WWW_DIR/hello.txt")
fail=0
expect() {  # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then echo "ok   - $1"; else echo "FAIL - $1: wanted '$2', got '$3'"; fail=1; fi
}

# Without the relay, lan cannot reach net at all.
if nb_lan curl -sS --max-time 3 "http://$NB_WEB_IP4/hello.txt" >/dev/null 2>&1; then
  expect "lan cannot reach net directly" unreachable reachable
else
  expect "lan cannot reach net directly" unreachable unreachable
fi

got=$(nb_lan curl -sS --max-time 10 --socks5-hostname 192.0.2.1:1080 http://www.a.test/hello.txt || true)
expect "socks5h to www.a.test (resolved by sockd through nsd)" "$page" "$got"
got=$(nb_lan curl -sS --max-time 10 --socks4a 192.0.2.1:1080 http://www.a.test/hello.txt || true)
expect "socks4a to www.a.test" "$page" "$got"
got=$(nb_lan curl -sS --max-time 10 --socks5-hostname '[2001:db8:1::1]:1080' -6 http://www.a.test/hello.txt || true)
expect "socks5h over IPv6 to the relay" "$page" "$got"
got=$(nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://[$NB_WEB_IP6]/hello.txt" || true)
expect "socks5 to an IPv6 literal" "$page" "$got"
got=$(nb_lan curl -sS --max-time 10 --socks4 192.0.2.1:1080 "http://$NB_WEB_IP4/hello.txt" || true)
expect "socks4 to an IPv4 literal" "$page" "$got"

set +e
nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 http://192.0.2.1:1080/ >/dev/null 2>&1
expect "the gateway itself is protected (curl exit 97)" 97 "$?"
nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 http://192.0.2.10:80/ >/dev/null 2>&1
expect "the internal network is protected (curl exit 97)" 97 "$?"
nb_lan curl -sS --max-time 10 --socks5-hostname 192.0.2.1:1080 http://nope.a.test/ >/dev/null 2>&1
expect "NXDOMAIN: curl exit 97" 97 "$?"
set -e

# UDP ASSOCIATE from lan to net's echo server.
got=$(nb_lan /usr/bin/python3 - "$NB_ECHO_IP4" "$NB_ECHO_PORT" <<'PY' || true
import socket, sys, socks
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "192.0.2.1", 1080)
s.settimeout(5)
s.sendto(b"udp-through-diode", (sys.argv[1], int(sys.argv[2])))
print(s.recvfrom(4096)[0].decode())
PY
)
expect "UDP through the relay to net's echo server" "udp-through-diode" "$got"

log=$NB_DIR/sockd.log
grep -q "dst=www.a.test:80 addr=" "$log" && expect "sessions are logged with name and address" yes yes \
  || expect "sessions are logged with name and address" yes no
if grep -q 'dst=www.a.test:80 addr=\[2001:db8:2::80\]:80\|dst=www.a.test:80 addr=198.51.100.80:80' "$log"; then
  expect "the name was resolved to the bed's web server" yes yes
else
  expect "the name was resolved to the bed's web server" yes no
fi
if [ "$fail" -ne 0 ]; then
  echo "--- sockd log"; cat "$log"
  exit 1
fi
echo "all checks passed"
