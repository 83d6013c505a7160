"""sockd against bad and slow clients: truncated, oversized, wrong version,
unknown command and address type, UDP without a cmd=udp rule, no acceptable method, slow (one byte a
second) and abandoned handshakes each get the protocol's failure reply or
are closed by the handshake timeout, while a session beside them keeps
working; the per-client session limit."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (EchoServer, Sockd, check, finish, gateway_toml,  # noqa: E402
                           recv_all, recv_exact, socks5_connect)

HANDSHAKE_TIMEOUT = 2.0
echo = EchoServer()
conf = "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255\n"
sockd = Sockd(gateway_toml(sockd_extra='handshake_timeout = "2s"\nmax_sessions_per_client = 40'),
              files={"sockd.conf": conf})


def raw(data, read_timeout=6.0):
    """Sends `data`, half-closes nothing, returns (reply bytes until EOF, seconds to EOF)."""
    s = socket.create_connection(("127.0.0.1", sockd.port), timeout=read_timeout)
    t0 = time.time()
    if data:
        s.sendall(data)
    got = recv_all(s)
    s.close()
    return got, time.time() - t0


try:
    # The session that runs beside the bad ones.
    beside, rep = socks5_connect(sockd.port, "127.0.0.1", echo.port)
    check(rep == 0, "the session beside is granted")
    beside.sendall(b"ping-1")
    check(recv_exact(beside, 6) == b"ping-1", "the session beside echoes")

    got, _ = raw(b"\x06\x01\x00")
    check(got == b"", "wrong version (6): closed without a reply")
    got, _ = raw(b"GET / HTTP/1.0\r\n\r\n")
    check(got == b"", "an HTTP request: closed without a reply")

    got, _ = raw(b"\x05\x01\x80")
    check(got == b"\x05\xff", "no acceptable method: 05 FF")
    got, _ = raw(b"\x05\x00")
    check(got[:2] in (b"\x05\xff", b""), "NMETHODS 0: refused (%r)" % got)

    req = b"\x05\x01\x00" + b"\x05\x09\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo.port)
    got, _ = raw(req)
    check(got[:2] == b"\x05\x00" and got[2:4] == b"\x05\x07", "unknown SOCKS5 command: REP 7 (%r)" % got)
    req = b"\x05\x01\x00" + b"\x05\x01\x00\x05" + b"\x00" * 6
    got, _ = raw(req)
    check(got[2:4] == b"\x05\x08", "unknown address type: REP 8 (%r)" % got)
    req = b"\x05\x01\x00" + b"\x05\x03\x00\x01" + b"\x00" * 6
    got, _ = raw(req)
    check(got[2:4] == b"\x05\x02", "UDP ASSOCIATE without a cmd=udp rule: REP 2 (%r)" % got)
    got, _ = raw(b"\x04\x03" + struct.pack("!H", echo.port) + socket.inet_aton("127.0.0.1") + b"u\x00")
    check(len(got) == 8 and got[1] == 91, "unknown SOCKS4 command: CD 91 (%r)" % got)
    got, _ = raw(b"\x04\x01" + struct.pack("!H", echo.port) + socket.inet_aton("127.0.0.1") + b"x" * 300)
    check(len(got) == 8 and got[1] == 91, "oversized SOCKS4 USERID: CD 91")
    got, _ = raw(b"\x04\x01" + struct.pack("!H", echo.port) + b"\x00\x00\x00\x01" + b"u\x00" + b"n" * 300)
    check(len(got) == 8 and got[1] == 91, "oversized SOCKS4a name: CD 91")
    # Truncated: part of a request, then silence: closed by the handshake timeout.
    got, secs = raw(b"\x05\x01\x00\x05\x01\x00\x01\x7f")
    check(got == b"\x05\x00" and HANDSHAKE_TIMEOUT - 0.5 < secs < HANDSHAKE_TIMEOUT + 3,
          "truncated request: closed by the handshake timeout after %.1fs" % secs)
    # Abandoned: connect and send nothing.
    got, secs = raw(b"")
    check(got == b"" and HANDSHAKE_TIMEOUT - 0.5 < secs < HANDSHAKE_TIMEOUT + 3,
          "abandoned handshake: closed after %.1fs" % secs)
    # Slow: a complete, valid greeting and request, one byte every 0.3 s
    # (13 bytes: 3.9 s, longer than the 2 s handshake timeout). The timeout
    # does not move on traffic, so the request never completes: no grant.
    s = socket.create_connection(("127.0.0.1", sockd.port), timeout=6)
    msg = b"\x05\x01\x00\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo.port)
    t0 = time.time()
    sent = 0
    selection = b""
    for i in range(len(msg)):
        try:
            s.sendall(msg[i:i + 1])
        except OSError:
            break
        sent += 1
        if sent == 3:
            selection = recv_exact(s, 2)  # the greeting is whole: its answer comes now
        time.sleep(0.3)  # pacing the client, not waiting for sockd
    rest = recv_all(s)
    secs = time.time() - t0
    s.close()
    check(selection == b"\x05\x00", "slow client: the greeting is answered (%r)" % selection)
    check(sent < len(msg), "slow client: sockd closed before the request was complete (%d bytes)" % sent)
    check(rest == b"", "slow client gets no grant (%r)" % rest)
    check(secs < HANDSHAKE_TIMEOUT + 3, "slow client closed by the handshake timeout (%.1fs)" % secs)

    # A truncated message followed by EOF from the client.
    s = socket.create_connection(("127.0.0.1", sockd.port), timeout=6)
    s.sendall(b"\x05\x01")
    s.shutdown(socket.SHUT_WR)
    t0 = time.time()
    got = recv_all(s)
    s.close()
    check(got == b"" and time.time() - t0 < 1.5, "truncated greeting then EOF: closed at once")

    beside.sendall(b"ping-2")
    check(recv_exact(beside, 6) == b"ping-2", "the session beside is undisturbed")
    beside.close()

    check(sockd.wait_log('reason="handshake timeout"'), "handshake timeouts are logged")
    check(sockd.wait_log('reason="wrong version"'), "wrong version is logged")
    check(sockd.wait_log('reason="udp needs a rule with cmd=udp"'), "the refused UDP association is logged")
finally:
    rc = sockd.stop()
check(rc == 0, "sockd exits 0")

# Per-client limit: two sessions, the third from the same address is closed.
limited = Sockd(gateway_toml(sockd_extra='max_sessions_per_client = 2\nhandshake_timeout = "10s"'),
                files={"sockd.conf": conf})
try:
    a = socket.create_connection(("127.0.0.1", limited.port), timeout=5)
    b = socket.create_connection(("127.0.0.1", limited.port), timeout=5)
    for x in (a, b):  # a method selection back means the session was admitted
        x.sendall(b"\x05\x01\x00")
        check(recv_exact(x, 2) == b"\x05\x00", "session admitted")
    c = socket.create_connection(("127.0.0.1", limited.port), timeout=5)
    t0 = time.time()
    got = recv_all(c)
    check(got == b"" and time.time() - t0 < 3, "the third session from one client is closed")
    check(limited.wait_log('reason="per-client session limit"'), "the limit is logged")
    a.close()
    b.close()
    c.close()
    # sockd frees the places when it sees the closes: retry until then (bounded).
    rep = None
    deadline = time.time() + 5
    while rep != 0 and time.time() < deadline:
        try:
            s, rep = socks5_connect(limited.port, "127.0.0.1", echo.port)
            s.close()
        except (OSError, RuntimeError):
            time.sleep(0.05)
    check(rep == 0, "after the others closed, a new session is admitted")
finally:
    limited.stop()
    echo.stop()
finish()
