#!/bin/bash
# The DNSSEC fixture on the simulated internet, cross-checked with Unbound.
# tests/dnssec/make_zones.sh signs a tree (a test root, test., one zone per
# case) with ldns-signzone; nsd serves it in net, one server per zone as the
# glue says; Unbound (validator on, the test root's KSK as its only trust
# anchor) runs in gw where diode-resolver will, and dig asks it from lan.
# Each case of the tree's "cases" list must come out as expected: secure
# with AD, insecure without AD, bogus as SERVFAIL with its EDE code. Where
# Unbound differs from what diode's validator says, the case says why.
# Then diode-resolver takes Unbound's place (same address, the same anchor
# as files.trust_anchor) and must give each case its expected outcome too,
# plus the CD and DO behaviour, the bogus cache, a negative trust anchor
# (resolver.insecure_domains, set by a reload) and a clear --check-config
# error for a bad anchor file. Needs root; bounded by NB_WATCHDOG_SECONDS.
set -euo pipefail
: "${DIODE_SOURCE_DIR:?}"
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
export NB_WATCHDOG_SECONDS=${NB_WATCHDOG_SECONDS:-150}
for t in unbound unbound-checkconf dig nsd; do
  command -v "$t" >/dev/null || { echo "FAIL: $t is missing (scripts/setup.sh)"; exit 1; }
done

work=$(mktemp -d /tmp/diode-dnssec-zones.XXXXXX)
serve=$work/serve
mkdir -p "$serve"
"$DIODE_SOURCE_DIR/tests/dnssec/make_zones.sh" "$work" >/dev/null 2>"$work/make.log" ||
  { cat "$work/make.log"; rm -rf "$work"; echo "FAIL: signing the test tree"; exit 1; }
for f in "$work"/*.signed; do
  b=$(basename "$f" .signed)
  cp "$f" "$serve/$b.zone"
done
cp "$work/root.key" "$serve/root.key"
cp "$work/cases" "$serve/cases"
rm -rf "${work:?}"/K* "$work"/*.signed "$work"/*.zone
# One nsd per zone, at the addresses the glue in the signed zones gives.
cp "$DIODE_SOURCE_DIR/tests/dnssec/servers.conf" "$serve/servers.conf"
export NB_SERVERS_FILES=$serve/servers.conf
export NB_EXTRA_ZONE_DIRS=$serve
netbed_up
mkdir -p "$NB_DIR/unbound"
cp "$serve/root.key" "$serve/cases" "$NB_DIR/unbound/"
rm -rf "$work"   # nsd has loaded the zones

pass() { echo "ok $*"; }
fail() {
  echo "FAIL: $*"
  if [ -n "${last_q:-}" ]; then
    echo "--- dig $last_q"
    # shellcheck disable=SC2086
    nb_lan dig +dnssec +time=8 +tries=1 "@$NB_GW_LAN_IP4" $last_q 2>&1 || true
  fi
  echo "--- unbound log"
  tail -50 "$NB_DIR/unbound.log" || true
  exit 1
}

cat >"$NB_DIR/unbound/unbound.conf" <<EOF2
server:
  interface: $NB_GW_LAN_IP4
  port: 53
  do-ip6: no
  access-control: 192.0.2.0/24 allow
  username: ""
  chroot: ""
  directory: "$NB_DIR/unbound"
  pidfile: "$NB_DIR/unbound/unbound.pid"
  use-syslog: no
  logfile: "$NB_DIR/unbound.log"
  verbosity: ${UNBOUND_VERBOSITY:-1}
  val-log-level: 2
  num-threads: 1
  so-reuseport: no
  root-hints: "$NB_ROOT_HINTS"
  trust-anchor-file: "$NB_DIR/unbound/root.key"
  module-config: "validator iterator"
  ede: yes
  aggressive-nsec: no
  qname-minimisation: no
  prefetch: no
  # test. is one of Unbound's built-in empty zones (RFC 6761); the bed serves it.
  local-zone: "test." nodefault
remote-control:
  control-enable: no
EOF2
unbound-checkconf "$NB_DIR/unbound/unbound.conf" >/dev/null || fail "unbound-checkconf"
netbed_start_bg gw unbound unbound -d -c "$NB_DIR/unbound/unbound.conf"
netbed_wait_udp_dns lan "$NB_GW_LAN_IP4" 15 || fail "unbound did not come up"
pass "nsd serves the signed tree, unbound is up"

# dig from lan with DO; prints status, whether AD is set, and the EDE code.
ask() {
  local out st ad ede
  out=$(nb_lan dig +dnssec +time=8 +tries=1 "@$NB_GW_LAN_IP4" "$1" "$2" 2>&1 || true)
  st=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out" | head -1)
  ad=no
  grep -q '^;; flags:[a-z ]* ad[ ;]' <<<"$out" && ad=yes
  ede=$(sed -n 's/^; EDE: \([0-9]*\).*/\1/p' <<<"$out" | head -1)
  echo "${st:-none} ${ad} ${ede:--}"
}

