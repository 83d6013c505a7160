"""Client-side checks of diode-resolver that dig cannot make: malformed
queries over UDP and TCP, an oversized datagram, a burst of 200 queries, 64 KB of garbage over TCP, pipelined TCP queries
answered on one connection, and the TCP idle timeout (RFC 7766). Every wait
is bounded. Exits non-zero with a message on the first failure.

usage: resolver_client.py SERVER IDLE_SECONDS
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import resolver_dnslib as d  # noqa: E402

FORMERR = 1


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def udp_exchange(server, payload, timeout=3.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.sendto(payload, (server, 53))
    try:
        return s.recv(65535)
    except socket.timeout:
        return None
    finally:
        s.close()


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def tcp_read_msg(s):
    head = recv_exact(s, 2)
    if head is None:
        return None
    return recv_exact(s, struct.unpack("!H", head)[0])


def expect_formerr_or_nothing(server, label, payload):
    reply = udp_exchange(server, payload, timeout=2.0)
    if reply is None:
        print(f"ok {label}: dropped")
        return
    r = d.parse_reply(reply)
    if r["rcode"] != FORMERR:
        fail(f"{label}: rcode {r['rcode']}, expected FORMERR or no reply")
    print(f"ok {label}: FORMERR")


def main():
    server, idle = sys.argv[1], float(sys.argv[2])
    good = d.query("www.a.test.", 1, 0x1111)

    # A compression pointer to itself in the question name.
    expect_formerr_or_nothing(server, "compression-loop",
                              struct.pack("!HHHHHH", 0x2222, 0x0100, 1, 0, 0, 0) +
                              b"\xc0\x0c\x00\x01\x00\x01")
    # Counts that promise records which are not there.
    expect_formerr_or_nothing(server, "wrong-counts",
                              d.query("www.a.test.", 1, 0x3333)[:4] + struct.pack("!HHHH", 1, 5, 0, 0) +
                              d.query("www.a.test.", 1, 0x3333)[12:])
    # Cut short inside the question, and inside the header.
    expect_formerr_or_nothing(server, "truncated-question", good[:20])
    if udp_exchange(server, good[:7], timeout=1.0) is not None:
        fail("a 7-octet datagram was answered")
    print("ok truncated-header: dropped")
    # A response (QR set) is never answered: no reflection loops.
    if udp_exchange(server, d.response(0x4444, d.encode_name("www.a.test."), 1), timeout=1.0):
        fail("a response was answered")
    print("ok response: dropped")

    # An oversized UDP datagram (a query padded past 4,096 octets) is dropped
    # whole, not read in part.
    big = good + bytes(5000)
    if udp_exchange(server, big, timeout=1.0) is not None:
        fail("a 5,000-octet datagram was answered")
    print("ok oversized-datagram: dropped")

    # A burst: 200 queries sent back to back from one socket before any
    # answer is read; the batches of the UDP path answer every one, each
    # under its own ID.
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    b.settimeout(3.0)
    ids = set(range(0x5000, 0x5000 + 200))
    for i in sorted(ids):
        b.sendto(d.query("www.a.test.", 1, i), (server, 53))
    seen = set()
    deadline = time.monotonic() + 10
    while seen != ids and time.monotonic() < deadline:
        try:
            r = d.parse_reply(b.recv(65535))
        except socket.timeout:
            break
        if r["rcode"] != 0:
            fail(f"burst: rcode {r['rcode']} for id {r['id']:#x}")
        seen.add(r["id"])
    b.close()
    if seen != ids:
        fail(f"burst: {len(ids - seen)} of 200 queries unanswered")
    print("ok udp-burst: 200 of 200 answered")

    # 64 KB of garbage over TCP, as one framed message and as raw bytes.
    garbage = bytes((i * 131 + 7) % 256 for i in range(65535))
    garbage = b"\x12\x34\x01" + garbage[3:]  # QR clear: it deserves a FORMERR
    s = socket.create_connection((server, 53), timeout=5)
    s.sendall(struct.pack("!H", len(garbage)) + garbage)
    reply = tcp_read_msg(s)
    if reply is not None and (reply[3] & 0x0F) != FORMERR:
        fail("64 KB framed garbage over TCP: not FORMERR")
    s.sendall(garbage)
    s.close()
    print("ok tcp-garbage")

    # The next good query is answered.
    reply = udp_exchange(server, good)
    if reply is None or d.parse_reply(reply)["rcode"] != 0 or d.parse_reply(reply)["id"] != 0x1111:
        fail("good query after garbage: no NOERROR answer")
    print("ok good-after-garbage")

    # Pipelining (RFC 7766 §6.2.1.1): two queries, one connection, both answered.
    s = socket.create_connection((server, 53), timeout=8)
    q1 = d.query("www.a.test.", 1, 0x0A01)
    q2 = d.query("nope.a.test.", 1, 0x0A02)
    s.sendall(struct.pack("!H", len(q1)) + q1 + struct.pack("!H", len(q2)) + q2)
    got = {}
    for _ in range(2):
        m = tcp_read_msg(s)
        if m is None:
            fail("pipelined TCP: connection closed early")
        r = d.parse_reply(m)
        got[r["id"]] = r["rcode"]
    if got != {0x0A01: 0, 0x0A02: 3}:
        fail(f"pipelined TCP answers: {got}")
    print("ok tcp-pipelining")

    # Idle timeout: the server closes a quiet connection after about IDLE s.
    start = time.monotonic()
    s.settimeout(idle + 5)
    try:
        data = s.recv(1)
    except socket.timeout:
        fail("idle TCP connection was not closed")
    waited = time.monotonic() - start
    if data != b"" or waited < idle * 0.5:
        fail(f"idle close: data={data!r} after {waited:.2f}s")
    print(f"ok tcp-idle-timeout: closed after {waited:.2f}s")
    s.close()


if __name__ == "__main__":
    main()
