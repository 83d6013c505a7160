#!/usr/bin/env bash
# Proves the network test bed (tests/netbed/netbed.sh) before other tests
# lean on it: from lan, through the plain routed gw, the fake root refers to
# the TLD servers and they to the zone servers (walked by hand with dig over
# IPv4 and kdig over IPv6), the web, echo and sink servers answer over IPv4
# and IPv6, and after netbed_down, or a failing or signalled test, nothing of
# the run is left. Needs root; fails (never skips) without it.
#
# Single quotes around scripts for child shells are meant: they expand there.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
netbed=$here/../netbed/netbed.sh
# shellcheck source-path=SCRIPTDIR source=../netbed/netbed.sh
source "$netbed"

checks=0
failures=0
pass() { checks=$((checks + 1)); printf 'ok   %2d - %s\n' "$checks" "$1"; }
fail() {
  checks=$((checks + 1)) failures=$((failures + 1))
  printf 'FAIL %2d - %s\n' "$checks" "$1"
  [ -z "${2:-}" ] || printf '        %s\n' "$2"
}
# expect_eq DESCRIPTION ACTUAL EXPECTED
expect_eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got [$2], expected [$3]"; fi
}
# expect_true DESCRIPTION COMMAND...
expect_true() {
  local d=$1
  shift
  if "$@"; then pass "$d"; else fail "$d" "command failed: $*"; fi
}
# expect_false DESCRIPTION COMMAND...
expect_false() {
  local d=$1
  shift
  if "$@"; then fail "$d" "command succeeded: $*"; else pass "$d"; fi
}

# Every command of the test is bounded in time.
in_lan() { timeout 10 ip netns exec "$NB_LAN" "$@"; }
in_gw() { timeout 10 ip netns exec "$NB_GW" "$@"; }

# Reads dig or kdig output on stdin; prints "status STATUS", "flags F F ..."
# and one "SECTION owner type rdata" line per record.
parse_dns() {
  awk '
    /->>HEADER<<-/ { if (match($0, /status: [A-Z]+/)) print "status", substr($0, RSTART + 8, RLENGTH - 8) }
    /^;; [Ff]lags:/ { s = $0; sub(/^;; [Ff]lags: */, "", s); sub(/;.*/, "", s); print "flags", s }
    /^;; [A-Z]+ SECTION:/ { section = $2; next }
    /^$/ { section = "" }
    /^;/ { next }
    section != "" && NF >= 5 {
      rdata = $5
      for (i = 6; i <= NF; i++) rdata = rdata " " $i
      print section, tolower($1), $4, rdata
    }'
}
# dns_query TOOL SERVER NAME TYPE [OPTIONS...]: one query from lan, parsed.
dns_query() {
  local tool=$1 server=$2 name=$3 type=$4
  shift 4
  if [ "$tool" = kdig ]; then
    in_lan kdig +norecurse +time=2 +retry=0 "$@" "@$server" "$name" "$type" | parse_dns
  else
    in_lan dig +norecurse +time=2 +tries=1 "$@" "@$server" "$name" "$type" | parse_dns
  fi
}
field() { awk -v k="$1" '$1 == k {sub(/^[^ ]+ /, ""); print; exit}'; }
records() { awk -v s="$1" -v t="$2" '$1 == s && $3 == t {print $2, $4}'; }
has_flag() { [[ " $(field flags <<<"$1") " == *" $2 "* ]]; }

# One step of a walk by hand: queries SERVER for NAME TYPE, expects a
# referral for ZONE to NS, and sets glue to the address of FAMILY (A or
# AAAA) that the referral gives for NS.
referral_step() {
  local tool=$1 server=$2 name=$3 type=$4 zone=$5 ns=$6 family=$7 out
  out=$(dns_query "$tool" "$server" "$name" "$type" || true)
  expect_eq "$tool @$server $name $type: NOERROR" "$(field status <<<"$out")" NOERROR
  expect_false "$tool @$server $name $type: a referral is not authoritative" has_flag "$out" aa
  expect_eq "$tool @$server $name $type: no answer" "$(records ANSWER "$type" <<<"$out")" ""
  expect_eq "$tool @$server $name $type: refers to $zone NS $ns" \
    "$(records AUTHORITY NS <<<"$out")" "$zone $ns"
  glue=$(records ADDITIONAL "$family" <<<"$out" | awk -v n="$ns" '$1 == n {print $2}')
}