n=0
while read -r -u 3 qname qtype expect; do
  n=$((n + 1))
  last_q="$qname $qtype"
  read -r st ad ede < <(ask "$qname" "$qtype")
  got="$st ad=$ad ede=$ede"
  case $expect in
    secure*)
      [[ $st == NOERROR || $st == NXDOMAIN ]] && [ "$ad" = yes ] ||
        fail "$qname $qtype: expected $expect (AD), got $got" ;;
    insecure*)
      # For insecure-iterations diode's validator adds EDE 27 (RFC 9276);
      # Unbound 1.17 answers insecure without an EDE (27 came later to it).
      [[ $st == NOERROR || $st == NXDOMAIN ]] && [ "$ad" = no ] ||
        fail "$qname $qtype: expected $expect (no AD), got $got" ;;
    bogus-expired)
      [ "$st" = SERVFAIL ] && [ "$ede" = 7 ] || fail "$qname $qtype: expected SERVFAIL EDE 7, got $got" ;;
    bogus-dnskey-missing)
      [ "$st" = SERVFAIL ] && [ "$ede" = 9 ] || fail "$qname $qtype: expected SERVFAIL EDE 9, got $got" ;;
    bogus-budget)
      # Unbound 1.17.1 (with Debian's KeyTrap fix) gives up as bogus, EDE 6;
      # diode's validator stops at its budget: indeterminate, EDE 5. Both
      # answer SERVFAIL, which is what a client sees.
      [ "$st" = SERVFAIL ] && [ "$ede" = 6 ] ||
        fail "$qname $qtype: expected SERVFAIL EDE 6, got $got" ;;
    *) fail "unknown expectation $expect" ;;
  esac
  pass "$qname $qtype: $expect ($got)"
done 3<"$NB_DIR/unbound/cases"
[ "$n" = 25 ] || fail "expected 25 cases, ran $n"
pass "all $n cases agree with unbound"

# ---------------------------------------------------------------- diode-resolver
RESOLVER=${DIODE_BINARY_DIR:?}/resolver/diode-resolver
netbed_stop_bg unbound
mkdir -p "$NB_DIR/resolver"
cp "$NB_DIR/unbound/root.key" "$NB_DIR/resolver/root.key"
# gateway.toml for the bed; $1 = the resolver.insecure_domains array, $2 =
# resolver.aggressive_nsec (default true).
write_conf() {
  {
    netbed_gw_interfaces -4 0 53
    cat <<EOF2
[files]
sockd_conf = ""
sockd_route = ""
users = ""
root_hints = "$NB_ROOT_HINTS"
trust_anchor = "$NB_DIR/resolver/root.key"   # the test root's KSK
trust_anchor_state = ""   # the anchor file as it is (dnssec.rfc5011 tests updates)

[sockd]
methods = ["none"]

[resolver]
dnssec = true
insecure_domains = $1
aggressive_nsec = ${2:-true}
query_documentation_addresses = true
builtin_local_zones = false
upstream_timeout = "800ms"
qname_minimisation = false
prefetch = false
cache_file = ""
EOF2
  } >"$NB_DIR/resolver/gateway.toml"
}

