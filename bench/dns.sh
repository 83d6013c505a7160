#!/usr/bin/env bash
# The resolver benchmark: diode-resolver against Unbound and Knot Resolver
# (Debian's unbound and knot-resolver), each in turn in the test bed's gw
# namespace on 192.0.2.1:53, with the same fake root hints, one thread,
# pinned to the same core; the load generator (dnsperf, in lan) on the other.
# One script, one run, one table; results and the targets in
# docs/performance.md ("Resolver").
#
#   bash bench/dns.sh                # about 5 minutes; run as root (namespaces)
#   QUICK=1 bash bench/dns.sh        # a smoke run of about 2 minutes
#   bash bench/dns.sh --check        # only check the name list, zones and configurations
#
# For each resolver:
#   cold     COLD_RUNS times (5; QUICK: 1): started with an empty cache, asked
#            each name of bench/dns-names.txt once (kdig from lan); counts the
#            queries it sends upstream (tcpdump on gw's internet-side link,
#            from its start until 1 s after the last answer) and times each
#            name (kdig's query time). Unbound's count varies from run to
#            run, hence the median.
#   silent   restarted; one query for a name in silent.test., whose only
#            server never answers: how long until an answer (SERVFAIL), if any.
#   restart  started with an empty cache, asked the list once, stopped
#            (SIGTERM) and started again; then the list once more: the
#            upstream queries of that second pass (tcpdump, as above).
#            diode-resolver keeps its cache in resolver.cache_file across
#            the restart; Unbound runs plain (it keeps nothing unless
#            unbound-control dump_cache/load_cache is scripted around it),
#            and kresd gets a fresh cache directory (its LMDB cache would
#            otherwise persist).
#   hit      restarted; the cache-hit names (HIT_NAMES names of load.example.)
#            asked once to fill the cache, then dnsperf at full speed for
#            HIT_SECONDS: answered queries, and the resolver's CPU time
#            (utime+stime in /proc/PID/stat) per answered query.
#   latency  dnsperf at a fixed RATE queries/s for LAT_SECONDS: p50 and p99
#            of the per-query latencies dnsperf -v prints, and CPU per answer.
#
# Environment:
#   QUICK=1              short runs (5 s hit, 5 s latency, 1 cold run, 15 s silent wait)
#   RESOLVERS="..."      default "unbound kresd diode" (each skipped if absent)
#   BUILD_DIR=DIR        where diode-resolver is built (default build/release, the release preset)
#   NO_BUILD=1           do not configure or build; use BUILD_DIR's binary if it is there
#   DIODE_RESOLVER=FILE  the diode-resolver binary to use instead of BUILD_DIR's (implies nothing is built)
#   HIT_SECONDS, LAT_SECONDS, SILENT_WAIT, RATE, HIT_NAMES, COLD_RUNS   override durations and sizes
#   DNSPERF_CLIENTS, DNSPERF_OUTSTANDING   dnsperf -c and -q of the full-speed run (default 16, 200)
#   OUT=DIR              logs, captures and raw results (default build/bench-dns)
#
# Only documentation addresses, inside namespaces this script makes (the bed of
# tests/netbed/netbed.sh, plus the servers in bench/zones/servers.conf). Every
# process is started through netbed_start_bg and stopped by its PID, by the
# bed's trap at the latest; every wait and loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=${QUICK:-0}
if [ "$quick" = 1 ]; then
  hit_s=${HIT_SECONDS:-5}; lat_s=${LAT_SECONDS:-5}; silent_wait=${SILENT_WAIT:-15}
  cold_runs=${COLD_RUNS:-1}
else
  hit_s=${HIT_SECONDS:-20}; lat_s=${LAT_SECONDS:-15}; silent_wait=${SILENT_WAIT:-30}
  cold_runs=${COLD_RUNS:-5}
fi
rate=${RATE:-10000}
hit_names=${HIT_NAMES:-1000}
clients=${DNSPERF_CLIENTS:-16}
outstanding=${DNSPERF_OUTSTANDING:-200}
resolvers=${RESOLVERS:-unbound kresd diode}
build_dir=${BUILD_DIR:-build/release}
out=${OUT:-build/bench-dns}
listen=192.0.2.1

mkdir -p "$out"
out=$(cd "$out" && pwd)

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  *) echo "usage: bash bench/dns.sh [--check]" >&2; exit 2 ;;
esac

