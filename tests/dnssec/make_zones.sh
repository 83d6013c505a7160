#!/usr/bin/env bash
# Builds a small signed DNS tree in DIR with ldns-keygen/ldns-signzone
# (Debian's ldnsutils): a test root whose KSK is the trust anchor, the TLD
# "test." and one zone per DNSSEC case. Used by the validator's unit test
# (a fake network answering from these files) and by the netbed cross-check
# with nsd and Unbound. Addresses are documentation ranges only.
#
# SECURE_EXTRA_NAMES=N adds the names h0 .. h(N-1) to secure.test (A records;
# for bench/dnssec.sh).
#
# Output: DIR/<zone>.signed per zone ("root.signed" for "."), DIR/root.key
# (the anchor, the root KSK in DNSKEY form), DIR/cases (one line per case:
# qname qtype expected-outcome), DIR/now (Unix time of signing).
set -euo pipefail
dir=${1:?usage: make_zones.sh DIR}
mkdir -p "$dir"
cd "$dir"
for t in ldns-keygen ldns-signzone ldns-key2ds python3; do
  command -v "$t" >/dev/null || { echo "make_zones: $t is missing (scripts/setup.sh)" >&2; exit 1; }
done
now=$(date +%s)
echo "$now" >now
inception=$((now - 3600))
expiration=$((now + 30 * 86400))

# keys ZONE ALG [BITS]: a KSK and a ZSK; prints their base names.
keys() {
  local zone=$1 alg=$2 bits=${3:-}
  local b=()
  [ -n "$bits" ] && b=(-b "$bits")
  ksk=$(ldns-keygen -a "$alg" "${b[@]}" -k "$zone")
  zsk=$(ldns-keygen -a "$alg" "${b[@]}" "$zone")
  echo "$ksk $zsk"
}

soa() {  # the SOA and NS of zone $1 with server name $2
  local mbox=hostmaster.$1
  [ "$1" = . ] && mbox=hostmaster.
  printf '$ORIGIN %s\n$TTL 3600\n@ SOA %s %s 1 3600 600 86400 300\n@ NS %s\n' \
    "$1" "$2" "$mbox" "$2"
}

# sign ZONEFILE ORIGIN OUT [extra ldns-signzone options...] -- KEYS...
sign() {
  local in=$1 origin=$2 out=$3
  shift 3
  local opts=()
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  ldns-signzone -i "$inception" -e "$expiration" "${opts[@]}" -o "$origin" -f "$out" "$in" "$@"
}

ds_of() {  # DS (SHA-256) of a KSK file
  ldns-key2ds -n -2 "$1.key"
}

# --- leaf zones -----------------------------------------------------------
parent_extra=()  # lines for test.

# secure.test: Ed25519, NSEC; a wildcard, a CNAME inside and one to an insecure zone.
read -r ksk zsk < <(keys secure.test. ED25519)
{
  soa secure.test. ns.secure.test.
  cat <<'Z'
ns    A 203.0.113.10
www   A 203.0.113.11
www   AAAA 2001:db8:3::11
*.wild A 203.0.113.12
alias CNAME www
out   CNAME www.insecure.test.
dn    DNAME n3.test.
Z
  # bench/dnssec.sh asks for more names (the validated cache-miss figures).
  for ((i = 0; i < ${SECURE_EXTRA_NAMES:-0}; i++)); do
    printf 'h%d A 203.0.113.%d\n' "$i" $((i % 200 + 20))
  done
} >secure.test.zone
sign secure.test.zone secure.test. secure.test.signed -- "$ksk" "$zsk"
parent_extra+=("secure NS ns.secure.test." "ns.secure A 203.0.113.10" "$(ds_of "$ksk")")

# nsec3.test: ECDSA P-384, NSEC3 with opt-out, iterations 0, no salt; an
# unsigned delegation inside an opt-out span, and a wildcard.
read -r ksk zsk < <(keys nsec3.test. ECDSAP384SHA384)
{
  soa nsec3.test. ns.nsec3.test.
  cat <<'Z'
ns    A 203.0.113.20
www   A 203.0.113.21
*.wc  A 203.0.113.22
child NS ns.child.nsec3.test.
ns.child A 203.0.113.23
Z
} >nsec3.test.zone
sign nsec3.test.zone nsec3.test. nsec3.test.signed -n -p -t 0 -- "$ksk" "$zsk"
parent_extra+=("nsec3 NS ns.nsec3.test." "ns.nsec3 A 203.0.113.20" "$(ds_of "$ksk")")
{ soa child.nsec3.test. ns.child.nsec3.test.; echo "ns A 203.0.113.23"; echo "www A 203.0.113.24"; } >child.nsec3.test.signed

