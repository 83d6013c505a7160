#!/usr/bin/env bash
# package_rpm_install.sh OLD.rpm NEW.rpm: the .rpm installed, upgraded and
# erased by rpm itself, scriptlets included, on this Debian machine without
# touching it (docs/packaging.md, "The .rpm on Debian"): a root of its own,
# in a mount namespace of its own, where
#   - /usr is an overlay: the machine's /usr below (sh, getent, groupadd,
#     useradd, systemctl, the shared libraries and the root hints the
#     scriptlets and programs need), a tmpfs above that takes every write;
#   - /etc holds copies of the account files without any diode entry, so
#     %pre has a user to create; /var/lib/rpm is an empty database;
#   - /dev has null, zero, random and urandom; /proc is mounted.
# rpm --root chroots into it to run %pre, %post, %preun and %postun.
# --nodeps: the libraries are Debian's, not rpm packages, so the requires
# cannot be met from an rpm database; package.rpm lists them. No systemd
# runs in the root: the scriptlets' systemctl works offline on the unit
# files (preset, disable), and daemon-reload and try-restart do nothing.
# Checked: the user and group from %pre; every file of the package in place
# and `rpm -V` clean; users root:diode 0640; the five %config(noreplace)
# files; the unit enabled by %post; an edited gateway.toml kept through
# `rpm -U` (the packaged file did not change, so rpm neither replaces it nor
# writes .rpmnew) and `rpm -V` naming only it; `rpm -e`: the unit disabled
# by %preun, every file gone but the edited one, saved as .rpmsave as rpm
# does, the user kept.
set -euo pipefail
old_rpm=${1:?usage: package_rpm_install.sh OLD.rpm NEW.rpm}
new_rpm=${2:?usage: package_rpm_install.sh OLD.rpm NEW.rpm}
if [ "$(id -u)" -ne 0 ]; then echo "package_rpm_install.sh: needs root (mounts)" >&2; exit 1; fi
command -v rpm >/dev/null || { echo "rpm is not installed (bash scripts/setup.sh)" >&2; exit 1; }
old_rpm=$(realpath "$old_rpm")
new_rpm=$(realpath "$new_rpm")

# Everything below runs in a private mount namespace: its mounts end with it.
if [ "${DIODE_RPM_TEST_NS:-}" != 1 ]; then
  top=$(mktemp -d /tmp/diode-rpm-test.XXXXXX)
  rc=0
  DIODE_RPM_TEST_NS=1 DIODE_RPM_TEST_TOP=$top unshare --mount --propagation private -- \
    bash "$0" "$old_rpm" "$new_rpm" || rc=$?
  rmdir "$top" 2>/dev/null || rm -rf "$top"
  exit "$rc"
fi

T=$DIODE_RPM_TEST_TOP
mount -t tmpfs -o mode=0755 diode-rpm-test "$T"
R=$T/root
mkdir -p "$R/usr" "$T/upper" "$T/work"
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$T/upper,workdir=$T/work" "$R/usr"
for l in bin sbin lib lib64; do ln -s "usr/$l" "$R/$l"; done
mkdir -p "$R/etc" "$R/var/lib/rpm" "$R/tmp" "$R/dev" "$R/run" "$R/proc" "$R/root"
chmod 1777 "$R/tmp"
for f in passwd group shadow gshadow; do grep -v '^diode:' "/etc/$f" >"$R/etc/$f" || true; done
chmod 640 "$R/etc/shadow" "$R/etc/gshadow"
cp /etc/login.defs /etc/nsswitch.conf "$R/etc/"
for d in null zero random urandom; do
  touch "$R/dev/$d"
  mount --bind "/dev/$d" "$R/dev/$d"
done
mount -t proc proc "$R/proc"

fail=0
expect() {  # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then echo "ok   - $1"; else echo "FAIL - $1: wanted '$2', got '$3'"; fail=1; fi
}
yes_no() { if "$@"; then echo yes; else echo no; fi; }
# Debian's rpm warns on every install that apt is the way; not about us.
RPM() { rpm --root "$R" "$@" 2> >(grep -v -e 'should not be used directly' -e 'assuming you know what' >&2); }
WANTS=$R/etc/systemd/system/multi-user.target.wants/diode.service

RPM --initdb
old_version=$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$old_rpm")
new_version=$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$new_rpm")