echo "# without root, netbed_up fails and says why"
if [ "$(id -u)" -eq 0 ]; then
  # A copy that user 65534 can read wherever the checkout lives.
  copy=$(mktemp)
  cp "$netbed" "$copy"
  chmod 644 "$copy"
  rc=0
  msg=$(cd / && setpriv --reuid=65534 --regid=65534 --clear-groups \
    bash -c 'source "$1"; netbed_up' _ "$copy" 2>&1) || rc=$?
  rm -f "$copy"
  expect_eq "netbed_up as an unprivileged user fails" "$rc" 1
  expect_true "and says that it needs root" grep -q 'error: must run as root' <<<"$msg"
fi

echo "# building the test bed"
host_resolv_conf=$(cat /etc/resolv.conf)
# Well inside ctest's TIMEOUT of 120 s, so that cleanup still runs.
export NB_WATCHDOG_SECONDS=100
if ! netbed_up; then
  echo "FAIL - netbed_up failed (see the messages above)" >&2
  exit 1
fi
prefix=$NB_PREFIX
echo "# run $prefix in $NB_DIR"

echo "# topology"
expect_eq "the three namespaces exist" \
  "$(ip netns list | awk '{print $1}' | grep "^$prefix-" | sort | tr '\n' ' ')" \
  "$prefix-gw $prefix-lan $prefix-net "
expect_eq "no link of the run in the host's namespace" "$(ip -o link show | grep -c "$prefix" || true)" 0
for ifname in "$NB_IF_LAN" "$NB_IF_GW_LAN" "$NB_IF_GW_NET" "$NB_IF_NET"; do
  expect_true "interface name $ifname fits in 15 characters" test "${#ifname}" -le 15
done
# The network rule, checked on what the kernel holds: only documentation
# ranges, loopback and link-local.
stray=$(for ns in "$NB_LAN" "$NB_GW" "$NB_NET"; do
  ip -n "$ns" -o addr show | awk '{print $4}'
done | grep -vE '^(192\.0\.2\.|198\.51\.100\.|203\.0\.113\.|2001:db8:|127\.0\.0\.1/8$|::1/128$|fe80:)' || true)
expect_eq "every address is in a documentation range" "$stray" ""
expect_eq "gw forwards IPv4" "$(in_gw sysctl -n net.ipv4.ip_forward)" 1
expect_eq "gw forwards IPv6" "$(in_gw sysctl -n net.ipv6.conf.all.forwarding)" 1
expect_eq "lan's IPv4 default route is gw" \
  "$(in_lan ip route show default | awk '{print $3}')" "$NB_GW_LAN_IP4"
expect_eq "lan's IPv6 default route is gw" \
  "$(in_lan ip -6 route show default | awk '{print $3}')" "$NB_GW_LAN_IP6"

echo "# DNS: the root"
root4=$(netbed_dns_addr root 4)
root6=$(netbed_dns_addr root 6)
out=$(dns_query dig "$root4" . SOA || true)
expect_eq "dig @root . SOA: NOERROR" "$(field status <<<"$out")" NOERROR
expect_true "dig @root . SOA: authoritative" has_flag "$out" aa
expect_eq "dig @root . SOA: the fake root's SOA" \
  "$(records ANSWER SOA <<<"$out" | awk '{print $1, $2}')" ". a.root-servers.test."
