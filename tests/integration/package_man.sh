#!/usr/bin/env bash
# package_man.sh DIR: every manual page of the package, as the build made
# it in DIR/manN/PAGE.N.gz (packaging/man.cmake), is there, is gzip'ed,
# renders with no warning from man --warnings, and lexgrog finds its NAME
# line (what mandb and apropos index).
set -euo pipefail
dir=${1:?usage: package_man.sh DIR}
pages=(man8/diode-gateway.8 man8/diodectl.8 man8/sockd.8 man8/diode-resolver.8 man1/sockd-check.1 man1/diode-socksify.1
       man5/gateway.toml.5 man5/sockd.conf.5 man5/sockd.route.5 man5/socks.conf.5 man5/diode-users.5)
fail=0
for p in "${pages[@]}"; do
  page=$dir/$p.gz
  if [ ! -s "$page" ]; then
    echo "FAIL - $page: missing (is pandoc installed? bash scripts/setup.sh)"; fail=1; continue
  fi
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || true
  if [ -n "$warnings" ]; then
    printf '%s\n' "$warnings"
    echo "FAIL - ${page##*/}: man --warnings"
    fail=1
  else
    echo "ok   - ${page##*/}: man --warnings quiet"
  fi
  if name=$(lexgrog "$page" 2>&1); then
    echo "ok   - lexgrog $name"
  else
    echo "FAIL - lexgrog ${page##*/}: $name"
    fail=1
  fi
  if ! gzip -t "$page" || [ "$(gzip -lv "$page" | awk 'NR == 2 {print $1}')" != defla ]; then
    echo "FAIL - ${page##*/}: not gzip"; fail=1
  fi
done
exit "$fail"