# A bad anchor file is a clear error at --check-config, with its line.
write_conf '[]'
printf '. 3600 IN DS 20326 8 2 zz-not-hex\n' >"$NB_DIR/resolver/bad.key"
sed "s|$NB_DIR/resolver/root.key|$NB_DIR/resolver/bad.key|" "$NB_DIR/resolver/gateway.toml" \
  >"$NB_DIR/resolver/bad.toml"
if out=$(nb_gw "$RESOLVER" --check-config --config "$NB_DIR/resolver/bad.toml" 2>&1); then
  fail "--check-config accepted a bad trust anchor file: $out"
fi
grep -q "bad.key:1:" <<<"$out" || fail "--check-config error does not name the anchor line: $out"
pass "--check-config refuses a bad anchor file ($(head -1 <<<"$out"))"
out=$(nb_gw "$RESOLVER" --check-config --config "$NB_DIR/resolver/gateway.toml" 2>&1) ||
  fail "--check-config refused the bed's configuration: $out"
grep -q "DNSSEC validation from 1 trust anchor" <<<"$out" || fail "--check-config: $out"

fail_diode() {
  echo "FAIL: $*"
  echo "--- diode-resolver log"
  tail -40 "$NB_DIR/diode-resolver.log" || true
  exit 1
}
netbed_start_bg gw diode-resolver "$RESOLVER" --config "$NB_DIR/resolver/gateway.toml"
resolver_pid=$NB_LAST_PID
netbed_wait_udp_dns lan "$NB_GW_LAN_IP4" 15 || fail_diode "diode-resolver did not come up"
pass "diode-resolver is up, validating from the test root's key"

n=0
while read -r -u 3 qname qtype expect; do
  n=$((n + 1))
  read -r st ad ede < <(ask "$qname" "$qtype")
  got="$st ad=$ad ede=$ede"
  case $expect in
    secure*)
      [[ $st == NOERROR || $st == NXDOMAIN ]] && [ "$ad" = yes ] ||
        fail_diode "diode: $qname $qtype: expected $expect (AD), got $got" ;;
    insecure*)
      # diode gives insecure answers no EDE (its validator's EDE 27 for
      # too many NSEC3 iterations is logged, not sent), like Unbound 1.17.
      [[ $st == NOERROR || $st == NXDOMAIN ]] && [ "$ad" = no ] ||
        fail_diode "diode: $qname $qtype: expected $expect (no AD), got $got" ;;
    bogus-expired)
      [ "$st" = SERVFAIL ] && [ "$ede" = 7 ] ||
        fail_diode "diode: $qname $qtype: expected SERVFAIL EDE 7, got $got" ;;
    bogus-dnskey-missing)
      [ "$st" = SERVFAIL ] && [ "$ede" = 9 ] ||
        fail_diode "diode: $qname $qtype: expected SERVFAIL EDE 9, got $got" ;;
    bogus-budget)
      # Where Unbound says 6 (bogus), diode's budget stops it: EDE 5
      # (indeterminate), SERVFAIL all the same.
      [ "$st" = SERVFAIL ] && [ "$ede" = 5 ] ||
        fail_diode "diode: $qname $qtype: expected SERVFAIL EDE 5, got $got" ;;
    *) fail "unknown expectation $expect" ;;
  esac
  pass "diode: $qname $qtype: $expect ($got)"
done 3<"$NB_DIR/unbound/cases"
[ "$n" = 25 ] || fail_diode "expected 25 cases, ran $n"
pass "diode-resolver: all $n cases as expected"

