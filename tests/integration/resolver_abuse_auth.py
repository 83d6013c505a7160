"""A scripted authority for the abuse tests (resolver_abuse.sh): it serves
the root zone on ADDR port 53 (UDP) and answers every name itself.

- `. NS` and `a.root-servers.test. A`: the root's NS and its own address;
- `forged.test. A`: first 40 forged replies (wrong ID, a question with other
  letter case, another question), then the true one, 198.51.100.70;
- `failN.test.` (any N): delegated to a server on loopback, which the
  resolver must not ask, so it answers SERVFAIL;
- `ok.test. A`: 198.51.100.1; `big.test. TXT`: about 1,000 octets of TXT;
- anything else: NODATA (AA, the root's SOA).

Each query is logged ("query NAME TYPE") on stdout. Bounded: 300 s.

usage: resolver_abuse_auth.py ADDR
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import resolver_dnslib as d  # noqa: E402

A, NS, SOA, TXT = 1, 2, 6, 16
FORGED = 40


def soa():
    rdata = d.encode_name("a.root-servers.test.") + d.encode_name("hostmaster.test.")
    rdata += struct.pack("!IIIII", 1, 1800, 900, 604800, 60)
    return d.rr(".", SOA, 60, rdata)


def main():
    addr = sys.argv[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, 53))
    sock.settimeout(1.0)
    print("ready", flush=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
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

        def send(**kw):
            sock.sendto(d.response(qid, qname_wire, qtype, **kw), peer)

        if name == "." and qtype == NS:
            send(answer=[d.rr(".", NS, 3600, d.encode_name("a.root-servers.test."))],
                 additional=[d.rr("a.root-servers.test.", A, 3600, d.a_rdata(addr))])
        elif name == "a.root-servers.test." and qtype == A:
            send(answer=[d.rr(name, A, 3600, d.a_rdata(addr))])
        elif name == "forged.test." and qtype == A:
            bad = [d.rr(qname, A, 300, d.a_rdata("192.0.2.66"))]
            for i in range(FORGED):
                kind = i % 3
                if kind == 0:    # wrong ID
                    forged = d.response(qid ^ (0x5A5A + i), qname_wire, qtype, answer=bad)
                elif kind == 1:  # the question with other letter case (0x20)
                    forged = d.response(qid, d.encode_name(qname.swapcase()), qtype, answer=bad)
                else:            # another question
                    forged = d.response(qid, d.encode_name("other.test."), qtype, answer=bad)
                sock.sendto(forged, peer)
            time.sleep(0.1)
            send(answer=[d.rr(qname, A, 300, d.a_rdata("198.51.100.70"))])
        elif name.startswith("fail") and name.endswith(".test."):
            # A delegation to a server the resolver must not ask (loopback):
            # SERVFAIL, and the root stays a good server.
            zone = ".".join(name.split(".")[-3:])
            send(aa=False, authority=[d.rr(zone, NS, 300, d.encode_name("ns." + zone))],
                 additional=[d.rr("ns." + zone, A, 300, d.a_rdata("127.0.0.1"))])
        elif name == "ok.test." and qtype == A:
            send(answer=[d.rr(qname, A, 300, d.a_rdata("198.51.100.1"))])
        elif name == "big.test." and qtype == TXT:
            txt = b"".join(bytes([200]) + b"x" * 200 for _ in range(5))
            send(answer=[d.rr(qname, TXT, 300, txt)])
        else:
            send(authority=[soa()])


if __name__ == "__main__":
    main()
