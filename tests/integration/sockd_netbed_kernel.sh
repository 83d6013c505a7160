#!/usr/bin/env bash
# sockd on the test bed's gw with what only the kernel knows: the host's
# addresses that gateway.toml does not list, protected as they come and go
# (rtnetlink), unless a rule names them; and sockd.route's interface lines
# for BIND and UDP ASSOCIATE (a second link between gw and net, whose gw end
# has 203.0.113.201 only, seen as the source address by a server in net).
set -euo pipefail
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
export NB_WATCHDOG_SECONDS=100
SOCKD=${SOCKD:-$DIODE_BINARY_DIR/sockd/sockd}
netbed_up
netbed_forwarding off

fail=0
expect() {  # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then echo "ok   - $1"; else echo "FAIL - $1: wanted '$2', got '$3'"; fail=1; fi
}
wait_log() {  # wait_log FILE NEEDLE: bounded wait for a log line
  local i
  for i in $(seq 1 100); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# A second link gw <-> net. gw has no route over it: only SO_BINDTODEVICE
# (an interface line of sockd.route) sends anything out of it, on link.
gx=$NB_PREFIX-gx
nx=$NB_PREFIX-nx
nb_gw ip link add "$gx" type veth peer name "$nx" netns "$NB_NET"
nb_gw ip link set "$gx" up
nb_net ip link set "$nx" up
nb_gw ip addr add 203.0.113.201/32 dev "$gx"
nb_net ip route add 203.0.113.201/32 dev "$nx"
# Replies come in on a link the routes do not name: no reverse-path filter.
nb_gw sysctl -qw net.ipv4.conf.all.rp_filter=0 "net.ipv4.conf.$gx.rp_filter=0"
nb_net sysctl -qw net.ipv4.conf.all.rp_filter=0 "net.ipv4.conf.$nx.rp_filter=0"

# In net, on the echo host's address: a UDP server that answers with the
# address it saw, and a TCP one (for readiness).
whoami=$NB_DIR/whoami.py
cat >"$whoami" <<'PY'
import socket, sys, threading
host = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((host, 4000))
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((host, 4000))
t.listen(8)
def tcp():
    while True:
        c, peer = t.accept()
        c.sendall(peer[0].encode())
        c.close()
threading.Thread(target=tcp, daemon=True).start()
while True:
    data, peer = u.recvfrom(4096)
    u.sendto(peer[0].encode(), peer)
PY
netbed_start_bg net whoami /usr/bin/python3 "$whoami" "$NB_ECHO_IP4"
netbed_wait_tcp net "$NB_ECHO_IP4" 4000 10

# An interface of gw that gateway.toml does not know (a container bridge,
# a VPN), with one address before sockd starts and more after; and a
# service of gw listening on all its addresses.
# (A veth pair with both ends in gw: the kernel here may lack the dummy
# module, and a container's veth is what such an address often sits on.)
d0=$NB_PREFIX-d0
nb_gw ip link add "$d0" type veth peer name "$NB_PREFIX-d1"
nb_gw ip link set "$d0" up
nb_gw ip link set "$NB_PREFIX-d1" up
nb_gw ip addr add 203.0.113.76/32 dev "$d0"
netbed_start_bg gw gwservice /usr/bin/python3 -u -m http.server 8077 --bind 0.0.0.0 \
  --directory "$NB_DIR/www"
netbed_wait_tcp gw 127.0.0.1 8077 10

conf=$NB_DIR/sockd
mkdir -p "$conf"
{
  netbed_gw_interfaces 1080 0
  cat <<TOML
[files]
sockd_conf = "sockd.conf"
sockd_route = "sockd.route"
users = ""

[sockd]
threads = 2
nameserver = "203.0.113.30"
methods = ["none"]
connect_timeout = "5s"
TOML
} >"$conf/gateway.toml"
cat >"$conf/sockd.conf" <<'CONF'
permit 192.0.2.0/24 203.0.113.78/32 eq 8077
permit cmd=connect,bind,udp 192.0.2.0/24
CONF
cat >"$conf/sockd.route" <<ROUTE
$gx            $NB_ECHO_IP4 255.255.255.255
198.51.100.1   0.0.0.0 0.0.0.0
2001:db8:2::1  ::/0
ROUTE

log=$NB_DIR/sockd.log
netbed_start_bg gw sockd "$SOCKD" --config "$conf/gateway.toml"
netbed_wait_tcp lan 192.0.2.1 1080 10
wait_log "$log" "event=host_addresses count=" || expect "sockd dumped the host's addresses" yes no

# A raw SOCKS5 CONNECT from lan: prints the reply code.
s5=$NB_DIR/s5.py
cat >"$s5" <<'PY'
import socket, struct, sys
s = socket.create_connection(("192.0.2.1", 1080), timeout=10)
s.sendall(b"\x05\x01\x00")
assert s.recv(2) == b"\x05\x00"
s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(sys.argv[1]) + struct.pack("!H", int(sys.argv[2])))
head = s.recv(4)
print(head[1] if len(head) >= 2 else "closed")
PY
connect_rep() { nb_lan /usr/bin/python3 "$s5" "$1" "$2" 2>&1 || true; }
# Both the reply and the log line: refused by protect_internal, not otherwise.
expect_protected() {  # expect_protected WHAT ADDR
  expect "$1: SOCKS5 REP 2" 2 "$(connect_rep "$2" 8077)"
  if wait_log "$log" "addr=$2:8077 " &&
     grep -F "addr=$2:8077 " "$log" | grep -F " reply=2 " | grep -F 'reason="protected destination"' >/dev/null; then
    expect "$1: logged as a protected destination" yes yes
  else
    expect "$1: logged as a protected destination" yes no
  fi
}