# n3.test: Ed25519, NSEC3 without opt-out, 5 iterations, a salt; a wildcard.
read -r ksk zsk < <(keys n3.test. ED25519)
{
  soa n3.test. ns.n3.test.
  printf '%s\n' "ns A 203.0.113.25" "www A 203.0.113.26" "*.wc A 203.0.113.27"
} >n3.test.zone
sign n3.test.zone n3.test. n3.test.signed -n -t 5 -s 0a1b2c3d -- "$ksk" "$zsk"
parent_extra+=("n3 NS ns.n3.test." "ns.n3 A 203.0.113.25" "$(ds_of "$ksk")")

# iter.test: NSEC3 with 200 iterations, above the RFC 9276 cap (150).
read -r ksk zsk < <(keys iter.test. ECDSAP256SHA256)
{ soa iter.test. ns.iter.test.; echo "ns A 203.0.113.30"; echo "www A 203.0.113.31"; } >iter.test.zone
sign iter.test.zone iter.test. iter.test.signed -n -t 200 -s abcd -- "$ksk" "$zsk"
parent_extra+=("iter NS ns.iter.test." "ns.iter A 203.0.113.30" "$(ds_of "$ksk")")

# expired.test: every signature expired ten days ago.
read -r ksk zsk < <(keys expired.test. ECDSAP256SHA256)
{ soa expired.test. ns.expired.test.; echo "ns A 203.0.113.40"; echo "www A 203.0.113.41"; } >expired.test.zone
ldns-signzone -i $((now - 40 * 86400)) -e $((now - 10 * 86400)) -o expired.test. \
  -f expired.test.signed expired.test.zone "$ksk" "$zsk"
parent_extra+=("expired NS ns.expired.test." "ns.expired A 203.0.113.40" "$(ds_of "$ksk")")

# mismatch.test: the parent's DS names a key the zone does not hold.
read -r ksk zsk < <(keys mismatch.test. ECDSAP256SHA256)
other=$(ldns-keygen -a ECDSAP256SHA256 -k mismatch.test.)
{ soa mismatch.test. ns.mismatch.test.; echo "ns A 203.0.113.50"; echo "www A 203.0.113.51"; } >mismatch.test.zone
sign mismatch.test.zone mismatch.test. mismatch.test.signed -- "$ksk" "$zsk"
parent_extra+=("mismatch NS ns.mismatch.test." "ns.mismatch A 203.0.113.50" "$(ds_of "$other")")

# unsupported.test: DSA (algorithm 3), which Diode does not implement.
read -r ksk zsk < <(keys unsupported.test. DSA 1024)
{ soa unsupported.test. ns.unsupported.test.; echo "ns A 203.0.113.60"; echo "www A 203.0.113.61"; } >unsupported.test.zone
sign unsupported.test.zone unsupported.test. unsupported.test.signed -- "$ksk" "$zsk"
parent_extra+=("unsupported NS ns.unsupported.test." "ns.unsupported A 203.0.113.60" "$(ds_of "$ksk")")

# insecure.test: an unsigned zone under an unsigned delegation.
{ soa insecure.test. ns.insecure.test.; echo "ns A 203.0.113.70"; echo "www A 203.0.113.71"; } >insecure.test.signed
parent_extra+=("insecure NS ns.insecure.test." "ns.insecure A 203.0.113.70")

# rsa.test (RSA/SHA-512) and ed448.test: the other algorithms.
read -r ksk zsk < <(keys rsa.test. RSASHA512 2048)
{ soa rsa.test. ns.rsa.test.; echo "ns A 203.0.113.80"; echo "www A 203.0.113.81"; } >rsa.test.zone
sign rsa.test.zone rsa.test. rsa.test.signed -- "$ksk" "$zsk"
parent_extra+=("rsa NS ns.rsa.test." "ns.rsa A 203.0.113.80" "$(ds_of "$ksk")")
read -r ksk zsk < <(keys ed448.test. ED448)
{ soa ed448.test. ns.ed448.test.; echo "ns A 203.0.113.90"; echo "www A 203.0.113.91"; } >ed448.test.zone
sign ed448.test.zone ed448.test. ed448.test.signed -- "$ksk" "$zsk"
parent_extra+=("ed448 NS ns.ed448.test." "ns.ed448 A 203.0.113.90" "$(ds_of "$ksk")")

