#!/usr/bin/env bash
# package_lint.sh deb FILE | rpm FILE: the package checks of docs/packaging.md.
#   deb: lintian with every tag shown (-E --pedantic -I); errors and warnings
#        fail, informational and pedantic tags are listed (each is justified
#        in docs/packaging.md).
#   rpm: rpmlint with packaging/rpmlint.toml; errors fail. Then what rpm
#        itself says: the files, the %config(noreplace) list, requires.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
kind=${1:?usage: package_lint.sh deb|rpm FILE}
file=${2:?usage: package_lint.sh deb|rpm FILE}
[ -f "$file" ] || { echo "no such package: $file" >&2; exit 1; }

case $kind in
deb)
  command -v lintian >/dev/null || { echo "lintian is not installed (bash scripts/setup.sh)" >&2; exit 1; }
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
  rc=0
  # lintian warns that it runs as root; that line is not about the package.
  lintian --fail-on error,warning -E --pedantic -I --tag-display-limit 0 "$file" >"$out" 2>&1 || rc=$?
  grep -v 'running with root privileges is not recommended' "$out" || true
  errors=$(grep -c '^E: ' "$out" || true)
  warnings=$(grep -c '^W: ' "$out" || true)
  infos=$(grep -c '^[IPX]: ' "$out" || true)
  echo "lintian: $errors errors, $warnings warnings, $infos informational/pedantic/experimental tags"
  [ "$rc" -eq 0 ] && [ "$errors" -eq 0 ] && [ "$warnings" -eq 0 ]
  ;;
rpm)
  command -v rpm >/dev/null || { echo "rpm is not installed (bash scripts/setup.sh)" >&2; exit 1; }
  command -v rpmlint >/dev/null || { echo "rpmlint is not installed (bash scripts/setup.sh)" >&2; exit 1; }
  rc=0
  out=$(rpmlint -c "$src/packaging/rpmlint.toml" "$file" 2>&1) || rc=$?
  printf '%s\n' "$out"
  errors=$(printf '%s\n' "$out" | grep -c ': E: ' || true)
  fail=0
  if [ "$errors" -ne 0 ]; then echo "FAIL - rpmlint: $errors errors"; fail=1; fi
  echo "rpm -qp --requires:"; rpm -qp --requires "$file" | sed 's/^/  /'
  echo "rpm -qp --provides:"; rpm -qp --provides "$file" | sed 's/^/  /'
  expect_line() {  # expect_line WHAT PATTERN TEXT
    if grep -Eq -- "$2" <<<"$3"; then echo "ok   - $1"; else echo "FAIL - $1"; fail=1; fi
  }
  files=$(rpm -qp -l "$file")
  configs=$(rpm -qp --configfiles "$file")
  dump=$(rpm -qp --dump "$file")
  scripts=$(rpm -qp --scripts "$file")
  for f in /usr/sbin/diode-gateway /usr/sbin/sockd /usr/sbin/diode-resolver /usr/bin/sockd-check \
           /usr/bin/diodectl /usr/lib/systemd/system/diode.service /usr/share/man/man8/diode-gateway.8.gz; do
    expect_line "rpm holds $f" "^$f\$" "$files"
  done
  for f in gateway.toml sockd.conf sockd.route socks.conf users; do
    expect_line "rpm: /etc/diode/$f is %config" "^/etc/diode/$f\$" "$configs"
  done
  if grep -q '\.service$' <<<"$configs"; then echo "FAIL - the unit is marked %config"; fail=1
  else echo "ok   - rpm: the unit is not %config"; fi
  # --dump: path size mtime digest mode owner group isconfig isdoc ...
  expect_line "rpm: /etc/diode/users is 0640 root:diode" '^/etc/diode/users [0-9]+ [0-9]+ [0-9a-f]+ 0100640 root diode 1 ' "$dump"
  flags=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$file" | grep '^/etc/diode/')
  if [ "$(grep -c ' cn$' <<<"$flags")" -ne 5 ]; then
    echo "FAIL - not every /etc/diode file is %config(noreplace):"; printf '%s\n' "$flags"; fail=1
  else
    echo "ok   - rpm: the five /etc/diode files are %config(noreplace)"
  fi
  expect_line "rpm %pre creates the user diode" 'useradd -r -g diode' "$scripts"
  expect_line "rpm requires libc" '^libc\.so\.6' "$(rpm -qp --requires "$file")"
  if [ "$fail" -eq 0 ]; then echo "rpm checks: passed"; fi
  [ "$fail" -eq 0 ]
  ;;
*)
  echo "usage: package_lint.sh deb|rpm FILE" >&2
  exit 2
  ;;
esac
