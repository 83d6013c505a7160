#!/usr/bin/env bash
# diode-socksify against Dante's socksify (Debian's dante-client) and
# proxychains4, in the network test bed (docs/testbed.md) with gw's sockd as
# the only way out of lan: the same programs under each (works / fails /
# leaks DNS), and the overhead per connection, all in one run. The table
# goes to docs/socksify.md ("Comparison").
#
#   bash bench/socksify.sh                # root; about 3 minutes
#   CONNECTIONS=100 bash bench/socksify.sh
#
# Environment:
#   BUILD_DIR=DIR     where sockd and diode-socksify are built (default build/release)
#   CONNECTIONS=N     connections per tool and round for the overhead (default 300)
#   ROUNDS=N          rounds, tools interleaved; the median counts (default 5)
#   OUT=DIR           logs and results (default build/bench-socksify)
#
# "leaks DNS": a capture on lan's interface saw a query for the program's
# name while it ran (lan's resolver is a server in net that lan cannot
# reach, so a leaked query also costs the program its resolver timeout).
# Only the documentation ranges, inside the bed's own namespaces; every
# process is stopped by the bed on exit; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build_dir=${BUILD_DIR:-build/release}
build_dir=$(cd "$build_dir" && pwd)
connections=${CONNECTIONS:-300}
out=${OUT:-build/bench-socksify}
mkdir -p "$out"
out=$(cd "$out" && pwd)
SOCKD=$build_dir/sockd/sockd
SOCKSIFY=$build_dir/tools/socksify/diode-socksify
PY=/usr/bin/python3
for f in "$SOCKD" "$SOCKSIFY"; do
  [ -x "$f" ] || { echo "bench/socksify.sh: $f is not built (cmake --build --preset release)" >&2; exit 1; }
done
for c in socksify proxychains4 curl wget nc kdig tcpdump; do
  command -v "$c" >/dev/null || { echo "bench/socksify.sh: $c is missing (scripts/setup.sh)" >&2; exit 1; }
done

source "$root/tests/netbed/netbed.sh"
export NB_WATCHDOG_SECONDS=900
netbed_up
netbed_forwarding off
netbed_resolv_conf lan 198.51.100.53
printf 'nameserver 198.51.100.53\noptions timeout:1 attempts:1\n' >"/etc/netns/$NB_LAN/resolv.conf"

conf=$NB_DIR/sockd
mkdir -p "$conf"
{
  netbed_gw_interfaces 1080 0
  cat <<TOML
[files]
sockd_conf = "sockd.conf"
sockd_route = "sockd.route"
users = "users"

[sockd]
threads = 2
nameserver = "203.0.113.30"
TOML
} >"$conf/gateway.toml"
printf 'permit cmd=connect,bind,udp 192.0.2.0/24\n' >"$conf/sockd.conf"
: >"$conf/users"
printf '198.51.100.1 0.0.0.0 0.0.0.0\n2001:db8:2::1 ::/0\n' >"$conf/sockd.route"
netbed_start_bg gw sockd "$SOCKD" --config "$conf/gateway.toml"
netbed_wait_tcp lan 192.0.2.1 1080 10
netbed_start_bg net ftp "$PY" -u -m pyftpdlib -i "$NB_ECHO_IP4" -p 21 -d "$NB_WWW_DIR"
netbed_wait_tcp net "$NB_ECHO_IP4" 21 10

# Each tool told the same thing: everything through 192.0.2.1:1080, names
# to the relay, UDP too.
cat >"$NB_DIR/socks.conf" <<'CONF'
sockd cmd=connect,bind,udp @=192.0.2.1:1080 0.0.0.0/0
CONF
cat >"$NB_DIR/dante.conf" <<'CONF'
resolveprotocol: fake
route {
  from: 0.0.0.0/0 to: 0.0.0.0/0 via: 192.0.2.1 port = 1080
  proxyprotocol: socks_v5
  method: none
  command: connect bind udpassociate
}
CONF
printf 'strict_chain\nproxy_dns\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n[ProxyList]\nsocks5 192.0.2.1 1080\n' \
  >"$NB_DIR/proxychains.conf"

run_under() {  # run_under TOOL CMD...
  local tool=$1
  shift
  case "$tool" in
    diode-socksify) nb_lan env SOCKS_CONF="$NB_DIR/socks.conf" "$SOCKSIFY" "$@" ;;
    dante) nb_lan env SOCKS_CONF="$NB_DIR/dante.conf" socksify "$@" ;;
    proxychains4) nb_lan proxychains4 -q -f "$NB_DIR/proxychains.conf" "$@" ;;
  esac
}