out=$(dns_query dig "$root4" . NS || true)
hints=$(awk '$1 == "." && $3 == "NS" {print ".", $4}' "$NB_ROOT_HINTS")
expect_eq "the root hints name the root's NS" "$(records ANSWER NS <<<"$out")" "$hints"
expect_eq "the root hints hold the root's IPv4 address" \
  "$(awk '$3 == "A" {print $4}' "$NB_ROOT_HINTS")" "$root4"
expect_eq "the root hints hold the root's IPv6 address" \
  "$(awk '$3 == "AAAA" {print $4}' "$NB_ROOT_HINTS")" "$root6"

echo "# DNS: an iterative walk by hand over IPv4 (dig)"
referral_step dig "$root4" www.a.test A test. ns1.nic.test. A
test4=$glue
expect_eq "the root's glue for ns1.nic.test. is the nic-test server" "$test4" "$(netbed_dns_addr nic-test 4)"
referral_step dig "${test4:-203.0.113.10}" www.a.test A a.test. ns1.a.test. A
zone4=$glue
expect_eq "test.'s glue for ns1.a.test. is the ns-a server" "$zone4" "$(netbed_dns_addr ns-a 4)"
out=$(dns_query dig "${zone4:-203.0.113.30}" www.a.test A || true)
expect_eq "dig @ns-a www.a.test A: NOERROR" "$(field status <<<"$out")" NOERROR
expect_true "dig @ns-a www.a.test A: authoritative" has_flag "$out" aa
expect_eq "dig @ns-a www.a.test A: the web server's address" \
  "$(records ANSWER A <<<"$out")" "www.a.test. $NB_WEB_IP4"

echo "# DNS: the same walk over IPv6 (kdig)"
referral_step kdig "$root6" www.a.test AAAA test. ns1.nic.test. AAAA
test6=$glue
expect_eq "the root's IPv6 glue for ns1.nic.test." "$test6" "$(netbed_dns_addr nic-test 6)"
referral_step kdig "${test6:-2001:db8:3::10}" www.a.test AAAA a.test. ns1.a.test. AAAA
zone6=$glue
expect_eq "test.'s IPv6 glue for ns1.a.test." "$zone6" "$(netbed_dns_addr ns-a 6)"
out=$(dns_query kdig "${zone6:-2001:db8:3::30}" www.a.test AAAA || true)
expect_eq "kdig @ns-a www.a.test AAAA: NOERROR" "$(field status <<<"$out")" NOERROR
expect_true "kdig @ns-a www.a.test AAAA: authoritative" has_flag "$out" aa
expect_eq "kdig @ns-a www.a.test AAAA: the web server's address" \
  "$(records ANSWER AAAA <<<"$out")" "www.a.test. $NB_WEB_IP6"

echo "# DNS: the other shapes the zones provide"
ns_a=$(netbed_dns_addr ns-a)
out=$(dns_query dig "$ns_a" nope.a.test A || true)
expect_eq "nope.a.test: NXDOMAIN" "$(field status <<<"$out")" NXDOMAIN
expect_eq "nope.a.test: the SOA in authority" "$(records AUTHORITY SOA <<<"$out" | awk '{print $1}')" a.test.
out=$(dns_query dig "$ns_a" v4only.a.test AAAA || true)
expect_eq "v4only.a.test AAAA: NODATA is NOERROR" "$(field status <<<"$out")" NOERROR
expect_eq "v4only.a.test AAAA: NODATA has no answer" "$(records ANSWER AAAA <<<"$out")" ""
out=$(dns_query dig "$ns_a" alias.a.test A || true)
expect_eq "alias.a.test: a CNAME into b.example." "$(records ANSWER CNAME <<<"$out")" \
  "alias.a.test. www.b.example."
referral_step dig "$(netbed_dns_addr nic-example)" www.b.example A b.example. ns1.b.example. A
expect_eq "example.'s glue for ns1.b.example. is the ns-b server" "$glue" "$(netbed_dns_addr ns-b)"
out=$(dns_query dig "$(netbed_dns_addr nic-test)" www.c.test A || true)
expect_eq "c.test.: delegated to a name in another TLD" "$(records AUTHORITY NS <<<"$out")" \
  "c.test. ns1.b.example."
