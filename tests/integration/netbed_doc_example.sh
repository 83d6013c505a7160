#!/usr/bin/env bash
# Runs every example in docs/testbed.md (a ```bash block whose first line is
# "# example: ...") as it stands, each in its own bash, so that the page
# cannot drift from the library. An example passes if it exits 0 and its
# last line of output is "example passed".
set -euo pipefail

DIODE_SOURCE_DIR=${DIODE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export DIODE_SOURCE_DIR
doc=$DIODE_SOURCE_DIR/docs/testbed.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

awk -v dir="$work" '
  /^```bash$/ { inblock = 1; first = 1; next }
  inblock && /^```$/ { inblock = 0; if (file != "") close(file); file = ""; next }
  inblock && first {
    first = 0
    if ($0 ~ /^# example: /) { n++; file = sprintf("%s/example-%02d.sh", dir, n) }
  }
  inblock && file != "" { print > file }
' "$doc"

count=0
failed=0
for f in "$work"/example-*.sh; do
  [ -e "$f" ] || continue
  count=$((count + 1))
  title=$(head -n 1 "$f")
  echo "# running docs/testbed.md ${title#\# }"
  rc=0
  timeout 110 bash "$f" >"$f.out" 2>&1 || rc=$?
  cat "$f.out"
  if [ "$rc" -eq 0 ] && [ "$(tail -n 1 "$f.out")" = "example passed" ]; then
    echo "ok   - ${title#\# example: }"
  else
    echo "FAIL - ${title#\# example: } (exit status $rc)"
    failed=$((failed + 1))
  fi
done
if [ "$count" -eq 0 ]; then
  echo "FAIL - no example found in $doc"
  exit 1
fi
echo "# $count examples, $failed failed"
[ "$failed" -eq 0 ]
