#!/usr/bin/env bash
# diode-socksify on the network test bed (docs/socksify.md, docs/testbed.md):
# forwarding in gw is off, so lan reaches net only through gw's sockd.
# Unmodified programs in lan (curl with and without --resolve, Python's
# urllib and asyncio, nc, socat, wget, git over http, ssh) run under diode-socksify and reach net, each
# session proven by sockd's log line; a `direct` destination (a web server on
# gw itself) bypasses sockd, and SOCKS_NS resolves its name (an nsd on gw);
# a `deny` line fails with ECONNREFUSED; username/
# password opens what only alice may reach; active FTP works through SOCKS
# BIND; kdig and Python reach net over UDP through UDP ASSOCIATE where
# socks.conf says cmd=udp; a capture on lan's interface
# shows no DNS query for any proxied name (a plain lookup, the control, does
# show); a malformed socks.conf, a statically linked and a setuid program are
# refused with a message and nothing runs; a forked child keeps the state;
# the second @= server takes over when the first refuses.
set -euo pipefail
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
export NB_WATCHDOG_SECONDS=200
SOCKD=${SOCKD:-$DIODE_BINARY_DIR/sockd/sockd}
SOCKSIFY=${SOCKSIFY:-$DIODE_BINARY_DIR/tools/socksify/diode-socksify}
PY=/usr/bin/python3
for c in curl nc socat tcpdump busybox wget git ssh ssh-keygen /usr/sbin/sshd kdig; do
  command -v "$c" >/dev/null || { echo "FAIL - $c is missing (scripts/setup.sh installs it)"; exit 1; }
done
netbed_up
netbed_forwarding off
# lan's own resolver is the root server in net, which lan cannot reach: any
# query a program makes for itself leaves lan (the capture sees it) and fails.
netbed_resolv_conf lan 198.51.100.53
netbed_start_bg net web8080 "$PY" -u -m http.server 8080 --bind "$NB_WEB_IP4" --directory "$NB_DIR/www"
# The `direct` destination: a web server on gw's internal side.
mkdir -p "$NB_DIR/gwwww" && printf 'served by gw directly\n' >"$NB_DIR/gwwww/direct.txt"
netbed_start_bg gw gwweb "$PY" -u -m http.server 8000 --bind 192.0.2.1 --directory "$NB_DIR/gwwww"
netbed_wait_tcp gw "$NB_WEB_IP4" 8080 10
netbed_wait_tcp lan 192.0.2.1 8000 10