if [ "${NO_BUILD:-0}" != 1 ] && [ -z "${DIODE_RESOLVER:-}" ] && [ "$check_only" = 0 ] &&
   [[ " $resolvers " == *" diode "* ]]; then
  if [ "$build_dir" = build/release ]; then
    cmake --preset release >/dev/null
  fi
  cmake --build "$build_dir" --target diode-resolver >"$out/build.log" 2>&1 ||
    echo "note: diode-resolver did not build (see $out/build.log); it is left out" >&2
fi
diode_bin=${DIODE_RESOLVER:-$root/$build_dir/resolver/diode-resolver}

# The resolver gets CPU 0, dnsperf and dig CPU 1: the same core for every
# resolver, and the load generator never competes with it.
if [ "$(nproc)" -ge 2 ]; then
  pin_res=(taskset -c 0); pin_load=(taskset -c 1)
else
  pin_res=(); pin_load=()
fi
clk_tck=$(getconf CLK_TCK)

# ------------------------------------------------------------------ the zones
# The bed's zones plus bench/zones/: each bed zone Z with a bench/zones/Z.extra
# gets those lines appended (more delegations), and load.example. (the
# cache-hit names, under example. so that no resolver's special-use check
# for test. runs on the hot path) is generated here.
zones=$out/zones
rm -rf "$zones"
mkdir -p "$zones"
for extra in "$root"/bench/zones/*.zone.extra; do
  z=${extra##*/}
  z=${z%.extra}
  cat "$root/tests/netbed/zones/$z" "$extra" >"$zones/$z"
done
{
  printf '; load.example. (server ns-d1): the cache-hit names of bench/dns.sh, generated.\n'
  # shellcheck disable=SC2016  # zone file directives, not expansions
  printf '$TTL 86400\n$ORIGIN load.example.\n'
  printf '@ IN SOA ns1.d.test. hostmaster.d.test. 2026112701 1800 900 604800 86400\n'
  printf '@ IN NS ns1.d.test.\n'
  for ((i = 0; i < hit_names; i++)); do
    printf 'h%d IN A 198.51.100.%d\n' "$i" $((i % 200 + 20))
  done
} >"$zones/load.example.zone"
for ((i = 0; i < hit_names; i++)); do printf 'h%d.load.example. A\n' "$i"; done >"$out/hit-queries.txt"

# The fixed cold-cache list: name type rcode answer, comments dropped; a
# quoted answer (TXT) keeps its blanks as "_" until it is compared. Every
# bad line is reported, as file:line: error: message.
names_file=$root/bench/dns-names.txt
names=() ; types=() ; rcodes=() ; expects=()
bad=0
while read -r ln n t r e rest; do
  err=
  [[ $n == *. ]] || err="name '$n' must end with a dot"
  [[ $t =~ ^(A|AAAA|TXT|MX|NS|CNAME|SOA|PTR|SRV)$ ]] || err="unknown type '$t'"
  [[ $r =~ ^(NOERROR|NXDOMAIN|SERVFAIL|REFUSED)$ ]] || err="unknown rcode '$r'"
  [ -n "$e" ] && [ -z "$rest" ] || err="expected 4 columns: name type rcode answer"
  if [ -n "$err" ]; then
    echo "${names_file#"$root"/}:$ln: error: $err" >&2
    bad=1
    continue
  fi
  names+=("$n"); types+=("$t"); rcodes+=("$r"); expects+=("$e")
