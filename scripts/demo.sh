#!/usr/bin/env bash
# A small demo "internet" for trying Diode on one machine (docs/gateway.md,
# "Trying it"): a network namespace of its own, joined to this host by a veth
# pair (host 203.0.113.1/24, demo 203.0.113.2/24, documentation addresses
# only), running nsd as the root of a tiny DNS tree (www.diode.example and
# ns.diode.example are 203.0.113.2) and a web server on 203.0.113.2:80. Then
# diode-gateway runs in the foreground on the built-in configuration, with
# only the root hints pointed at the demo root.
#
#   bash scripts/demo.sh BUILD_DIR            run until Ctrl-C
#   DIODE_RUN_SECONDS=N ...                   stop after N seconds
#   DIODE_DEMO_CHECK=1 ...                    once ready, curl and dig through
#                                             Diode, print the results, stop;
#                                             exit 0 only if both worked
# Run as root. Everything it makes is removed on exit, by PID and by name.
set -euo pipefail
build=${1:?usage: demo.sh BUILD_DIR}
build=$(cd "$build" && pwd)
tag=dd$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
ns=$tag-demo
host_if=$tag-h
demo_if=$tag-d
dir=$(mktemp -d "${TMPDIR:-/tmp}/diode-demo.XXXXXX")
chmod 755 "$dir"
pids=()

cleanup() {
  local p
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  ip link del "$host_if" 2>/dev/null || true
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf -- "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$ns"
ip -n "$ns" link set lo up
ip link add "$host_if" type veth peer name "$demo_if" netns "$ns"
ip addr add 203.0.113.1/24 dev "$host_if"
ip link set "$host_if" up
ip -n "$ns" addr add 203.0.113.2/24 dev "$demo_if"
ip -n "$ns" link set "$demo_if" up

mkdir -p "$dir/www" "$dir/nsd/xfr"
cat >"$dir/www/index.html" <<'HTML'
<!doctype html>
<title>Diode demo</title>
<p>Hello from the demo internet, reached through Diode.</p>
HTML
cat >"$dir/nsd/root.zone" <<'ZONE'
$TTL 3600
.              IN SOA ns.diode.example. hostmaster.diode.example. ( 1 1800 900 604800 300 )
.              IN NS  ns.diode.example.
ns.diode.example.  IN A   203.0.113.2
www.diode.example. IN A   203.0.113.2
ZONE
cat >"$dir/nsd/nsd.conf" <<CONF
server:
  ip-address: 203.0.113.2
  port: 53
  server-count: 1
  username: ""
  chroot: ""
  database: ""
  zonesdir: "$dir/nsd"
  pidfile: "$dir/nsd/nsd.pid"
  zonelistfile: "$dir/nsd/zone.list"
  xfrdfile: "$dir/nsd/xfrd.state"
  xfrdir: "$dir/nsd/xfr"
  logfile: "$dir/nsd.log"
remote-control:
  control-enable: no
zone:
  name: "."
  zonefile: "$dir/nsd/root.zone"
CONF
cat >"$dir/root.hints" <<'HINTS'
.                        3600000  NS  ns.diode.example.
ns.diode.example.            3600000  A   203.0.113.2
HINTS
ip netns exec "$ns" nsd -d -c "$dir/nsd/nsd.conf" >"$dir/nsd.out" 2>&1 &
pids+=($!)
ip netns exec "$ns" python3 -m http.server 80 --bind 203.0.113.2 --directory "$dir/www" \
  >"$dir/web.log" 2>&1 &
pids+=($!)

# The built-in configuration, with the demo root instead of the real one.
cat >"$dir/gateway.toml" <<TOML
# The built-in configuration (docs/configuration.md, "The built-in
# configuration"), with the demo's root hints.
[gateway]
user = "diode"
group = "diode"
runtime_dir = "$dir/run"

[[interface]]
name = "lo"
role = "internal"
addresses = ["127.0.0.1/8"]
socks_port = 1080
dns_port = 5353

[files]
sockd_conf = ""
sockd_route = ""
users = ""
root_hints = "$dir/root.hints"

[sockd]
methods = ["none"]

[resolver]
dnssec = false   # the root here is a made-up, unsigned one: nothing to validate
query_documentation_addresses = true   # the demo lives in 203.0.113.0/24
TOML
chmod 644 "$dir/gateway.toml" "$dir/root.hints"

# Wait for the demo's servers (events, not sleeps: a port that answers).
for _ in $(seq 1 100); do
  dig +short +time=1 +tries=1 @203.0.113.2 www.diode.example A 2>/dev/null | grep -q 203.0.113.2 &&
    timeout 1 bash -c 'exec 3<>/dev/tcp/203.0.113.2/80' 2>/dev/null && break
  sleep 0.1
done

cat <<TEXT

== diode-gateway on the built-in configuration (SOCKS 127.0.0.1:1080, DNS 127.0.0.1:5353),
   with a demo internet in network namespace $ns (203.0.113.2). Try:
     curl --socks5-hostname 127.0.0.1:1080 http://www.diode.example/
     dig @127.0.0.1 -p 5353 www.diode.example
     $build/gateway/diodectl --socket $dir/run/control status
   Ctrl-C stops everything.

TEXT
"$build/gateway/diode-gateway" --config "$dir/gateway.toml" > >(tee "$dir/gateway.log") 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
for _ in $(seq 1 200); do
  grep -q 'event=ready ' "$dir/gateway.log" 2>/dev/null && break
  sleep 0.05
done

if [ "${DIODE_DEMO_CHECK:-0}" = 1 ]; then
  status=0
  page=$(curl -sS --max-time 10 --socks5-hostname 127.0.0.1:1080 http://www.diode.example/ || true)
  if grep -q 'Hello from the demo internet' <<<"$page"; then
    echo "demo: curl through Diode returned the page"
  else
    echo "demo: FAIL: curl through Diode returned: $page"; status=1
  fi
  addr=$(dig +short +time=3 +tries=1 @127.0.0.1 -p 5353 www.diode.example A || true)
  if [ "$addr" = 203.0.113.2 ]; then
    echo "demo: dig through Diode's resolver answered 203.0.113.2"
  else
    echo "demo: FAIL: dig through Diode answered '$addr'"; status=1
  fi
  "$build/gateway/diodectl" --socket "$dir/run/control" status || status=1
  exit "$status"
fi
if [ -n "${DIODE_RUN_SECONDS:-}" ]; then
  sleep "$DIODE_RUN_SECONDS"
  kill -0 "$gw_pid" 2>/dev/null || { echo "demo: diode-gateway exited early" >&2; exit 1; }
  exit 0
fi
wait "$gw_pid"
