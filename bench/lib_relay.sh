# shellcheck shell=bash
# Sourced (not run) by bench/sockd_cost.sh and bench/socks_syscalls.sh, which
# both drive a relay on 127.0.0.1 with bench/socks_load: the list of the
# processes they start and its cleanup, a free loopback port, and
# socks_load's target servers. Expects $load (the socks_load binary) and $out
# (the output folder, absolute) to be set.

# Every process started here or by the caller goes into pids; on exit each is
# stopped by its PID and reaped.
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# Prints a TCP port on 127.0.0.1 that nothing holds at the moment.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts socks_load's target servers (for an hour at most) and waits, at most
# 10 s, for the ports they listen on; sets echo, echo_close, sink and source.
serve_targets() {
  # shellcheck disable=SC2154  # load and out: set by the caller
  "$load" serve --port-file "$out/ports" --seconds 3600 >"$out/serve.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$out/ports" ] && break; sleep 0.1; done
  [ -s "$out/ports" ] || { echo "socks_load serve did not start" >&2; exit 1; }
  eval "$(cat "$out/ports")"   # echo= echo_close= sink= source=
  rm -f "$out/ports"
}
