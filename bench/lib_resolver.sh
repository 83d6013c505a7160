# shellcheck shell=bash
# Sourced (not run) by bench/dns.sh and bench/dnssec.sh, which both run one
# resolver at a time in the test bed's gw namespace and load it from lan:
# the test bed (tests/netbed/netbed.sh, sourced here), its start, and the
# wait for a resolver to listen.

# shellcheck source=tests/netbed/netbed.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/netbed/netbed.sh"

# bench_netbed_up: netbed_up (the caller exports its NB_* settings first),
# then the bed's cleanup as the EXIT, INT and TERM traps.
bench_netbed_up() {
  # A reader that goes away (bash bench/dns.sh | head) must not kill the
  # script by SIGPIPE, which runs no trap and would leave the bed up: ignored,
  # a failed write is an error like any other, and the EXIT trap cleans up.
  trap '' PIPE
  netbed_up
  # The bed's own traps, run without set -e: under it, one failed write to a
  # closed stderr (2>&1 | head) inside them stops the cleanup half-way.
  trap 'rc=$?; set +e; (exit "$rc"); _nb_exit_trap' EXIT
  trap 'set +e; _nb_signal_trap 130' INT
  trap 'set +e; _nb_signal_trap 143' TERM
}

# bench_wait_resolver ME R NAME PID ADDR: waits, at most 10 s, until resolver
# R, started in gw by netbed_start_bg as NAME with PID, listens on ADDR:53
# over UDP, without sending it a query (a query would go upstream and spoil
# a cold count). Fails, with a message that starts "ME:", if it exits first
# (its log follows), if it does not listen in time, or if PID is not the
# resolver itself: ip netns exec and taskset exec it, so that PID is the one
# whose CPU time the benchmarks read, and a wrapper there is a bug.
bench_wait_resolver() {
  local me=$1 r=$2 name=$3 pid=$4 addr=$5 i
  for ((i = 0; i < 100; i++)); do
    if ! netbed_alive "$name"; then
      echo "$me: $r exited at start; its log:" >&2
      cat "$NB_DIR/$name.log" >&2
      return 1
    fi
    if nb_gw ss -Hlun "sport = :53" | awk '{print $4}' | grep -qx "$addr:53"; then
      case "$(cat "/proc/$pid/comm")" in
        ip | taskset) echo "$me: PID $pid is a wrapper, not $r" >&2; return 1 ;;
      esac
      return 0
    fi
    sleep 0.1
  done
  echo "$me: $r does not listen on $addr:53 after 10 s" >&2
  return 1
}
