#!/usr/bin/env bash
# Signs the test tree into a temporary directory and runs the validator's
# signed-zone test binary ($1) over it; the directory is removed after.
set -euo pipefail
bin=${1:?usage: run_signed_zones.sh TEST_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$here/make_zones.sh" "$dir" >/dev/null 2>"$dir/make.log" || { cat "$dir/make.log" >&2; exit 1; }
DIODE_DNSSEC_ZONES=$dir "$bin"
