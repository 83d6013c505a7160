"""A hostile authoritative server for f.test. in the test bed's net namespace.

For www.f.test. it first sends three forged answers (192.0.2.66): one from
another address (SPOOF_ADDR), one with the wrong ID, one with the question's
case changed (0x20); then, 50 ms later, the true answer 198.51.100.70.
slow.f.test. is answered (198.51.100.72) only after 150 ms. For
oob.f.test. its answer carries an out-of-bailiwick record (www.b.example.
A 192.0.2.67) and glue for a name it has no authority for. It also serves up.test.,
badly: for it and every name below it, an upward referral with AA set (no
records, the root's NS set in the authority section). A resolver must
end up with only the true data. Each query is logged ("query NAME TYPE")
on stdout. Bounded: 10000 queries or 300 s.

usage: resolver_fakeauth.py ADDR SPOOF_ADDR
"""

import socket
import struct
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
import resolver_dnslib as d  # noqa: E402

A, NS, SOA = 1, 2, 6


def soa():
    rdata = d.encode_name("ns1.f.test.") + d.encode_name("hostmaster.f.test.")
    rdata += struct.pack("!IIIII", 1, 1800, 900, 604800, 60)
    return d.rr("f.test.", SOA, 60, rdata)


def main():
    addr, spoof_addr = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, 53))
    spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoof.bind((spoof_addr, 53))
    sock.settimeout(1.0)
    deadline = time.monotonic() + 300
    for _ in range(10000):
        if time.monotonic() > deadline:
            break
        try:
            msg, peer = sock.recvfrom(4096)
        except socket.timeout:
            continue
        if len(msg) < 12:
            continue
        qid = struct.unpack("!H", msg[:2])[0]
        try:
            qname, off = d.read_name(msg, 12)
        except (ValueError, IndexError):
            continue
        qname_wire = msg[12:off]
        qtype = struct.unpack("!H", msg[off:off + 2])[0]
        name = qname.lower()
        print(f"query {name} {qtype}", flush=True)
        if name == "slow.f.test." and qtype == A:
            time.sleep(0.15)  # long enough for identical client queries to pile up
            sock.sendto(d.response(qid, qname_wire, qtype,
                                   answer=[d.rr(qname, A, 300, d.a_rdata("198.51.100.72"))]), peer)
        elif name == "www.f.test." and qtype == A:
            forged = d.response(qid, qname_wire, qtype,
                                answer=[d.rr(qname, A, 300, d.a_rdata("192.0.2.66"))])
            spoof.sendto(forged, peer)                                   # wrong source
            wrong_id = d.response(qid ^ 0x5A5A, qname_wire, qtype,
                                  answer=[d.rr(qname, A, 300, d.a_rdata("192.0.2.66"))])
            sock.sendto(wrong_id, peer)                                  # wrong ID
            swapped = qname.swapcase()
            wrong_case = d.response(qid, d.encode_name(swapped), qtype,
                                    answer=[d.rr(swapped, A, 300, d.a_rdata("192.0.2.66"))])
            sock.sendto(wrong_case, peer)                                # 0x20 mismatch
            time.sleep(0.05)
            sock.sendto(d.response(qid, qname_wire, qtype,
                                   answer=[d.rr(qname, A, 300, d.a_rdata("198.51.100.70"))]), peer)
        elif name == "oob.f.test." and qtype == A:
            sock.sendto(d.response(
                qid, qname_wire, qtype,
                answer=[d.rr(qname, A, 300, d.a_rdata("198.51.100.71")),
                        d.rr("www.b.example.", A, 300, d.a_rdata("192.0.2.67"))],
                additional=[d.rr("ns1.b.example.", A, 300, d.a_rdata("192.0.2.68"))]), peer)
        elif name == "up.test." or name.endswith(".up.test."):
            # An upward referral with AA set: no records, the root's NS set.
            sock.sendto(d.response(
                qid, qname_wire, qtype, aa=True,
                authority=[d.rr(".", NS, 3600, d.encode_name("a.root-servers.test."))],
                additional=[d.rr("a.root-servers.test.", A, 3600, d.a_rdata("198.51.100.53"))]),
                peer)
        elif name == "f.test." and qtype == NS:
            sock.sendto(d.response(qid, qname_wire, qtype,
                                   answer=[d.rr("f.test.", NS, 300, d.encode_name("ns1.f.test."))]),
                        peer)
        elif name in ("f.test.", "www.f.test.", "oob.f.test.", "ns1.f.test.", "slow.f.test."):
            sock.sendto(d.response(qid, qname_wire, qtype, authority=[soa()]), peer)  # NODATA
        else:
            sock.sendto(d.response(qid, qname_wire, qtype, rcode=3, authority=[soa()]), peer)


if __name__ == "__main__":
    main()
