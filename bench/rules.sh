#!/usr/bin/env bash
# Builds the release preset's rules_bench and runs it: load + compile time of
# a generated 100,000-line sockd.conf and the per-decision time of the
# compiled Engine against the linear scan. Results: docs/performance.md.
#   bench/rules.sh [rules_bench options, e.g. --requests 2000000 --seed 7]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release --target rules_bench
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
exec build/release/bench/rules_bench "$@"
