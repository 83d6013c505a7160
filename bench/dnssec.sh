#!/usr/bin/env bash
# The DNSSEC figures of the resolver (issue 14 §3; docs/performance.md,
# "Resolver: DNSSEC"): the signed tree of the dnssec.netbed test
# (tests/dnssec/make_zones.sh, secure.test with NAMES extra names), served by
# nsd in the test bed; Unbound (validator on, the test root's key as its only
# anchor), diode-resolver validating from the same anchor, and
# diode-resolver with resolver.dnssec = false, each in turn in gw on
# 192.0.2.1:53, one thread, pinned to CPU 0; dnsperf and dig in lan on CPU 1.
#
#   bash bench/dnssec.sh            # about 3 minutes; root (namespaces)
#   NAMES=2000 HIT_SECONDS=5 bash bench/dnssec.sh
#
# For each resolver:
#   warm     www.secure.test A once: the chain of trust (root, test.,
#            secure.test keys and DS) is fetched and proved, so that what
#            follows costs per name, not per zone.
#   miss     each of the NAMES names hN.secure.test A once (dnsperf, 50 at a
#            time): a cache miss each, an upstream query and (validating) one
#            signature check each. CPU = the resolver's on-CPU time (the sum of
#            /proc/PID/task/*/schedstat) over the answers.
#   hit      the same names for HIT_SECONDS at full speed (dnsperf -c 16 -q
#            200), without DO: cache hits. CPU per answer likewise.
#   keytrap  one question for www.keytrap.test A (41 keys sharing a tag, 40
#            false signatures): the resolver's CPU time for it, next to the
#            cost of the per-query signature budget (kSigChecksPerQuery = 60
#            checks in resolver/src/server.cpp) at this machine's Ed25519
#            verification speed (openssl speed).
#
# Environment: PERF_RECORD=1 records the miss phase with perf (DIR/run/R/miss.perf);
# NAMES (default 5000), HIT_SECONDS (10), RESOLVERS (default
# "unbound diode diode-novalidate"), BUILD_DIR, NO_BUILD, DIODE_RESOLVER and
# OUT (default build/bench-dnssec) as in bench/dns.sh.
#
# Only documentation addresses, inside namespaces this script makes; every
# process is started through netbed_start_bg and stopped by its PID (by the
# bed's trap at the latest); every wait and loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

n_names=${NAMES:-5000}
hit_s=${HIT_SECONDS:-10}
resolvers=${RESOLVERS:-unbound diode diode-novalidate}
build_dir=${BUILD_DIR:-build/release}
out=${OUT:-build/bench-dnssec}
listen=192.0.2.1
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ "${NO_BUILD:-0}" != 1 ] && [ -z "${DIODE_RESOLVER:-}" ]; then
  [ "$build_dir" = build/release ] && cmake --preset release >/dev/null
  cmake --build "$build_dir" --target diode-resolver >"$out/build.log" 2>&1 ||
    { echo "bench/dnssec.sh: diode-resolver did not build (see $out/build.log)" >&2; exit 1; }
fi
diode_bin=${DIODE_RESOLVER:-$root/$build_dir/resolver/diode-resolver}

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/dnssec.sh: must run as root (the test bed makes network namespaces)" >&2
  exit 1
fi
for c in dnsperf dig nsd unbound openssl taskset ss; do
  command -v "$c" >/dev/null || { echo "bench/dnssec.sh: $c is missing (scripts/setup.sh)" >&2; exit 1; }
done
if [ "$(nproc)" -ge 2 ]; then
  pin_res=(taskset -c 0); pin_load=(taskset -c 1)
else
  pin_res=(); pin_load=()
fi

# ------------------------------------------------------------------ the signed tree
rm -rf "$out/run" "$out/results.md"
mkdir -p "$out/run"
work=$out/run/zones
serve=$out/run/serve
mkdir -p "$work" "$serve"
SECURE_EXTRA_NAMES=$n_names "$root/tests/dnssec/make_zones.sh" "$work" >/dev/null 2>"$work/make.log" ||
  { cat "$work/make.log" >&2; exit 1; }