conf=$NB_DIR/sockd
mkdir -p "$conf"
{
  netbed_gw_interfaces 1080 0
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
permit *=alice auth=userpass 192.0.2.0/24 198.51.100.80/32 eq 8080
deny   0.0.0.0/0 198.51.100.80/32 eq 8080
permit cmd=connect,bind,udp 192.0.2.0/24
permit cmd=connect,bind,udp 2001:db8:1::/64
CONF
printf '198.51.100.1 0.0.0.0 0.0.0.0\n2001:db8:2::1 ::/0\n' >"$conf/sockd.route"
netbed_start_bg gw sockd "$SOCKD" --config "$conf/gateway.toml"
netbed_wait_tcp lan 192.0.2.1 1080 10
log=$NB_DIR/sockd.log

# The client side: internal addresses and names direct, two names and the
# sink refused, the rest through gw's relay (IPv6 through its IPv6 address).
socks_conf=$NB_DIR/socks.conf
cat >"$socks_conf" <<'CONF'
direct 192.0.2.0/24
direct .lan.example.test
deny   denied.a.test
deny   198.51.100.9/32 eq 9
sockd  cmd=udp @=192.0.2.1:1080 203.0.113.30/32 eq 53
sockd  cmd=udp @=192.0.2.1:1080 198.51.100.7/32 eq 7
sockd  @=[2001:db8:1::1]:1080 2001:db8:2::/48
sockd  @=192.0.2.1:1080 0.0.0.0/0
CONF
sfy() { nb_lan env SOCKS_CONF="$socks_conf" "$SOCKSIFY" "$@"; }

page=$(cat "$NB_WWW_DIR/hello.txt")
fail=0
expect() {  # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then echo "ok   - $1"; else echo "FAIL - $1: wanted '$2', got '$3'"; fail=1; fi
}
# Waits (at most 10 s) for sockd's log line of a session: the line is written
# when the session ends, just after the client closed.
logged() {  # logged WHAT PATTERN
  local i
  for ((i = 0; i < 100; i++)); do
    if grep -qE -- "$2" "$log"; then expect "$1" yes yes; return 0; fi
    sleep 0.1
  done
  expect "$1" yes no
}

# The capture of DNS on lan's interface, for the whole run of the programs.
ip netns exec "$NB_LAN" tcpdump -l -n -U -i "$NB_IF_LAN" -w "$NB_DIR/dns.pcap" 'port 53' \
  >"$NB_DIR/tcpdump.out" 2>"$NB_DIR/tcpdump.err" &
tcpdump_pid=$!
printf '%s tcpdump host\n' "$tcpdump_pid" >>"$NB_DIR/pids"
for _ in $(seq 1 100); do grep -q 'listening on' "$NB_DIR/tcpdump.err" && break; sleep 0.1; done
grep -q 'listening on' "$NB_DIR/tcpdump.err" || { echo "FAIL - tcpdump did not start"; cat "$NB_DIR/tcpdump.err"; exit 1; }

# Without diode-socksify, lan cannot reach net at all.
if nb_lan curl -sS --max-time 3 "http://$NB_WEB_IP4/hello.txt" >/dev/null 2>&1; then
  expect "lan cannot reach net directly" unreachable reachable
else
  expect "lan cannot reach net directly" unreachable unreachable
fi

got=$(sfy curl -sS --max-time 15 http://www.a.test/hello.txt || true)
expect "curl http://www.a.test/ (a proxied name)" "$page" "$got"
logged "sockd logged curl's session with the name" 'cmd=connect dst=www.a.test:80 .*verdict=permit'

got=$(sfy curl -sS --max-time 15 --resolve "echo.a.test:80:$NB_WEB_IP4" http://echo.a.test/hello.txt || true)
expect "curl --resolve (an address)" "$page" "$got"
logged "sockd logged the --resolve session with the address" "cmd=connect dst=$NB_WEB_IP4:80 .*verdict=permit"

got=$(sfy curl -sS --max-time 15 -6 http://www.a.test/hello.txt || true)
expect "curl -6 (IPv6 lookup, fake address on an AF_INET6 socket)" "$page" "$got"

got=$(sfy curl -sS --max-time 15 "http://[$NB_WEB_IP6]/hello.txt" || true)
expect "curl to an IPv6 literal through the relay's IPv6 address" "$page" "$got"
logged "sockd logged the IPv6 session" "client=\[2001:db8:1::10\]:[0-9]* .*dst=\[$NB_WEB_IP6\]:80 .*verdict=permit"

got=$(sfy "$PY" -c 'import urllib.request; print(urllib.request.urlopen("http://www.a.test/hello.txt", timeout=15).read().decode(), end="")' || true)
expect "Python urllib" "$page" "$got"

got=$(sfy "$PY" - <<'PY' || true
import asyncio
async def main():
    r, w = await asyncio.wait_for(asyncio.open_connection("echo.a.test", 7), 15)
    w.write(b"asyncio-through-diode\n")
    await w.drain()
    line = await asyncio.wait_for(r.readline(), 15)
    w.close()
    await w.wait_closed()
    print(line.decode().strip())
asyncio.run(main())
PY
)
expect "Python asyncio (non-blocking connect)" "asyncio-through-diode" "$got"
logged "sockd logged asyncio's session" 'dst=echo.a.test:7 .*verdict=permit'

got=$(printf 'nc-through-diode\n' | sfy nc -N -w 10 echo.a.test 7 || true)
expect "nc (OpenBSD netcat)" "nc-through-diode" "$got"
got=$(printf 'socat-through-diode\n' | sfy socat -t 5 - TCP:echo.a.test:7 || true)
expect "socat" "socat-through-diode" "$got"
got=$(printf 'socat6\n' | sfy socat -t 5 - "TCP6:[$NB_ECHO_IP6]:7" || true)
expect "socat over IPv6" "socat6" "$got"

got=$(sfy wget -q -T 15 -t 1 -O - http://www.a.test/hello.txt || true)
expect "wget" "$page" "$got"

# git over http (dumb protocol from net's web server): git runs its
# git-remote-http helper, which inherits the preload.
repo=$NB_WWW_DIR/repo.git
git init -q --bare "$repo"
git -C "$NB_DIR" init -q work && git -C "$NB_DIR/work" checkout -q -b main
printf 'cloned through diode\n' >"$NB_DIR/work/README"
git -C "$NB_DIR/work" add README
git -C "$NB_DIR/work" -c user.name=t -c user.email=t@example.test commit -q -m one
git -C "$NB_DIR/work" push -q "$repo" main
git -C "$repo" symbolic-ref HEAD refs/heads/main
git -C "$repo" update-server-info
sfy git clone -q http://www.a.test/repo.git "$NB_DIR/clone" 2>"$NB_DIR/git.err" || cat "$NB_DIR/git.err"
expect "git clone over http" "cloned through diode" "$(cat "$NB_DIR/clone/README" 2>/dev/null || true)"
if cat "$NB_DIR/web4.log" "$NB_DIR/web6.log" | grep -E '^(198\.51\.100\.1|2001:db8:2::1) .*"GET /repo.git/info/refs' >/dev/null; then
  expect "git's requests reached net's web server from sockd's egress" yes yes
else
  expect "git's requests reached net's web server from sockd's egress" yes no
fi

# ssh to a test sshd in net (host and user keys made now); the server
# speaks first, so the handshake must leave its banner in the socket.
ssh_dir=$NB_DIR/ssh
mkdir -p "$ssh_dir" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/id"
cp "$ssh_dir/id.pub" "$ssh_dir/authorized_keys"
cat >"$ssh_dir/sshd_config" <<SSHD
ListenAddress $NB_ECHO_IP4:22
HostKey $ssh_dir/host_key
AuthorizedKeysFile $ssh_dir/authorized_keys
PidFile $ssh_dir/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SSHD
netbed_start_bg net sshd /usr/sbin/sshd -D -e -f "$ssh_dir/sshd_config"
netbed_wait_tcp net "$NB_ECHO_IP4" 22 10
got=$(sfy ssh -F /dev/null -i "$ssh_dir/id" -o BatchMode=yes -o StrictHostKeyChecking=no \
  -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=15 \
  "$(id -un)@echo.a.test" echo ssh-through-diode </dev/null || true)
expect "ssh to net's sshd" "ssh-through-diode" "$got"
logged "sockd logged ssh's session" 'dst=echo.a.test:22 .*verdict=permit'

# getpeername answers the destination, not the relay.
got=$(sfy "$PY" -c '
import socket
s = socket.create_connection(("www.a.test", 80), timeout=15)
print(socket.getnameinfo(s.getpeername(), 0)[0], s.getpeername()[1])' || true)
expect "getpeername + getnameinfo give the name and port back" "www.a.test 80" "$got"

# fork: the child keeps the fake names and the descriptor state, and its
# own connections go through the relay too.
got=$(sfy "$PY" - <<'PY' || true
import os, socket
def fetch(host):
    s = socket.create_connection((host, 7), timeout=15)
    s.sendall(b"f\n")
    data = s.recv(10)
    s.close()
    return data.strip().decode()
first = fetch("echo.a.test")
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, (fetch("echo.a.test") + fetch("echo.a.test")).encode())
    os._exit(0)
os.waitpid(pid, 0)
print(first, os.read(r, 10).decode())
PY
)
expect "after fork, parent and child connect through the relay" "f ff" "$got"

# @= servers are tried in order: the first refuses TCP, the second answers.
printf 'sockd @=192.0.2.1:1081,192.0.2.1:1080 0.0.0.0/0\n' >"$NB_DIR/failover.conf"
got=$(nb_lan env SOCKS_CONF="$NB_DIR/failover.conf" "$SOCKSIFY" curl -sS --max-time 20 http://www.a.test/hello.txt || true)
expect "the second @= server takes over when the first refuses" "$page" "$got"

# direct: gw's own web server, not through sockd.
got=$(sfy curl -sS --max-time 10 http://192.0.2.1:8000/direct.txt || true)
expect "a direct destination" "served by gw directly" "$got"
if grep -q '^192\.0\.2\.10 .*"GET /direct.txt' "$NB_DIR/gwweb.log" && ! grep -q 'dst=192.0.2.1:8000' "$log"; then
  expect "the direct connection came from lan itself, not through sockd" yes yes
else
  expect "the direct connection came from lan itself, not through sockd" yes no
fi

# SOCKS_NS: a name that goes direct is resolved by the nameserver it names
# (an nsd on gw for lan.example.test), not by lan's resolv.conf (which
# cannot answer).
mkdir -p "$NB_DIR/lanns"
cat >"$NB_DIR/lanns/lan.example.test.zone" <<'ZONE'
$TTL 300
@    IN SOA ns hostmaster 1 1800 900 604800 300
@    IN NS  ns
ns   IN A   192.0.2.1
web  IN A   192.0.2.1
ZONE
cat >"$NB_DIR/lanns/nsd.conf" <<NSD
server:
  ip-address: 192.0.2.1
  port: 53
  server-count: 1
  username: ""
  chroot: ""
  database: ""
  zonesdir: "$NB_DIR/lanns"
  pidfile: "$NB_DIR/lanns/nsd.pid"
  zonelistfile: "$NB_DIR/lanns/zone.list"
  xfrdfile: "$NB_DIR/lanns/xfrd.state"
  xfrdir: "$NB_DIR/lanns"
remote-control:
  control-enable: no
zone:
  name: "lan.example.test"
  zonefile: "$NB_DIR/lanns/lan.example.test.zone"
NSD
netbed_start_bg gw lanns nsd -d -c "$NB_DIR/lanns/nsd.conf"
netbed_wait_udp_dns lan 192.0.2.1 10
got=$(nb_lan env SOCKS_CONF="$socks_conf" SOCKS_NS=192.0.2.1 "$SOCKSIFY" \
  curl -sS --max-time 10 http://web.lan.example.test:8000/direct.txt || true)
expect "SOCKS_NS resolves a direct name" "served by gw directly" "$got"
set +e
sfy curl -sS --max-time 10 http://web.lan.example.test:8000/direct.txt >/dev/null 2>&1
expect "without SOCKS_NS, lan's own resolver cannot (curl exit 6)" 6 "$?"
set -e

# deny: ECONNREFUSED and one line on stderr.
set +e
err=$(sfy curl -sS --max-time 10 http://denied.a.test/ 2>&1 >/dev/null)
rc=$?
set -e
expect "deny by name: curl exit 7 (couldn't connect)" 7 "$rc"
case "$err" in
  *"connect denied.a.test:80: denied by $socks_conf:3"*) expect "deny: one line naming the socks.conf line" yes yes ;;
  *) expect "deny: one line naming the socks.conf line" yes "$err" ;;
esac
got=$(sfy "$PY" -c '
import errno, socket
s = socket.socket()
try:
    s.connect(("198.51.100.9", 9))
except OSError as e:
    print(errno.errorcode[e.errno])' 2>/dev/null || true)
expect "deny by address: connect() fails with ECONNREFUSED" ECONNREFUSED "$got"
if grep -q 'denied.a.test\|198.51.100.9:9' "$log"; then
  expect "denied destinations never reached sockd" yes no
else
  expect "denied destinations never reached sockd" yes yes
fi

# Username and password (RFC 1929): port 8080 is alice's only.
set +e
sfy curl -sS --max-time 10 http://www.a.test:8080/hello.txt >/dev/null 2>&1
expect "port 8080 without a password: refused" 7 "$?"
set -e
got=$(nb_lan env SOCKS_CONF="$socks_conf" SOCKS_USER=alice SOCKS_PASSWORD='open sesame' \
  "$SOCKSIFY" curl -sS --max-time 15 http://www.a.test:8080/hello.txt || true)
expect "SOCKS_USER/SOCKS_PASSWORD open port 8080" "$page" "$got"
logged "sockd logged alice's session" 'user=alice method=userpass cmd=connect dst=www.a.test:8080 .*verdict=permit'
printf 'open sesame\n' >"$NB_DIR/password"
got=$(nb_lan env SOCKS_CONF="$socks_conf" SOCKS_USER=alice SOCKS_PASSWORD_FILE="$NB_DIR/password" \
  "$SOCKSIFY" curl -sS --max-time 15 http://www.a.test:8080/hello.txt || true)
expect "SOCKS_PASSWORD_FILE" "$page" "$got"
set +e
err=$(nb_lan env SOCKS_CONF="$socks_conf" SOCKS_USER=alice SOCKS_PASSWORD=wrong \
  "$SOCKSIFY" curl -sS --max-time 15 http://www.a.test:8080/hello.txt 2>&1 >/dev/null)
rc=$?
set -e
expect "a wrong password: curl exit 7" 7 "$rc"
case "$err" in
  *"authentication failed"*) expect "a wrong password: the reason on stderr" yes yes ;;
  *) expect "a wrong password: the reason on stderr" yes "$err" ;;
esac

# Active FTP: curl -P - announces (EPRT/PORT) the address sockd's BIND
# listens on; pyftpdlib in net connects there (SOCKS BIND, RFC 1928 §4).
netbed_start_bg net ftp "$PY" -u -m pyftpdlib -i "$NB_ECHO_IP4" -p 21 -d "$NB_WWW_DIR"
netbed_wait_tcp net "$NB_ECHO_IP4" 21 10
got=$(sfy curl -sS --max-time 20 -P - "ftp://$NB_ECHO_IP4/hello.txt" || true)
expect "active FTP (curl -P -) through SOCKS BIND" "$page" "$got"
logged "sockd logged the BIND session" "cmd=bind dst=$NB_ECHO_IP4:0 .*verdict=permit"
got=$(sfy curl -sS --max-time 20 --disable-eprt -P - "ftp://$NB_ECHO_IP4/hello.txt" || true)
expect "active FTP with PORT (not EPRT)" "$page" "$got"

# UDP ASSOCIATE, where socks.conf's cmd=udp lines allow it: kdig asks ns-a
# over UDP through the relay; Python sends to the UDP echo server with
# sendto/recvfrom and on a connected socket with send/recv.
got=$(sfy kdig +notcp +time=5 +retry=0 +short @203.0.113.30 www.a.test A || true)
expect "kdig over UDP through the relay" "$NB_WEB_IP4" "$got"
got=$(sfy dig +tcp +time=5 +tries=1 +short @203.0.113.30 www.a.test A || true)
expect "dig +tcp (BIND 9's dig, libuv) through the relay" "$NB_WEB_IP4" "$got"
logged "sockd logged the UDP association with traffic" 'cmd=udp dst=0.0.0.0:0 .*verdict=permit reply=0 up=[1-9]'
got=$(sfy "$PY" - "$NB_ECHO_IP4" <<'PY' || true
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"udp-sendto", (sys.argv[1], 7))
data, src = s.recvfrom(100)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(10)
c.connect((sys.argv[1], 7))
c.send(b"udp-connected")
print(data.decode(), src[0], src[1], c.recv(100).decode(), c.getpeername()[0])
PY
)
expect "Python UDP: sendto/recvfrom and connect/send/recv" "udp-sendto $NB_ECHO_IP4 7 udp-connected $NB_ECHO_IP4" "$got"

# No DNS query for a proxied name left lan; a plain lookup (the control) did.
nb_lan getent hosts control.a.test >/dev/null 2>&1 || true
for _ in $(seq 1 50); do
  [ "$(tcpdump -n -r "$NB_DIR/dns.pcap" 2>/dev/null | grep -c 'control\.a\.test')" -gt 0 ] && break
  sleep 0.1
done
kill -INT "$tcpdump_pid" 2>/dev/null || true
wait "$tcpdump_pid" 2>/dev/null || true
tcpdump -n -r "$NB_DIR/dns.pcap" >"$NB_DIR/dns.txt" 2>/dev/null || true
if grep -q 'control\.a\.test' "$NB_DIR/dns.txt"; then
  expect "the capture sees lan's own DNS queries (control)" yes yes
else
  expect "the capture sees lan's own DNS queries (control)" yes no
fi
if grep -v 'control\.a\.test' "$NB_DIR/dns.txt" | grep 'a\.test' >/dev/null; then
  expect "no DNS query for a proxied name left lan" none "$(grep -v control "$NB_DIR/dns.txt" | head -3)"
else
  expect "no DNS query for a proxied name left lan" none none
fi

# Refusals before anything runs.
marker=$NB_DIR/ran
printf 'sockd @=192.0.2.1 0.0.0.0/0 frob\n' >"$NB_DIR/bad.conf"
set +e
err=$(nb_lan env SOCKS_CONF="$NB_DIR/bad.conf" "$SOCKSIFY" touch "$marker" 2>&1)
rc=$?
set -e
expect "a malformed socks.conf: exit 2" 2 "$rc"
case "$err" in
  *"$NB_DIR/bad.conf:1:29: error:"*) expect "a malformed socks.conf: file:line:col on stderr" yes yes ;;
  *) expect "a malformed socks.conf: file:line:col on stderr" yes "$err" ;;
esac
[ -e "$marker" ] && expect "a malformed socks.conf: the program did not run" no yes ||
  expect "a malformed socks.conf: the program did not run" no no
set +e
err=$(nb_lan env SOCKS_CONF="$NB_DIR/bad.conf" LD_PRELOAD="$("$SOCKSIFY" --library)" touch "$marker" 2>&1)
rc=$?
set -e
expect "the library alone refuses a malformed socks.conf too (exit 2)" 2 "$rc"
[ -e "$marker" ] && expect "... and the program did not run" no yes || expect "... and the program did not run" no no

set +e
err=$(sfy busybox wget -q -O - "http://$NB_WEB_IP4/hello.txt" 2>&1)
rc=$?
set -e
expect "a statically linked program: exit 126" 126 "$rc"
case "$err" in
  *"is statically linked: a preloaded library cannot act in it"*) expect "a statically linked program: the message" yes yes ;;
  *) expect "a statically linked program: the message" yes "$err" ;;
esac
cp /usr/bin/curl "$NB_DIR/setuid-curl"
chmod 4755 "$NB_DIR/setuid-curl"
set +e
err=$(sfy "$NB_DIR/setuid-curl" -sS "http://$NB_WEB_IP4/hello.txt" 2>&1)
rc=$?
set -e
expect "a setuid program: exit 126" 126 "$rc"
case "$err" in
  *"is setuid: the dynamic loader ignores LD_PRELOAD"*) expect "a setuid program: the message" yes yes ;;
  *) expect "a setuid program: the message" yes "$err" ;;
esac

if [ "$fail" -ne 0 ]; then
  echo "--- sockd log"; cat "$log"
  echo "--- DNS capture"; cat "$NB_DIR/dns.txt" 2>/dev/null || true
  exit 1
fi
echo "all checks passed"
