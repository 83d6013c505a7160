"""The process contract, for sockd and diode-resolver started as root on
loopback: they drop to the unprivileged user (Uid/Gid of diode, every
capability set empty, NoNewPrivs) before serving and still serve; sockets
handed down the systemd way keep their names (an inherited `socks.ifx` is
decided by an `iface=ifx` rule, a `control` socket serves the resolver's
commands, a socket of another purpose is closed with a log line); sd_notify
reports READY, RELOADING, STOPPING; SIGHUP re-reads gateway.toml, all or
nothing; --version names the project's version. Every wait is on an event
(a log line, a datagram, a port) and bounded."""
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (DAEMON_USER, HttpServer, Sockd, check, curl, finish,  # noqa: E402
                           gateway_toml, temp_dir)

SOCKD = os.environ["SOCKD"]
RESOLVER = os.environ["RESOLVER"]
if os.geteuid() != 0:
    print("FAIL - this test runs the daemons as root, and must run as root")
    sys.exit(1)
DIODE = pwd.getpwnam(DAEMON_USER)


def proc_status(pid, task=None):
    path = "/proc/%d/status" % pid if task is None else "/proc/%d/task/%d/status" % (pid, task)
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def check_dropped(pid, who):
    """Every thread of `pid`: the diode user and group, no capability, NoNewPrivs."""
    tasks = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    bad = []
    for t in tasks:
        st = proc_status(pid, t)
        want_uid = "\t".join([str(DIODE.pw_uid)] * 4)
        want_gid = "\t".join([str(DIODE.pw_gid)] * 4)
        if st["Uid"] != want_uid or st["Gid"] != want_gid:
            bad.append("task %d Uid=%s Gid=%s" % (t, st["Uid"], st["Gid"]))
        for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            if int(st[k], 16) != 0:
                bad.append("task %d %s=%s" % (t, k, st[k]))
        if st["NoNewPrivs"] != "1":
            bad.append("task %d NoNewPrivs=%s" % (t, st["NoNewPrivs"]))
    check(not bad and tasks, "%s: every thread (%d) runs as %s with no capability and "
          "NoNewPrivs %s" % (who, len(tasks), DAEMON_USER, " ".join(bad)))


