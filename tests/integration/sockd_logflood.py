"""A flood of denied requests writes a bounded number of session lines: at
most 10 a second of each kind (platform::LogRateLimiter), and the rest are
counted in event=log_suppressed lines, so that nothing is lost from the
totals. Waits on the log (the counts adding up), never on a sleep."""
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import Sockd, check, finish, gateway_toml, recv_exact  # noqa: E402

FLOOD = 300
sockd = Sockd(gateway_toml(), files={"sockd.conf": "deny 0.0.0.0 0.0.0.0\n"})


def denied_request():
    """One SOCKS5 CONNECT that the rules deny; returns REP."""
    s = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
    try:
        s.sendall(b"\x05\x01\x00")
        if recv_exact(s, 2) != b"\x05\x00":
            return None
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", 9))
        head = recv_exact(s, 4)
        return head[1] if len(head) == 4 else None
    finally:
        s.close()


def counts():
    denied = [l for l in sockd.log_lines("refused") if "verdict=deny" in l]
    suppressed = 0
    for l in sockd.log_lines("log_suppressed"):
        if "what=session_denied" in l:
            m = re.search(r" count=(\d+)", l)
            suppressed += int(m.group(1)) if m else 0
    return len(denied), suppressed


try:
    t0 = time.time()
    reps = [denied_request() for _ in range(FLOOD)]
    elapsed = time.time() - t0
    check(all(r == 2 for r in reps), "every flooded request is denied with REP 2")
    # The suppressed count of the last window is written once that window is
    # over (sockd flushes every 50 ms): wait until the counts add up.
    deadline = time.time() + 10
    lines, suppressed = counts()
    while time.time() < deadline and lines + suppressed < FLOOD:
        time.sleep(0.05)
        lines, suppressed = counts()
    check(lines + suppressed == FLOOD,
          "lines written plus lines suppressed = %d requests (%d + %d)" % (FLOOD, lines, suppressed))
    windows = int(elapsed) + 2  # one-second windows the flood can have touched
    check(lines <= 10 * windows,
          "at most 10 denial lines a second (%d lines in %.1f s)" % (lines, elapsed))
    check(suppressed > 0, "the rest were counted, not written (%d)" % suppressed)
    check(all("event=log_suppressed what=session_denied count=" in l
              for l in sockd.log_lines("log_suppressed")), "log_suppressed names the kind")
finally:
    rc = sockd.stop()
check(rc == 0, "sockd exits 0")
finish()
