#!/bin/bash
# RFC 5011 in the test bed: a test root (ECDSA P-256, signed at test time
# with ldns-signzone, served by nsd) rolls its KSK while diode-resolver
# watches. The resolver starts from files.trust_anchor (the first KSK) with
# a damaged state file, which it must move aside and replace; the root then
# publishes a second KSK, signed by the first only, which the state file
# must show pending (addpend, with its first-seen time) and, once the hold-down
# (resolver.trust_anchor_hold_down, shortened to 6 s for the test) has
# passed, valid; then the first KSK is revoked (REVOKE bit, self-signed)
# and the root signed by the new KSK alone: the state file shows the old
# key revoked and answers stay secure (AD). A restart reads the state back:
# still AD, though files.trust_anchor names only the revoked key.
# Synchronised on the resolver's log lines and on nsd's answers, never on
# sleeps. Needs root; bounded by NB_WATCHDOG_SECONDS.
set -euo pipefail
: "${DIODE_SOURCE_DIR:?}"
source "$DIODE_SOURCE_DIR/tests/netbed/netbed.sh"
export NB_WATCHDOG_SECONDS=${NB_WATCHDOG_SECONDS:-150}
for t in ldns-keygen ldns-signzone ldns-revoke dig nsd nsd-control; do
  command -v "$t" >/dev/null || { echo "FAIL: $t is missing (scripts/setup.sh)"; exit 1; }
done
id diode >/dev/null 2>&1 || { echo "FAIL: no user diode (gateway.user; scripts/setup.sh)"; exit 1; }