expect_eq "c.test.: without glue" "$(records ADDITIONAL A <<<"$out")" ""
out=$(dns_query dig "$(netbed_dns_addr ns-b)" www.c.test A || true)
expect_eq "ns-b answers for c.test." "$(records ANSWER A <<<"$out")" "www.c.test. $NB_WEB_IP4"
out=$(dns_query dig "$ns_a" www.lame.test A || true)
expect_eq "lame.test.: its server refuses" "$(field status <<<"$out")" REFUSED
out=$(dns_query dig "$ns_a" big.a.test TXT +ignore +bufsize=1232 || true)
expect_true "big.a.test TXT over UDP: truncated" has_flag "$out" tc
out=$(dns_query dig "$ns_a" big.a.test TXT +tcp || true)
expect_eq "big.a.test TXT over TCP: all 40 records" "$(records ANSWER TXT <<<"$out" | wc -l)" 40
expect_false "the silent server never answers" \
  in_lan dig +time=1 +tries=1 "@$(netbed_dns_addr silent)" www.silent.test A >/dev/null 2>&1

out=$(in_lan dig +nsid +norecurse +time=2 +tries=1 "@$ns_a" a.test SOA || true)
expect_true "ns-a names itself in NSID" grep -q '("ns-a")' <<<"$out"
expect_eq "ns-a names itself in id.server" \
  "$(in_lan dig +short +time=2 +tries=1 CH TXT id.server "@$ns_a" || true)" '"ns-a"'

echo "# DNS: counting the queries that reach a server"
before=$(netbed_dns_queries ns-a a.test.)
dns_query dig "$ns_a" www.a.test A >/dev/null || true
dns_query kdig "$(netbed_dns_addr ns-a 6)" www.a.test AAAA >/dev/null || true
after=$(netbed_dns_queries ns-a a.test.)
expect_eq "ns-a counted exactly the 2 queries for a.test." "$((after - before))" 2

echo "# HTTP"
expected=$(cat "$NB_HOME/www/hello.txt")
expect_eq "curl from lan over IPv4 gets hello.txt" \
  "$(in_lan curl -sS --max-time 5 "http://$NB_WEB_IP4/hello.txt" || true)" "$expected"
expect_eq "curl from lan over IPv6 gets hello.txt" \
  "$(in_lan curl -sS -g --max-time 5 "http://[$NB_WEB_IP6]/hello.txt" || true)" "$expected"
expect_true "the web server saw lan's own IPv4 address (routed, no NAT)" \
  grep -q "^$NB_LAN_IP4 " "$NB_DIR/web4.log"
expect_true "the web server saw lan's own IPv6 address" \
  grep -q "^$NB_LAN_IP6 " "$NB_DIR/web6.log"

echo "# name resolution in lan through netbed_resolv_conf"
# ns-a is authoritative for a.test., so it answers a stub's query directly.
netbed_resolv_conf lan "$ns_a"
expect_eq "lan's /etc/resolv.conf names the server given" \
  "$(in_lan awk '$1 == "nameserver" {print $2}' /etc/resolv.conf)" "$ns_a"
expect_eq "curl from lan by name (www.a.test) gets hello.txt" \
  "$(in_lan curl -sS -4 --max-time 5 "http://www.a.test/hello.txt" || true)" "$expected"
expect_eq "the host's own /etc/resolv.conf is untouched" "$(cat /etc/resolv.conf)" "$host_resolv_conf"

echo "# echo and sink"
token=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
expect_eq "TCP echo over IPv4" \
  "$(printf '%s\n' "$token" | in_lan socat -t 3 -T 5 - "TCP4:$NB_ECHO_IP4:$NB_ECHO_PORT" || true)" "$token"
