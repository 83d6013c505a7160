#!/bin/bash
# The DNSSEC fixture on the simulated internet, cross-checked with Unbound.
# tests/dnssec/make_zones.sh signs a tree (a test root, test., one zone per
# case) with ldns-signzone; nsd serves it in net, one server per zone as the
# glue says; Unbound (validator on, the test root's KSK as its only trust
# anchor) runs in gw where diode-resolver will, and dig asks it from lan.
# Each case of the tree's "cases" list must come out as expected: secure
# with AD, insecure without AD, bogus as SERVFAIL with its EDE code. Where
# Unbound differs from what diode's validator says, the case says why.
# This checks the fixture the resolver's own DNSSEC test will use once the
# validator is wired (issue 14). Needs root; bounded by NB_WATCHDOG_SECONDS.
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
cat >"$serve/servers.conf" <<'EOF2'
root        nsd  ns.root-servers.test.      198.51.100.54   .
tld         nsd  ns.test.                   198.51.100.53   test.
secure      nsd  ns.secure.test.            203.0.113.10    secure.test.
nsec3       nsd  ns.nsec3.test.             203.0.113.20    nsec3.test.
child       nsd  ns.child.nsec3.test.       203.0.113.23    child.nsec3.test.
n3          nsd  ns.n3.test.                203.0.113.25    n3.test.
iter        nsd  ns.iter.test.              203.0.113.30    iter.test.
expired     nsd  ns.expired.test.           203.0.113.40    expired.test.
mismatch    nsd  ns.mismatch.test.          203.0.113.50    mismatch.test.
unsupported nsd  ns.unsupported.test.       203.0.113.60    unsupported.test.
insecure    nsd  ns.insecure.test.          203.0.113.70    insecure.test.
rsa         nsd  ns.rsa.test.               203.0.113.80    rsa.test.
ed448       nsd  ns.ed448.test.             203.0.113.90    ed448.test.
keytrap     nsd  ns.keytrap.test.           203.0.113.100   keytrap.test.
EOF2
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
