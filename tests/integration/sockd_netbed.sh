#!/usr/bin/env bash
# sockd on the dual-homed gw of the network test bed (docs/testbed.md), with
# forwarding off so lan reaches net only through the relay: curl from lan with
# socks5h and socks4a to names that sockd resolves with c-ares at the bed's
# nsd (ns1.a.test), over IPv4 and IPv6; the egress from sockd.route, seen as
# the source address at net's web servers; the gateway itself and the
# internal network refused; a rule denial, a name resolving to a denied
# address, and username/password (curl -U) seen from the client side;
# proxychains4 running an unmodified curl; BIND with its peer in net; UDP
# through the relay to net's echo server with PySocks.
set -euo pipefail
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
export NB_WATCHDOG_SECONDS=100
SOCKD=${SOCKD:-$DIODE_BINARY_DIR/sockd/sockd}
netbed_up
netbed_forwarding off
# A second address on gw's internet side: sockd.route sends the web server's
# IPv4 traffic out of it, everything else out of 198.51.100.1.
nb_gw ip addr add 198.51.100.254/24 dev "$NB_IF_GW_NET"
# A second web server, on port 8080, that only a password opens.
netbed_start_bg net web8080 /usr/bin/python3 -u -m http.server 8080 \
  --bind "$NB_WEB_IP4" --directory "$NB_DIR/www"
netbed_wait_tcp gw "$NB_WEB_IP4" 8080 10

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
TOML
} >"$conf/gateway.toml"
hash=$(/usr/bin/openssl passwd -6 -salt diodebed 'open sesame')
printf 'alice:%s\n' "$hash" >"$conf/users"
cat >"$conf/sockd.conf" <<'CONF'
# Port 8080 of the web server: alice with her password only.
permit *=alice auth=userpass 192.0.2.0/24 198.51.100.80/32 eq 8080
deny   0.0.0.0/0 198.51.100.80/32 eq 8080
permit cmd=connect,bind,udp 192.0.2.0/24
permit cmd=connect,bind,udp 2001:db8:1::/64
CONF
cat >"$conf/sockd.route" <<'ROUTE'
198.51.100.254   198.51.100.80 255.255.255.255
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

# The egress chosen by sockd.route, as net's web servers saw it.
if grep -q '^198\.51\.100\.254 .*"GET /hello.txt' "$NB_DIR/web4.log" &&
   ! grep -q '^198\.51\.100\.1 ' "$NB_DIR/web4.log"; then
  expect "sockd.route: IPv4 web traffic leaves from 198.51.100.254" yes yes
else
  expect "sockd.route: IPv4 web traffic leaves from 198.51.100.254" yes no
  tail -n 5 "$NB_DIR/web4.log" || true
fi
if grep -q '^2001:db8:2::1 .*"GET /hello.txt' "$NB_DIR/web6.log"; then
  expect "sockd.route: IPv6 web traffic leaves from 2001:db8:2::1" yes yes
else
  expect "sockd.route: IPv6 web traffic leaves from 2001:db8:2::1" yes no
  tail -n 5 "$NB_DIR/web6.log" || true
fi

# Rules and passwords, as the client sees them.
set +e
nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 "http://$NB_WEB_IP4:8080/hello.txt" >/dev/null 2>&1
expect "a deny rule: curl exit 97" 97 "$?"
nb_lan curl -sS --max-time 10 --socks5-hostname 192.0.2.1:1080 http://v4only.a.test:8080/hello.txt >/dev/null 2>&1
expect "a name resolving to a denied address: curl exit 97" 97 "$?"
nb_lan curl -sS --max-time 10 --socks5-hostname 192.0.2.1:1080 -U 'alice:wrong' \
  http://v4only.a.test:8080/hello.txt >/dev/null 2>&1
expect "a wrong password: curl exit 97" 97 "$?"
set -e
got=$(nb_lan curl -sS --max-time 10 --socks5-hostname 192.0.2.1:1080 -U 'alice:open sesame' \
  http://v4only.a.test:8080/hello.txt || true)
expect "socks5h with username/password through to port 8080" "$page" "$got"
got=$(nb_lan curl -sS --max-time 10 --socks5 192.0.2.1:1080 -U 'alice:open sesame' \
  "http://$NB_WEB_IP4:8080/hello.txt" || true)
expect "socks5 with username/password (the second time from the verification cache)" "$page" "$got"
if grep -q '^198\.51\.100\.254 .*"GET /hello.txt' "$NB_DIR/web8080.log"; then
  expect "the password-opened session also left from 198.51.100.254" yes yes
else
  expect "the password-opened session also left from 198.51.100.254" yes no
fi

# proxychains4 running an unmodified curl in lan.
printf 'strict_chain\nquiet_mode\ntcp_read_time_out 10000\ntcp_connect_time_out 5000\n[ProxyList]\nsocks5 192.0.2.1 1080\n' \
  >"$NB_DIR/proxychains.conf"
got=$(nb_lan proxychains4 -q -f "$NB_DIR/proxychains.conf" curl -sS --max-time 10 --noproxy '*' \
  "http://$NB_WEB_IP4/hello.txt" || true)
expect "proxychains4 curl through the relay" "$page" "$got"

# BIND (RFC 1928): a client in lan asks the relay to accept one connection
# from net's echo host; a program in net connects to the announced address.
bind_addr=$NB_DIR/bind.addr
nb_lan /usr/bin/python3 - "$NB_ECHO_IP4" "$bind_addr" >"$NB_DIR/bind.out" 2>&1 <<'PY' &
import os, socket, struct, sys
peer, addr_file = sys.argv[1], sys.argv[2]
def exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("closed after %r" % b)
        b += c
    return b
def reply(s):
    ver, rep, _, atyp = exact(s, 4)
    assert ver == 5 and rep == 0 and atyp == 1, (ver, rep, atyp)
    return socket.inet_ntoa(exact(s, 4)), struct.unpack("!H", exact(s, 2))[0]
s = socket.create_connection(("192.0.2.1", 1080), timeout=10)
s.sendall(b"\x05\x01\x00"); assert exact(s, 2) == b"\x05\x00"
s.sendall(b"\x05\x02\x00\x01" + socket.inet_aton(peer) + struct.pack("!H", 0))
host, port = reply(s)
with open(addr_file + ".tmp", "w") as f:
    f.write("%s %d\n" % (host, port))
os.rename(addr_file + ".tmp", addr_file)
print("second reply from", reply(s)[0])
s.sendall(b"ping-from-lan")
print("got", exact(s, 13).decode())
PY
bind_pid=$!
for _ in $(seq 1 100); do [ -s "$bind_addr" ] && break; sleep 0.1; done
got=$(nb_net /usr/bin/python3 - "$NB_ECHO_IP4" "$bind_addr" <<'PY' || true
import socket, sys
host, port = open(sys.argv[2]).read().split()
c = socket.create_connection((host, int(port)), timeout=10, source_address=(sys.argv[1], 0))
c.sendall(b"pong-from-net")
data = b""
while len(data) < 13:
    chunk = c.recv(13 - len(data))
    if not chunk:
        break
    data += chunk
print(data.decode())
PY
)
wait "$bind_pid" || true
expect "BIND: the peer in net receives the lan client's bytes" "ping-from-lan" "$got"
if grep -q "second reply from $NB_ECHO_IP4" "$NB_DIR/bind.out" && grep -q "got pong-from-net" "$NB_DIR/bind.out"; then
  expect "BIND: the lan client learns the peer and receives its bytes" yes yes
else
  expect "BIND: the lan client learns the peer and receives its bytes" yes no
  cat "$NB_DIR/bind.out"
fi

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
