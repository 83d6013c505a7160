#!/bin/bash
# Runs the examples of docs/resolver.md as they stand: every ```bash block
# that starts with "# example:" in its own bash (diode-resolver on the PATH),
# and every ```toml block through `diode-resolver --check-config` next to a
# root.hints file. Loopback only; each example bounds its own waits.
set -euo pipefail
: "${DIODE_SOURCE_DIR:?}" "${DIODE_BINARY_DIR:?}"
export PATH=$DIODE_BINARY_DIR/resolver:$PATH
doc=$DIODE_SOURCE_DIR/docs/resolver.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

awk -v dir="$work" '
  /^```bash$/ { inblock = 1; n_b++; file = sprintf("%s/example-%02d.sh", dir, n_b); next }
  /^```toml$/ { inblock = 1; n_t++; file = sprintf("%s/config-%02d.toml", dir, n_t); next }
  /^```$/     { inblock = 0; next }
  inblock     { print > file }
' "$doc"

failed=0 ran=0
for f in "$work"/example-*.sh; do
  [ -e "$f" ] || continue
  title=$(head -1 "$f")
  [[ $title == "# example: "* ]] || continue
  ran=$((ran + 1))
  if timeout 60 bash "$f" >"$f.out" 2>&1; then
    echo "ok   - ${title#\# example: }"
  else
    echo "FAIL - ${title#\# example: }"; cat "$f.out"; failed=1
  fi
done
printf '.  3600000 NS a.root-servers.test.\na.root-servers.test. 3600000 A 192.0.2.53\n' \
  >"$work/root.hints"
for f in "$work"/config-*.toml; do
  [ -e "$f" ] || continue
  ran=$((ran + 1))
  if diode-resolver --check-config --config "$f" >"$f.out" 2>&1; then
    echo "ok   - $(basename "$f") passes --check-config"
  else
    echo "FAIL - $(basename "$f")"; cat "$f.out"; failed=1
  fi
done
[ "$ran" -ge 2 ] || { echo "FAIL - found only $ran examples in $doc"; exit 1; }
exit $failed
