#!/usr/bin/env python3
"""Generates wire_samples.inc: DNS messages encoded independently of the
C++ codec (RFC 1035 §4.1 with §4.1.4 compression, RFC 6891 OPT), so the
tests check the parser against bytes it did not produce itself.

Run: python3 gen_samples.py > wire_samples.inc
Only documentation names (.test) and addresses (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) appear."""
import ipaddress
import struct


class Writer:
    def __init__(self):
        self.buf = bytearray()
        self.table = {}  # lowercased suffix (tuple of labels) -> offset

    def name(self, text, compress=True):
        labels = [l for l in text.rstrip('.').split('.') if l]
        for i in range(len(labels)):
            key = tuple(l.lower() for l in labels[i:])
            if compress and key in self.table:
                # Labels before i are already written: end with a pointer.
                self.buf += struct.pack('!H', 0xC000 | self.table[key])
                return
            off = len(self.buf)
            if off < 0x4000 and key not in self.table:
                self.table[key] = off
            self.buf += bytes([len(labels[i])]) + labels[i].encode()
        self.buf += b'\0'

    def u16(self, v):
        self.buf += struct.pack('!H', v)

    def u32(self, v):
        self.buf += struct.pack('!I', v)


def message(header, question, sections, opt=None):
    w = Writer()
    qd = 1 if question else 0
    counts = [len(s) for s in sections]
    ar = counts[2] + (1 if opt else 0)
    ident, flags = header
    w.buf += struct.pack('!HHHHHH', ident, flags, qd, counts[0], counts[1], ar)
    if question:
        w.name(question[0])
        w.u16(question[1])
        w.u16(question[2])
    for sec in sections:
        for owner, rtype, ttl, rdata in sec:
            w.name(owner)
            w.u16(rtype)
            w.u16(1)
            w.u32(ttl)
            at = len(w.buf)
            w.u16(0)
            start = len(w.buf)
            rdata(w)
            struct.pack_into('!H', w.buf, at, len(w.buf) - start)
    if opt:
        size, do, options = opt
        w.buf += b'\0'
        w.u16(41)
        w.u16(size)
        w.u32(0x8000 if do else 0)
        w.u16(len(options))
        w.buf += options
    return bytes(w.buf)


def a(text):
    return lambda w: w.buf.extend(ipaddress.IPv4Address(text).packed)


def aaaa(text):
    return lambda w: w.buf.extend(ipaddress.IPv6Address(text).packed)


def name_rd(text, compress=True):
    return lambda w: w.name(text, compress)


def mx(pref, text):
    def f(w):
        w.u16(pref)
        w.name(text)
    return f


def soa(mname, rname, serial, refresh, retry, expire, minimum):
    def f(w):
        w.name(mname)
        w.name(rname)
        for v in (serial, refresh, retry, expire, minimum):
            w.u32(v)
    return f


def srv(prio, weight, port, target):
    def f(w):
        w.u16(prio)
        w.u16(weight)
        w.u16(port)
        w.name(target, compress=False)  # RFC 2782: no compression
    return f


def txt(*strings):
    def f(w):
        for s in strings:
            w.buf += bytes([len(s)]) + s.encode()
    return f


def raw(data):
    return lambda w: w.buf.extend(data)


A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, DNAME = 1, 2, 5, 6, 12, 15, 16, 28, 33, 39

SAMPLES = {
    # An answer with a CNAME chain, a referral-style authority section, glue,
    # an unknown type (RFC 3597) and an OPT with DO and a cookie option.
    'kAnswerWithGlue': message(
        (0xBEEF, 0x8180),
        ('www.Example.test', A, 1),
        [
            [('www.example.test', CNAME, 300, name_rd('web.example.test')),
             ('web.example.test', A, 60, a('192.0.2.80')),
             ('web.example.test', A, 60, a('192.0.2.81')),
             ('web.example.test', AAAA, 60, aaaa('2001:db8::80'))],
            [('example.test', NS, 3600, name_rd('ns1.example.test')),
             ('example.test', NS, 3600, name_rd('ns2.example.test'))],
            [('ns1.example.test', A, 3600, a('198.51.100.53')),
             ('ns2.example.test', AAAA, 3600, aaaa('2001:db8:2::53')),
             ('ns1.example.test', 65280, 10, raw(b'\xde\xad\xbe\xef'))],
        ],
        opt=(1232, True, struct.pack('!HH', 10, 8) + bytes(range(1, 9)))),
    # NXDOMAIN with the SOA in authority (RFC 2308), no EDNS.
    'kNxdomain': message(
        (0x1234, 0x8183),
        ('nope.example.test', A, 1),
        [[], [('example.test', SOA, 900,
               soa('ns1.example.test', 'hostmaster.example.test', 2026112701, 7200, 900,
                   1209600, 300))], []]),
    # Every other type the codec knows the layout of, plus TXT.
    'kManyTypes': message(
        (0x0042, 0x8500),
        ('example.test', 255, 1),
        [[('example.test', MX, 300, mx(10, 'mail.example.test')),
          ('example.test', TXT, 300, txt('v=spf1 -all', 'second string')),
          ('_sip._udp.example.test', SRV, 300, srv(0, 5, 5060, 'sip.example.test')),
          ('80.2.0.192.in-addr.arpa', PTR, 300, name_rd('web.example.test')),
          ('old.example.test', DNAME, 300, name_rd('new.example.test')),
          ('empty.example.test', 65281, 300, raw(b''))],
         [], []]),
}

print('// Generated by gen_samples.py; do not edit. Hex of DNS messages.')
for key, data in SAMPLES.items():
    print(f'inline constexpr std::string_view {key} =')
    hexed = data.hex()
    for i in range(0, len(hexed), 64):
        print(f'    "{hexed[i:i + 64]}"')
    print(';')
