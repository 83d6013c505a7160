#!/usr/bin/env bash
# Installs everything Diode's build, tests and benchmarks need, from Debian's
# archive only. Idempotent and non-interactive; run as root on Debian 12.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config g++ clang-14 libclang-rt-14-dev
  libboost-dev libc-ares-dev libcap-dev libsystemd-dev libtomlplusplus-dev catch2 libcrypt-dev
  libssl-dev
  liburing-dev   # sockd's io_uring path; also the io_uring floor relay of ../shared/bench (bench/socks.sh)
  # the network test bed and its real peers
  iproute2 procps psmisc nsd knot-dnsutils bind9-dnsutils dns-root-data curl
  ldnsutils
  python3 python3-socks proxychains4 socat
  # diode-socksify's tests: everyday programs and their servers, a static
  # program, and the peers it is compared with (docs/socksify.md)
  wget git openssh-client openssh-server netcat-openbsd python3-pyftpdlib busybox-static
  dante-client
  # benchmark peers
  dante-server microsocks unbound knot-resolver dnsperf tcpdump
  strace valgrind   # bench/sockd_cost.sh: system calls and instructions per session
  # packages and manual pages (scripts/package.sh, the `package` tests)
  pandoc rpm rpmlint lintian man-db groff-base
  # systemd-analyze (unit checks) and systemd-socket-activate (socket activation test)
  systemd
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  # Packaged daemons (nsd, unbound, danted, kresd) must not start on install:
  # the tests and benchmarks start their own copies on their own addresses.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "setup: all packages present"

# The daemons drop root to this user and group by default ([gateway] user and
# group in gateway.toml); tests run them as root and rely on it.
if ! getent group diode >/dev/null || ! getent passwd diode >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to create the system user diode" >&2
    exit 1
  fi
  getent group diode >/dev/null || addgroup --system diode
  getent passwd diode >/dev/null ||
    adduser --system --ingroup diode --no-create-home --home /nonexistent diode
fi
echo "setup: system user diode present"