done < <(awk '{ sub(/[ \t]+#.*$/, ""); sub(/^#.*$/, "") }
              NF { if ($4 ~ /^"/) { v = $4; for (i = 5; i <= NF; i++) v = v "_" $i; $4 = v; NF = 4 }
                   print FNR, $0 }' "$names_file")
if [ "$bad" != 0 ] || [ ${#names[@]} -eq 0 ]; then
  echo "bench/dns.sh: bad or empty $names_file" >&2
  exit 1
fi

# --check: the name list, the zones and the resolvers' configurations as the
# run would use them (with a stand-in root hints file), without the bed, root
# or any network; for editing them.
if [ "$check_only" = 1 ]; then
  chk=$out/check
  rm -rf "$chk"; mkdir -p "$chk"
  printf '.  3600000  NS  a.root-servers.test.\na.root-servers.test.  3600000  A  198.51.100.53\n' \
    >"$chk/root.hints"
  subst=(-e "s|@LISTEN@|$listen|g" -e "s|@RUN_DIR@|$chk|g" -e "s|@ROOT_HINTS@|$chk/root.hints|g"
         -e "s|@GW_LAN_IF@|gwl|g" -e "s|@GW_NET_IF@|gwn|g" -e "s|@STATE_DIR@|$chk|g")
  while read -r _ _ _ _ zs; do
    IFS=, read -r -a zl <<<"$zs"
    for z in "${zl[@]}"; do
      f=$zones/${z%.}.zone
      [ -f "$f" ] || f=$root/bench/zones/${z%.}.zone
      nsd-checkzone "$z" "$f"
    done
  done < <(grep -v '^#' "$root/bench/zones/servers.conf")
  for f in "$zones"/*.zone; do
    z=${f##*/}; z=${z%.zone}.
    nsd-checkzone "$z" "$f"
  done
  sed "${subst[@]}" "$root/bench/conf/unbound.conf" >"$chk/unbound.conf"
  unbound-checkconf "$chk/unbound.conf"
  sed "${subst[@]}" "$root/bench/conf/diode-resolver.toml" >"$chk/diode-resolver.toml"
  if [ -x "$diode_bin" ]; then
    "$diode_bin" --check-config --config "$chk/diode-resolver.toml"
  else
    echo "note: no diode-resolver at $diode_bin: its configuration is not checked" >&2
  fi
  echo "bench/dns.sh --check: ${#names[@]} names, zones and configurations OK"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/dns.sh: must run as root (the test bed makes network namespaces)" >&2
  exit 1
fi
for c in dnsperf dig kdig tcpdump taskset ss; do
  command -v "$c" >/dev/null || { echo "bench/dns.sh: $c is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

# ------------------------------------------------------------------ the test bed
# Each run's files only: nothing of an earlier run is mistaken for this one's.
rm -rf "$out/run" "$out/results.md"
mkdir -p "$out/run"
export NB_EXTRA_ZONE_DIRS=$zones:$root/bench/zones
export NB_EXTRA_SERVERS=$root/bench/zones/servers.conf
export NB_WATCHDOG_SECONDS=${NB_WATCHDOG_SECONDS:-1500}
# The test bed (tests/netbed/netbed.sh), bench_netbed_up, bench_wait_resolver.
# shellcheck source=bench/lib_resolver.sh
source "$root/bench/lib_resolver.sh"
bench_netbed_up

# Monotonic-enough microseconds (bash 5).
now_us() { printf '%s\n' "${EPOCHREALTIME//[!0-9]/}"; }

# utime+stime of PID in clock ticks.
cpu_ticks() {
  local stat fields
  read -r stat <"/proc/$1/stat"
  read -r -a fields <<<"${stat##*) }"
  printf '%s\n' $((fields[11] + fields[12]))
}

# Prints the version line of resolver $1.
version_of() {
  case "$1" in
    unbound) unbound -V 2>/dev/null | awk 'NR == 1 {print "Unbound " $2}' ;;
    kresd) kresd --version 2>/dev/null | awk '{print "Knot Resolver " $NF}' ;;
    diode) printf 'diode-resolver (%s)\n' "$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')" ;;
  esac
}

available() {
  case "$1" in
    unbound) command -v unbound >/dev/null ;;
    kresd) command -v kresd >/dev/null ;;
    diode) [ -x "$diode_bin" ] ;;
    *) return 1 ;;
  esac
}