def wait_for(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def spawn_with_sockets(argv, sockets, log_path, env_extra=None):
    """Starts argv with `sockets` ([(socket, name)]) handed down the systemd
    way: fds 3.., LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID set to the
    child's own pid between fork and exec."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    env = dict(os.environ)
    env.update(env_extra or {})
    pid = os.fork()
    if pid == 0:
        try:
            # Above everything first, then each to its place: no overwrite.
            high = [os.dup(s.fileno()) for s, _ in sockets]
            high = [os.dup2(fd, 100 + i) or 100 + i for i, fd in enumerate(high)]
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i, inheritable=True)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            env["LISTEN_FDS"] = str(len(sockets))
            env["LISTEN_FDNAMES"] = ":".join(name for _, name in sockets)
            env["LISTEN_PID"] = str(os.getpid())
            os.closerange(3 + len(sockets), 4096)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(log_fd)
    return pid


def read_log(path):
    with open(path, errors="replace") as f:
        return f.read()


def stop(pid, signalled=False):
    """SIGTERM (unless already sent: a second one during the shutdown could
    find the default action back and kill it), then the exit status."""
    if not signalled:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 10
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


# --- --version: NAME (Diode) VERSION, the project's version
for binary, name in ((SOCKD, "sockd"), (RESOLVER, "diode-resolver")):
    p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0 and re.fullmatch(r"%s \(Diode\) \d+\.\d+\.\d+\n" % re.escape(name), p.stdout),
          "%s --version: %r" % (name, p.stdout))

web_root = temp_dir("process-web-")
with open(os.path.join(web_root, "index.html"), "w") as f:
    f.write("diode process contract\n")
web = HttpServer(web_root)
permit_local = "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255\n"

# --- sockd as root on 127.0.0.1:0: dropped, and serving
sockd = Sockd(gateway_toml(), files={"sockd.conf": permit_local})
try:
    check(sockd.wait_log("event=started"), "sockd: started")
    check_dropped(sockd.proc.pid, "sockd")
    rc, out, err = curl(["--socks5", "127.0.0.1:%d" % sockd.port, "http://127.0.0.1:%d/" % web.port])
    check(rc == 0 and "diode process contract" in out, "sockd: curl through it as %s (%d %s)" % (DAEMON_USER, rc, err))
finally:
    check(sockd.stop() == 0, "sockd: exits 0 on SIGTERM")

# --- sockd SIGHUP: a changed max_sessions_per_client applies; a broken
# gateway.toml keeps the old one
def limited_toml(n):
    return gateway_toml(sockd_extra='max_sessions_per_client = %d\nhandshake_timeout = "30s"' % n)


def begun(port):
    """A client that has begun its greeting: sockd's listeners take a
    connection only once its first bytes are there (TCP_DEFER_ACCEPT), and
    the session then waits for the rest of the handshake."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"\x05")
    return s


def refused(s):
    """True when sockd closed this connection at once (a limit), False when it
    keeps it open waiting for the handshake."""
    s.settimeout(0.5)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


sockd = Sockd(limited_toml(1), files={"sockd.conf": permit_local})
held = []
try:
    held.append(begun(sockd.port))
    check(not refused(held[0]), "max_sessions_per_client = 1: the first session is kept")
    extra = begun(sockd.port)
    check(refused(extra) and sockd.wait_log("reason=\"per-client session limit\""),
          "max_sessions_per_client = 1: a second one is refused")
    extra.close()
    with open(sockd.config, "w") as f:
        f.write(limited_toml(3).replace("{dir}", sockd.dir))
    sockd.signal(signal.SIGHUP)
    check(sockd.wait_log("event=reloaded"), "SIGHUP with max_sessions_per_client = 3: reloaded")
    for _ in range(2):
        held.append(begun(sockd.port))
    check(not any(refused(s) for s in held[1:]), "after the reload, three sessions at once")
    # A broken gateway.toml: its errors logged with file:line:col, the old one kept.
    with open(sockd.config, "w") as f:
        f.write(limited_toml(3).replace("{dir}", sockd.dir) + "no_such_key = 1\n")
    sockd.signal(signal.SIGHUP)
    check(sockd.wait_log("event=reload_failed"), "a broken gateway.toml: reload_failed")
    check(re.search(r"gateway\.toml:\d+:\d+: error: ", sockd.log()) is not None,
          "the error is logged with file:line:col")
    extra = begun(sockd.port)
    check(refused(extra), "the fourth session is refused: the limit of 3 stays")
    extra.close()
    gone = sockd.log().count("client closed during handshake")
    held.pop().close()
    # Its slot is free once sockd has logged the session's end.
    check(wait_for(lambda: sockd.log().count("client closed during handshake") > gone),
          "a held session closed by its client is logged")
    again = begun(sockd.port)
    check(not refused(again), "with one gone, a third is taken again")
    held.append(again)
finally:
    for s in held:
        s.close()
    check(sockd.stop() == 0, "sockd (reload): exits 0")

# --- sockd on inherited sockets: socks.ifx decided by iface=ifx; control kept;
# a dns-udp socket closed with a log line
d = temp_dir("process-sockd-fds-")
with open(os.path.join(d, "sockd.conf"), "w") as f:
    f.write("permit iface=ifx 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255\n")
toml = os.path.join(d, "gateway.toml")
with open(toml, "w") as f:
    f.write(gateway_toml().replace("{dir}", d))
lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(16)
port = lsock.getsockname()[1]
ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ctl.bind(os.path.join(d, "sockd.ctl"))
ctl.listen(4)
stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
stray.bind(("127.0.0.1", 0))
log_path = os.path.join(d, "sockd.log")
pid = spawn_with_sockets([SOCKD, "--config", toml],
                         [(lsock, "socks.ifx"), (ctl, "control"), (stray, "dns-udp.ifx")], log_path)
for s in (lsock, ctl, stray):
    s.close()
try:
    check(wait_for(lambda: "event=started" in read_log(log_path)), "sockd on inherited sockets: started")
    log = read_log(log_path)
    check("event=socket_ignored name=dns-udp.ifx" in log, "the dns-udp socket is closed with a log line")
    check_dropped(pid, "sockd (inherited sockets)")
    rc, out, err = curl(["--socks5", "127.0.0.1:%d" % port, "http://127.0.0.1:%d/" % web.port])
    check(rc == 0 and "diode process contract" in out,
          "socks.ifx: the iface=ifx rule permits (%d %s)" % (rc, err))
    # The session's line comes once sockd has seen both sides close.
    check(wait_for(lambda: "rule=%s/sockd.conf:1" % d in read_log(log_path)), "decided by sockd.conf:1")
finally:
    check(stop(pid) == 0, "sockd (inherited sockets): exits 0")

# --- diode-resolver as root on inherited sockets (dns-udp, dns-tcp, control),
# two threads: dropped, serving the local zone, READY/RELOADING/STOPPING
d = temp_dir("process-resolver-")
toml = os.path.join(d, "gateway.toml")
with open(toml, "w") as f:
    f.write("""
[[interface]]
name = "lo"
role = "internal"
addresses = ["127.0.0.1/8"]
socks_port = 0
dns_port = 5353

[resolver]
dnssec = false   # the root here is a made-up, unsigned one: nothing to validate
threads = 2
cache_file = ""
""")
# One port number for both: the kernel's free UDP port may be taken in TCP by
# another test's connection, so try again with the next one (bounded).
for _ in range(100):
    usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    usock.bind(("127.0.0.1", 0))
    dport = usock.getsockname()[1]
    tsock = socket.socket()
    try:
        tsock.bind(("127.0.0.1", dport))
        break
    except OSError:
        usock.close()
        tsock.close()
else:
    raise SystemExit("no port free in both UDP and TCP after 100 tries")
tsock.listen(16)
ctl_path = os.path.join(d, "resolver.ctl")
ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ctl.bind(ctl_path)
ctl.listen(4)
notify_path = os.path.join(d, "notify")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)
os.chown(notify_path, DIODE.pw_uid, DIODE.pw_gid)  # it writes there as diode
notify.settimeout(10)
log_path = os.path.join(d, "resolver.log")
pid = spawn_with_sockets([RESOLVER, "--config", toml],
                         [(usock, "dns-udp.lo"), (tsock, "dns-tcp.lo"), (ctl, "control")], log_path,
                         {"NOTIFY_SOCKET": notify_path})