expect_protected "an address of gw that only the kernel knew at start" 203.0.113.76
nb_gw ip addr add 203.0.113.77/32 dev "$d0"
nb_gw ip addr add 203.0.113.78/32 dev "$d0"
nb_gw ip addr add 203.0.113.79/24 brd + dev "$d0" noprefixroute
wait_log "$log" "change=added addr=203.0.113.79/24" || expect "sockd saw the new addresses" yes no
expect_protected "an address added to gw after sockd started" 203.0.113.77
expect_protected "a broadcast address the kernel reports" 203.0.113.255
expect "an address of gw that a rule names is relayed" 0 "$(connect_rep 203.0.113.78 8077)"
nb_gw ip addr del 203.0.113.77/32 dev "$d0"
wait_log "$log" "change=removed addr=203.0.113.77/32" || expect "sockd saw the address go" yes no
got=$(connect_rep 203.0.113.77 8077)
if [ "$got" != 2 ] && [ "$got" != closed ]; then
  expect "a removed address is no longer protected (REP $got)" yes yes
else
  expect "a removed address is no longer protected" "not 2" "$got"
fi

# UDP ASSOCIATE to the echo host: out of the interface line's device.
got=$(nb_lan /usr/bin/python3 - "$NB_ECHO_IP4" <<'PY' || true
import socket, sys, socks
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "192.0.2.1", 1080)
s.settimeout(5)
s.sendto(b"who", (sys.argv[1], 4000))
print(s.recvfrom(4096)[0].decode())
PY
)
expect "UDP leaves by sockd.route's interface line (source seen in net)" 203.0.113.201 "$got"

# BIND expecting the echo host: the listener is on the interface line's
# device, its address announced, and the peer reaches it over that link.
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
print("got", exact(s, 8).decode())
PY
bind_pid=$!
for _ in $(seq 1 100); do [ -s "$bind_addr" ] && break; sleep 0.1; done
expect "BIND announces the interface line's address" 203.0.113.201 "$(cut -d' ' -f1 "$bind_addr" 2>/dev/null || true)"
got=$(nb_net /usr/bin/python3 - "$NB_ECHO_IP4" "$bind_addr" <<'PY' || true
import socket, sys
host, port = open(sys.argv[2]).read().split()
c = socket.create_connection((host, int(port)), timeout=5, source_address=(sys.argv[1], 0))
c.sendall(b"from-net")
print("sent")
PY
)
wait "$bind_pid" || true
if [ "$got" = sent ] && grep -q "second reply from $NB_ECHO_IP4" "$NB_DIR/bind.out" &&
   grep -q "got from-net" "$NB_DIR/bind.out"; then
  expect "BIND: the peer connects over that link and is relayed" yes yes
else
  expect "BIND: the peer connects over that link and is relayed" yes no
  cat "$NB_DIR/bind.out"
fi

if [ "$fail" -ne 0 ]; then
  echo "--- sockd log"; cat "$log"
  exit 1
fi
echo "all checks passed"
