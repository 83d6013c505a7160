"""Tiny DNS message helpers for the resolver's integration tests (no
dnspython on the test machines): build queries and answers, read replies."""

import struct


def encode_name(name: str) -> bytes:
    """Uncompressed wire form of a dotted name, case kept."""
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def read_name(msg: bytes, off: int):
    """(name, offset after it), following compression pointers (bounded)."""
    labels, jumps, end = [], 0, None
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            if jumps > 32:
                raise ValueError("pointer loop")
            continue
        if n == 0:
            return ".".join(labels) + ".", (end if end is not None else off + 1)
        labels.append(msg[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n


def query(qname: str, qtype: int, qid: int, rd: bool = True, edns: int = 0) -> bytes:
    flags = 0x0100 if rd else 0
    ar = 1 if edns else 0
    msg = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, ar) + encode_name(qname)
    msg += struct.pack("!HH", qtype, 1)
    if edns:
        msg += b"\x00" + struct.pack("!HHIH", 41, edns, 0, 0)
    return msg


def rr(owner: str, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return encode_name(owner) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def a_rdata(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def response(qid: int, qname_wire: bytes, qtype: int, rcode: int = 0, aa: bool = True,
             answer=(), authority=(), additional=()) -> bytes:
    flags = 0x8000 | (0x0400 if aa else 0) | rcode
    head = struct.pack("!HHHHHH", qid, flags, 1, len(answer), len(authority), len(additional))
    return (head + qname_wire + struct.pack("!HH", qtype, 1) + b"".join(answer) +
            b"".join(authority) + b"".join(additional))


def parse_reply(msg: bytes):
    """dict with id, flags, rcode, tc, counts and answer A addresses / types."""
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = read_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        owner, off = read_name(msg, off)
        rtype, _cls, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        off += rdlen
        answers.append((owner, rtype, ttl, rdata))
    return {"id": qid, "rcode": flags & 0xF, "tc": bool(flags & 0x0200),
            "qr": bool(flags & 0x8000), "an": an, "ns": ns, "ar": ar, "answers": answers}