work=$(mktemp -d /tmp/diode-rfc5011.XXXXXX)
serve=$work/serve
mkdir -p "$serve"
cd "$work"
now=$(date +%s)
inception=$((now - 3600))
expiration=$((now + 30 * 86400))
ksk1=$(ldns-keygen -a ECDSAP256SHA256 -k .)
ksk2=$(ldns-keygen -a ECDSAP256SHA256 -k .)
zsk=$(ldns-keygen -a ECDSAP256SHA256 .)
ksk1=$work/$ksk1
ksk2=$work/$ksk2
zsk=$work/$zsk
tag_of() { echo $((10#${1##*+})); }  # K<name>+<alg>+<tag>
tag1=$(tag_of "$ksk1")
tag2=$(tag_of "$ksk2")
# Short TTLs: the add hold-down is at least the DNSKEY set's TTL (RFC 5011
# §2.4.1), and the refresh comes at half of it.
{
  printf '$ORIGIN .\n$TTL 4\n'
  printf '. SOA ns.root-servers.test. hostmaster. 1 3600 600 86400 4\n'
  printf '. NS ns.root-servers.test.\n'
  printf 'ns.root-servers.test. A 198.51.100.54\n'
  # One name per check, each asked once: no answer comes from the cache.
  for p in seeded rolled restarted; do printf '%s.test. TXT "rfc5011"\n' "$p"; done
} >"$work/root.base"
# sign_root SERIAL EXTRA_DNSKEY_FILE KEYS...: the root signed by KEYS (the
# DNSKEY set by every KSK among them, the rest by the ZSK), with the
# DNSKEY records of EXTRA_DNSKEY_FILE published unsigned-by-themselves.
sign_root() {
  local serial=$1 extra=$2
  shift 2
  sed "s/ 1 3600 600/ $serial 3600 600/" "$work/root.base" >"$work/root.zone"
  if [ -n "$extra" ]; then
    cut -d';' -f1 "$extra" | sed -n 's/.*DNSKEY[[:space:]]*/. 4 IN DNSKEY /p' >>"$work/root.zone"
  fi
  ldns-signzone -i "$inception" -e "$expiration" -o . -f "$work/root.signed" "$work/root.zone" "$@"
  cp "$work/root.signed" "$serve/root.zone.new"
  mv "$serve/root.zone.new" "$serve/root.zone"
}
sign_root 1 "" "$ksk1" "$zsk"
cut -d';' -f1 "$ksk1.key" >"$serve/root.key"
echo "root nsd ns.root-servers.test. 198.51.100.54 ." >"$serve/servers.conf"
export NB_SERVERS_FILES=$serve/servers.conf
export NB_EXTRA_ZONE_DIRS=$serve
netbed_up

RESOLVER=${DIODE_BINARY_DIR:?}/resolver/diode-resolver
state_dir=$NB_DIR/resolver/state
state=$state_dir/root.key.state
log=$NB_DIR/diode-resolver.log
mkdir -p "$state_dir"
cp "$serve/root.key" "$NB_DIR/resolver/root.key"
chown diode "$state_dir"
chmod 0700 "$state_dir"
chmod a+rx "$NB_DIR" "$NB_DIR/resolver"
chmod a+r "$NB_DIR/resolver/root.key"

pass() { echo "ok $*"; }
fail() {
  echo "FAIL: $*"
  echo "--- diode-resolver log"
  tail -40 "$log" 2>/dev/null || true
  echo "--- state file"
  cat "$state" 2>/dev/null || true
  exit 1
}

{
  netbed_gw_interfaces -4 0 53
  cat <<EOF2
[files]
sockd_conf = ""
sockd_route = ""
users = ""
root_hints = "$NB_ROOT_HINTS"
trust_anchor = "$NB_DIR/resolver/root.key"          # the first KSK only
trust_anchor_state = "$state"

[sockd]
methods = ["none"]

[resolver]
dnssec = true
trust_anchor_hold_down = "6s"   # RFC 5011's 30 days, shortened for the test
query_documentation_addresses = true
builtin_local_zones = false
upstream_timeout = "800ms"
qname_minimisation = false
prefetch = false
cache_file = ""
EOF2
} >"$NB_DIR/resolver/gateway.toml"
chmod a+r "$NB_DIR/resolver/gateway.toml"
out=$(nb_gw "$RESOLVER" --check-config --config "$NB_DIR/resolver/gateway.toml" 2>&1) ||
  fail "--check-config refused the configuration: $out"
grep -q "kept current (RFC 5011) in $state" <<<"$out" || fail "--check-config: $out"

# wait_log PATTERN [SECONDS]: until an extended regex matches a line of the
# resolver's log (bounded).
wait_log() {
  local deadline=$((SECONDS + ${2:-30}))
  until grep -Eq -- "$1" "$log" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "no log line matching: $1"
    kill -0 "$resolver_pid" 2>/dev/null || fail "diode-resolver died"
    sleep 0.1
  done
}
# reload_root SERIAL: nsd reads the root again; until it serves SERIAL.
reload_root() {
  local deadline=$((SECONDS + 20)) got
  nsd-control -c "$NB_DIR/dns/root/nsd.conf" reload . >/dev/null ||
    fail "nsd-control reload failed"
  for (( ; ; )); do
    got=$(nb_net dig +norec +short +time=2 +tries=1 @198.51.100.54 . SOA 2>/dev/null |
      awk '{print $3}' || true)
    [ "$got" = "$1" ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "nsd serves root serial '$got', not $1"
    sleep 0.1
  done
}
# ad QNAME TYPE: "STATUS yes|no" from dig +dnssec from lan.
ad() {
  local out st a=no
  out=$(nb_lan dig +dnssec +time=8 +tries=1 "@$NB_GW_LAN_IP4" "$1" "$2" 2>&1 || true)
  st=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out" | head -1)
  grep -q '^;; flags:[a-z ]* ad[ ;]' <<<"$out" && a=yes
  echo "${st:-none} $a"
}
# key_state TAG: the state field of key TAG in the state file.
key_state() {
  sed -n "s/.* ; state=\([a-z]*\) tag=$1 .*/\1/p" "$state" | head -1
}

# A damaged state file: moved aside, one line, seeded from the anchor file.
printf 'not a state file\n' >"$state"
chown diode "$state"
netbed_start_bg gw diode-resolver "$RESOLVER" --config "$NB_DIR/resolver/gateway.toml"
resolver_pid=$NB_LAST_PID
netbed_wait_udp_dns lan "$NB_GW_LAN_IP4" 15 || fail "diode-resolver did not come up"
wait_log 'event=trust_anchor_load status=ignored .*kept_as='
[ "$(cat "$state.bad")" = "not a state file" ] || fail "the damaged file was not kept"
wait_log 'event=trust_anchor_refresh zone=\. status=ok'
[ "$(key_state "$tag1")" = valid ] || fail "KSK $tag1 is not valid in the seeded state"
[ "$(ad seeded.test TXT)" = "NOERROR yes" ] || fail "seeded.test not secure: $(ad seeded.test TXT)"
pass "a damaged state file is kept as .bad; seeded from files.trust_anchor, KSK $tag1 valid, AD"

# Phase 1: a second KSK published, the DNSKEY set signed by the first only.
sign_root 2 "$ksk2.key" "$ksk1" "$zsk"
reload_root 2
wait_log "event=trust_anchor zone=\. key=$tag2 state=addpend from=start"
[ "$(key_state "$tag2")" = addpend ] || fail "KSK $tag2 not addpend in the state file"
seen=$(sed -n "s/.* tag=$tag2 first-seen=\([0-9]*\) .*/\1/p" "$state")
[ -n "$seen" ] && [ "$seen" -ge "$now" ] || fail "KSK $tag2 has no first-seen time"
pass "KSK $tag2 seen: addpend since $seen"
wait_log "event=trust_anchor zone=\. key=$tag2 state=valid from=addpend" 40
[ "$(key_state "$tag2")" = valid ] || fail "KSK $tag2 not valid in the state file"
changed=$(sed -n "s/.* tag=$tag2 first-seen=[0-9]* changed=\([0-9]*\).*/\1/p" "$state")
[ "$((changed - seen))" -ge 6 ] || fail "KSK $tag2 valid after $((changed - seen)) s, before the hold-down"
pass "KSK $tag2 valid after the hold-down ($((changed - seen)) s)"

# Phase 2: the first KSK revoked (self-signed), the root signed by the new KSK.
ldns-revoke "$ksk1.key"
sign_root 3 "" "$ksk1" "$ksk2" "$zsk"
reload_root 3
wait_log "event=trust_anchor zone=\. key=[0-9]+ state=revoked from=valid" 30
grep -q ' IN DNSKEY 385 3 13 .* ; state=revoked ' "$state" || fail "no revoked key in the state file"
[ "$(key_state "$tag2")" = valid ] || fail "KSK $tag2 no longer valid"
[ "$(grep -c 'state=valid' "$state")" = 1 ] || fail "the revoked key is still valid"
[ "$(ad rolled.test TXT)" = "NOERROR yes" ] || fail "after the rollover: $(ad rolled.test TXT)"
pass "KSK $tag1 revoked; answers still secure with KSK $tag2 alone"

# A restart reads the state back: the anchor file's key is revoked, yet AD.
netbed_stop_bg diode-resolver
: >"$log"
netbed_start_bg gw diode-resolver "$RESOLVER" --config "$NB_DIR/resolver/gateway.toml"
resolver_pid=$NB_LAST_PID
netbed_wait_udp_dns lan "$NB_GW_LAN_IP4" 15 || fail "diode-resolver did not come back"
wait_log 'event=trust_anchor_load status=ok .*keys=2'
[ "$(ad restarted.test TXT)" = "NOERROR yes" ] || fail "after a restart: $(ad restarted.test TXT)"
pass "restarted from the state file: still secure"
echo "--- the state file at the end"
cat "$state"
echo "--- the resolver's trust anchor lines"
grep 'event=trust_anchor' "$NB_DIR"/diode-resolver.log || true
cd /
rm -rf "$work"
