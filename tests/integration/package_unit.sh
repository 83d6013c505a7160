#!/usr/bin/env bash
# package_unit.sh BINARY_DIR: packaging/systemd/diode.service as systemd
# would judge it, without systemd running (it is not PID 1 in CI):
#   - systemd-analyze verify, against a root made of the build's install
#     (DESTDIR) and this machine's systemd units: no finding;
#   - systemd-analyze security --offline=true: exposure at most 2.0.
# (The installed unit, man pages included, is verified again by the
# package.install test.)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:?usage: package_unit.sh BINARY_DIR}
unit=$src/packaging/systemd/diode.service
fail=0

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
DESTDIR=$root cmake --install "$bin" --prefix /usr >/dev/null
mkdir -p "$root/usr/lib" "$root/usr/bin" "$root/etc"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
cp /usr/bin/kill "$root/usr/bin/kill"
cmp -s "$unit" "$root/usr/lib/systemd/system/diode.service" ||
  { echo "FAIL - the installed unit is not packaging/systemd/diode.service"; fail=1; }

out=$(systemd-analyze verify --root="$root" --man=no diode.service 2>&1) && rc=0 || rc=$?
if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
  echo "ok   - systemd-analyze verify: clean"
else
  printf '%s\n' "$out"
  echo "FAIL - systemd-analyze verify: exit $rc"
  fail=1
fi

report=$(systemd-analyze security --offline=true "$unit" 2>&1) && rc=0 || rc=$?
exposure=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for diode.service: \([0-9.]*\).*/\1/p')
printf '%s\n' "$report" | grep -E '✗' || true
if [ -z "$exposure" ]; then
  printf '%s\n' "$report"
  echo "FAIL - systemd-analyze security gave no exposure level (exit $rc)"
  fail=1
elif awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
  echo "ok   - systemd-analyze security --offline=true: exposure $exposure (at most 2.0)"
else
  echo "FAIL - systemd-analyze security --offline=true: exposure $exposure, above 2.0"
  fail=1
fi
# The same bound as systemd itself applies it (--threshold counts tenths).
systemd-analyze security --offline=true --threshold=20 "$unit" >/dev/null 2>&1 ||
  { echo "FAIL - systemd-analyze security --threshold=20"; fail=1; }
exit "$fail"
