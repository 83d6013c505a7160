#!/usr/bin/env bash
# Installs what is missing, builds, and runs Diode on its embedded default:
# first sockd-check on the shipped configuration (lint, then sample
# simulations), then the appliance: diode-gateway in the foreground on the
# built-in configuration (SOCKS 127.0.0.1:1080, DNS 127.0.0.1:5353, loopback
# clients only), with a small demo internet in a network namespace of its own
# (scripts/demo.sh) so that curl and dig through Diode have something to
# reach. Ctrl-C stops it; DIODE_RUN_SECONDS=N stops it after N seconds.
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

echo
echo "== diode-gateway: the appliance on its built-in configuration, with a demo internet"
exec bash scripts/demo.sh build/release