for f in "$work"/*.signed; do cp "$f" "$serve/$(basename "$f" .signed).zone"; done
cp "$work/root.key" "$serve/root.key"
cp "$root/tests/dnssec/servers.conf" "$serve/servers.conf"
for ((i = 0; i < n_names; i++)); do printf 'h%d.secure.test. A\n' "$i"; done >"$out/names.txt"

export NB_SERVERS_FILES=$serve/servers.conf
export NB_EXTRA_ZONE_DIRS=$serve
export NB_WATCHDOG_SECONDS=${NB_WATCHDOG_SECONDS:-900}
# The test bed (tests/netbed/netbed.sh), bench_netbed_up, bench_wait_resolver.
# shellcheck source=bench/lib_resolver.sh
source "$root/bench/lib_resolver.sh"
bench_netbed_up

# On-CPU nanoseconds of PID, all its threads.
cpu_ns() {
  local t s=0 v
  for t in /proc/"$1"/task/*/schedstat; do
    read -r v _ <"$t" || continue
    s=$((s + v))
  done
  echo "$s"
}
perf() {
  timeout 300 ip netns exec "$NB_LAN" "${pin_load[@]}" dnsperf -s "$listen" -T 1 "$@"
}
perf_field() {
  awk -v k="$1" 'index($0, k ":") { sub(".*" k ":[[:space:]]*", ""); print $1 + 0; exit }' "$2"
}
per_answer() {  # NS ANSWERS -> µs per answer
  awk -v d="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", d / n / 1000; else print "-" }'
}

res_pid=
res_name=
start_resolver() {
  local r=$1 dir=$out/run/$1
  mkdir -p "$dir"
  cp "$serve/root.key" "$dir/root.key"
  chmod -R a+rX "$dir"
  res_name=res-$r
  case "$r" in
    unbound)
      cat >"$dir/unbound.conf" <<EOF
server:
  num-threads: 1
  interface: $listen
  port: 53
  do-ip6: no
  so-reuseport: no
  access-control: 192.0.2.0/24 allow
  username: ""
  chroot: ""
  directory: "$dir"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  root-hints: "$NB_ROOT_HINTS"
  trust-anchor-file: "$dir/root.key"
  module-config: "validator iterator"
  ede: yes
  local-zone: "test." nodefault
  msg-cache-size: 64m
  rrset-cache-size: 128m
  prefetch: no
EOF
      unbound-checkconf "$dir/unbound.conf" >/dev/null
      netbed_start_bg gw "$res_name" "${pin_res[@]}" unbound -d -c "$dir/unbound.conf"
      ;;
    diode | diode-novalidate)
      local dnssec=true
      [ "$r" = diode-novalidate ] && dnssec=false
      {
        netbed_gw_interfaces -4 0 53
        cat <<EOF
[files]
sockd_conf = ""
sockd_route = ""
users = ""
root_hints = "$NB_ROOT_HINTS"
trust_anchor = "$dir/root.key"

[sockd]
methods = ["none"]

[resolver]
dnssec = $dnssec
threads = 1
cache_size = "64MiB"
query_documentation_addresses = true
builtin_local_zones = false
prefetch = false
cache_file = ""

[log]
level = "warning"
EOF
      } >"$dir/gateway.toml"
      chmod a+r "$dir/gateway.toml"
      "$diode_bin" --check-config --config "$dir/gateway.toml" >/dev/null
      netbed_start_bg gw "$res_name" "${pin_res[@]}" "$diode_bin" --config "$dir/gateway.toml"
      ;;
  esac
  res_pid=$NB_LAST_PID
  bench_wait_resolver bench/dnssec.sh "$r" "$res_name" "$res_pid" "$listen"
}
stop_resolver() {
  cp "$NB_DIR/$res_name.log" "$out/run/$res_name.log" 2>/dev/null || true
  netbed_stop_bg "$res_name"
}

declare -A R
ask() { nb_lan "${pin_load[@]}" dig +dnssec +time=10 +tries=1 "@$listen" "$@" 2>&1 || true; }

run_one() {
  local r=$1 dir=$out/run/$1 c0 c1 done_n w
  start_resolver "$r" || return 1
  w=$(ask www.secure.test A)
  grep -q 'status: NOERROR' <<<"$w" || { echo "bench/dnssec.sh: $r: www.secure.test: $w" >&2; return 1; }
  R[$r,warm_ad]=no
  grep -q '^;; flags:[a-z ]* ad[ ;]' <<<"$w" && R[$r,warm_ad]=yes
  # Misses: every name once (PERF_RECORD=1: with perf record on the resolver).
  local rec=
  if [ "${PERF_RECORD:-0}" = 1 ]; then
    command perf record -q -g -p "$res_pid" -o "$dir/miss.perf" >/dev/null 2>&1 &
    rec=$!
    sleep 1
  fi
  c0=$(cpu_ns "$res_pid")
  perf -d "$out/names.txt" -n 1 -q 50 -t 10 >"$dir/miss.txt" 2>&1 || true
  c1=$(cpu_ns "$res_pid")
  if [ -n "$rec" ]; then kill -INT "$rec"; wait "$rec" || true; fi
  done_n=$(perf_field "Queries completed" "$dir/miss.txt")
  R[$r,miss_n]=$done_n
  R[$r,miss_us]=$(per_answer $((c1 - c0)) "$done_n")
  R[$r,miss_codes]=$(sed -n 's/^ *Response codes: *//p' "$dir/miss.txt")
  # Hits: the same names at full speed.
  c0=$(cpu_ns "$res_pid")
  perf -d "$out/names.txt" -l "$hit_s" -c 16 -q 200 -t 2 >"$dir/hit.txt" 2>&1 || true
  c1=$(cpu_ns "$res_pid")
  done_n=$(perf_field "Queries completed" "$dir/hit.txt")
  R[$r,hit_n]=$done_n
  R[$r,hit_qps]=$(perf_field "Queries per second" "$dir/hit.txt")
  R[$r,hit_us]=$(per_answer $((c1 - c0)) "$done_n")
  R[$r,hit_codes]=$(sed -n 's/^ *Response codes: *//p' "$dir/hit.txt")
  # KeyTrap: one question.
  c0=$(cpu_ns "$res_pid")
  w=$(ask www.keytrap.test A)
  c1=$(cpu_ns "$res_pid")
  R[$r,keytrap_ms]=$(awk -v d=$((c1 - c0)) 'BEGIN { printf "%.2f", d / 1e6 }')
  R[$r,keytrap_status]=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$w" | head -1)
  R[$r,keytrap_ede]=$(sed -n 's/^; EDE: \([0-9]*\).*/\1/p' <<<"$w" | head -1)
  netbed_alive "$res_name" || { echo "bench/dnssec.sh: $r died" >&2; return 1; }
  stop_resolver
}