run_no=0
res_pid=
res_name=
# Starts resolver $1 in gw with a fresh cache and waits (at most 10 s) until
# it listens on $listen:53 over UDP, without sending it a query (a query
# would go upstream and spoil the cold count). Sets res_pid and res_name.
# $2: the directory for diode-resolver's cache file, kept across starts
# (default: a fresh one, i.e. a cold start).
start_resolver() {
  local r=$1 dir conf state
  run_no=$((run_no + 1))
  dir=$out/run/$r.$run_no
  rm -rf "$dir"
  mkdir -p "$dir"
  state=${2:-$dir/state}
  if [ ! -d "$state" ]; then
    mkdir -m 700 "$state"
    # diode-resolver drops to the user diode before it writes the file.
    chown diode:diode "$state" 2>/dev/null || chmod 777 "$state"
  fi
  res_name=res-$r-$run_no
  local subst=(-e "s|@LISTEN@|$listen|g" -e "s|@RUN_DIR@|$dir|g" -e "s|@ROOT_HINTS@|$NB_ROOT_HINTS|g"
               -e "s|@GW_LAN_IF@|$NB_IF_GW_LAN|g" -e "s|@GW_NET_IF@|$NB_IF_GW_NET|g"
               -e "s|@STATE_DIR@|$state|g")
  case "$r" in
    unbound)
      conf=$dir/unbound.conf
      sed "${subst[@]}" "$root/bench/conf/unbound.conf" >"$conf"
      unbound-checkconf "$conf" >"$dir/checkconf.log" 2>&1 ||
        { cat "$dir/checkconf.log" >&2; return 1; }
      netbed_start_bg gw "$res_name" "${pin_res[@]}" unbound -d -c "$conf"
      ;;
    kresd)
      conf=$dir/kresd.conf
      sed "${subst[@]}" "$root/bench/conf/kresd.conf" >"$conf"
      netbed_start_bg gw "$res_name" "${pin_res[@]}" kresd -n -q -c "$conf" "$dir"
      ;;
    diode)
      conf=$dir/diode-resolver.toml
      sed "${subst[@]}" "$root/bench/conf/diode-resolver.toml" >"$conf"
      "$diode_bin" --check-config --config "$conf" >"$dir/checkconf.log" 2>&1 ||
        { cat "$dir/checkconf.log" >&2; return 1; }
      netbed_start_bg gw "$res_name" "${pin_res[@]}" "$diode_bin" --config "$conf"
      ;;
  esac
  res_pid=$NB_LAST_PID
  bench_wait_resolver bench/dns.sh "$r" "$res_name" "$res_pid" "$listen"
}

# Fails, with the resolver's log, if it is no longer running (its figures
# would be meaningless).
alive_or_fail() {
  netbed_alive "$res_name" && return 0
  echo "bench/dns.sh: $1 died during the run; its log:" >&2
  cat "$NB_DIR/$res_name.log" >&2
  return 1
}

stop_resolver() {
  [ -n "$res_name" ] || return 0
  cp "$NB_DIR/$res_name.log" "$out/run/$res_name.log" 2>/dev/null || true
  netbed_stop_bg "$res_name"
  res_name=
  res_pid=
}

# dnsperf from lan against the resolver; extra arguments appended. Bounded by
# -l (or -n) and by timeout.
perf() {
  timeout 300 ip netns exec "$NB_LAN" "${pin_load[@]}" dnsperf -s "$listen" -T 1 "$@"
}

# Prints the value after "LABEL:" in a dnsperf report (first number).
perf_field() {
  awk -v k="$1" 'index($0, k ":") { sub(".*" k ":[[:space:]]*", ""); print $1 + 0; exit }' "$2"
}

# Starts tcpdump NAME on gw's internet-side link, writing DNS traffic (port
# 53, UDP and TCP) to FILE; waits until it captures (at most 10 s).
capture_start() {
  local i
  netbed_start_bg gw "$1" tcpdump -i "$NB_IF_GW_NET" -n -U -Z root -w "$2" port 53
  for ((i = 0; i < 100; i++)); do
    grep -q 'listening on' "$NB_DIR/$1.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/dns.sh: tcpdump did not start" >&2
  return 1
}

# Stops tcpdump NAME, writes the DNS queries gw sent in its capture FILE to
# QUERIES (one line each, tcpdump -tt text) and prints how many there are.
capture_stop() {
  netbed_stop_bg "$1"
  tcpdump -r "$2" -n -tt 2>/dev/null >"${2%.pcap}.txt" || true
  # A query: destination port 53 and a question ("TYPE? name."), over UDP
  # or TCP (tcpdump decodes both); answers go the other way.
  awk '$4 == ">" && $5 ~ /\.53:$/ && / [A-Z0-9]+\? /' "${2%.pcap}.txt" >"$3"
  wc -l <"$3"
}

# ------------------------------------------------------------------ the phases
declare -A R  # results: R[resolver,key]