page=$(cat "$NB_WWW_DIR/hello.txt")
# name | expected output | the name a leak would ask for (- for none) | command (run by sh -c)
programs=(
  "curl|$page|www.a.test|curl -sS --max-time 20 http://www.a.test/hello.txt"
  "wget|$page|www.a.test|wget -q -T 20 -t 1 -O - http://www.a.test/hello.txt"
  "Python urllib|$page|www.a.test|$PY -c 'import urllib.request; print(urllib.request.urlopen(\"http://www.a.test/hello.txt\", timeout=20).read().decode(), end=\"\")'"
  "nc|bench-nc|echo.a.test|printf 'bench-nc\\n' | nc -N -w 10 echo.a.test 7"
  "socat|bench-socat|echo.a.test|printf 'bench-socat\\n' | socat -t 5 - TCP:echo.a.test:7"
  "curl active FTP (BIND)|$page|-|curl -sS --max-time 20 -P - ftp://$NB_ECHO_IP4/hello.txt"
  "kdig over UDP|$NB_WEB_IP4|www.a.test|kdig +notcp +time=5 +retry=0 +short @203.0.113.30 www.a.test A"
  "dig over UDP|$NB_WEB_IP4|www.a.test|dig +time=5 +tries=1 +short @203.0.113.30 www.a.test A"
  "dig +tcp|$NB_WEB_IP4|www.a.test|dig +tcp +time=5 +tries=1 +short @203.0.113.30 www.a.test A"
)
tools=(diode-socksify dante proxychains4)

results=$out/results.txt
: >"$results"
for entry in "${programs[@]}"; do
  IFS='|' read -r label want name cmd <<<"$entry"
  for tool in "${tools[@]}"; do
    pcap=$NB_DIR/cap.pcap
    rm -f "$pcap"
    ip netns exec "$NB_LAN" tcpdump -n -U -i "$NB_IF_LAN" -w "$pcap" 'port 53' 2>"$NB_DIR/tcpdump.err" &
    tpid=$!
    printf '%s tcpdump host\n' "$tpid" >>"$NB_DIR/pids"
    for _ in $(seq 1 100); do grep -q 'listening on' "$NB_DIR/tcpdump.err" && break; sleep 0.1; done
    got=$(timeout 40 bash -c "$(declare -f run_under nb_lan); $(declare -p NB_LAN NB_DIR SOCKSIFY); run_under \"\$@\"" _ \
      "$tool" sh -c "$cmd" 2>>"$out/stderr.log" || true)
    kill -INT "$tpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    leak=no
    if [ "$name" != - ] && tcpdump -n -r "$pcap" 2>/dev/null | grep -q "${name//./\\.}"; then leak=yes; fi
    if [ "$got" = "$want" ]; then works=works; else works=fails; fi
    printf '%s|%s|%s|%s\n' "$label" "$tool" "$works" "$leak" | tee -a "$results"
  done
done

# Overhead per connection: one Python process opens CONNECTIONS connections
# in turn to net's echo server (by address: no lookup in the loop), sends a
# byte and reads it back; the time per connection under each tool.
cat >"$NB_DIR/conn.py" <<'PY'
import socket, sys, time
n = int(sys.argv[1])
t0 = time.perf_counter()
for _ in range(n):
    s = socket.create_connection(("198.51.100.7", 7), timeout=10)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    s.close()
print("%.3f" % ((time.perf_counter() - t0) * 1000.0 / n))
PY
# ROUNDS rounds, the tools interleaved in each, so that a busy moment of the
# machine hits them alike; the median round counts.
rounds=${ROUNDS:-5}
declare -A per_conn samples
for ((r = 1; r <= rounds; r++)); do
  for tool in "${tools[@]}"; do
    v=$(run_under "$tool" "$PY" "$NB_DIR/conn.py" "$connections" 2>>"$out/stderr.log" || echo nan)
    samples[$tool]="${samples[$tool]:-} $v"
    echo "overhead: round $r $tool $v ms per connection ($connections connections)"
  done
done
for tool in "${tools[@]}"; do
  # shellcheck disable=SC2086  # the samples, one word each
  per_conn[$tool]=$(printf '%s\n' ${samples[$tool]} | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
done

table=$out/table.md
{
  printf '| program | diode-socksify | Dante socksify | proxychains4 |\n|---|---|---|---|\n'
  for entry in "${programs[@]}"; do
    IFS='|' read -r label _ <<<"$entry"
    printf '| %s |' "$label"
    for tool in "${tools[@]}"; do
      IFS='|' read -r _ _ w l < <(awk -F'|' -v p="$label" -v t="$tool" '$1 == p && $2 == t' "$results" | head -1)
      cell=$w
      [ "$l" = yes ] && cell="$cell, leaks DNS"
      printf ' %s |' "$cell"
    done
    printf '\n'
  done
  printf '\n| per connection, ms (median of %s rounds of %s) | %s | %s | %s |\n|---|---|---|---|\n' "$rounds" "$connections" \
    "${per_conn[diode-socksify]}" "${per_conn[dante]}" "${per_conn[proxychains4]}"
  ratio=$(awk -v a="${per_conn[diode-socksify]}" -v b="${per_conn[proxychains4]}" \
    'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  printf '\ndiode-socksify / proxychains4 per connection: %sx (same run).\n' "$ratio"
} >"$table"
echo
cat "$table"
