"""sockd's I/O paths ([sockd] io, docs/sockd.md "I/O paths"): `uring` runs
the sessions on io_uring (the start line says so and the process holds one
io_uring descriptor per relay thread), `epoll` holds none, and `auto`
falls back to epoll when the kernel refuses io_uring: here a seccomp filter
fails io_uring_setup(2) with EPERM, as a container's default profile does.
Forced `uring` is then an error at start. Each path relays a session, and
on the ring a session that needs the Asio path (a name to resolve) is
handed over and relayed too."""
import ctypes
import errno
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (DnsServer, EchoServer, Sockd, check, finish, gateway_toml,  # noqa: E402
                           recv_exact, socks5_connect, temp_dir)

echo = EchoServer()
dns = DnsServer({"echo.test": ["127.0.0.1"]})
conf = "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255\n"
THREADS = 2  # gateway_toml's [sockd] threads

# --- the seccomp filter: io_uring_setup (425 on every Linux architecture,
# the generic table and x86's alike) fails with EPERM, everything else runs.
# Built before the fork: the child only makes two prctl calls.
LIBC = ctypes.CDLL(None, use_errno=True)
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x00050000, 0x7FFF0000
FILTER = [
    (BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    (BPF_JEQ_K, 0, 1, 425),
    (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
    (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
]
FILTER_BYTES = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in FILTER))


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


PROG = SockFprog(len(FILTER), ctypes.addressof(FILTER_BYTES))


def deny_io_uring():
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(PROG), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


def anon_fds(pid, kind):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[%s]" % kind:
                n += 1
        except OSError:
            pass
    return n


def io_uring_fds(pid):
    return anon_fds(pid, "io_uring")


def wait_anon_fds(pid, kind, n, timeout=5.0):
    """The loops are made by their threads just after the start line: poll (bounded)."""
    deadline = time.time() + timeout
    while time.time() < deadline and anon_fds(pid, kind) != n:
        time.sleep(0.05)
    return anon_fds(pid, kind)


def wait_io_uring_fds(pid, n, timeout=5.0):
    """The rings are made by their threads just after the start line: poll (bounded)."""
    deadline = time.time() + timeout
    while time.time() < deadline and io_uring_fds(pid) != n:
        time.sleep(0.05)
    return io_uring_fds(pid)


def relays(sockd, what):
    ok = False
    try:
        s, rep = socks5_connect(sockd.port, "127.0.0.1", echo.port)
        s.sendall(b"ping through " + what.encode())
        ok = rep == 0 and recv_exact(s, 13 + len(what)) == b"ping through " + what.encode()
        s.close()
    except (OSError, RuntimeError) as e:
        print("  (%s: %s)" % (what, e))
    check(ok, "%s: a CONNECT is relayed" % what)
    check(sockd.wait_log("event=terminated"), "%s: and logged when it ends" % what)


class BannerServer(EchoServer):
    """Speaks first, as an SMTP or SSH server does: a banner the moment it
    accepts, before the client has sent anything; then echoes."""
    BANNER = b"220 banner.test ready\r\n"

    @staticmethod
    def _echo(c):
        try:
            c.sendall(BannerServer.BANNER)
        except OSError:
            c.close()
            return
        EchoServer._echo(c)


banner = BannerServer()


def relays_banner(sockd, what):
    """A target that speaks first: its banner reaches the client with no byte
    sent by the client after its request (on the ring, the target's receive
    is armed to wait for data first: what came before must not be missed)."""
    ok = False
    try:
        for _ in range(3):
            s, rep = socks5_connect(sockd.port, "127.0.0.1", banner.port)
            ok = rep == 0 and recv_exact(s, len(BannerServer.BANNER)) == BannerServer.BANNER
            s.sendall(b"EHLO")
            ok = ok and recv_exact(s, 4) == b"EHLO"
            s.close()
            if not ok:
                break
    except (OSError, RuntimeError) as e:
        print("  (%s: %s)" % (what, e))
        ok = False
    check(ok, "%s: a target that speaks first is heard before the client says anything" % what)


def relays_name(sockd, what):
    """SOCKS5 with a domain name: resolved by the Asio path (on the ring: handed over)."""
    ok = False
    try:
        import socket
        s = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
        name = b"echo.test"
        # Greeting, request and the first bytes for the target pipelined (the
        # ring feeds them from one read and hands the rest over), and more
        # bytes at once, before any reply (on the ring they may arrive while
        # its read is being cancelled: they go over too).
        s.sendall(b"\x05\x01\x00" + b"\x05\x01\x00\x03" + bytes([len(name)]) + name +
                  struct.pack("!H", echo.port) + b"early, ")
        s.sendall(b"then ")
        ok = recv_exact(s, 2) == b"\x05\x00" and recv_exact(s, 10)[1] == 0
        s.sendall(b"by name")
        ok = ok and recv_exact(s, 19) == b"early, then by name"
        s.close()
    except (OSError, RuntimeError, IndexError) as e:
        print("  (%s: %s)" % (what, e))
    check(ok, "%s: a CONNECT to a name (greeting, request and data pipelined) is relayed, "
          "every byte in order" % what)


def toml(io):
    return gateway_toml(dns.port, sockd_extra='io = "%s"' % io)


def stats(ctl):
    p = subprocess.run([os.environ.get("SOCKD", "sockd"), "--control", ctl, "stats"],
                       capture_output=True, text=True, timeout=20)
    return dict(kv.split("=", 1) for kv in p.stdout.split()) if p.returncode == 0 else {}


def wait_stats(ctl, want, timeout=5.0):
    """The control socket's counters, polled (bounded) until they say `want`."""
    deadline = time.time() + timeout
    got = stats(ctl)
    while time.time() < deadline and any(got.get(k) != v for k, v in want.items()):
        time.sleep(0.05)
        got = stats(ctl)
    return {k: got.get(k) for k in want}


def gone_before_accept(sockd, ctl, what):
    """A client that connects, sends its greeting and resets while sockd is
    stopped (SIGSTOP): accepted after SIGCONT, reset already. Its address is
    still there (the single-shot accept brings it; on the multishot accept
    the socket command reads it, as getsockopt(SO_PEERNAME) does of a reset
    socket), its handshake ends on the reset and is counted as incomplete,
    and sockd serves on."""
    before = stats(ctl)
    os.kill(sockd.proc.pid, signal.SIGSTOP)
    try:
        c = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
        c.sendall(b"\x05\x01\x00")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # a reset
    finally:
        os.kill(sockd.proc.pid, signal.SIGCONT)
    want = {"sessions_total": str(int(before.get("sessions_total", "0")) + 1),
            "incomplete": str(int(before.get("incomplete", "0")) + 1),
            "sessions_open": "0"}
    got = wait_stats(ctl, want)
    check(got == want, "%s: a client reset before its accept is counted, as incomplete: %s"
          % (what, got))
    check("Sanitizer" not in sockd.log() and "runtime error" not in sockd.log(),
          "%s: no sanitizer finding" % what)
    relays(sockd, what + ", after it")


def sessions(sockd, what, ctl=None):
    """The sessions every path must relay; with the control socket `ctl`,
    also the client reset before its accept."""
    relays(sockd, what)
    relays_banner(sockd, what)
    relays_name(sockd, what)
    if ctl is not None:
        gone_before_accept(sockd, ctl, what)


def kernel_at_least(major, minor):
    nums = [int(x) for x in platform.release().split("-")[0].split(".")[:2]]
    return (nums[0], nums[1]) >= (major, minor)


# The ring's accept: multishot, each client's address then read by a socket
# command, where the kernel runs those (Linux 6.7); else a single-shot
# accept per session, which brings the address. The start line says which;
# DIODE_URING_NO_SOCKET_CMD=1 makes sockd take the kernel for an older one.
ACCEPT = "multishot" if kernel_at_least(6, 7) else "single"
ctl_dir = temp_dir("sockd-io-ctl-")

# --- io = "uring": the ring
ctl = os.path.join(ctl_dir, "uring")
sockd = Sockd(toml("uring"), files={"sockd.conf": conf}, extra_args=["--control", ctl])
try:
    check(sockd.wait_log("event=io path=uring"), "uring: the start line names the ring path")
    check(sockd.wait_log("accept=%s" % ACCEPT),
          "uring: its accept is %s on Linux %s" % (ACCEPT, platform.release()))
    found = wait_io_uring_fds(sockd.proc.pid, THREADS)
    check(found == THREADS, "uring: one io_uring descriptor per thread (%d)" % found)
    # Asio's own reactors (one per io_context, which serve what the ring hands over).
    epolls_beside_ring = anon_fds(sockd.proc.pid, "eventpoll")
    sessions(sockd, "uring", ctl)
finally:
    check(sockd.stop() == 0, "uring: sockd exits 0")

# --- the ring with single-shot accepts, as on a kernel without socket commands
ctl = os.path.join(ctl_dir, "single")
sockd = Sockd(toml("uring"), files={"sockd.conf": conf}, extra_args=["--control", ctl],
              env=dict(os.environ, DIODE_URING_NO_SOCKET_CMD="1"))
try:
    check(sockd.wait_log("event=io path=uring") and sockd.wait_log("accept=single"),
          "DIODE_URING_NO_SOCKET_CMD=1: the ring, with single-shot accepts")
    sessions(sockd, "single accepts", ctl)
finally:
    check(sockd.stop() == 0, "single accepts: sockd exits 0")

# --- io = "epoll": no ring at all
sockd = Sockd(toml("epoll"), files={"sockd.conf": conf})
try:
    check(sockd.wait_log("event=io path=epoll reason=configured"), "epoll: the start line names epoll")
    check(io_uring_fds(sockd.proc.pid) == 0, "epoll: no io_uring descriptor")
    # Each thread's epoll session loop has an epoll instance of its own,
    # beside the Asio reactors the ring path has too.
    found = wait_anon_fds(sockd.proc.pid, "eventpoll", epolls_beside_ring + THREADS)
    check(found == epolls_beside_ring + THREADS,
          "epoll: one epoll loop per thread besides Asio's reactors (%d, ring path %d)"
          % (found, epolls_beside_ring))
    sessions(sockd, "epoll")
    check("accept=" not in sockd.log(), "epoll: the start line names no ring accept")
finally:
    check(sockd.stop() == 0, "epoll: sockd exits 0")

# --- io = "auto" where io_uring is allowed: the ring (CI's kernel allows it;
# kernel.io_uring_disabled, where it exists, says whether this one does).
disabled = "0"
if os.path.exists("/proc/sys/kernel/io_uring_disabled"):
    with open("/proc/sys/kernel/io_uring_disabled") as f:
        disabled = f.read().strip()
check(disabled == "0", "this kernel allows io_uring (kernel.io_uring_disabled = %s)" % disabled)
sockd = Sockd(toml("auto"), files={"sockd.conf": conf})
try:
    check(sockd.wait_log('event=io path=uring reason="io_uring available"'),
          "auto: the ring where the kernel allows it")
finally:
    check(sockd.stop() == 0, "auto: sockd exits 0")

# --- io = "auto" with io_uring refused: epoll, and the reason
sockd = Sockd(toml("auto"), files={"sockd.conf": conf}, preexec_fn=deny_io_uring)
try:
    check(sockd.wait_log('event=io path=epoll reason="io_uring_setup: Operation not permitted"'),
          "auto under seccomp: epoll, with the kernel's refusal as the reason")
    check(io_uring_fds(sockd.proc.pid) == 0, "auto under seccomp: no io_uring descriptor")
    relays(sockd, "auto under seccomp")
finally:
    check(sockd.stop() == 0, "auto under seccomp: sockd exits 0")

# --- io = "uring" with io_uring refused: a clear error at start, exit 1
try:
    sockd = Sockd(toml("uring"), files={"sockd.conf": conf}, preexec_fn=deny_io_uring)
    try:
        rc = sockd.proc.wait(timeout=10)
    except Exception:
        rc = None
    log = sockd.log()
    sockd.stop()
except RuntimeError as e:  # gone before its port file was written
    log, rc = str(e), 1
check(rc == 1, "uring under seccomp: sockd exits 1 (%s)" % rc)
check("event=io_error path=uring" in log and "Operation not permitted" in log,
      "uring under seccomp: the error says why")

echo.stop()
banner.stop()
dns.stop()
finish()
