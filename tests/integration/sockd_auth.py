"""sockd's authentication as an attacker would try it: SOCKS4 and 4a are
refused when `methods` does not offer "none" (a USERID is only a claim);
`methods` is an order of preference; an unknown user costs a hash like a
known one; repeated failures lock a client out; the queue of password
checks is bounded."""
import os
import socket
import time
import struct
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (EchoServer, Sockd, check, finish, gateway_toml,  # noqa: E402
                           recv_all, recv_exact)

warnings.simplefilter("ignore", DeprecationWarning)
import crypt  # noqa: E402  (deprecated in 3.11, still in Debian 12's python3)

echo = EchoServer()
HASH = crypt.crypt("wonderland", crypt.mksalt(crypt.METHOD_SHA512))
USERS = "alice:%s\n" % HASH
CONF = "permit *=alice 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d\n" % echo.port


def socks4(port, userid, name=None):
    """A SOCKS4 (or 4a, with `name`) CONNECT to 127.0.0.1:`echo.port`; returns (socket, reply)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    dst = socket.inet_aton("127.0.0.1") if name is None else b"\x00\x00\x00\x01"
    s.sendall(b"\x04\x01" + struct.pack("!H", echo.port) + dst + userid + b"\x00" +
              (name + b"\x00" if name is not None else b""))
    return s, recv_exact(s, 8)


def socks5_login(port, user, password, methods=b"\x02"):
    """Greeting offering `methods`, then RFC 1929 if chosen; returns (socket, method, status)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"\x05" + bytes([len(methods)]) + methods)
    sel = recv_exact(s, 2)
    if len(sel) != 2 or sel[1] != 2:
        return s, (sel[1] if len(sel) == 2 else None), None
    u, p = user.encode(), password.encode()
    s.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
    st = recv_exact(s, 2)
    return s, 2, (st[1] if len(st) == 2 else None)


def socks5_request(s):
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo.port))
    head = recv_exact(s, 10)
    return head[1] if len(head) == 10 else None


# 1. methods = ["userpass"]: SOCKS4 and 4a cannot claim alice.
sockd = Sockd(gateway_toml(methods='["userpass"]', users='"{dir}/users"'),
              files={"sockd.conf": CONF, "users": USERS})
try:
    s, r = socks4(sockd.port, b"alice")
    rest = recv_all(s)
    s.close()
    check(len(r) == 8 and r[1] == 91 and rest == b"",
          "userpass only: SOCKS4 claiming USERID alice is refused with CD 91 (%r)" % r)
    s, r = socks4(sockd.port, b"alice", b"localhost")
    s.close()
    check(len(r) == 8 and r[1] == 91, "userpass only: SOCKS4a claiming alice is refused with CD 91 (%r)" % r)
    check(sockd.wait_log('reason="socks4 without authentication not allowed"'),
          "the refusal is logged with its reason")
    # Each session logs when it ends: wait for both lines (bounded).
    deadline = time.time() + 5
    while True:
        refused = [l for l in sockd.log_lines("refused")
                   if 'reason="socks4 without authentication not allowed"' in l]
        if len(refused) >= 2 or time.time() > deadline:
            break
        time.sleep(0.05)
    check(len(refused) == 2 and all("verdict=deny" in l and "reply=91" in l for l in refused),
          "both (SOCKS4 and 4a, before any name lookup) logged as denials with reply 91 (%d)" % len(refused))
    # alice with her password still gets through.
    s, m, st = socks5_login(sockd.port, "alice", "wonderland")
    check(m == 2 and st == 0, "SOCKS5 alice:wonderland logs in (%s %s)" % (m, st))
    check(socks5_request(s) == 0, "and is granted")
    s.sendall(b"hi")
    check(recv_exact(s, 2) == b"hi", "and relayed")
    s.close()
finally:
    rc = sockd.stop()
check(rc == 0, "sockd exits 0")

# 2. methods is the order of preference: the first one the client offers wins,
# whatever order the client lists them in.
for methods, want in (('["none", "userpass"]', 0), ('["userpass", "none"]', 2)):
    sockd = Sockd(gateway_toml(methods=methods, users='"{dir}/users"'),
                  files={"sockd.conf": CONF, "users": USERS})
    try:
        for offer in (b"\x00\x02", b"\x02\x00"):
            s = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
            s.sendall(b"\x05\x02" + offer)
            sel = recv_exact(s, 2)
            s.close()
            check(sel == bytes([5, want]), "methods = %s, client offers %r: method %d chosen (%r)"
                  % (methods, offer, want, sel))
    finally:
        rc = sockd.stop()
    check(rc == 0, "sockd exits 0")


def stopped_line(sockd):
    lines = sockd.log_lines("stopped")
    return lines[0] if len(lines) == 1 else ""


# 3. Unknown users cost a hash; five failures lock the client out for a while.
sockd = Sockd(gateway_toml(methods='["userpass"]', users='"{dir}/users"'),
              files={"sockd.conf": CONF, "users": USERS})
try:
    attempts = [("nobody", "x")] + [("alice", "wrong%d" % i) for i in range(4)]
    for user, pw in attempts:
        s, m, st = socks5_login(sockd.port, user, pw)
        s.close()
        check(m == 2 and st == 1, "%s:%s fails (%s %s)" % (user, pw, m, st))
    s, m, st = socks5_login(sockd.port, "alice", "wonderland")
    s.close()
    check(m == 2 and st == 1, "after five failures even the right password is refused (%s)" % st)
    check(sockd.wait_log('reason="authentication failed: too many failures from this client"'),
          "and logged as such")
finally:
    rc = sockd.stop()
check(rc == 0, "sockd exits 0")
check(" auth_hashes=5 " in stopped_line(sockd) or stopped_line(sockd).endswith(" auth_hashes=5"),
      "the unknown user ran a hash like the others, the locked-out login none: %s" % stopped_line(sockd))

# 4. The queue of password checks is bounded (auth_max_pending = 2): of three
# logins at once against a slow hash (~1 s), two wait their turn and one is
# refused at once, whatever order they arrive in.
SLOW = crypt.crypt("wonderland", "$6$rounds=2000000$saltsalt$")
sockd = Sockd(gateway_toml(methods='["userpass"]', users='"{dir}/users"',
                           sockd_extra="auth_max_pending = 2"),
              files={"sockd.conf": CONF, "users": "alice:%s\n" % SLOW})
try:
    u, p = b"alice", b"wonderland"
    conns = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", sockd.port), timeout=20)
        s.sendall(b"\x05\x01\x02" + b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
        conns.append(s)
    statuses = []
    for s in conns:
        got = recv_exact(s, 4)
        statuses.append(got[3] if len(got) == 4 and got[:3] == b"\x05\x02\x01" else None)
        s.close()
    check(sorted(statuses) == [0, 0, 1], "two logins verified, one refused (%s)" % statuses)
    check(sockd.wait_log('reason="authentication failed: password check queue full"'),
          "the refusal is logged with its reason")
finally:
    rc = sockd.stop()
check(rc == 0, "sockd exits 0")

echo.stop()
finish()