d() { nb_lan dig +time=8 +tries=1 "@$NB_GW_LAN_IP4" "$@" 2>&1 || true; }
flags() { sed -n 's/^;; flags: \([a-z ]*\);.*/\1/p' <<<"$1" | head -1; }
# DO: the RRSIGs come with the answer (from the cache now), AD set.
out=$(d +dnssec www.secure.test A)
grep -q 'RRSIG[[:space:]]*A ' <<<"$out" || fail_diode "DO: no RRSIG for www.secure.test: $out"
[[ " $(flags "$out") " == *" ad "* ]] || fail_diode "DO: no AD: $out"
# Without DO: no RRSIG; AD only when the query had AD (RFC 6840 §5.7).
out=$(d +nodnssec +adflag www.secure.test A)
grep -q 'RRSIG' <<<"$out" && fail_diode "no DO: RRSIG returned: $out"
[[ " $(flags "$out") " == *" ad "* ]] || fail_diode "AD query: no AD: $out"
out=$(d +nodnssec +noadflag www.secure.test A)
grep -q 'RRSIG' <<<"$out" && fail_diode "no DO: RRSIG returned: $out"
[[ " $(flags "$out") " == *" ad "* ]] && fail_diode "neither DO nor AD: AD set: $out"
grep -q 'status: NOERROR' <<<"$out" || fail_diode "www.secure.test A: $out"
pass "DO gets RRSIGs and AD; AD alone gets AD; neither gets neither"
# A denial with DO carries its NSEC3 proof.
out=$(d +dnssec nothere.n3.test A)
grep -q 'status: NXDOMAIN' <<<"$out" && grep -q 'NSEC3' <<<"$out" ||
  fail_diode "DO: NXDOMAIN without NSEC3: $out"
pass "DO: NXDOMAIN with its NSEC3 records"
# CD: the bogus data, unchecked, no AD; still SERVFAIL without CD (cached bogus).
out=$(d +cd +dnssec www.expired.test A)
grep -q 'status: NOERROR' <<<"$out" || fail_diode "CD: www.expired.test not answered: $out"
grep -q '^www.expired.test.*[[:space:]]A[[:space:]]' <<<"$out" || fail_diode "CD: no A record: $out"
[[ " $(flags "$out") " == *" ad "* ]] && fail_diode "CD: AD on unchecked data: $out"
read -r st ad ede < <(ask www.expired.test A)
[ "$st $ede" = "SERVFAIL 7" ] || fail_diode "after CD: www.expired.test A: $st ad=$ad ede=$ede"
pass "CD returns bogus data unchecked; without CD it stays SERVFAIL, EDE 7"

# ---------------------------------------------------------------- the validated caches
# Queries the authoritative servers of the tree have received in all (nsd's
# own counters, netbed_dns_queries): the resolver asked upstream iff it grows.
auth_queries() {
  local t=0 s
  for s in root tld secure nsec3 n3 child; do t=$((t + $(netbed_dns_queries "$s"))); done
  echo "$t"
}
# A name below ZONE (other than FIRST) whose NSEC3 hash falls in the span of
# the NSEC3 record that covers FIRST's hash, read from FILE (dig +dnssec
# output of the NXDOMAIN for FIRST): a second name the same records deny.
same_nsec3_span() {
  python3 - "$1" "$2" "$3" <<'PY'
import base64, hashlib, sys
zone, first, path = sys.argv[1].rstrip(".") + ".", sys.argv[2].rstrip(".") + ".", sys.argv[3]
recs = []
for line in open(path):
    f = line.split()
    if len(f) >= 9 and f[3] == "NSEC3":
        salt = b"" if f[7] == "-" else bytes.fromhex(f[7])
        recs.append((f[0].split(".")[0].lower(), f[8].lower(), int(f[6]), salt, int(f[5]) & 1))
if not recs:
    sys.exit("no NSEC3 records in " + path)
_, _, iters, salt, _ = recs[0]
def h(name):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.lower().rstrip(".").split(".")) + b"\0"
    d = hashlib.sha1(wire + salt).digest()
    for _ in range(iters):
        d = hashlib.sha1(d + salt).digest()
    return base64.b32hexencode(d).decode().lower()
def covers(o, n, x):
    return (o < x < n) if o < n else (x > o or x < n)
