#!/usr/bin/env bash
# package_build.sh BINARY_DIR OUT_DIR: the packages of the tests, made by
# cpack from the release build's own binaries (no second build): OUT/diode_*.deb,
# OUT/diode-dbgsym_*.ddeb and OUT/diode-*.rpm, and OUT/old/diode_*.deb (no
# dbgsym) and OUT/old/diode-*.rpm, the same build packaged as an older
# version for the upgrade tests.
set -euo pipefail
bin=${1:?usage: package_build.sh BINARY_DIR OUT_DIR}
out=${2:?usage: package_build.sh BINARY_DIR OUT_DIR}
command -v rpmbuild >/dev/null || { echo "rpmbuild is not installed (bash scripts/setup.sh)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/old"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$(dirname "$0")" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
start=$SECONDS
cpack --config "$bin/CPackConfig.cmake" -G "DEB;RPM" -B "$out" >"$out/cpack.log" 2>&1 ||
  { cat "$out/cpack.log"; exit 1; }
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$bin/CPackConfig.cmake")
DIODE_PACKAGE_VERSION="$version~pre1" DIODE_PACKAGE_DBGSYM=0 cpack --config "$bin/CPackConfig.cmake" -G "DEB;RPM" -B "$out/old" \
  >"$out/old/cpack.log" 2>&1 || { cat "$out/old/cpack.log"; exit 1; }
ls -l "$out"/*.deb "$out"/*.ddeb "$out"/*.rpm "$out"/old/*.deb "$out"/old/*.rpm
echo "packages built in $((SECONDS - start)) s"
