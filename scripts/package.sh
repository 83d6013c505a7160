#!/usr/bin/env bash
# Builds Diode's packages for release: a release build with Debian's
# hardening flags (dpkg-buildflags) in build/package, then cpack's .deb (and
# its -dbgsym .ddeb) and .rpm in build/package/packages, then lintian and
# rpmlint on them
# (docs/packaging.md). Run as root on Debian 12 (it installs what it needs).
#
#   DIODE_PACKAGE_JOBS=N   parallel compile jobs (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
jobs=${DIODE_PACKAGE_JOBS:-$(nproc)}
build=build/package

# Debian's flags: PIE, -z relro -z now, _FORTIFY_SOURCE=2, stack protector,
# -ffile-prefix-map (reproducible paths). CMake reads CXXFLAGS and LDFLAGS
# from the environment at the first configure; CPPFLAGS it does not read.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
eval "$(dpkg-buildflags --export=sh)"
export CXXFLAGS="$CPPFLAGS $CXXFLAGS"
# Reproducible: the packages' timestamps are the last commit's.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

if [ -f "$build/CMakeCache.txt" ] && ! grep -q "^CMAKE_CXX_FLAGS:STRING=$CXXFLAGS\$" "$build/CMakeCache.txt"; then
  echo "== $build was configured with other flags: starting it anew"
  rm -rf "$build"
fi
echo "== configure $build (CXXFLAGS=$CXXFLAGS)"
cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_INSTALL_PREFIX=/usr -DDIODE_TESTS=OFF -DDIODE_BENCH=OFF -DDIODE_WERROR=OFF >/dev/null
echo "== build"
cmake --build "$build" -j "$jobs"

echo "== cpack"
rm -rf "$build/packages"
(cd "$build" && cpack -G "DEB;RPM")
deb=$(ls "$build"/packages/diode_*_amd64.deb)
ddeb=$(ls "$build"/packages/diode-dbgsym_*_amd64.ddeb)
rpm=$(ls "$build"/packages/diode-*.x86_64.rpm)

status=0
echo "== lintian $deb"
bash tests/integration/package_lint.sh deb "$deb" || status=1
echo "== the debug symbols: $ddeb"
bash tests/integration/package_lint.sh dbgsym "$deb" "$ddeb" || status=1
echo "== rpmlint $rpm"
bash tests/integration/package_lint.sh rpm "$rpm" || status=1
echo
ls -l "$deb" "$ddeb" "$rpm"
exit "$status"
