"""sockd's identd checks (RFC 1413, NEC's ?=I and ?=i) against a scripted
identd on port 113. identd's port cannot be chosen, so the test runs in a
network namespace of its own (unshare -n, loopback only). It needs root,
which CI has: without it the test fails rather than skipping."""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

if os.environ.get("SOCKD_IDENTD_NETNS") != "1":
    if os.geteuid() != 0:
        print("FAIL - needs root for a private network namespace (CI runs as root)")
        sys.exit(1)
    env = dict(os.environ, SOCKD_IDENTD_NETNS="1")
    p = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                        sys.executable, os.path.abspath(__file__)], env=env, timeout=110)
    sys.exit(p.returncode)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (EchoServer, Sockd, check, finish, gateway_toml,  # noqa: E402
                           recv_exact)


class FakeIdentd:
    """Answers RFC 1413 queries on 127.0.0.1:113 as `mode` says."""

    def __init__(self):
        self.mode = "user:alice"
        self.queries = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 113))
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        c.settimeout(5)
        try:
            q = b""
            while not q.endswith(b"\n") and len(q) < 1000:
                chunk = c.recv(1000)
                if not chunk:
                    break
                q += chunk
            text = q.decode().strip()
            self.queries.append(text)
            if self.mode == "silent":
                time.sleep(3)
            elif self.mode == "error":
                c.sendall(("%s : ERROR : NO-USER\r\n" % text).encode())
            else:
                c.sendall(("%s : USERID : UNIX : %s\r\n" % (text, self.mode[5:])).encode())
        except OSError:
            pass
        c.close()

    def stop(self):
        self.sock.close()


strict_echo = EchoServer()
lenient_echo = EchoServer()
identd = FakeIdentd()
sockd = Sockd(gateway_toml(sockd_extra='identd_timeout = "1s"'),
              files={"sockd.conf": "deny 0.0.0.0 0.0.0.0\n"})
d = sockd.dir
sockd.write("sockd.conf",
            "#NO_IDENTD: echo noident %%u >> %s/noident.out\n"
            "#BAD_ID: echo bad %%U %%u >> %s/bad.out\n"
            "permit ?=I 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d\n"
            "permit ?=i 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d\n"
            % (d, d, strict_echo.port, lenient_echo.port))
# A SIGHUP before sockd handles signals would end it: wait for event=started,
# which sockd writes once they are handled (the port file comes earlier).
check(sockd.wait_log("event=started"), "sockd started")
sockd.signal(__import__("signal").SIGHUP)
check(sockd.wait_log("event=reloaded"), "identd rules loaded")


def socks4(port, userid):
    s = socket.create_connection(("127.0.0.1", sockd.port), timeout=8)
    s.sendall(b"\x04\x01" + struct.pack("!H", port) + socket.inet_aton("127.0.0.1") + userid + b"\x00")
    r = recv_exact(s, 8)
    return s, (r[1] if len(r) == 8 else None)


def wait_file(path, needle, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and needle in open(path).read():
            return True
        time.sleep(0.05)
    return False


try:
    identd.mode = "user:alice"
    s, cd = socks4(strict_echo.port, b"alice")
    check(cd == 90, "?=I, identd agrees: CD 90 (%s)" % cd)
    client_port = s.getsockname()[1]
    s.sendall(b"ok")
    check(recv_exact(s, 2) == b"ok", "and relayed")
    s.close()
    check("%d , %d" % (client_port, sockd.port) in identd.queries,
          "the query names the client's port, then sockd's (%s)" % identd.queries[-1:])

    identd.mode = "user:mallory"
    s, cd = socks4(strict_echo.port, b"alice")
    s.close()
    check(cd == 93, "?=I, identd names another user: CD 93 (%s)" % cd)
    check(wait_file(d + "/bad.out", "bad mallory alice"), "#BAD_ID ran with %U and %u")
    s, cd = socks4(lenient_echo.port, b"alice")
    s.close()
    check(cd == 93, "?=i, another user: CD 93 too (%s)" % cd)

    identd.mode = "error"
    s, cd = socks4(strict_echo.port, b"alice")
    s.close()
    check(cd == 92, "?=I, identd answers ERROR: CD 92 (%s)" % cd)
    check(wait_file(d + "/noident.out", "noident alice"), "#NO_IDENTD ran")
    s, cd = socks4(lenient_echo.port, b"alice")
    check(cd == 90, "?=i, identd answers ERROR: permitted (%s)" % cd)
    s.close()

    identd.mode = "silent"
    t0 = time.time()
    s, cd = socks4(strict_echo.port, b"alice")
    s.close()
    secs = time.time() - t0
    check(cd == 92 and 0.8 < secs < 4, "?=I, identd silent: CD 92 after identd_timeout (%.1fs)" % secs)

    identd.stop()
    s, cd = socks4(strict_echo.port, b"alice")
    s.close()
    check(cd == 92, "?=I, no identd at all: CD 92 (%s)" % cd)
    check(any('reason="cannot connect to identd"' in l for l in sockd.log_lines("refused")),
          "the refusal is logged")
    check(any('reason="identd reports another user"' in l for l in sockd.log_lines("refused")),
          "the mismatch is logged")
finally:
    rc = sockd.stop()
    identd.stop()
    strict_echo.stop()
    lenient_echo.stop()
check(rc == 0, "sockd exits 0")
finish()
