#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the release build's
# suite, each libFuzzer target for a bounded time (clang 14), and the whole
# suite again under ASan+UBSan (gcc). Run as root (the network test bed
# makes namespaces). Exit status: 0 only if everything passed.
#
#   DIODE_FUZZ_SECONDS=N   seconds per fuzz target (default 30)
#   DIODE_SKIP_ASAN=1      skip the sanitizer pass (local iteration only)
#   DIODE_SKIP_FUZZ=1      skip the fuzz pass (local iteration only)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
jobs=$(nproc)
fuzz_seconds=${DIODE_FUZZ_SECONDS:-30}

echo "== release build"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"

status=0

if [ "${DIODE_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz build (clang 14, libFuzzer)"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$jobs"
  # Two targets at a time (the machine has two cores); each for a bounded time.
  fuzz_one() {
    bin=$1 seconds=$2
    name=${bin##*/fuzz_}
    work=$(mktemp -d)
    cp -r "tests/fuzz/corpus/$name"/. "$work"/ 2>/dev/null || true
    if "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/" \
         -print_final_stats=1 "$work" >"build/fuzz/$name.log" 2>&1; then
      runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "build/fuzz/$name.log" | grep -o '[0-9]*$')
      echo "-- fuzz $name: ${seconds}s, ${runs:-?} inputs, no failure"
      rm -rf "$work"
    else
      echo "FUZZ FAILURE in $name (log build/fuzz/$name.log, inputs kept in $work):" >&2
      tail -n 40 "build/fuzz/$name.log" >&2
      return 1
    fi
  }
  export -f fuzz_one
  if ! ls build/fuzz/tests/fuzz/fuzz_* >/dev/null 2>&1; then
    echo "no fuzz targets were built" >&2
    status=1
  elif ! printf '%s\n' build/fuzz/tests/fuzz/fuzz_* |
       xargs -P 2 -I{} bash -c 'fuzz_one "$1" "$2"' _ {} "$fuzz_seconds"; then
    status=1
  fi
fi

echo "== release test suite"
ctest --preset release -j "$jobs" || status=1

if [ "${DIODE_SKIP_ASAN:-0}" != 1 ]; then
  echo "== ASan+UBSan build and test suite"
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j "$jobs"
  ctest --preset asan -j "$jobs" || status=1
fi

exit "$status"