ran=()
for r in $resolvers; do
  echo "bench/dnssec.sh: $r" >&2
  if run_one "$r"; then ran+=("$r"); else echo "note: $r failed; left out" >&2; stop_resolver || true; fi
done

# One Ed25519 verification on this machine (the test tree's keytrap.test is
# Ed25519), to put the per-query budget of 60 checks in CPU time.
verify_per_s=$("${pin_res[@]}" openssl speed -seconds 2 ed25519 2>/dev/null |
  awk '/^ *253 bits EdDSA \(Ed25519\)/ {print $NF; exit}')
budget_ms=$(awk -v v="${verify_per_s:-0}" 'BEGIN { if (v > 0) printf "%.2f", 60 / v * 1000; else print "-" }')

label() {
  case "$1" in
    unbound) unbound -V 2>/dev/null | awk 'NR == 1 {print "Unbound " $2 " (validator on)"}' ;;
    diode) printf 'diode-resolver %s (dnssec = true)\n' "$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')" ;;
    diode-novalidate) printf 'diode-resolver %s (dnssec = false)\n' "$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')" ;;
  esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
{
  printf '# bench/dnssec.sh, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'machine: %s CPUs, %s; load average before the run: %s\n' "$(nproc)" \
    "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'settings: %s names in secure.test (Ed25519, NSEC), hits for %s s at full speed (dnsperf -c 16 -q 200, no DO)\n\n' "$n_names" "$hit_s"
  printf '| resolver | AD on www.secure.test | CPU µs per cache miss (answers; rcodes) | CPU µs per cache hit (answers/s; rcodes) | KeyTrap question: CPU ms (rcode, EDE) |\n|---|---|---|---|---|\n'
  for r in "${ran[@]}"; do
    printf '| %s | %s | %s (%s; %s) | %s (%s; %s) | %s (%s, %s) |\n' "$(label "$r")" "${R[$r,warm_ad]}" \
      "${R[$r,miss_us]}" "${R[$r,miss_n]}" "${R[$r,miss_codes]}" \
      "${R[$r,hit_us]}" "${R[$r,hit_qps]}" "${R[$r,hit_codes]}" \
      "${R[$r,keytrap_ms]}" "${R[$r,keytrap_status]:-none}" "${R[$r,keytrap_ede]:--}"
  done
  printf '\n'
  if [[ " ${ran[*]} " == *" diode "* ]]; then
    [[ " ${ran[*]} " == *" unbound "* ]] &&
      printf 'diode / Unbound, validating: CPU per miss %s, per hit %s\n' \
        "$(ratio "${R[diode,miss_us]}" "${R[unbound,miss_us]}")" "$(ratio "${R[diode,hit_us]}" "${R[unbound,hit_us]}")"
    [[ " ${ran[*]} " == *" diode-novalidate "* ]] &&
      printf 'diode, validation on / off: CPU per hit %s (the bar: at most 1.10), per miss %s\n' \
        "$(ratio "${R[diode,hit_us]}" "${R[diode-novalidate,hit_us]}")" \
        "$(ratio "${R[diode,miss_us]}" "${R[diode-novalidate,miss_us]}")"
    printf 'per-query signature budget: 60 checks x 1/%s s (openssl speed ed25519, verify) = %s ms\n' \
      "${verify_per_s:-?}" "$budget_ms"
  fi
} | tee "$out/results.md"
echo "bench/dnssec.sh: raw results and logs in $out" >&2
