#!/usr/bin/env bash
# Diode's network test bed: three network namespaces (lan, gw, net) joined by
# veth pairs, with real servers from Debian in net (nsd for a fake root, TLDs
# and zones; Python's http.server; socat echo and sink servers).
#
# From a test:   source tests/netbed/netbed.sh && netbed_up   (set -euo
#                pipefail in the caller is fine)
#                nb_lan curl http://198.51.100.80/hello.txt
# By hand:       tests/netbed/netbed.sh up | down DIR | list
#
# Everything it makes carries a per-run prefix (dnb + 6 hex digits), uses only
# the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and
# 2001:db8::/32, and never touches the host's own interfaces or routes: both
# ends of every veth pair are created directly inside the run's namespaces.
# docs/testbed.md describes the topology, the variables and the functions.

NB_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Fixed addresses of the topology (docs/testbed.md has the picture).
NB_LAN_IP4=192.0.2.10
NB_LAN_IP6=2001:db8:1::10
NB_GW_LAN_IP4=192.0.2.1
NB_GW_LAN_IP6=2001:db8:1::1
NB_GW_NET_IP4=198.51.100.1
NB_GW_NET_IP6=2001:db8:2::1
NB_NET_IP4=198.51.100.2
NB_NET_IP6=2001:db8:2::2
NB_WEB_IP4=198.51.100.80
NB_WEB_IP6=2001:db8:2::80
NB_WEB_PORT=80
NB_ECHO_IP4=198.51.100.7
NB_ECHO_IP6=2001:db8:2::7
NB_ECHO_PORT=7
NB_SINK_IP4=198.51.100.9
NB_SINK_IP6=2001:db8:2::9
NB_SINK_PORT=9

_nb_log() { printf 'netbed: %s\n' "$*" >&2; }
_nb_fail() { _nb_log "error: $*"; return 1; }

# Maps the short names lan, gw and net, and those of netbed_add_lan, to
# this run's namespaces.
_nb_ns() {
  case "$1" in
    lan) printf '%s\n' "$NB_LAN" ;;
    gw) printf '%s\n' "$NB_GW" ;;
    net) printf '%s\n' "$NB_NET" ;;
    *)
      if [ -n "${NB_PREFIX:-}" ] && [[ $1 =~ ^[a-z0-9]{1,4}$ ]] && [ -e "/run/netns/$NB_PREFIX-$1" ]; then
        printf '%s\n' "$NB_PREFIX-$1"
      else
        printf '%s\n' "$1"
      fi
      ;;
  esac
}

# The network rule: nothing outside the documentation ranges, ever.
_nb_check_addr() {
  local a=${1,,}
  if [[ $a =~ ^(192\.0\.2|198\.51\.100|203\.0\.113)\.[0-9]{1,3}$ ]] ||
     [[ $a =~ ^2001:0?db8: ]]; then
    return 0
  fi
  _nb_fail "address $1 is outside the documentation ranges"
}

_nb_is_ip6() { [[ $1 == *:* ]]; }

# Sets _nb_id to "pid:starttime" for a live (non-zombie) process and
# succeeds, or fails; the start time guards against killing a process that
# reused a dead PID. No subshell: it runs in tight polling loops.
_nb_proc_id() {
  local stat fields
  _nb_id=
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  read -r -a fields <<<"${stat##*) }"
  [[ ${fields[0]} == Z || ${fields[0]} == X ]] && return 1
  _nb_id=$1:${fields[19]}
}

# Prints the PIDs given and all their descendants, from one process listing.
_nb_tree() {
  ps -e -o pid=,ppid= | awk -v roots="$*" '
    { kids[$2] = kids[$2] " " $1 }
    END {
      n = split(roots, queue, " ")
      for (i = 1; i <= n; i++) {
        p = queue[i]
        if (seen[p]++) continue
        print p
        m = split(kids[p], k, " ")
        for (j = 1; j <= m; j++) queue[++n] = k[j]
      }
    }'
}

