#!/usr/bin/env python3
"""A long-lived SOCKS5 session for the appliance test: connects through the
relay (PySocks) to an echo server and exchanges one line every 50 ms, printing
`round N` after each echoed line, until STOPFILE exists (exit 0), the relay
or the server ends the session (`eof`, exit 2), an echo is wrong or fails
(`error ...`, exit 1), or MAX_SECONDS pass (exit 3).

usage: gateway_holder.py PROXY_HOST PROXY_PORT DST_HOST DST_PORT STOPFILE MAX_SECONDS
"""
import os
import sys
import time

import socks

proxy_host, proxy_port, dst_host, dst_port, stopfile, max_seconds = sys.argv[1:7]
s = socks.socksocket()
s.set_proxy(socks.SOCKS5, proxy_host, int(proxy_port), rdns=True)
s.settimeout(10)
try:
    s.connect((dst_host, int(dst_port)))
except Exception as e:  # noqa: BLE001 - report whatever the relay said
    print(f"error connect {e}", flush=True)
    sys.exit(1)
print("connected", flush=True)
deadline = time.monotonic() + float(max_seconds)
n = 0
while time.monotonic() < deadline:
    if os.path.exists(stopfile):
        print("stopped", flush=True)
        sys.exit(0)
    line = f"line {n}\n".encode()
    try:
        s.sendall(line)
        got = b""
        while len(got) < len(line):
            chunk = s.recv(len(line) - len(got))
            if not chunk:
                print("eof", flush=True)
                sys.exit(2)
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        print("eof", flush=True)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001
        print(f"error {e}", flush=True)
        sys.exit(1)
    if got != line:
        print(f"error echoed {got!r} for {line!r}", flush=True)
        sys.exit(1)
    n += 1
    print(f"round {n}", flush=True)
    time.sleep(0.05)
print("timeout", flush=True)
sys.exit(3)