target = h(first)
span = [r for r in recs if covers(r[0], r[1], target)]
if not span:
    sys.exit("no NSEC3 record covers " + first)
o, n = span[0][0], span[0][1]
for i in range(100000):
    cand = "nx%d.%s" % (i, zone)
    if cand != first and covers(o, n, h(cand)):
        print(cand)
        sys.exit(0)
sys.exit("no name found in the span")
PY
}

# The RRset cache answers validated questions: alias.secure.test AAAA (the
# cached, secure CNAME and www's AAAA fetched and validated), then
# www.secure.test AAAA, a message-cache miss built from that validated
# RRset: secure, with its RRSIG for DO, and no upstream query.
read -r st ad ede < <(ask alias.secure.test AAAA)
[ "$st $ad" = "NOERROR yes" ] || fail_diode "alias.secure.test AAAA: $st ad=$ad ede=$ede"
before=$(auth_queries)
out=$(d +dnssec www.secure.test AAAA)
grep -q 'status: NOERROR' <<<"$out" && grep -q '2001:db8:3::11' <<<"$out" ||
  fail_diode "www.secure.test AAAA from the RRset cache: $out"
[[ " $(flags "$out") " == *" ad "* ]] || fail_diode "www.secure.test AAAA: no AD: $out"
grep -q 'RRSIG[[:space:]]*AAAA ' <<<"$out" || fail_diode "www.secure.test AAAA: no RRSIG: $out"
after=$(auth_queries)
[ "$after" = "$before" ] ||
  fail_diode "www.secure.test AAAA asked upstream ($before -> $after queries at the servers)"
pass "a validated answer from the RRset cache: AD, its RRSIG, no upstream query"

# Aggressive NSEC (RFC 8198). The cases above had one NXDOMAIN in secure.test
# (nothere: the NSEC dn -> ns covers it, the apex's covers *.secure.test);
# a random name in the same gap (after "dn", before "ns") is denied from
# those records: NXDOMAIN, AD, the NSECs for DO, and no upstream query.
gap=nothere$RANDOM$RANDOM.secure.test
before=$(auth_queries)
out=$(d +dnssec "$gap" A)
grep -q 'status: NXDOMAIN' <<<"$out" || fail_diode "$gap: $out"
[[ " $(flags "$out") " == *" ad "* ]] || fail_diode "$gap: no AD: $out"
grep -q "^dn.secure.test.*NSEC" <<<"$out" || fail_diode "$gap: no NSEC proof for DO: $out"
# NODATA from a kept NSEC (www's, from the www.secure.test TXT case): no MX.
out2=$(d +dnssec www.secure.test MX)
grep -q 'status: NOERROR' <<<"$out2" && grep -q 'ANSWER: 0' <<<"$out2" ||
  fail_diode "www.secure.test MX: $out2"
[[ " $(flags "$out2") " == *" ad "* ]] || fail_diode "www.secure.test MX: no AD: $out2"
after=$(auth_queries)
[ "$after" = "$before" ] ||
  fail_diode "aggressive NSEC: $gap and www.secure.test MX asked upstream ($before -> $after)"
pass "aggressive NSEC: $gap NXDOMAIN and www.secure.test MX NODATA with AD, no upstream query"

# NSEC3 without opt-out (n3.test): a second name in nothere.n3.test's span.
d +dnssec nothere.n3.test A >"$NB_DIR/n3-first.txt"
second=$(same_nsec3_span n3.test nothere.n3.test "$NB_DIR/n3-first.txt") ||
  fail_diode "no second name for n3.test: $second"
before=$(auth_queries)
read -r st ad ede < <(ask "$second" A)
[ "$st $ad" = "NXDOMAIN yes" ] || fail_diode "$second: $st ad=$ad ede=$ede"
after=$(auth_queries)
[ "$after" = "$before" ] || fail_diode "aggressive NSEC3: $second asked upstream ($before -> $after)"
pass "aggressive NSEC3: $second (the span of nothere.n3.test) NXDOMAIN with AD, no upstream query"