expect_eq "TCP echo over IPv6" \
  "$(printf '%s\n' "$token" | in_lan socat -t 3 -T 5 - "TCP6:[$NB_ECHO_IP6]:$NB_ECHO_PORT" || true)" "$token"
# One datagram out, one back: dd takes the reply in one read.
udp_echo() {
  in_lan timeout 5 bash -c \
    'exec 3<>"/dev/udp/$1/$2" && printf "%s\n" "$3" >&3 && dd bs=65536 count=1 status=none <&3' \
    _ "$@"
}
expect_eq "UDP echo over IPv4" "$(udp_echo "$NB_ECHO_IP4" "$NB_ECHO_PORT" "$token" || true)" "$token"
expect_eq "UDP echo over IPv6" "$(udp_echo "$NB_ECHO_IP6" "$NB_ECHO_PORT" "$token" || true)" "$token"
expect_eq "the TCP sink takes 1 MB and sends nothing back" \
  "$(head -c 1000000 /dev/zero | in_lan socat -t 3 -T 5 - "TCP4:$NB_SINK_IP4:$NB_SINK_PORT" | wc -c)" 0

echo "# forwarding off: lan is cut off, gw still reaches net"
netbed_forwarding off
expect_false "with forwarding off, lan cannot fetch from net" \
  in_lan curl -s --max-time 2 -o /dev/null "http://$NB_WEB_IP4/hello.txt"
expect_eq "with forwarding off, gw still fetches from net" \
  "$(in_gw curl -sS --max-time 5 "http://$NB_WEB_IP4/hello.txt" || true)" "$expected"
out=$(in_gw dig +norecurse +time=2 +tries=1 "@$(netbed_dns_addr nic-test 6)" test. SOA | parse_dns || true)
expect_eq "with forwarding off, gw still queries a TLD server routed beyond net" \
  "$(field status <<<"$out")" NOERROR
netbed_forwarding on
expect_eq "with forwarding back on, lan fetches again" \
  "$(in_lan curl -sS --max-time 5 "http://$NB_WEB_IP4/hello.txt" || true)" "$expected"

echo "# stopping one server"
expect_true "echo-tcp4 is alive" netbed_alive echo-tcp4
netbed_stop_bg echo-tcp4
expect_false "echo-tcp4 is gone after netbed_stop_bg" netbed_alive echo-tcp4
expect_false "nothing accepts on the echo port any more" \
  in_lan bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$NB_ECHO_IP4" "$NB_ECHO_PORT" 2>/dev/null

echo "# another LAN (netbed_add_lan)"
expect_false "netbed_add_lan refuses an address outside the documentation ranges" \
  netbed_add_lan bad 10.1.2.1/24 10.1.2.10 2>/dev/null
expect_false "netbed_add_lan refuses the name of a namespace of the bed" \
  netbed_add_lan gw 203.0.113.129/25 203.0.113.130 2>/dev/null
expect_false "and made no namespace for them" test -e "/run/netns/$prefix-bad"
expect_true "netbed_add_lan l2 203.0.113.129/25 203.0.113.130 2001:db8:4::1/64 2001:db8:4::10" \
  netbed_add_lan l2 203.0.113.129/25 203.0.113.130 2001:db8:4::1/64 2001:db8:4::10
expect_eq "its names" "$NB_LAST_LAN_NS $NB_LAST_LAN_IF $NB_LAST_LAN_GW_IF" "$prefix-l2 $prefix-l2 $prefix-gl2"
expect_true "its interface names fit in 15 characters" test "${#NB_LAST_LAN_GW_IF}" -le 15
expect_eq "no link of it in the host's namespace" "$(ip -o link show | grep -c "$prefix" || true)" 0
netbed_start_bg gw l2-sink4 socat -u TCP4-LISTEN:9,bind=203.0.113.129,reuseaddr,fork /dev/null
netbed_start_bg gw l2-sink6 socat -u "TCP6-LISTEN:9,bind=[2001:db8:4::1],reuseaddr,fork" /dev/null
expect_true "l2 reaches gw over IPv4 (TCP)" netbed_wait_tcp l2 203.0.113.129 9 5
expect_true "l2 reaches gw over IPv6 (TCP)" netbed_wait_tcp l2 2001:db8:4::1 9 5
expect_eq "l2's default routes are gw" \
  "$(ip -n "$prefix-l2" route show default | awk '{print $3}') $(ip -n "$prefix-l2" -6 route show default | awk '{print $3}')" \
  "203.0.113.129 2001:db8:4::1"