# --- install ---------------------------------------------------------------------
rc=0
RPM -i --nodeps "$old_rpm" || rc=$?
expect "rpm -i $(basename "$old_rpm"): exit 0" 0 "$rc"
expect "installed version" "$old_version" "$(RPM -q --qf '%{VERSION}-%{RELEASE}' diode)"
pw=$(grep '^diode:' "$R/etc/passwd" || true)
gr=$(grep '^diode:' "$R/etc/group" || true)
expect "%pre: the group diode" yes "$(yes_no test -n "$gr")"
expect "%pre: the user diode, in group diode, home /nonexistent, shell /sbin/nologin" \
  "$(cut -d: -f3 <<<"$gr"):/nonexistent:/sbin/nologin" "$(cut -d: -f4,6,7 <<<"$pw")"
expect "%pre: a system uid" yes "$(yes_no test "$(cut -d: -f3 <<<"$pw")" -lt 1000)"
missing=$(RPM -ql diode | while read -r f; do [ -e "$R$f" ] || [ -L "$R$f" ] || echo "$f"; done)
expect "every file of rpm -ql is in place" "" "$missing"
expect "rpm -ql: the six programs, the preload library, the unit, eleven manual pages" 19 \
  "$(RPM -ql diode | grep -Ec '^/usr/(s?bin/|lib/x86_64-linux-gnu/diode/libdiode-socksify\.so$|lib/systemd/system/diode\.service$|share/man/man[158]/.*\.gz$)')"
out=$(RPM -V --nodeps diode 2>&1) && rc=0 || rc=$?
expect "rpm -V: nothing differs from the package" "0 " "$rc $out"
expect "/etc/diode/users: root:diode 0640" "root:$(cut -d: -f3 <<<"$gr") 640" \
  "$(stat -c '%U:%g %a' "$R/etc/diode/users")"
expect "the five %config(noreplace) files" \
  "/etc/diode/gateway.toml /etc/diode/sockd.conf /etc/diode/sockd.route /etc/diode/socks.conf /etc/diode/users" \
  "$(RPM -qc diode | sort | paste -sd' ')"
expect "%post: the unit enabled (systemctl preset, offline)" /lib/systemd/system/diode.service \
  "$(readlink "$WANTS" || true)"

# --- the administrator edits gateway.toml, then upgrades ----------------------------
printf '# edited by the administrator\n' >>"$R/etc/diode/gateway.toml"
edited=$(md5sum <"$R/etc/diode/gateway.toml")
rc=0
RPM -U --nodeps "$new_rpm" || rc=$?
expect "rpm -U $(basename "$new_rpm"): exit 0" 0 "$rc"
expect "one version installed, the new one" "$new_version" "$(RPM -q --qf '%{VERSION}-%{RELEASE}\n' diode)"
expect "the edited gateway.toml survives the upgrade" "$edited" "$(md5sum <"$R/etc/diode/gateway.toml")"
expect "no .rpmnew or .rpmsave (the packaged file did not change)" "" \
  "$(ls "$R/etc/diode" | grep -E '\.rpm(new|save|orig)$' || true)"
out=$(RPM -V --nodeps diode 2>&1 || true)
expect "rpm -V after the upgrade: only the edited configuration file" "c /etc/diode/gateway.toml" \
  "$(awk '{print $2, $3}' <<<"$out")"
expect "/etc/diode/users still root:diode 0640" "root:$(cut -d: -f3 <<<"$gr") 640" \
  "$(stat -c '%U:%g %a' "$R/etc/diode/users")"
expect "the unit still enabled" yes "$(yes_no test -L "$WANTS")"

# --- erase -------------------------------------------------------------------------
rc=0
RPM -e --nodeps diode || rc=$?
expect "rpm -e: exit 0" 0 "$rc"
expect "rpm -q: not installed" 1 "$(RPM -q diode >/dev/null 2>&1 && echo 0 || echo 1)"
expect "%preun: the unit disabled" no "$(yes_no test -L "$WANTS")"
expect "the edited gateway.toml saved as gateway.toml.rpmsave" "$edited" \
  "$(md5sum <"$R/etc/diode/gateway.toml.rpmsave" 2>/dev/null || true)"
left=$(cd "$R" && find etc/diode usr/sbin/diode-gateway usr/sbin/sockd usr/sbin/diode-resolver \
  usr/bin/sockd-check usr/bin/diodectl usr/bin/diode-socksify usr/lib/x86_64-linux-gnu/diode \
  usr/lib/systemd/system/diode.service usr/share/doc/diode \
  usr/share/man/man8/diode-gateway.8.gz 2>/dev/null | grep -v '^etc/diode$' || true)
expect "nothing of the package left but the saved edit" "etc/diode/gateway.toml.rpmsave" "$left"
expect "the user diode is kept" "$pw" "$(grep '^diode:' "$R/etc/passwd" || true)"

exit "$fail"