# Stops the given process trees: TERM, up to 3 s of grace, then KILL.
_nb_kill_trees() {
  # Processes may exit at any moment here; that is not an error, even
  # under the caller's set -e.
  local - ids=() p id i left
  set +e
  [ $# -gt 0 ] || return 0
  for p in $(_nb_tree "$@"); do
    _nb_proc_id "$p" && ids+=("$_nb_id")
  done
  [ ${#ids[@]} -gt 0 ] || return 0
  for id in "${ids[@]}"; do kill -TERM "${id%%:*}" 2>/dev/null; done
  for ((i = 0; i < 30; i++)); do
    left=0
    for id in "${ids[@]}"; do
      _nb_proc_id "${id%%:*}" && [ "$_nb_id" = "$id" ] && { left=1; break; }
    done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for id in "${ids[@]}"; do
    _nb_proc_id "${id%%:*}" && [ "$_nb_id" = "$id" ] && kill -KILL "${id%%:*}" 2>/dev/null
  done
  # Reap our own children so that no zombie is left behind.
  for p in "$@"; do _nb_proc_id "$p" || wait "$p" 2>/dev/null; done
  return 0
}

# Namespaces of this run that still exist.
_nb_own_namespaces() {
  [ -n "${NB_PREFIX:-}" ] || return 0
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${NB_PREFIX}-[a-z0-9]{1,4}$"
}

# The end of each non-empty log of the run (NB_LOG_TAIL_LINES, default 5;
# 0 for none), so that a failure in CI shows what the servers said.
_nb_log_tails() {
  local f n=${NB_LOG_TAIL_LINES:-5}
  if [ "$n" -le 0 ] || [ -z "${NB_DIR:-}" ] || [ ! -d "$NB_DIR" ]; then return 0; fi
  for f in "$NB_DIR"/*.log; do
    [ -s "$f" ] || continue
    printf 'netbed: --- the last lines of %s\n' "${f##*/}" >&2
    tail -n "$n" "$f" >&2
  done
}

_nb_exit_trap() {
  local rc=$?
  [ "$rc" -eq 0 ] || _nb_log_tails
  # Anything that survived the run fails it, even if the test itself passed.
  netbed_down || { [ "$rc" -ne 0 ] || rc=1; }
  exit "$rc"
}

_nb_signal_trap() {
  trap - INT TERM
  _nb_log_tails
  netbed_down
  exit "$1"
}

# Runs a command in the lan, gw or net namespace of this run.
nb_lan() { ip netns exec "$NB_LAN" "$@"; }
nb_gw() { ip netns exec "$NB_GW" "$@"; }
nb_net() { ip netns exec "$NB_NET" "$@"; }

# Starts CMD... in namespace NS (lan, gw, net or a full name) in the
# background, logging to $NB_DIR/NAME.log; its PID is recorded for
# netbed_down and left in NB_LAST_PID.
netbed_start_bg() {
  if [ $# -lt 3 ]; then _nb_fail "usage: netbed_start_bg NS NAME CMD..."; return 1; fi
  if [ -z "${NB_DIR:-}" ] || [ ! -d "$NB_DIR" ]; then
    _nb_fail "netbed_start_bg: the test bed is not up"; return 1
  fi
  local ns name=$2
  if [[ ! $name =~ ^[A-Za-z0-9_.:-]+$ ]]; then
    _nb_fail "netbed_start_bg: NAME '$name' may hold only letters, digits and _ . : -"; return 1
  fi
  ns=$(_nb_ns "$1")
  shift 2
  ip netns exec "$ns" "$@" </dev/null >>"$NB_DIR/$name.log" 2>&1 &
  NB_LAST_PID=$!
  printf '%s %s %s\n' "$NB_LAST_PID" "$name" "$ns" >>"$NB_DIR/pids"
}

# Stops the process (and its children) that netbed_start_bg started as NAME.
netbed_stop_bg() {
  local pids
  pids=$(awk -v n="$1" '$2 == n {print $1}' "${NB_DIR:-}/pids" 2>/dev/null | tr '\n' ' ')
  if [ -z "$pids" ]; then _nb_fail "netbed_stop_bg: no process named $1"; return 1; fi
  # shellcheck disable=SC2086  # a list of PIDs
  _nb_kill_trees $pids
}

# True while the process netbed_start_bg started as NAME is running.
netbed_alive() {
  local pid
  pid=$(awk -v n="$1" '$2 == n {p = $1} END {print p}' "${NB_DIR:-}/pids" 2>/dev/null)
  [ -n "$pid" ] && _nb_proc_id "$pid"
}

# Waits until a TCP connection from NS to ADDR PORT succeeds, at most TIMEOUT
# seconds (default 10); fails with a message otherwise.
netbed_wait_tcp() {
  local ns addr=$2 port=$3 timeout=${4:-10} deadline
  ns=$(_nb_ns "$1")
  deadline=$((${EPOCHREALTIME//[!0-9]/} + timeout * 1000000))
  while ((${EPOCHREALTIME//[!0-9]/} < deadline)); do
    # The target is passed as an argument, never spliced into the script.
    # shellcheck disable=SC2016
    if timeout 2 ip netns exec "$ns" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$addr" "$port" \
         2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  _nb_fail "nothing accepts TCP on $addr port $port (from $ns) after ${timeout}s"
}

# Waits until the DNS server at ADDR answers a UDP query from NS (any rcode),
# at most TIMEOUT seconds (default 10). Each probe is one query: count it
# when comparing netbed_dns_queries figures.
netbed_wait_udp_dns() {
  local ns addr=$2 timeout=${3:-10} deadline
  ns=$(_nb_ns "$1")
  deadline=$((${EPOCHREALTIME//[!0-9]/} + timeout * 1000000))
  while ((${EPOCHREALTIME//[!0-9]/} < deadline)); do
    if timeout 3 ip netns exec "$ns" dig +time=1 +tries=1 +norecurse "@$addr" . SOA \
         >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  _nb_fail "no DNS answer over UDP from $addr (from $ns) after ${timeout}s"
}

# Waits until the UDP echo server at ADDR PORT echoes a datagram from NS.
# dd reads the reply with one read(2), i.e. one whole datagram, and returns
# as soon as it arrives.
_nb_wait_udp_echo() {
  local ns addr=$2 port=$3 timeout=${4:-10} deadline reply
  ns=$(_nb_ns "$1")
  deadline=$((${EPOCHREALTIME//[!0-9]/} + timeout * 1000000))
  while ((${EPOCHREALTIME//[!0-9]/} < deadline)); do
    # shellcheck disable=SC2016
    reply=$(timeout 1 ip netns exec "$ns" bash -c \
      'exec 3<>"/dev/udp/$1/$2" && printf "netbed-probe\n" >&3 && dd bs=65536 count=1 status=none <&3' \
      _ "$addr" "$port" 2>/dev/null)
    [ "$reply" = netbed-probe ] && return 0
    sleep 0.1
  done
  _nb_fail "no UDP echo from $addr port $port (from $ns) after ${timeout}s"
}

# Adds a host address (a /32 or /128, IPv6 without duplicate address
# detection) to net's interface; an address already there is left alone.
netbed_add_address() {
  if [ -z "${NB_NET:-}" ]; then _nb_fail "netbed_add_address: the test bed is not up"; return 1; fi
  _nb_check_addr "$1" || return 1
  if [ -n "$(ip -n "$NB_NET" addr show to "$1" 2>/dev/null)" ]; then return 0; fi
  if _nb_is_ip6 "$1"; then
    ip -n "$NB_NET" -6 addr add "$1/128" dev "$NB_IF_NET" nodad
  else
    ip -n "$NB_NET" addr add "$1/32" dev "$NB_IF_NET"
  fi
}

# Finds the zone file of zone $1 ("." is root.zone) in NB_EXTRA_ZONE_DIRS
# (colon-separated), then in tests/netbed/zones.
_nb_zone_file() {
  local base=${1%.} dir dirs
  [ -n "$base" ] || base=root
  IFS=: read -r -a dirs <<<"${NB_EXTRA_ZONE_DIRS:-}${NB_EXTRA_ZONE_DIRS:+:}$NB_HOME/zones"
  for dir in "${dirs[@]}"; do
    [ -n "$dir" ] && [ -f "$dir/$base.zone" ] && { printf '%s\n' "$dir/$base.zone"; return 0; }
  done
  _nb_fail "no zone file $base.zone for zone $1 (looked in ${dirs[*]})"
}

# Starts one DNS server in net without waiting for it: NAME KIND HOST
# ADDRESSES ZONES as in servers.conf.
_nb_start_dns_server() {
  local name=$1 kind=$2 host=$3 addrs zones a z file dir conf
  IFS=, read -r -a addrs <<<"$4"
  IFS=, read -r -a zones <<<"$5"
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || { _nb_fail "bad DNS server name '$name'"; return 1; }
  dir=$NB_DIR/dns/$name
  if [ -e "$dir" ]; then _nb_fail "DNS server $name defined twice"; return 1; fi
  mkdir -p "$dir/xfr" || return 1
  for a in "${addrs[@]}"; do netbed_add_address "$a" || return 1; done
  printf '%s\n' "${addrs[@]}" >"$dir/addresses"
  printf '%s\n' "$host" >"$dir/host"
  case "$kind" in
    nsd)
      conf=$dir/nsd.conf
      {
        printf 'server:\n'
        for a in "${addrs[@]}"; do printf '  ip-address: %s\n' "$a"; done
        printf '  port: 53\n  server-count: 1\n  reuseport: no\n'
        printf '  username: ""\n  chroot: ""\n  database: ""\n'
        printf '  zonesdir: "%s"\n' "$dir"
        printf '  pidfile: "%s/nsd.pid"\n' "$dir"
        printf '  zonelistfile: "%s/zone.list"\n' "$dir"
        printf '  xfrdfile: "%s/xfrd.state"\n' "$dir"
        printf '  xfrdir: "%s/xfr"\n' "$dir"
        printf '  logfile: "%s/dns-%s.log"\n' "$NB_DIR" "$name"
        printf '  verbosity: 2\n  log-time-ascii: yes\n'
        printf '  identity: "%s"\n  nsid: "ascii_%s"\n' "$name" "$name"
        printf '  hide-version: yes\n  refuse-any: no\n  minimal-responses: no\n'
        printf 'remote-control:\n  control-enable: yes\n'
        printf '  control-interface: "%s/nsd.ctl"\n' "$dir"
        for z in "${zones[@]}"; do
          [ "$z" = - ] && continue
          [[ $z == *. ]] || z=$z.
          file=$(_nb_zone_file "$z") || return 1
          nsd-checkzone "$z" "$file" >"$dir/checkzone.log" 2>&1 ||
            { _nb_fail "zone $z in $file: $(cat "$dir/checkzone.log")"; return 1; }
          printf 'zone:\n  name: "%s"\n  zonefile: "%s"\n  zonestats: "%%s"\n' "$z" "$file"
        done
      } >"$conf" || return 1
      nsd-checkconf "$conf" >"$dir/checkconf.log" 2>&1 ||
        { _nb_fail "nsd.conf for $name: $(cat "$dir/checkconf.log")"; return 1; }
      netbed_start_bg net "dns-$name" nsd -d -c "$conf"
      ;;
    silent)
      # Takes queries and never answers: for resolver timeout tests.
      for a in "${addrs[@]}"; do
        if _nb_is_ip6 "$a"; then
          netbed_start_bg net "dns-$name-udp-$a" socat -u "UDP6-RECV:53,bind=[$a]" /dev/null
          netbed_start_bg net "dns-$name-tcp-$a" socat -u \
            "TCP6-LISTEN:53,bind=[$a],reuseaddr,fork" /dev/null
        else
          netbed_start_bg net "dns-$name-udp-$a" socat -u "UDP4-RECV:53,bind=$a" /dev/null
          netbed_start_bg net "dns-$name-tcp-$a" socat -u \
            "TCP4-LISTEN:53,bind=$a,reuseaddr,fork" /dev/null
        fi
      done
      ;;
    *)
      _nb_fail "DNS server $name: unknown kind '$kind' (nsd or silent)"; return 1 ;;
  esac
}

# Waits until every address of DNS server NAME serves (nsd: answers over
# UDP; silent: accepts TCP).
_nb_wait_dns_server() {
  local a dir=$NB_DIR/dns/$1
  # fd 3, so that no probe can read the list.
  while read -r -u 3 a; do
    if [ -f "$dir/nsd.conf" ]; then
      netbed_wait_udp_dns net "$a" "${NB_WAIT_SECONDS:-10}" || return 1
    else
      netbed_wait_tcp net "$a" 53 "${NB_WAIT_SECONDS:-10}" || return 1
    fi
  done 3<"$dir/addresses"
}

# Adds and starts DNS server NAME of KIND (nsd or silent) called HOST on
# ADDRESSES (comma-separated) serving ZONES (comma-separated, or -), then
# waits for it; the same as one line of servers.conf, for use after netbed_up.
netbed_add_dns_server() {
  if [ $# -ne 5 ]; then
    _nb_fail "usage: netbed_add_dns_server NAME KIND HOST ADDRESSES ZONES"; return 1
  fi
  _nb_start_dns_server "$@" && _nb_wait_dns_server "$1"
}

# Prints the first IPv4 (FAMILY 4, the default) or IPv6 (6) address of DNS
# server NAME.
netbed_dns_addr() {
  local a
  if [ ! -f "${NB_DIR:-}/dns/$1/addresses" ]; then
    _nb_fail "no DNS server $1 in this test bed"; return 1
  fi
  while read -r a; do
    if [ "${2:-4}" = 6 ] && _nb_is_ip6 "$a"; then printf '%s\n' "$a"; return 0; fi
    if [ "${2:-4}" = 4 ] && ! _nb_is_ip6 "$a"; then printf '%s\n' "$a"; return 0; fi
  done <"$NB_DIR/dns/$1/addresses"
  _nb_fail "DNS server $1 has no IPv${2:-4} address"
}

# Prints how many queries nsd server NAME has received so far (all zones, or
# only ZONE when given), from nsd-control's statistics: nsd 4.6 has no
# per-query log, and counting is what tests need (e.g. "the cache answered,
# so the authoritative server saw no new query").
netbed_dns_queries() {
  local conf=${NB_DIR:-}/dns/$1/nsd.conf key out
  [ -f "$conf" ] || { _nb_fail "$1 is not an nsd server of this test bed"; return 1; }
  if [ -n "${2:-}" ]; then
    # nsd names a zone's counters after the zone with its final dot.
    key=${2%.}.
    key=$key.num.queries
  else
    key=num.queries
  fi
  out=$(nsd-control -c "$conf" stats_noreset 2>&1) || { _nb_fail "nsd-control $1: $out"; return 1; }
  awk -F= -v k="$key" '$1 == k {print $2; found = 1} END {if (!found) print 0}' <<<"$out"
}

# Makes NS's /etc/resolv.conf list ADDR... as name servers, for every
# command later run in NS through ip netns exec (nb_lan, netbed_start_bg):
# ip netns exec mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf.
# netbed_down removes the file.
netbed_resolv_conf() {
  local ns a
  if [ $# -lt 2 ]; then _nb_fail "usage: netbed_resolv_conf NS ADDR..."; return 1; fi
  if [ -z "${NB_PREFIX:-}" ]; then _nb_fail "netbed_resolv_conf: the test bed is not up"; return 1; fi
  ns=$(_nb_ns "$1")
  shift
  if ! _nb_own_namespaces | grep -qxF -- "$ns"; then
    _nb_fail "netbed_resolv_conf: $ns is not a namespace of this run"; return 1
  fi
  for a in "$@"; do _nb_check_addr "$a" || return 1; done
  mkdir -p "/etc/netns/$ns" || return 1
  {
    printf 'nameserver %s\n' "$@"
    printf 'options timeout:2 attempts:2\n'
  } >"/etc/netns/$ns/resolv.conf"
}

# Prints gw's two [[interface]] tables of gateway.toml (docs/configuration.md)
# for the bed: lan's side internal (192.0.2.1/24, 2001:db8:1::1/64) with the
# given SOCKS and DNS ports (0: none), net's side external (198.51.100.1/24,
# 2001:db8:2::1/64 and any EXTRA_ADDR/LEN given). With -4, the IPv6
# addresses are left out (and an EXTRA_ADDR must be IPv4). The caller writes
# the rest.
#   netbed_gw_interfaces [-4] SOCKS_PORT DNS_PORT [EXTRA_ADDR/LEN ...]
netbed_gw_interfaces() {
  local usage="usage: netbed_gw_interfaces [-4] SOCKS_PORT DNS_PORT [EXTRA_ADDR/LEN ...]"
  local only4=0 socks dns extra="" a lan6=', "2001:db8:1::1/64"' net6=', "2001:db8:2::1/64"'
  if [ "${1:-}" = -4 ]; then only4=1; lan6=; net6=; shift; fi
  if [ $# -lt 2 ]; then _nb_fail "$usage"; return 1; fi
  socks=$1 dns=$2
  shift 2
  for a in "$@"; do
    _nb_check_addr "${a%/*}" || return 1
    if [ "$only4" = 1 ] && _nb_is_ip6 "$a"; then
      _nb_fail "netbed_gw_interfaces -4: $a is an IPv6 address"; return 1
    fi
    extra+=", \"$a\""
  done
  cat <<TOML
[[interface]]
name = "$NB_IF_GW_LAN"
role = "internal"
addresses = ["192.0.2.1/24"$lan6]
socks_port = $socks
dns_port = $dns

[[interface]]
name = "$NB_IF_GW_NET"
role = "external"
addresses = ["198.51.100.1/24"$extra$net6]

TOML
}

# Adds another LAN on gw: namespace $NB_PREFIX-NAME (NAME: 1 to 4 of a-z
# 0-9, not lan, gw or net) joined to gw by a veth pair, $NB_PREFIX-NAME on
# its side and $NB_PREFIX-gNAME on gw's, with GW_ADDR/LEN on gw's end,
# HOST_ADDR/LEN on the other, and default routes through gw; the same for
# IPv6 when GW_ADDR6/LEN and HOST_ADDR6 are given. net gets no route to it.
# Sets NB_LAST_LAN_NS, NB_LAST_LAN_IF and NB_LAST_LAN_GW_IF; netbed_down
# removes it with the rest, and NAME works wherever NS is asked for.
#   netbed_add_lan NAME GW_ADDR/LEN HOST_ADDR [GW_ADDR6/LEN HOST_ADDR6]
netbed_add_lan() {
  local name=${1:-} gw4=${2:-} host4=${3:-} gw6=${4:-} host6=${5:-} ns lif gif a
  if [ -z "$host4" ] || { [ -n "$gw6" ] && [ -z "$host6" ]; }; then
    _nb_fail "usage: netbed_add_lan NAME GW_ADDR/LEN HOST_ADDR [GW_ADDR6/LEN HOST_ADDR6]"; return 1
  fi
  if [ -z "${NB_PREFIX:-}" ] || [ -z "${NB_DIR:-}" ]; then _nb_fail "netbed_add_lan: the test bed is not up"; return 1; fi
  if [[ ! $name =~ ^[a-z0-9]{1,4}$ ]] || [[ $name =~ ^(lan|gw|net)$ ]]; then
    _nb_fail "netbed_add_lan: NAME '$name' must be 1 to 4 of a-z 0-9, not lan, gw or net"; return 1
  fi
  for a in "${gw4%/*}" "$host4" ${gw6:+"${gw6%/*}"} ${host6:+"$host6"}; do _nb_check_addr "$a" || return 1; done
  if [[ $gw4 != */* ]] || { [ -n "$gw6" ] && [[ $gw6 != */* ]]; }; then
    _nb_fail "netbed_add_lan: GW_ADDR needs its prefix length (ADDR/LEN)"; return 1
  fi
  ns=$NB_PREFIX-$name
  lif=$NB_PREFIX-$name
  gif=$NB_PREFIX-g$name
  if [ -e "/run/netns/$ns" ]; then _nb_fail "netbed_add_lan: $ns exists"; return 1; fi
  _nb_step ip netns add "$ns" || return 1
  _nb_step ip -n "$ns" link set lo up || return 1
  _nb_step ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 \
    net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.all.accept_dad=0 \
    net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_ra=0 \
    net.ipv6.conf.default.accept_ra=0 || return 1
  _nb_step ip -n "$ns" link add "$lif" type veth peer name "$gif" netns "$NB_GW" || return 1
  _nb_step ip -n "$ns" addr add "$host4/${gw4#*/}" dev "$lif" || return 1
  _nb_step ip -n "$NB_GW" addr add "$gw4" dev "$gif" || return 1
  if [ -n "$gw6" ]; then
    _nb_step ip -n "$ns" -6 addr add "$host6/${gw6#*/}" dev "$lif" nodad || return 1
    _nb_step ip -n "$NB_GW" -6 addr add "$gw6" dev "$gif" nodad || return 1
  fi
  _nb_step ip -n "$ns" link set "$lif" up || return 1
  _nb_step ip -n "$NB_GW" link set "$gif" up || return 1
  _nb_step ip -n "$ns" route add default via "${gw4%/*}" dev "$lif" || return 1
  if [ -n "$gw6" ]; then
    _nb_step ip -n "$ns" -6 route add default via "${gw6%/*}" dev "$lif" || return 1
  fi
  NB_LAST_LAN_NS=$ns
  NB_LAST_LAN_IF=$lif
  NB_LAST_LAN_GW_IF=$gif
}

# Turns IP forwarding in gw on (as netbed_up leaves it) or off (so that lan
# reaches net only through a proxy running in gw).
netbed_forwarding() {
  local v
  case "$1" in
    on) v=1 ;;
    off) v=0 ;;
    *) _nb_fail "usage: netbed_forwarding on|off"; return 1 ;;
  esac
  ip netns exec "$NB_GW" sysctl -q -w "net.ipv4.ip_forward=$v" \
    "net.ipv6.conf.all.forwarding=$v" >/dev/null
}

# Writes the root hints (classic named.root format) for the servers of ".".
_nb_write_root_hints() {
  local dir a host found=0
  {
    printf ';       This file holds the information on root name servers needed to\n'
    printf ';       initialize cache of Internet domain name servers: here, the fake\n'
    printf ';       root of the Diode test bed (run %s), made by netbed.sh.\n;\n' "$NB_PREFIX"
    for dir in "$NB_DIR"/dns/*/; do
      if [ ! -f "$dir/nsd.conf" ] || ! grep -q '^  name: "\."$' "$dir/nsd.conf"; then
        continue
      fi
      host=$(cat "$dir/host")
      found=1
      printf '.                        3600000      NS    %s\n' "$host"
      while read -r a; do
        if _nb_is_ip6 "$a"; then
          printf '%-24s 3600000      AAAA  %s\n' "$host" "$a"
        else
          printf '%-24s 3600000      A     %s\n' "$host" "$a"
        fi
      done <"$dir/addresses"
    done
    printf '; End of file\n'
  } >"$NB_DIR/root.hints"
  [ "$found" = 1 ] || { _nb_fail "no DNS server serves the root zone \".\""; return 1; }
}

_nb_preflight() {
  local c
  # local -, EPOCHREALTIME, ${var,,}: bash 5 (Debian 12 has 5.2).
  if [ "${BASH_VERSINFO[0]}" -lt 5 ]; then
    _nb_fail "needs bash 5 or later, this is $BASH_VERSION"; return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    _nb_fail "must run as root: the test bed creates network namespaces (CI runs tests as root)"
    return 1
  fi
  for c in ip nsd nsd-checkconf nsd-checkzone nsd-control socat dig ps sysctl timeout \
           /usr/bin/python3; do
    command -v "$c" >/dev/null 2>&1 ||
      { _nb_fail "$c is missing (scripts/setup.sh installs it)"; return 1; }
  done
  if ! ip netns list >/dev/null 2>&1; then
    _nb_fail "'ip netns' does not work here: network namespaces are unavailable"
    return 1
  fi
}

# Runs one step of building the bed; on failure, says which and fails.
_nb_step() {
  "$@" || { _nb_fail "step failed: $*"; return 1; }
}

_nb_make_topology() {
  local ns
  for ns in "$NB_LAN" "$NB_GW" "$NB_NET"; do
    _nb_step ip netns add "$ns" || return 1
  done
  for ns in "$NB_LAN" "$NB_GW" "$NB_NET"; do
    _nb_step ip -n "$ns" link set lo up || return 1
    # Set before the veths exist, so that they inherit it: IPv6 on, no DAD
    # (addresses usable at once), no router advertisements taken.
    _nb_step ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 \
      net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.all.accept_dad=0 \
      net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_ra=0 \
      net.ipv6.conf.default.accept_ra=0 || return 1
  done
  # Both ends are created inside the namespaces: the host never sees them.
  _nb_step ip -n "$NB_LAN" link add "$NB_IF_LAN" type veth peer name "$NB_IF_GW_LAN" \
    netns "$NB_GW" || return 1
  _nb_step ip -n "$NB_GW" link add "$NB_IF_GW_NET" type veth peer name "$NB_IF_NET" \
    netns "$NB_NET" || return 1

  _nb_step ip -n "$NB_LAN" addr add "$NB_LAN_IP4/24" dev "$NB_IF_LAN" || return 1
  _nb_step ip -n "$NB_LAN" -6 addr add "$NB_LAN_IP6/64" dev "$NB_IF_LAN" nodad || return 1
  _nb_step ip -n "$NB_GW" addr add "$NB_GW_LAN_IP4/24" dev "$NB_IF_GW_LAN" || return 1
  _nb_step ip -n "$NB_GW" -6 addr add "$NB_GW_LAN_IP6/64" dev "$NB_IF_GW_LAN" nodad || return 1
  _nb_step ip -n "$NB_GW" addr add "$NB_GW_NET_IP4/24" dev "$NB_IF_GW_NET" || return 1
  _nb_step ip -n "$NB_GW" -6 addr add "$NB_GW_NET_IP6/64" dev "$NB_IF_GW_NET" nodad || return 1
  _nb_step ip -n "$NB_NET" addr add "$NB_NET_IP4/24" dev "$NB_IF_NET" || return 1
  _nb_step ip -n "$NB_NET" -6 addr add "$NB_NET_IP6/64" dev "$NB_IF_NET" nodad || return 1

  _nb_step ip -n "$NB_LAN" link set "$NB_IF_LAN" up || return 1
  _nb_step ip -n "$NB_GW" link set "$NB_IF_GW_LAN" up || return 1
  _nb_step ip -n "$NB_GW" link set "$NB_IF_GW_NET" up || return 1
  _nb_step ip -n "$NB_NET" link set "$NB_IF_NET" up || return 1

  _nb_step ip -n "$NB_LAN" route add default via "$NB_GW_LAN_IP4" dev "$NB_IF_LAN" || return 1
  _nb_step ip -n "$NB_LAN" -6 route add default via "$NB_GW_LAN_IP6" dev "$NB_IF_LAN" || return 1
  _nb_step ip -n "$NB_GW" route add 203.0.113.0/24 via "$NB_NET_IP4" dev "$NB_IF_GW_NET" ||
    return 1
  _nb_step ip -n "$NB_GW" -6 route add 2001:db8:3::/64 via "$NB_NET_IP6" dev "$NB_IF_GW_NET" ||
    return 1
  _nb_step ip -n "$NB_NET" route add 192.0.2.0/24 via "$NB_GW_NET_IP4" dev "$NB_IF_NET" ||
    return 1
  _nb_step ip -n "$NB_NET" -6 route add 2001:db8:1::/64 via "$NB_GW_NET_IP6" dev "$NB_IF_NET" ||
    return 1

  _nb_step netbed_forwarding on
}

_nb_start_services() {
  local files=() f name kind host addrs zones rest lineno names=() a
  read -r -a files <<<"${NB_SERVERS_FILES:-$NB_HOME/servers.conf} ${NB_EXTRA_SERVERS:-}"
  for f in "${files[@]}"; do
    [ -f "$f" ] || { _nb_fail "no server table $f"; return 1; }
    lineno=0
    # fd 3, so that nothing started from the loop reads the table.
    while read -r -u 3 name kind host addrs zones rest || [ -n "$name" ]; do
      lineno=$((lineno + 1))
      [[ -z $name || $name == \#* ]] && continue
      if [ -z "$zones" ] || [ -n "$rest" ]; then
        _nb_fail "$f:$lineno: expected 5 columns: name kind host addresses zones"; return 1
      fi
      _nb_start_dns_server "$name" "$kind" "$host" "$addrs" "$zones" ||
        { _nb_fail "$f:$lineno: cannot start DNS server $name"; return 1; }
      names+=("$name")
    done 3<"$f"
  done
  _nb_write_root_hints || return 1

  mkdir -p "$NB_DIR/www" && cp -R "$NB_HOME/www/." "$NB_DIR/www/" || return 1
  for a in "$NB_WEB_IP4" "$NB_WEB_IP6" "$NB_ECHO_IP4" "$NB_ECHO_IP6" "$NB_SINK_IP4" \
           "$NB_SINK_IP6"; do
    netbed_add_address "$a" || return 1
  done
  netbed_start_bg net web4 /usr/bin/python3 -u -m http.server "$NB_WEB_PORT" \
    --bind "$NB_WEB_IP4" --directory "$NB_DIR/www"
  netbed_start_bg net web6 /usr/bin/python3 -u -m http.server "$NB_WEB_PORT" \
    --bind "$NB_WEB_IP6" --directory "$NB_DIR/www"
  netbed_start_bg net echo-tcp4 socat "TCP4-LISTEN:$NB_ECHO_PORT,bind=$NB_ECHO_IP4,reuseaddr,fork" PIPE
  netbed_start_bg net echo-tcp6 socat "TCP6-LISTEN:$NB_ECHO_PORT,bind=[$NB_ECHO_IP6],reuseaddr,fork" PIPE
  netbed_start_bg net echo-udp4 socat "UDP4-RECVFROM:$NB_ECHO_PORT,bind=$NB_ECHO_IP4,fork" PIPE
  netbed_start_bg net echo-udp6 socat "UDP6-RECVFROM:$NB_ECHO_PORT,bind=[$NB_ECHO_IP6],fork" PIPE
  netbed_start_bg net sink-tcp4 socat -u "TCP4-LISTEN:$NB_SINK_PORT,bind=$NB_SINK_IP4,reuseaddr,fork" /dev/null
  netbed_start_bg net sink-tcp6 socat -u "TCP6-LISTEN:$NB_SINK_PORT,bind=[$NB_SINK_IP6],reuseaddr,fork" /dev/null
  netbed_start_bg net sink-udp4 socat -u "UDP4-RECV:$NB_SINK_PORT,bind=$NB_SINK_IP4" /dev/null
  netbed_start_bg net sink-udp6 socat -u "UDP6-RECV:$NB_SINK_PORT,bind=[$NB_SINK_IP6]" /dev/null

  # Readiness, checked from net itself so that a routing fault shows up in
  # the test, not here.
  local wait=${NB_WAIT_SECONDS:-10}
  for name in "${names[@]}"; do _nb_wait_dns_server "$name" || return 1; done
  for a in "$NB_WEB_IP4:$NB_WEB_PORT" "$NB_WEB_IP6:$NB_WEB_PORT" \
           "$NB_ECHO_IP4:$NB_ECHO_PORT" "$NB_ECHO_IP6:$NB_ECHO_PORT" \
           "$NB_SINK_IP4:$NB_SINK_PORT" "$NB_SINK_IP6:$NB_SINK_PORT"; do
    netbed_wait_tcp net "${a%:*}" "${a##*:}" "$wait" || return 1
  done
  _nb_wait_udp_echo net "$NB_ECHO_IP4" "$NB_ECHO_PORT" "$wait" &&
  _nb_wait_udp_echo net "$NB_ECHO_IP6" "$NB_ECHO_PORT" "$wait"
}

# Builds the whole test bed and exports its names (NB_PREFIX, NB_LAN, NB_GW,
# NB_NET, NB_DIR, NB_ROOT_HINTS, ...). Unless NB_NO_TRAP=1, installs
# netbed_down as the EXIT, INT and TERM trap (replacing the caller's); with
# NB_WATCHDOG_SECONDS=N, sends the caller TERM after N seconds.
netbed_up() {
  if [ -n "${NB_DIR:-}" ] && [ -d "$NB_DIR" ]; then
    _nb_fail "already up (run $NB_PREFIX)"; return 1
  fi
  _nb_preflight || return 1
  local i v
  for ((i = 0; i < 5; i++)); do
    NB_PREFIX=dnb$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    [ -z "$(_nb_own_namespaces)" ] && break
  done
  NB_LAN=$NB_PREFIX-lan
  NB_GW=$NB_PREFIX-gw
  NB_NET=$NB_PREFIX-net
  # Interface names: at most 15 characters (dnb + 6 hex + 5).
  NB_IF_LAN=$NB_PREFIX-lan0
  NB_IF_GW_LAN=$NB_PREFIX-gwl
  NB_IF_GW_NET=$NB_PREFIX-gwn
  NB_IF_NET=$NB_PREFIX-net0
  NB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/$NB_PREFIX.XXXXXX") || { _nb_fail "mktemp failed"; return 1; }
  NB_ROOT_HINTS=$NB_DIR/root.hints
  NB_WWW_DIR=$NB_DIR/www
  : >"$NB_DIR/pids"
  export NB_HOME NB_PREFIX NB_LAN NB_GW NB_NET NB_IF_LAN NB_IF_GW_LAN NB_IF_GW_NET NB_IF_NET \
    NB_DIR NB_ROOT_HINTS NB_WWW_DIR NB_LAN_IP4 NB_LAN_IP6 NB_GW_LAN_IP4 NB_GW_LAN_IP6 \
    NB_GW_NET_IP4 NB_GW_NET_IP6 NB_NET_IP4 NB_NET_IP6 NB_WEB_IP4 NB_WEB_IP6 NB_WEB_PORT \
    NB_ECHO_IP4 NB_ECHO_IP6 NB_ECHO_PORT NB_SINK_IP4 NB_SINK_IP6 NB_SINK_PORT
  export -f nb_lan nb_gw nb_net
  if [ "${NB_NO_TRAP:-0}" != 1 ]; then
    trap _nb_exit_trap EXIT
    trap '_nb_signal_trap 130' INT
    trap '_nb_signal_trap 143' TERM
  fi
  # A test killed from outside (ctest's TIMEOUT) gets no chance to clean up;
  # the watchdog stops it first, through the TERM trap.
  # Not for a bed left up by hand (NB_NO_TRAP=1): nothing would be there to
  # stop. It signals the test only if that is still the same process.
  if [ "${NB_WATCHDOG_SECONDS:-0}" -gt 0 ] && [ "${NB_NO_TRAP:-0}" != 1 ]; then
    (
      _nb_proc_id $$ || exit 0
      me=$_nb_id
      sleep "$NB_WATCHDOG_SECONDS"
      _nb_proc_id $$ && [ "$_nb_id" = "$me" ] || exit 0
      _nb_log "watchdog: ${NB_WATCHDOG_SECONDS}s have passed, stopping the test"
      kill -TERM $$
    ) </dev/null >/dev/null &
    printf '%s watchdog host\n' "$!" >>"$NB_DIR/pids"
  fi
  {
    for v in NB_HOME NB_PREFIX NB_LAN NB_GW NB_NET NB_IF_LAN NB_IF_GW_LAN NB_IF_GW_NET NB_IF_NET \
             NB_DIR NB_ROOT_HINTS NB_WWW_DIR; do
      printf 'export %s=%q\n' "$v" "${!v}"
    done
  } >"$NB_DIR/env"
  _nb_make_topology || { _nb_fail "building the namespaces of $NB_PREFIX failed"; return 1; }
  _nb_start_services || { _nb_fail "starting the servers of $NB_PREFIX failed (logs in $NB_DIR)"; return 1; }
  _nb_log "up: run $NB_PREFIX, namespaces $NB_LAN $NB_GW $NB_NET, state in $NB_DIR"
}

# Stops every recorded process and everything left in this run's namespaces,
# deletes the links and namespaces and removes $NB_DIR (kept if
# NB_KEEP_DIR=1). Idempotent; safe under set -e. Fails if anything survived.
netbed_down() {
  local - pids ns left=0 i
  set +eu
  [ -n "$NB_PREFIX" ] || return 0
  if [ -n "$NB_DIR" ] && [ -f "$NB_DIR/pids" ]; then
    pids=$(awk '{print $1}' "$NB_DIR/pids" | tr '\n' ' ')
    # shellcheck disable=SC2086  # a list of PIDs
    _nb_kill_trees $pids
  fi
  # Last resort: whatever still runs inside our own namespaces.
  for ns in $(_nb_own_namespaces); do
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    # shellcheck disable=SC2086  # a list of PIDs
    [ -n "$pids" ] && _nb_kill_trees $pids
  done
  for ns in $(_nb_own_namespaces); do
    for ((i = 0; i < 20; i++)); do
      [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
      sleep 0.1
    done
    # Deleting one end of a veth pair deletes both, at once rather than
    # whenever the namespace is finally freed.
    ip -n "$ns" -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 |
      while read -r link; do ip -n "$ns" link del "$link" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  # Files of netbed_resolv_conf; only this run's exact names.
  for ns in /etc/netns/"$NB_PREFIX"-*; do
    [[ $ns =~ ^/etc/netns/${NB_PREFIX}-[a-z0-9]{1,4}$ ]] && [ -d "$ns" ] && rm -rf -- "$ns"
  done
  # /etc/netns itself stays: another run may be using it.
  if [ -n "$(_nb_own_namespaces)" ]; then
    _nb_log "error: namespaces left behind: $(_nb_own_namespaces | tr '\n' ' ')"
    left=1
  fi
  if [ -n "$NB_DIR" ] && [ -d "$NB_DIR" ] && [ "${NB_KEEP_DIR:-0}" != 1 ]; then
    case "$NB_DIR" in
      */dnb*) rm -rf -- "$NB_DIR" ;;
    esac
  fi
  return "$left"
}

# The standalone entry for exploring by hand.
_nb_main() {
  set -u
  case "${1:-}" in
    up)
      NB_NO_TRAP=1
      if ! netbed_up; then _nb_log_tails; netbed_down; exit 1; fi
      printf 'Test bed %s is up. Use it with:\n' "$NB_PREFIX"
      printf '  source %s/netbed.sh; source %s/env\n' "$NB_HOME" "$NB_DIR"
      printf '  nb_lan dig @%s . SOA\n' "$(netbed_dns_addr root)"
      printf '  ip netns exec %s bash\n' "$NB_LAN"
      printf 'Tear it down with:\n  %s/netbed.sh down %s\n' "$NB_HOME" "$NB_DIR"
      ;;
    down)
      local dir=${2:-}
      if [ -z "$dir" ] || [ ! -f "$dir/env" ]; then
        printf 'usage: %s down DIR   (DIR: the state folder that "up" printed)\n' "$0" >&2
        exit 2
      fi
      # shellcheck disable=SC1091  # written by netbed_up
      source "$dir/env"
      netbed_down
      ;;
    list)
      ip netns list | awk '{print $1}' | grep -E '^dnb[0-9a-f]{6}-[a-z0-9]{1,4}$' || true
      ;;
    *)
      printf 'usage: %s up | down DIR | list\n' "$0" >&2
      exit 2
      ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  _nb_main "$@"
fi