# keytrap.test: the KeyTrap pattern (CVE-2023-50387). 40 extra DNSKEYs share
# the ZSK's key tag; www's A RRset carries 40 RRSIGs with that tag, none
# valid: a naive validator would try 40 x 41 signatures.
read -r ksk zsk < <(keys keytrap.test. ED25519)
python3 - "$zsk.key" >keytrap.fake <<'PY'
import base64, os, sys
line = open(sys.argv[1]).read().split(';')[0].split()
flags, proto, alg = int(line[3]), int(line[4]), int(line[5])
key = base64.b64decode(line[6])
def tag(rdata):
    ac = 0
    for i, b in enumerate(rdata):
        ac += b if i & 1 else b << 8
    ac += (ac >> 16) & 0xffff
    return ac & 0xffff
want = tag(bytes([flags >> 8, flags & 255, proto, alg]) + key)
out = []
while len(out) < 40:
    k = bytearray(os.urandom(32))
    rd = bytearray([flags >> 8, flags & 255, proto, alg]) + k
    # Fix the last 16-bit word so that the tag matches (RDATA length is even).
    rd[-2:] = b'\0\0'
    t = tag(bytes(rd))
    d = (want - t) & 0xffff
    rd[-2], rd[-1] = d >> 8, d & 255
    if tag(bytes(rd)) != want:
        continue
    out.append(base64.b64encode(bytes(rd[4:])).decode())
for k in out:
    print(f"@ DNSKEY {flags} {proto} {alg} {k}")
print(want, file=open("keytrap.tag", "w"))
PY
{ soa keytrap.test. ns.keytrap.test.; echo "ns A 203.0.113.100"; echo "www A 203.0.113.101"; cat keytrap.fake; } >keytrap.test.zone
sign keytrap.test.zone keytrap.test. keytrap.test.signed.tmp -- "$ksk" "$zsk"
python3 - keytrap.test.signed.tmp "$(cat keytrap.tag)" >keytrap.test.signed <<'PY'
import base64, os, sys
tag = sys.argv[2]
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) > 5 and f[0] == "www.keytrap.test." and f[3] == "RRSIG" and f[4] == "A":
        for _ in range(40):
            g = list(f)
            g[10] = tag
            g[12] = base64.b64encode(os.urandom(64)).decode()
            print("\t".join(g[:12] + [g[12]]))
        continue
    sys.stdout.write(line)
PY
rm -f keytrap.test.signed.tmp
parent_extra+=("keytrap NS ns.keytrap.test." "ns.keytrap A 203.0.113.100" "$(ds_of "$ksk")")

# --- test. (RSA/SHA-256, NSEC) and the root (ECDSA P-256, NSEC) -----------
read -r ksk zsk < <(keys test. RSASHA256 2048)
{
  soa test. ns.test.
  echo "ns A 198.51.100.53"
  printf '%s\n' "${parent_extra[@]}"
} >test.zone
sign test.zone test. test.signed -- "$ksk" "$zsk"
tld_ds=$(ds_of "$ksk")

read -r ksk zsk < <(keys . ECDSAP256SHA256)
{
  soa . ns.root-servers.test.
  echo "test. NS ns.test."
  echo "ns.test. A 198.51.100.53"
  echo "ns.root-servers.test. A 198.51.100.54"
  echo "$tld_ds"
} >root.zone
sign root.zone . root.signed -- "$ksk" "$zsk"
cut -d';' -f1 "$ksk.key" >root.key

cat >cases <<'C'
www.secure.test. A secure
www.secure.test. TXT secure-nodata
nothere.secure.test. A secure-nxdomain
a.wild.secure.test. A secure-wildcard
alias.secure.test. A secure
out.secure.test. A insecure
www.dn.secure.test. A secure
www.nsec3.test. A secure
nothere.nsec3.test. A insecure-optout
www.nsec3.test. TXT secure-nodata
x.wc.nsec3.test. A insecure-optout-wildcard
www.n3.test. A secure
www.n3.test. TXT secure-nodata
nothere.n3.test. A secure-nxdomain
x.wc.n3.test. A secure-wildcard
www.child.nsec3.test. A insecure
www.iter.test. A secure
nothere.iter.test. A insecure-iterations
www.expired.test. A bogus-expired
www.mismatch.test. A bogus-dnskey-missing
www.unsupported.test. A insecure
www.insecure.test. A insecure
www.rsa.test. A secure
www.ed448.test. A secure
www.keytrap.test. A bogus-budget
C
ls "$dir"/*.signed >/dev/null
