#!/usr/bin/env bash
# package_lint.sh deb FILE | dbgsym DEB DDEB | rpm FILE: the package checks
# of docs/packaging.md.
#   deb: lintian with every tag shown (-E --pedantic -I); errors and warnings
#        fail, informational and pedantic tags are listed (each is justified
#        in docs/packaging.md).
#   dbgsym: the .deb's programs stripped, their symbols in the .ddeb under
#        their build ids; lintian on the .ddeb as on the .deb.
#   rpm: rpmlint with packaging/rpmlint.toml; errors fail. Then what rpm
#        itself says: the files, the %config(noreplace) list, requires, and
#        stripped programs.
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
dbgsym)
  # package_lint.sh dbgsym DEB DDEB: the .deb's programs are stripped, and
  # the -dbgsym package holds their symbols under their build ids.
  ddeb=${3:?usage: package_lint.sh dbgsym DEB DDEB}
  [ -f "$ddeb" ] || { echo "no such package: $ddeb" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  dpkg-deb -x "$file" "$tmp/deb"
  dpkg-deb -x "$ddeb" "$tmp/ddeb"
  fail=0
  check() {  # check WHAT CONDITION-RESULT(yes|no)
    if [ "$2" = yes ]; then echo "ok   - $1"; else echo "FAIL - $1"; fail=1; fi
  }
  ids=()
  for b in usr/sbin/diode-gateway usr/sbin/sockd usr/sbin/diode-resolver usr/bin/sockd-check usr/bin/diodectl \
           usr/bin/diode-socksify usr/lib/x86_64-linux-gnu/diode/libdiode-socksify.so; do
    f=$tmp/deb/$b
    check "$b: in the .deb" "$([ -f "$f" ] && echo yes || echo no)"
    [ -f "$f" ] || continue
    check "$b: file(1) says stripped" "$(file -b "$f" | grep ', stripped' >/dev/null && echo yes || echo no)"
    check "$b: no .debug_info, no .symtab" \
      "$(readelf -S -W "$f" | grep -E ' \.(debug_info|symtab) ' >/dev/null && echo no || echo yes)"
    id=$(readelf -n "$f" | awk '/Build ID:/ {print $3}')
    check "$b: has a build id" "$([ -n "$id" ] && echo yes || echo no)"
    [ -n "$id" ] || continue
    ids+=("$id")
    dbg=$tmp/ddeb/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
    check "$b: its symbols in the dbgsym, /usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug" \
      "$([ -f "$dbg" ] && echo yes || echo no)"
    [ -f "$dbg" ] || continue
    check "$b: the .debug file has .debug_info and the same build id" \
      "$(readelf -S -W "$dbg" 2>/dev/null | grep ' \.debug_info ' >/dev/null &&
         [ "$(readelf -n "$dbg" 2>/dev/null | awk '/Build ID:/ {print $3}')" = "$id" ] && echo yes || echo no)"
    check "$b: the .debug file is 0644" "$([ "$(stat -c %a "$dbg")" = 644 ] && echo yes || echo no)"
  done
  want=$(printf '%s\n' "${ids[@]}" | sort | paste -sd' ')
  check "dbgsym Build-Ids: the six programs' and the preload library's" \
    "$([ "$(dpkg-deb -f "$ddeb" Build-Ids | tr ' ' '\n' | sort | paste -sd' ')" = "$want" ] && echo yes || echo no)"
  check "dbgsym depends on the very version of its package" \
    "$([ "$(dpkg-deb -f "$ddeb" Depends)" = "$(dpkg-deb -f "$file" Package) (= $(dpkg-deb -f "$file" Version))" ] && echo yes || echo no)"
  check "dbgsym: only /usr/lib/debug files and the doc symlink" \
    "$([ -z "$(cd "$tmp/ddeb" && find . -type f ! -path './usr/lib/debug/.build-id/*.debug')" ] && echo yes || echo no)"
  check "dbgsym: md5sums match its files (dpkg --verify would)" \
    "$(dpkg-deb --ctrl-tarfile "$ddeb" | tar -xO ./md5sums | (cd "$tmp/ddeb" && md5sum --quiet -c - >/dev/null 2>&1) && echo yes || echo no)"
  rc=0
  lintian --fail-on error,warning -E --pedantic -I --tag-display-limit 0 "$ddeb" >"$tmp/lintian" 2>&1 || rc=$?
  grep -v 'running with root privileges is not recommended' "$tmp/lintian" || true
  check "lintian on the dbgsym: no error, no warning" \
    "$([ "$rc" -eq 0 ] && ! grep -q '^[EW]: ' "$tmp/lintian" && echo yes || echo no)"
  [ "$fail" -eq 0 ]
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
  tmp=$(mktemp -d)
  (cd "$tmp" && rpm2cpio "$file" | cpio -id --quiet ./usr/sbin/diode-gateway ./usr/sbin/sockd \
     ./usr/sbin/diode-resolver ./usr/bin/sockd-check ./usr/bin/diodectl ./usr/bin/diode-socksify \
     ./usr/lib/x86_64-linux-gnu/diode/libdiode-socksify.so)
  for b in usr/sbin/diode-gateway usr/sbin/sockd usr/sbin/diode-resolver usr/bin/sockd-check usr/bin/diodectl \
           usr/bin/diode-socksify usr/lib/x86_64-linux-gnu/diode/libdiode-socksify.so; do
    expect_line "rpm: $b is stripped" ', stripped' "$(file -b "$tmp/$b" 2>&1)"
  done
  rm -rf "$tmp"
  expect_line "rpm requires libc" '^libc\.so\.6' "$(rpm -qp --requires "$file")"
  if [ "$fail" -eq 0 ]; then echo "rpm checks: passed"; fi
  [ "$fail" -eq 0 ]
  ;;
*)
  echo "usage: package_lint.sh deb FILE | dbgsym DEB DDEB | rpm FILE" >&2
  exit 2
  ;;
esac