# NSEC3 with opt-out (nsec3.test): the span may hide an unsigned delegation,
# so the same trick must not deny: the name goes upstream, and is insecure.
d +dnssec nothere.nsec3.test A >"$NB_DIR/optout-first.txt"
second=$(same_nsec3_span nsec3.test nothere.nsec3.test "$NB_DIR/optout-first.txt") ||
  fail_diode "no second name for nsec3.test: $second"
before=$(netbed_dns_queries nsec3)
read -r st ad ede < <(ask "$second" A)
[ "$st $ad" = "NXDOMAIN no" ] || fail_diode "opt-out: $second: $st ad=$ad ede=$ede"
after=$(netbed_dns_queries nsec3)
[ "$after" -gt "$before" ] ||
  fail_diode "opt-out: $second was denied without asking nsec3.test's server ($before -> $after)"
pass "NSEC3 opt-out: $second (same span) asked upstream ($before -> $after), NXDOMAIN without AD"

# A negative trust anchor, added by a reload: expired.test answers insecure.
# The resolver runs as gateway.user by now: it must be able to read both files.
write_conf '["expired.test"]'
chmod a+rx "$NB_DIR" "$NB_DIR/resolver"
chmod a+r "$NB_DIR/resolver/gateway.toml" "$NB_DIR/resolver/root.key"
reloads=$(grep -c 'event=reload status=ok' "$NB_DIR/diode-resolver.log" || true)
kill -HUP "$resolver_pid"
for _ in $(seq 100); do
  [ "$(grep -c 'event=reload status=ok' "$NB_DIR/diode-resolver.log" || true)" -gt "$reloads" ] && break
  sleep 0.1
done
[ "$(grep -c 'event=reload status=ok' "$NB_DIR/diode-resolver.log" || true)" -gt "$reloads" ] ||
  fail_diode "no reload after SIGHUP"
read -r st ad ede < <(ask www.expired.test A)
[ "$st $ad" = "NOERROR no" ] || fail_diode "NTA: www.expired.test A: $st ad=$ad ede=$ede"
read -r st ad ede < <(ask www.mismatch.test A)
[ "$st $ede" = "SERVFAIL 9" ] || fail_diode "NTA: www.mismatch.test A: $st ad=$ad ede=$ede"
pass "insecure_domains: expired.test answered insecure, mismatch.test still bogus"

# resolver.aggressive_nsec = false (a reload, which also empties the kept
# records): an NXDOMAIN, then another name in the same NSEC gap: asked upstream.
write_conf '["expired.test"]' false
reloads=$(grep -c 'event=reload status=ok' "$NB_DIR/diode-resolver.log" || true)
kill -HUP "$resolver_pid"
for _ in $(seq 100); do
  [ "$(grep -c 'event=reload status=ok' "$NB_DIR/diode-resolver.log" || true)" -gt "$reloads" ] && break
  sleep 0.1
done
[ "$(grep -c 'event=reload status=ok' "$NB_DIR/diode-resolver.log" || true)" -gt "$reloads" ] ||
  fail_diode "no reload after SIGHUP (aggressive_nsec = false)"
read -r st ad ede < <(ask "nothere$RANDOM.secure.test" A)
[ "$st $ad" = "NXDOMAIN yes" ] || fail_diode "aggressive_nsec = false: first name: $st ad=$ad"
before=$(netbed_dns_queries secure)
read -r st ad ede < <(ask "nothere$RANDOM$RANDOM.secure.test" A)
[ "$st $ad" = "NXDOMAIN yes" ] || fail_diode "aggressive_nsec = false: second name: $st ad=$ad"
after=$(netbed_dns_queries secure)
[ "$after" -gt "$before" ] ||
  fail_diode "aggressive_nsec = false: the second name was not asked upstream ($before -> $after)"
pass "aggressive_nsec = false: a second name in the same gap is asked upstream ($before -> $after)"
kill -0 "$resolver_pid" || fail_diode "diode-resolver died"
