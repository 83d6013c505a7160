#!/bin/bash
# diode-resolver attacked on loopback: `resolver_abuse.sh CHECK` runs the
# resolver and a scripted authority (resolver_abuse_auth.py, the root zone
# at 192.0.2.53) in a private network namespace of their own (only its
# loopback: no traffic leaves the namespace), then resolver_abuse.py CHECK.
# Needs root (the namespace); CI runs as root, so it never skips.
set -euo pipefail
: "${DIODE_SOURCE_DIR:?}" "${DIODE_BINARY_DIR:?}"
check=${1:?usage: resolver_abuse.sh CHECK}
if [ "${DIODE_ABUSE_NETNS:-}" != 1 ]; then
  exec env DIODE_ABUSE_NETNS=1 unshare --net -- bash "$0" "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
ip link set lo up
ip addr add 192.0.2.53/32 dev lo
dir=$(mktemp -d)
chmod 755 "$dir"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
printf '. 3600000 NS a.root-servers.test.\na.root-servers.test. 3600000 A 192.0.2.53\n' \
  >"$dir/root.hints"
cat >"$dir/gateway.toml" <<TOML
[[interface]]
name = "lo"
role = "internal"
addresses = ["127.0.0.1/8"]
socks_port = 0
dns_port = 53

[files]
sockd_conf = ""
sockd_route = ""
users = ""
root_hints = "root.hints"

[sockd]
methods = ["none"]

[resolver]
dnssec = false   # the root here is a made-up, unsigned one: nothing to validate
allow = ["127.0.0.1/32", "127.0.0.2/32"]   # not 127.0.0.3
query_documentation_addresses = true
builtin_local_zones = false
cache_file = ""   # no file shared with other runs
upstream_timeout = "1500ms"
tcp_idle_timeout = "5s"
TOML
python3 "$here/resolver_abuse_auth.py" 192.0.2.53 >"$dir/auth.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready' "$dir/auth.log" && break; sleep 0.1; done
grep -q '^ready' "$dir/auth.log" || { echo "FAIL: the authority did not start"; cat "$dir/auth.log"; exit 1; }
# Under ASan, freed memory waits in a quarantine (256 MiB by default) before
# reuse, which the memory check would read as growth: keep it small there.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4" \
"$DIODE_BINARY_DIR/resolver/diode-resolver" --config "$dir/gateway.toml" --control "$dir/ctl" \
  2>"$dir/log" &
pids+=($!)
rpid=$!
for _ in $(seq 100); do [ -S "$dir/ctl" ] && break; sleep 0.1; done
[ -S "$dir/ctl" ] || { echo "FAIL: the resolver did not start"; cat "$dir/log"; exit 1; }
status=0
python3 "$here/resolver_abuse.py" "$check" "$rpid" "$dir" || status=$?
if [ $status -ne 0 ]; then
  echo "--- resolver log (tail)"; tail -20 "$dir/log"
  echo "--- authority log (tail)"; tail -20 "$dir/auth.log"
fi
exit $status