# Cold-cache run K of resolver R: a fresh start, each name of the list once.
# Run 1's figures per name go into the per-name table; every run's totals
# are kept for the median.
phase_cold() {
  local r=$1 k=$2 dir i n t out_dig status ans qt starts=() ok=0 qts=() up tcp good want
  dir=$out/run/cold-$r-$k
  rm -rf "$dir"; mkdir -p "$dir"
  capture_start "cap-cold-$r-$k" "$dir/upstream.pcap" || return 1
  start_resolver "$r" || return 1
  : >"$dir/answers.txt"
  for ((i = 0; i < ${#names[@]}; i++)); do
    n=${names[i]}; t=${types[i]}
    starts+=("$(now_us)")
    # kdig, not dig: dig 9.18's "Query time" moves in steps of its event
    # loop's clock (4 ms here); kdig's "in X ms" has 0.1 ms. EDNS with
    # 1232 octets, as dig sends. The time is that of the UDP exchange, when
    # the resolver has resolved the name; a truncated answer (TC) is then
    # fetched again over TCP, from the cache, only to check its content.
    out_dig=$(nb_lan "${pin_load[@]}" kdig +retry=0 +timeout=10 +bufsize=1232 +ignore \
      "@$listen" "$n" "$t" 2>&1) || true
    status=$(sed -n 's/.*status: \([A-Z]*\);.*/\1/p' <<<"$out_dig" | tail -n1)
    qt=$(sed -n 's/^;; From .* in \([0-9.]*\) ms$/\1/p' <<<"$out_dig" | tail -n1)
    if grep -q '^;; Flags: .*\btc\b' <<<"$out_dig"; then
      out_dig+=$'\n'$(nb_lan "${pin_load[@]}" kdig +retry=0 +timeout=10 +tcp "@$listen" "$n" "$t" 2>&1) || true
    fi
    printf '=== %s %s\n%s\n' "$n" "$t" "$out_dig" >>"$dir/answers.txt"
    [ -n "$status" ] || status=none
    [ -n "$qt" ] || qt=-
    # The answer section, one record a line, for the expected value.
    ans=$(awk '/^;; ANSWER SECTION:/ {a = 1; next} /^$/ {a = 0} a' <<<"$out_dig")
    good=0
    want=${expects[i]//_/ }
    if [ "$status" = "${rcodes[i]}" ]; then
      if [ "$want" = - ]; then
        # NODATA/NXDOMAIN/SERVFAIL: nothing of the asked type.
        awk -v t="$t" '$4 == t {f = 1} END {exit f}' <<<"$ans" && good=1
      elif grep -qF -- "$want" <<<"$ans"; then
        good=1
      fi
    fi
    ok=$((ok + good))
    qts+=("$qt")
    if [ "$k" = 1 ]; then
      R[$r,cold_status_$i]=$status
      R[$r,cold_ms_$i]=$qt
      R[$r,cold_ok_$i]=$good
    fi
  done
  alive_or_fail "$r" || return 1
  # Work the resolver does right after answering (address fetches for name
  # servers, say) counts too: one more second of capture.
  sleep 1
  up=$(capture_stop "cap-cold-$r-$k" "$dir/upstream.pcap" "$dir/queries.txt")
  tcp=$(grep -c 'Flags \[' "$dir/queries.txt" || true)
  stop_resolver
  R[$r,cold_ok_list]+="$ok "
  R[$r,cold_up_list]+="$up "
  R[$r,cold_tcp_list]+="$tcp "
  R[$r,cold_sum_list]+="$(printf '%s\n' "${qts[@]}" | awk '$1 != "-" {s += $1} END {printf "%.1f", s}') "
  R[$r,cold_median_list]+="$(printf '%s\n' "${qts[@]}" | median) "
  [ "$k" = 1 ] || return 0
  # Per name: queries from its start to the next name's start (the first
  # window also holds what the resolver sent at start, e.g. priming).
  local bounds cnt
  bounds=$(printf '%s\n' "${starts[@]:1}")
  for ((i = 0; i < ${#names[@]}; i++)); do R[$r,cold_up_$i]=0; done
  while read -r i cnt; do R[$r,cold_up_$i]=$cnt; done < <(
    awk -v b="$bounds" 'BEGIN { n = split(b, s, "\n") }
      { ts = $1 * 1000000; i = 0; while (i < n && ts >= s[i + 1]) i++; c[i]++ }
      END { for (k in c) print k, c[k] }' "$dir/queries.txt")
}

# The median of the numbers on standard input ("-" lines skipped), or "-".
median() {
  awk '$1 != "-"' | sort -g | awk '{v[NR] = $1} END {
    if (!NR) { print "-"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print (m == int(m)) ? m : sprintf("%.1f", m) }'
}

# "median (min–max)" of a blank-separated list; just the value when all agree.
spread() {
  local -a v
  read -r -a v <<<"$1"
  local lo hi
  lo=$(printf '%s\n' "${v[@]}" | sort -g | head -n1)
  hi=$(printf '%s\n' "${v[@]}" | sort -g | tail -n1)
  if [ "$lo" = "$hi" ]; then printf '%s\n' "${lo:--}"; return; fi
  printf '%s (%s–%s)\n' "$(printf '%s\n' "${v[@]}" | median)" "$lo" "$hi"
}

# Asks each name of the list once (kdig from lan), appending the answers to
# FILE; prints how many were correct (the checks of phase_cold).
ask_list() {
  local i n t out_dig status ans want ok=0
  for ((i = 0; i < ${#names[@]}; i++)); do
    n=${names[i]}; t=${types[i]}
    out_dig=$(nb_lan "${pin_load[@]}" kdig +retry=0 +timeout=10 +bufsize=1232 +ignore \
      "@$listen" "$n" "$t" 2>&1) || true
    if grep -q '^;; Flags: .*\btc\b' <<<"$out_dig"; then
      out_dig+=$'\n'$(nb_lan "${pin_load[@]}" kdig +retry=0 +timeout=10 +tcp "@$listen" "$n" "$t" 2>&1) || true
    fi
    printf '=== %s %s\n%s\n' "$n" "$t" "$out_dig" >>"$1"
    status=$(sed -n 's/.*status: \([A-Z]*\);.*/\1/p' <<<"$out_dig" | tail -n1)
    ans=$(awk '/^;; ANSWER SECTION:/ {a = 1; next} /^$/ {a = 0} a' <<<"$out_dig")
    want=${expects[i]//_/ }
    if [ "$status" = "${rcodes[i]}" ]; then
      if [ "$want" = - ]; then
        awk -v t="$t" '$4 == t {f = 1} END {exit f}' <<<"$ans" && ok=$((ok + 1))
      elif grep -qF -- "$want" <<<"$ans"; then
        ok=$((ok + 1))
      fi
    fi
  done
  echo "$ok"
}

# The cold list, a restart (SIGTERM, then a new start on the same state
# directory), and the list again: upstream queries of the second pass.
phase_restart() {
  local r=$1 dir state ok
  dir=$out/run/restart-$r
  rm -rf "$dir"; mkdir -p "$dir"
  state=$dir/state
  start_resolver "$r" "$state" || return 1
  ask_list "$dir/first.txt" >/dev/null
  alive_or_fail "$r" || return 1
  stop_resolver   # SIGTERM: diode-resolver writes its cache file
  capture_start "cap-restart-$r" "$dir/upstream.pcap" || return 1
  start_resolver "$r" "$state" || return 1
  ok=$(ask_list "$dir/answers.txt")
  alive_or_fail "$r" || return 1
  sleep 1   # as in phase_cold: what it sends right after answering counts
  R[$r,restart_up]=$(capture_stop "cap-restart-$r" "$dir/upstream.pcap" "$dir/queries.txt")
  R[$r,restart_ok]=$ok
  stop_resolver
}

# All servers of silent.test. never answer: how long a fresh resolver takes
# to say so (SERVFAIL), if it does within SILENT_WAIT.
phase_silent() {
  local r=$1 out_dig status t0 t1
  start_resolver "$r" || return 1
  t0=$(now_us)
  out_dig=$(nb_lan dig +tries=1 "+time=$silent_wait" +nocookie "@$listen" www.silent.test. A 2>&1) || true
  t1=$(now_us)
  printf '%s\n' "$out_dig" >"$out/run/silent-$r.txt"
  alive_or_fail "$r" || return 1
  stop_resolver
  status=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out_dig" | head -n1)
  if [ -n "$status" ]; then
    R[$r,silent]="$status in $(awk -v us=$((t1 - t0)) 'BEGIN {printf "%.1f", us / 1e6}') s"
  else
    R[$r,silent]="no answer in ${silent_wait} s"
  fi
}

phase_hit() {
  local r=$1 dir c0 c1 completed i
  dir=$out/run/hit-$r
  rm -rf "$dir"; mkdir -p "$dir"
  start_resolver "$r" || return 1
  # Fill the cache: every name once, twice if some were lost the first time.
  for i in 1 2; do
    perf -d "$out/hit-queries.txt" -n 1 -q 50 -t 5 >"$dir/warm$i.txt" 2>&1 || true
    completed=$(perf_field "Queries completed" "$dir/warm$i.txt")
    [ "${completed:-0}" -ge "$hit_names" ] && break
  done
  # From here on every answer must come from the cache: the capture proves it.
  capture_start "cap-hit-$r" "$dir/upstream.pcap" || return 1
  # Full speed.
  c0=$(cpu_ticks "$res_pid")
  perf -d "$out/hit-queries.txt" -l "$hit_s" -c "$clients" -q "$outstanding" -t 2 \
    >"$dir/max.txt" 2>&1 || true
  alive_or_fail "$r" || return 1
  c1=$(cpu_ticks "$res_pid")
  completed=$(perf_field "Queries completed" "$dir/max.txt")
  R[$r,max_qps]=$(perf_field "Queries per second" "$dir/max.txt")
  R[$r,max_lost]=$(perf_field "Queries lost" "$dir/max.txt")
  R[$r,max_completed]=$completed
  # Fast errors are no cache hits: the rcodes go into the table.
  R[$r,max_rcodes]=$(sed -n 's/^ *Response codes: *//p' "$dir/max.txt")
  R[$r,max_cpu_us]=$(awk -v d=$((c1 - c0)) -v hz="$clk_tck" -v n="$completed" \
    'BEGIN { if (n > 0) printf "%.2f", d / hz * 1e6 / n; else print "-" }')
  R[$r,max_cpu_s]=$(awk -v d=$((c1 - c0)) -v hz="$clk_tck" 'BEGIN { printf "%.2f", d / hz }')
  # Fixed rate, every query's latency.
  c0=$(cpu_ticks "$res_pid")
  perf -d "$out/hit-queries.txt" -l "$lat_s" -Q "$rate" -c "$clients" -q "$outstanding" -t 2 -v \
    >"$dir/rate.txt" 2>&1 || true
  alive_or_fail "$r" || return 1
  c1=$(cpu_ticks "$res_pid")
  completed=$(perf_field "Queries completed" "$dir/rate.txt")
  R[$r,rate_qps]=$(perf_field "Queries per second" "$dir/rate.txt")
  R[$r,rate_lost]=$(perf_field "Queries lost" "$dir/rate.txt")
  R[$r,rate_cpu_us]=$(awk -v d=$((c1 - c0)) -v hz="$clk_tck" -v n="$completed" \
    'BEGIN { if (n > 0) printf "%.2f", d / hz * 1e6 / n; else print "-" }')
  R[$r,rate_rcodes]=$(sed -n 's/^ *Response codes: *//p' "$dir/rate.txt")
  R[$r,hit_up]=$(capture_stop "cap-hit-$r" "$dir/upstream.pcap" "$dir/queries.txt")
  # dnsperf -v prints "> RCODE name type latency-in-seconds" per answer.
  awk '$1 == ">" {print $NF * 1e6}' "$dir/rate.txt" | sort -n >"$dir/latencies.txt"
  read -r "R[$r,p50]" "R[$r,p99]" < <(awk '{v[NR] = $1} END {
      if (NR == 0) { print "- -"; exit }
      i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
      i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
      printf "%.0f %.0f\n", v[i50], v[i99] }' "$dir/latencies.txt")
  stop_resolver
}

# ------------------------------------------------------------------ the run
ran=()
for r in $resolvers; do
  if ! available "$r"; then
    echo "note: $r is not available here; it is left out" >&2
    continue
  fi
  echo "bench/dns.sh: $r" >&2
  R[$r,version]=$(version_of "$r")
  ok=1
  for ((k = 1; k <= cold_runs; k++)); do phase_cold "$r" "$k" || { ok=0; break; }; done
  if [ "$ok" = 1 ] && phase_restart "$r" && phase_silent "$r" && phase_hit "$r"; then
    ran+=("$r")
  else
    echo "note: $r failed (logs in $out/run); it is left out of the table" >&2
    stop_resolver || true
  fi
done

# ------------------------------------------------------------------ the table
ratio() { # $1 / $2, or "-"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
{
  printf '# bench/dns.sh, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'machine: %s CPUs, %s; load average before the run: %s\n' "$(nproc)" \
    "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'settings: QUICK=%s, hit %s s at full speed (dnsperf -c %s -q %s), %s s at %s q/s, %s cache-hit names, %s cold run(s), silent wait %s s\n\n' \
    "$quick" "$hit_s" "$clients" "$outstanding" "$lat_s" "$rate" "$hit_names" "$cold_runs" "$silent_wait"
  printf '## Cache hits (dnsperf from lan; CPU = utime+stime of the resolver process)\n\n'
  printf '| resolver | CPU µs per answer, full speed | answers/s, full speed (lost) | CPU µs per answer at %s q/s | p50 latency | p99 latency | response codes (full speed) | upstream queries meanwhile |\n' "$rate"
  printf '|---|---|---|---|---|---|---|---|\n'
  for r in "${ran[@]}"; do
    printf '| %s | %s | %s (%s) | %s | %s µs | %s µs | %s | %s |\n' \
      "${R[$r,version]}" "${R[$r,max_cpu_us]}" "${R[$r,max_qps]}" "${R[$r,max_lost]}" \
      "${R[$r,rate_cpu_us]}" "${R[$r,p50]}" "${R[$r,p99]}" "${R[$r,max_rcodes]}" "${R[$r,hit_up]}"
  done
  printf '\n## Cold cache (%s names, %s run(s) each from a fresh start: median (min–max)), and a silent zone\n\n' \
    "${#names[@]}" "$cold_runs"
  printf '| resolver | upstream queries | of which over TCP | time per name, sum | time per name, median | correct answers | all servers of a zone silent |\n'
  printf '|---|---|---|---|---|---|---|\n'
  for r in "${ran[@]}"; do
    printf '| %s | %s | %s | %s ms | %s ms | %s of %s | %s |\n' "${R[$r,version]}" \
      "$(spread "${R[$r,cold_up_list]}")" "$(spread "${R[$r,cold_tcp_list]}")" \
      "$(spread "${R[$r,cold_sum_list]}")" "$(spread "${R[$r,cold_median_list]}")" \
      "$(spread "${R[$r,cold_ok_list]}")" "${#names[@]}" "${R[$r,silent]}"
  done
  printf '\n## Right after a restart (the list asked once, the resolver stopped with SIGTERM and started again, the list asked again)\n\n'
  printf '| resolver | upstream queries, second pass | correct answers | kept across the restart |\n|---|---|---|---|\n'
  for r in "${ran[@]}"; do
    case "$r" in
      diode) kept="its cache (resolver.cache_file)" ;;
      kresd) kept="nothing (a fresh cache directory at each start; in the same one its LMDB cache would persist)" ;;
      *) kept="nothing (run plain, no dump_cache/load_cache)" ;;
    esac
    printf '| %s | %s | %s of %s | %s |\n' "${R[$r,version]}" "${R[$r,restart_up]}" \
      "${R[$r,restart_ok]}" "${#names[@]}" "$kept"
  done
  if [[ " ${ran[*]} " == *" unbound "* ]]; then
    printf '\n## Against Unbound (targets: CPU per cache hit <= 0.80, cold-list upstream queries <= 0.70)\n\n'
    printf '| resolver | CPU per answer, full speed | CPU per answer at %s q/s | cold-list upstream queries | upstream queries right after a restart |\n|---|---|---|---|---|\n' "$rate"
    for r in "${ran[@]}"; do
      printf '| %s | %s | %s | %s | %s |\n' "${R[$r,version]}" \
        "$(ratio "${R[$r,max_cpu_us]}" "${R[unbound,max_cpu_us]}")" \
        "$(ratio "${R[$r,rate_cpu_us]}" "${R[unbound,rate_cpu_us]}")" \
        "$(ratio "$(spread "${R[$r,cold_up_list]}" | cut -d' ' -f1)" \
                 "$(spread "${R[unbound,cold_up_list]}" | cut -d' ' -f1)")" \
        "$(ratio "${R[$r,restart_up]}" "${R[unbound,restart_up]}")"
    done
  fi
  printf '\n## Cold list, per name (run 1): rcode, query time, upstream queries sent while it was the current name ("!" marks a wrong answer)\n\n'
  printf '| name | type |'
  for r in "${ran[@]}"; do printf ' %s |' "$r"; done
  printf '\n|---|---|'
  for r in "${ran[@]}"; do printf -- '---|'; done
  printf '\n'
  for ((i = 0; i < ${#names[@]}; i++)); do
    printf '| %s | %s |' "${names[i]}" "${types[i]}"
    for r in "${ran[@]}"; do
      local_mark=
      [ "${R[$r,cold_ok_$i]}" = 1 ] || local_mark='!'
      printf ' %s%s %s ms, %s |' "$local_mark" "${R[$r,cold_status_$i]}" "${R[$r,cold_ms_$i]}" "${R[$r,cold_up_$i]}"
    done
    printf '\n'
  done
} | tee "$out/results.md"
echo "bench/dns.sh: raw results, logs and captures in $out" >&2