netbed_start_bg l2 l2-sleeper sleep 100
# The process enters l2 when `ip netns exec` has run: wait for that (5 s at most).
l2_ns=
for _ in $(seq 1 50); do
  l2_ns=$(ip netns identify "$NB_LAST_PID" 2>/dev/null || true)
  [ "$l2_ns" = "$prefix-l2" ] && break
  sleep 0.1
done
expect_eq "netbed_start_bg knows l2 by its short name" "$l2_ns" "$prefix-l2"
expect_true "netbed_resolv_conf takes l2" netbed_resolv_conf "$prefix-l2" 203.0.113.129
expect_false "netbed_add_lan l2 a second time fails" netbed_add_lan l2 203.0.113.129/25 203.0.113.130 2>/dev/null

echo "# gw's [[interface]] tables (netbed_gw_interfaces)"
gwi=$(netbed_gw_interfaces 1080 0 198.51.100.254/32)
expect_eq "netbed_gw_interfaces: IPv4 and IPv6, the extra address on net's side" \
  "$(grep -e '^name' -e '^addresses' <<<"$gwi")" \
  "name = \"$NB_IF_GW_LAN\"
addresses = [\"192.0.2.1/24\", \"2001:db8:1::1/64\"]
name = \"$NB_IF_GW_NET\"
addresses = [\"198.51.100.1/24\", \"198.51.100.254/32\", \"2001:db8:2::1/64\"]"
gwi=$(netbed_gw_interfaces -4 0 53 198.51.100.254/32)
expect_eq "netbed_gw_interfaces -4: IPv4 only" \
  "$(grep -e '^addresses' -e '_port' <<<"$gwi")" \
  "addresses = [\"192.0.2.1/24\"]
socks_port = 0
dns_port = 53
addresses = [\"198.51.100.1/24\", \"198.51.100.254/32\"]"
expect_false "netbed_gw_interfaces -4 refuses an IPv6 extra address" \
  netbed_gw_interfaces -4 0 53 2001:db8:2::fe/128 2>/dev/null
expect_false "netbed_gw_interfaces refuses an address outside the documentation ranges" \
  netbed_gw_interfaces 1080 0 10.1.2.3/32 2>/dev/null

echo "# netbed_down leaves nothing"
dir=$NB_DIR
pids=$(awk '{print $1}' "$NB_DIR/pids")
for ns in "$NB_LAN" "$NB_GW" "$NB_NET" "$prefix-l2"; do pids="$pids $(ip netns pids "$ns")"; done
expect_true "netbed_down succeeds" netbed_down
expect_eq "no namespace of the run is left" "$(ip netns list | grep -c "^$prefix-" || true)" 0
expect_eq "no link of the run is left" "$(ip -o link show | grep -c "$prefix" || true)" 0
alive=""
for p in $pids; do
  # A zombie (Z) no longer runs; anything else with that PID would. The
  # command name in stat may hold spaces ("(nsd: xfrd)"): skip past it.
  st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1 || true)
  if [ -n "$st" ] && [ "$st" != Z ]; then
    alive="$alive $p($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null))"
  fi
done
expect_eq "no process of the run is left ($(wc -w <<<"$pids") checked)" "$alive" ""
expect_false "the state folder is gone" test -e "$dir"
expect_false "lan's resolv.conf is gone" test -e "/etc/netns/$prefix-lan"
expect_false "l2's resolv.conf is gone" test -e "/etc/netns/$prefix-l2"
expect_true "netbed_down a second time is harmless" netbed_down

echo "# cleanup when a test fails under set -e, or is killed"
# A child test that fails: the trap must clean up and keep its status. It
# also declares a server and zone of its own (NB_EXTRA_SERVERS and
# NB_EXTRA_ZONE_DIRS), and reports what that server answered.
state=$(mktemp)
extra=$(mktemp -d)
mkdir "$extra/zones"
printf 'ns-e  nsd  ns1.e.test.  203.0.113.60,2001:db8:3::60  e.test.\n' >"$extra/servers.conf"
cat >"$extra/zones/e.test.zone" <<'ZONE'
$TTL 300
$ORIGIN e.test.
@    IN SOA ns1.e.test. hostmaster.e.test. 1 1800 900 604800 300
@    IN NS  ns1.e.test.
ns1  IN A   203.0.113.60
www  IN A   198.51.100.80
ZONE
rc=0
NB_EXTRA_SERVERS=$extra/servers.conf NB_EXTRA_ZONE_DIRS=$extra/zones timeout 60 bash -c '
  set -euo pipefail
  source "$1"
  netbed_up 2>/dev/null
  e=$(nb_lan dig +short +norecurse +time=2 +tries=1 @2001:db8:3::60 www.e.test A || true)
  printf "%s %s %s\n" "$NB_PREFIX" "$NB_DIR" "${e:-none}" >"$2"
  false
  echo "not reached"' _ "$netbed" "$state" || rc=$?
read -r child_prefix child_dir child_answer <"$state" || true
rm -rf "$extra"
expect_eq "a failing child test keeps its exit status" "$rc" 1
expect_true "the failing child had built a test bed" test -n "${child_prefix:-}"
expect_eq "its extra server from NB_EXTRA_SERVERS answered for its own zone" \
  "${child_answer:-}" "$NB_WEB_IP4"
expect_eq "its namespaces are gone" "$(ip netns list | grep -c "^${child_prefix:-none}-" || true)" 0
expect_false "its state folder is gone" test -e "${child_dir:-/nonexistent}"

# A child test that hangs waiting on a server of its own, until its
# watchdog sends it SIGTERM (the same path as any outside TERM).
: >"$state"
NB_WATCHDOG_SECONDS=45 timeout 90 bash -c '
  source "$1"
  netbed_up 2>/dev/null || exit 1
  netbed_start_bg lan sleeper sleep 50
  printf "%s %s %s\n" "$NB_PREFIX" "$NB_DIR" "$NB_LAST_PID" >"$2"
  # wait, unlike a foreground command, lets the TERM trap run at once.
  wait "$NB_LAST_PID"' _ "$netbed" "$state" &
child=$!
# netbed_up takes 5 s on a quiet machine, 12 s or more on a loaded one, and
# more than 25 s was seen with the whole suite running two at a time: the
# watchdog (armed when netbed_up starts) leaves it 45 s.
for _ in $(seq 1 450); do
  [ -s "$state" ] && break
  sleep 0.1
done
read -r child_prefix child_dir sleeper <"$state" || true
expect_true "the hanging child had built a test bed" test -n "${child_prefix:-}"
expect_true "the hanging child's process runs" test -e "/proc/${sleeper:-0}/cmdline"
rc=0
wait "$child" || rc=$?
# timeout(1) passes the child's own status through.
expect_eq "the watchdog stopped the hanging child with SIGTERM (128+15)" "$rc" 143
expect_eq "its namespaces are gone" "$(ip netns list | grep -c "^${child_prefix:-none}-" || true)" 0
expect_false "its state folder is gone" test -e "${child_dir:-/nonexistent}"
expect_false "its background process is gone" test -e "/proc/${sleeper:-0}/cmdline"
rm -f "$state"

echo "# $checks checks, $failures failed"
[ "$failures" -eq 0 ]
