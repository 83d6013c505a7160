#!/usr/bin/env bash
# sockd on the test bed's gw with what only the kernel knows: sockd.route's
# interface lines for BIND and UDP ASSOCIATE (a second link between gw and
# net, whose gw end has 203.0.113.201 only, seen as the source address by a
# server in net).
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
connect_timeout = "5s"
TOML
cat >"$conf/sockd.conf" <<'CONF'
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
