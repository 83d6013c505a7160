"""sockd when descriptors run out: accept() fails with EMFILE, sockd logs it,
counts it and backs off (100 ms) instead of spinning, and serves again once
descriptors are free; the total session limit."""
import os
import resource
import socket
import subprocess
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

# The soft limit is lowered between fork and exec (the hard one stays): once
# sockd has dropped root to another user, changing its limits from here
# needs CAP_SYS_RESOURCE, which root in a container may lack. Raising it
# again is done as sockd's own user, which may raise a soft limit up to the
# hard one.
HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, HARD))


def give_descriptors_back(pid):
    import pwd
    st = os.stat("/proc/%d" % pid)
    user = pwd.getpwuid(st.st_uid).pw_name
    code = "import resource; resource.prlimit(%d, resource.RLIMIT_NOFILE, (%d, %d))" % (pid, HARD, HARD)
    r = subprocess.run([sys.executable, "-c", code], user=user, group=st.st_gid, extra_groups=[], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, "the descriptor limit raised again as sockd's user (%s)" % r.stderr.strip())


sockd = Sockd(gateway_toml(sockd_extra='handshake_timeout = "30s"'),
              files={"sockd.conf": conf}, extra_args=["--threads", "1"], preexec_fn=low_nofile)
try:
    # One whole session first, while descriptors are plenty: in a sanitizer
    # build, UBSan checks each polymorphic type the first time it meets it
    # (a session's shared state among them) by probing memory through a pipe,
    # which with no descriptor left fails and reads as a bad vptr.
    s, rep = socks5_connect(sockd.port, "127.0.0.1", echo.port)
    s.sendall(b"warm")
    check(rep == 0 and recv_exact(s, 4) == b"warm", "a session before descriptors run out")
    s.close()
    check(sockd.wait_log("event=terminated"), "and it has ended")
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
    give_descriptors_back(sockd.proc.pid)
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
