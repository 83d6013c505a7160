"""Shared pieces of sockd's loopback integration tests.

Everything listens on 127.0.0.1 with ports the kernel picks; every process
started here is killed by its PID in stop(), also when a test fails; every
wait is bounded. The DNS server answers only the names a test gives it, so
sockd's c-ares never asks anyone else.
"""
import http.server
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SOCKD = os.environ.get("SOCKD", "sockd")
# The I/O path every test's sockd is started with ([sockd] io), unless the
# test writes its own: sockd.cmake runs each test once as written (the
# default, auto) and once more as sockd_epoll.NAME with SOCKD_IO=epoll.
SOCKD_IO = os.environ.get("SOCKD_IO", "")
DAEMON_USER = "diode"  # gateway.toml's default [gateway] user
FAILURES = []
TEMP_DIRS = []  # removed by finish() when every check passed; kept for a look otherwise


def temp_dir(prefix):
    """A temporary directory the daemons can use after dropping root: run as
    root, sockd becomes [gateway] user (default diode) and still reads its
    files there on SIGHUP, and its hooks write there; so the directory
    belongs to that user when it exists."""
    d = tempfile.mkdtemp(prefix=prefix)
    TEMP_DIRS.append(d)
    os.chmod(d, 0o755)
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(DAEMON_USER)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        except KeyError:
            pass  # no such user: the daemon will say so when it drops root
    return d


def with_io(toml, io=None):
    """`toml` with [sockd] io = `io` (default SOCKD_IO) added, unless it names one."""
    io = SOCKD_IO if io is None else io
    if not io or re.search(r"^\s*io\s*=", toml, re.M):
        return toml
    line = 'io = "%s"' % io
    if re.search(r"^\[sockd\]\s*$", toml, re.M):
        return re.sub(r"^\[sockd\]\s*$", "[sockd]\n" + line, toml, count=1, flags=re.M)
    return toml + "\n[sockd]\n" + line + "\n"


def check(cond, what):
    """Records a failed assertion (the test goes on, the exit status says it)."""
    if cond:
        print("ok   - " + what)
    else:
        print("FAIL - " + what)
        FAILURES.append(what)


def finish():
    if FAILURES:
        print("%d check(s) failed; logs kept in %s" % (len(FAILURES), " ".join(TEMP_DIRS)))
        sys.exit(1)
    for d in TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)
    print("all checks passed")
    sys.exit(0)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class HttpServer:
    """python3's http.server on 127.0.0.1:0, serving `root`, in a thread."""

    def __init__(self, root):
        handler = lambda *a, **k: QuietHandler(*a, directory=root, **k)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class EchoServer:
    """Echoes every byte back, one thread per connection, on 127.0.0.1:0."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        c.settimeout(60)
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
        except OSError:
            pass
        c.close()

    def stop(self):
        self.sock.close()


class DnsServer:
    """A tiny authoritative DNS server over UDP on 127.0.0.1:0 answering A and
    AAAA from `zone` ({name: [addresses]}); other names get NXDOMAIN."""

    def __init__(self, zone):
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                q, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(q), peer)
            except (ValueError, IndexError, struct.error, OSError):
                continue

    def _answer(self, q):
        qid, _flags, qd = struct.unpack("!HHH", q[:6])
        if qd != 1:
            raise ValueError("one question only")
        i = 12
        labels = []
        while q[i] != 0:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        qtype, qclass = struct.unpack("!HH", q[i + 1:i + 5])
        question = q[12:i + 5]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        if name not in self.zone:
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question
        answers = b""
        count = 0
        for a in self.zone[name]:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            if (fam == socket.AF_INET and qtype == 1) or (fam == socket.AF_INET6 and qtype == 28):
                data = socket.inet_pton(fam, a)
                answers += struct.pack("!HHHIH", 0xC00C, qtype, qclass, 60, len(data)) + data
                count += 1
        return struct.pack("!HHHHHH", qid, 0x8180, 1, count, 0, 0) + question + answers

    def stop(self):
        self.sock.close()


class Sockd:
    """sockd on 127.0.0.1:0 (or `listen`) with a gateway.toml written from `toml` (the
    string may refer to {dir}); the port comes back through --port-file."""

    def __init__(self, toml, files=None, extra_args=(), env=None, preexec_fn=None, pass_fds=(),
                 listen="127.0.0.1:0"):
        self.dir = temp_dir("sockd-it-")
        for name, text in (files or {}).items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        self.config = os.path.join(self.dir, "gateway.toml")
        with open(self.config, "w") as f:
            f.write(with_io(toml.replace("{dir}", self.dir)))
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "sockd.log")
        self.log_file = open(self.log_path, "w")
        args = [SOCKD, "--config", self.config, "--listen", listen,
                "--port-file", self.port_file] + list(extra_args)
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=preexec_fn, pass_fds=pass_fds)
        self.port = None
        deadline = time.time() + 10
        while time.time() < deadline and self.proc.poll() is None:
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    break
            time.sleep(0.05)
        if self.port is None:
            self.stop()
            raise RuntimeError("sockd did not start:\n" + self.log())

    def write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def log(self):
        if not self.log_file.closed:
            self.log_file.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_lines(self, event=None):
        lines = [l for l in self.log().splitlines() if l.startswith("time=")]
        if event:
            lines = [l for l in lines if (" event=%s " % event) in l]
        return lines

    def wait_log(self, needle, timeout=5.0):
        """Waits (bounded) until `needle` appears in the log."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.log():
                return True
            time.sleep(0.05)
        return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log_file.close()
        return self.proc.returncode


def gateway_toml(nameserver_port=1, sockd_extra="", files_extra="", methods='["none"]',
                 users='""'):
    """A loopback gateway.toml with rules in {dir}/sockd.conf."""
    return """
[[interface]]
name = "lo"
role = "internal"
addresses = ["127.0.0.1/8"]
socks_port = 1080
dns_port = 0

[files]
sockd_conf = "{dir}/sockd.conf"
sockd_route = ""
users = %s
%s

[sockd]
threads = 2
nameserver = "127.0.0.1:%d"
methods = %s
%s
""" % (users, files_extra, nameserver_port, methods, sockd_extra)


def curl(args, timeout=15):
    """Runs curl; returns (exit status, stdout, stderr)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "10"] + args, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def socks5_connect(port, host, dport, timeout=5.0):
    """A raw SOCKS5 CONNECT (no auth) to an IPv4 address; returns (socket, REP)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(b"\x05\x01\x00")
    if recv_exact(s, 2) != b"\x05\x00":
        raise RuntimeError("method selection failed")
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack("!H", dport))
    head = recv_exact(s, 4)
    rest = {1: 6, 4: 18}.get(head[3], 0)
    recv_exact(s, rest)
    return s, head[1]


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            break
        b += chunk
    return b


def recv_all(s, limit=65536):
    """Reads until EOF (bounded by the socket's timeout and `limit` bytes)."""
    b = b""
    try:
        while len(b) < limit:
            chunk = s.recv(4096)
            if not chunk:
                break
            b += chunk
    except OSError:
        pass
    return b