for s in (usock, tsock, ctl):
    s.close()


terminated = False


def next_notify():
    try:
        return notify.recv(4096).decode()
    except socket.timeout:
        return "<none>"


try:
    ready = next_notify()
    check(ready.startswith("READY=1\nSTATUS=serving DNS on 127.0.0.1:%d/udp" % dport),
          "diode-resolver: READY=1 with a status (%r)" % ready)
    check("event=start " in read_log(log_path) and "threads=2" in read_log(log_path),
          "diode-resolver: two threads on the inherited sockets")
    check_dropped(pid, "diode-resolver")
    for how in ([], ["+tcp"]):
        answers = set()
        # Several queries: with two threads on one socket, each may answer.
        for _ in range(4):
            p = subprocess.run(["dig", "@127.0.0.1", "-p", str(dport), "+short", "+time=3", "+tries=1",
                                "localhost", "A"] + how, capture_output=True, text=True, timeout=20)
            answers.add(p.stdout.strip())
        check(answers == {"127.0.0.1"}, "dig %s localhost: 127.0.0.1 (%s)" % (" ".join(how) or "udp", answers))
    p = subprocess.run([RESOLVER, "--control", ctl_path, "stats"], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0 and "local_answers=" in p.stdout, "the inherited control socket answers stats")
    os.kill(pid, signal.SIGHUP)
    reloading, again = next_notify(), next_notify()
    check(reloading.startswith("RELOADING=1\nMONOTONIC_USEC=") and again.startswith("READY=1"),
          "SIGHUP: RELOADING=1 then READY=1 (%r, %r)" % (reloading, again))
    check(wait_for(lambda: "event=reload status=ok" in read_log(log_path)),
          "SIGHUP: gateway.toml and the root hints re-read as %s" % DAEMON_USER)
    os.kill(pid, signal.SIGTERM)
    terminated = True
    check(next_notify() == "STOPPING=1", "SIGTERM: STOPPING=1")
finally:
    check(stop(pid, terminated) == 0, "diode-resolver: exits 0")
    notify.close()

# --- a user that does not exist: the daemon does not run on as root
d = temp_dir("process-nouser-")
with open(os.path.join(d, "sockd.conf"), "w") as f:
    f.write(permit_local)
toml = os.path.join(d, "gateway.toml")
with open(toml, "w") as f:
    f.write('[gateway]\nuser = "no-such-user-diode"\n' + gateway_toml().replace("{dir}", d))
p = subprocess.run([SOCKD, "--config", toml, "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=20)
check(p.returncode == 1 and "event=privilege_drop_failed" in p.stderr,
      "sockd with an unknown user: privilege_drop_failed, exit 1 (%d)" % p.returncode)

web.stop()
finish()
