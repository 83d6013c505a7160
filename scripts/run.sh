#!/usr/bin/env bash
# Installs what is missing, builds, and runs Diode on its embedded default:
# first sockd-check on the shipped configuration (lint, then sample
# simulations), then the relay (sockd, 127.0.0.1:1080) and the resolver
# (diode-resolver, 127.0.0.1:5353) in the foreground until Ctrl-C, loopback
# clients only. (The supervisor that will run them as one appliance does not
# exist yet.) DIODE_RUN_SECONDS=N stops them after N seconds.
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
echo "== starting diode-resolver (127.0.0.1:5353) and sockd (127.0.0.1:1080) on the embedded default"
echo "   try:  dig @127.0.0.1 -p 5353 localhost A"
echo "         curl --socks5-hostname 127.0.0.1:1080 http://HOST/   (any host outside this machine: the"
echo "         built-in policy keeps loopback and the gateway's own addresses out of reach)"
echo "   Ctrl-C stops both."
pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM
build/release/resolver/diode-resolver &
pids+=($!)
build/release/sockd/sockd &
pids+=($!)
if [ -n "${DIODE_RUN_SECONDS:-}" ]; then
  sleep "$DIODE_RUN_SECONDS"
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "run: a daemon exited early" >&2; exit 1; }
  done
  exit 0
fi
wait -n "${pids[@]}"
