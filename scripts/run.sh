#!/usr/bin/env bash
# Installs what is missing, builds, and runs Diode on its embedded default.
# Until the daemons exist, that means: lint the shipped configuration with
# sockd-check, then simulate a few requests against it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
check=build/release/tools/sockd-check/sockd-check

echo
echo "== sockd-check lint on the shipped configuration (conf/)"
"$check" lint --rules conf/sockd.conf --routes conf/sockd.route --users conf/users \
  --socks-conf conf/socks.conf --interfaces 192.0.2.1,2001:db8:1::1,198.51.100.1,2001:db8:2::1

echo
echo "== sockd-check simulate: may 192.0.2.10 reach 198.51.100.7:443?"
rc=0
"$check" simulate --rules conf/sockd.conf --routes conf/sockd.route \
  --from 192.0.2.10:50312 --to 198.51.100.7:443 --user alice --explain || rc=$?
# simulate exits 1 for permit and 0 for deny, as NEC's test_sockd_conf did.
[ "$rc" -le 1 ] || exit "$rc"

echo
echo "== sockd-check simulate: may 192.0.2.10 reach the gateway itself, 192.0.2.1:22?"
rc=0
"$check" simulate --rules conf/sockd.conf --routes conf/sockd.route \
  --from 192.0.2.10 --to 192.0.2.1:22 --nearest || rc=$?
[ "$rc" -le 1 ] || exit "$rc"

echo
echo "== sockd-check simulate --batch conf/simulate.flows (the sample regression flows)"
"$check" simulate --rules conf/sockd.conf --routes conf/sockd.route --batch conf/simulate.flows
