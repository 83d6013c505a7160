"""sockd when descriptors run out: accept() fails with EMFILE, sockd logs it,
counts it and backs off (100 ms) instead of spinning, and serves again once
descriptors are free; the total session limit."""
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (EchoServer, Sockd, check, finish, gateway_toml,  # noqa: E402
                           recv_all, recv_exact, socks5_connect)

NOFILE = 48
echo = EchoServer()
conf = "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255\n"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The same in a sanitizer build: ASan/UBSan need descriptors themselves
# (GCC's UBSan probes memory through a pipe for its vptr check, and with no
# descriptor left that probe fails and reads as a bad vptr), so descriptors
# are given back by raising the limit again before the held connections
# close, never leaving sockd's sessions to run with none to spare.

# Sockd() starts the process itself; lower its limit with prlimit once it runs.
sockd = Sockd(gateway_toml(sockd_extra='handshake_timeout = "30s"'),
              files={"sockd.conf": conf}, extra_args=["--threads", "1"])
try:
    # Only the soft limit: raising it again needs no privilege.
    limits = resource.prlimit(sockd.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(sockd.proc.pid, resource.RLIMIT_NOFILE, (NOFILE, limits[1]))
    held = []
    for _ in range(NOFILE + 10):  # more than sockd has descriptors for (bounded)
        try:
            held.append(socket.create_connection(("127.0.0.1", sockd.port), timeout=2))
        except OSError:
            break
    check(sockd.wait_log("event=accept_error", timeout=5), "EMFILE on accept is logged")
    before = cpu_seconds(sockd.proc.pid)
    time.sleep(1.5)
    used = cpu_seconds(sockd.proc.pid) - before
    check(used < 0.3, "no busy loop while descriptors are out (%.2fs of CPU in 1.5s)" % used)
    line = [l for l in sockd.log_lines("accept_error")][-1]
    check("count=" in line and "error=" in line, "the line carries the error and a count")
    resource.prlimit(sockd.proc.pid, resource.RLIMIT_NOFILE, limits)  # descriptors again
    ok = False  # the next accept after the 100 ms back-off works: retry, bounded
    deadline = time.time() + 5
    while not ok and time.time() < deadline:
        try:
            s, rep = socks5_connect(sockd.port, "127.0.0.1", echo.port)
            s.sendall(b"again")
            ok = rep == 0 and recv_exact(s, 5) == b"again"
            s.close()
        except (OSError, RuntimeError):
            time.sleep(0.2)
    check(ok, "once descriptors are free, sockd serves again")
    for s in held:
        s.close()
finally:
    rc = sockd.stop()
check(rc == 0, "sockd exits 0")
check("runtime error" not in sockd.log() and "Sanitizer" not in sockd.log(),
      "no sanitizer finding in sockd's output")

# The total session limit (max_sessions = 3), across both threads.
sockd = Sockd(gateway_toml(sockd_extra='max_sessions = 3\nmax_sessions_per_client = 3\nhandshake_timeout = "30s"'),
              files={"sockd.conf": conf})
try:
    conns = [socket.create_connection(("127.0.0.1", sockd.port), timeout=5) for _ in range(3)]
    for c in conns:  # a method selection back means the session was admitted
        c.sendall(b"\x05\x01\x00")
        check(recv_exact(c, 2) == b"\x05\x00", "session admitted")
    extra = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
    t0 = time.time()
    check(recv_all(extra) == b"" and time.time() - t0 < 3, "the fourth session is closed at once")
    check(sockd.wait_log('reason="session limit"'), "and logged as the session limit")
    extra.close()
    for c in conns:
        c.close()
finally:
    rc = sockd.stop()
    echo.stop()
check(rc == 0, "sockd exits 0")
finish()
