"""sockd's BIND (SOCKS4 and SOCKS5: two replies, only the expected peer may
connect) and UDP ASSOCIATE (RFC 1928 §7: the header both ways, datagrams only
from the client's address and only while the control connection lives,
FRAG != 0 dropped, every datagram decided by the rules, UDP only under a
cmd=udp rule), with raw clients and PySocks, on loopback."""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (DnsServer, Sockd, check, finish, gateway_toml,  # noqa: E402
                           recv_all, recv_exact)


class UdpEcho:
    def __init__(self, host):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.last_peer = None
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65536)
                self.count += 1
                self.last_peer = peer
                self.sock.sendto(data, peer)
            except OSError:
                return

    def stop(self):
        self.sock.close()


echo1 = UdpEcho("127.0.0.1")
echo2 = UdpEcho("127.0.0.2")
dns = DnsServer({"udp.test": ["127.0.0.1"]})
conf = ("permit cmd=udp 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255\n"
        "permit 127.0.0.1 255.255.255.255 127.0.0.0 255.0.0.0\n")
sockd = Sockd(gateway_toml(dns.port, sockd_extra='connect_timeout = "2s"'), files={"sockd.conf": conf})


def socks5_request(cmd, atyp_addr, port):
    s = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
    s.sendall(b"\x05\x01\x00")
    assert recv_exact(s, 2) == b"\x05\x00"
    s.sendall(b"\x05" + bytes([cmd]) + b"\x00" + atyp_addr + struct.pack("!H", port))
    return s


def read_reply5(s):
    head = recv_exact(s, 4)
    if len(head) < 4:
        return None, None, None
    alen = {1: 4, 4: 16}.get(head[3], 0)
    body = recv_exact(s, alen + 2)
    addr = socket.inet_ntop(socket.AF_INET if alen == 4 else socket.AF_INET6, body[:alen])
    return head[1], addr, struct.unpack("!H", body[alen:])[0]


def v4(a):
    return b"\x01" + socket.inet_aton(a)


def udp_header(host, port, frag=0):
    if host.replace(".", "").isdigit():
        return b"\x00\x00" + bytes([frag]) + v4(host) + struct.pack("!H", port)
    return b"\x00\x00" + bytes([frag]) + b"\x03" + bytes([len(host)]) + host.encode() + struct.pack("!H", port)


def quiet(sock, seconds=1.0):
    """True when nothing arrives on `sock` within `seconds`."""
    sock.settimeout(seconds)
    try:
        sock.recvfrom(65536)
        return False
    except socket.timeout:
        return True


try:
    # ---------------- BIND, SOCKS5: two replies, then relay
    ctl = socks5_request(2, v4("127.0.0.1"), 0)
    rep, baddr, bport = read_reply5(ctl)
    check(rep == 0 and baddr == "127.0.0.1" and bport > 0, "SOCKS5 BIND first reply: %s %s:%s" % (rep, baddr, bport))
    peer = socket.create_connection(("127.0.0.1", bport), timeout=5)
    rep2, paddr, pport = read_reply5(ctl)
    check(rep2 == 0 and paddr == "127.0.0.1" and pport == peer.getsockname()[1],
          "SOCKS5 BIND second reply names the peer: %s %s:%s" % (rep2, paddr, pport))
    peer.sendall(b"from-peer")
    check(recv_exact(ctl, 9) == b"from-peer", "BIND relays peer -> client")
    ctl.sendall(b"from-client")
    check(recv_exact(peer, 11) == b"from-client", "BIND relays client -> peer")
    peer.close()
    ctl.close()

    # ---------------- BIND: a connection from another host than expected
    ctl = socks5_request(2, v4("127.0.0.2"), 0)
    rep, baddr, bport = read_reply5(ctl)
    check(rep == 0, "BIND expecting 127.0.0.2: first reply granted")
    intruder = socket.socket()
    intruder.bind(("127.0.0.1", 0))
    intruder.settimeout(5)
    intruder.connect((baddr, bport))
    intruder_port = intruder.getsockname()[1]
    check(sockd.wait_log("event=bind_refused client=") and
          sockd.wait_log("peer=127.0.0.1:%d " % intruder_port),
          "a peer other than the expected one is refused and logged")
    intruder.settimeout(3)
    check(recv_all(intruder) == b"", "the intruder's connection is closed")
    intruder.close()
    # The BIND is still waiting: the expected peer comes after the intruder.
    peer = socket.socket()
    peer.bind(("127.0.0.2", 0))
    peer.settimeout(5)
    peer.connect((baddr, bport))
    rep2, paddr, pport = read_reply5(ctl)
    check(rep2 == 0 and paddr == "127.0.0.2" and pport == peer.getsockname()[1],
          "the BIND kept waiting; the expected peer gets through (%s %s:%s)" % (rep2, paddr, pport))
    peer.sendall(b"right-peer")
    check(recv_exact(ctl, 10) == b"right-peer", "and is relayed")
    peer.close()
    ctl.close()

    # ---------------- BIND: only wrong peers until connect_timeout (2 s)
    ctl = socks5_request(2, v4("127.0.0.2"), 0)
    rep, baddr, bport = read_reply5(ctl)
    t0 = time.time()
    intruder = socket.create_connection((baddr, bport), timeout=5)
    rep2, _, _ = read_reply5(ctl)
    check(rep == 0 and rep2 == 6 and 1.5 < time.time() - t0 < 6,
          "a wrong peer does not end the BIND: REP 6 at its timeout (%s after %.1fs)" % (rep2, time.time() - t0))
    intruder.close()
    ctl.close()

    # ---------------- BIND: nobody connects within connect_timeout (2 s)
    ctl = socks5_request(2, v4("127.0.0.1"), 0)
    rep, _, _ = read_reply5(ctl)
    t0 = time.time()
    rep2, _, _ = read_reply5(ctl)
    check(rep == 0 and rep2 == 6 and time.time() - t0 < 6,
          "BIND without a connection: second reply REP 6 after the timeout (%s)" % rep2)
    ctl.close()

    # ---------------- BIND: the client leaves before any peer connects
    ctl = socks5_request(2, v4("127.0.0.1"), 0)
    rep, _, bport = read_reply5(ctl)
    ctl.close()
    t0 = time.time()
    check(sockd.wait_log('reason="bind: client closed before the peer connected"', timeout=1.5),
          "a BIND whose client leaves ends at once (%.2fs), not at connect_timeout" % (time.time() - t0))
    late = socket.socket()
    late.settimeout(2)
    try:
        late.connect(("127.0.0.1", bport))
        refused = False
    except OSError:
        refused = True
    late.close()
    check(refused, "and its port is closed")

    # ---------------- BIND, SOCKS4
    s = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
    s.sendall(b"\x04\x02" + struct.pack("!H", 21) + socket.inet_aton("127.0.0.1") + b"ftp\x00")
    r1 = recv_exact(s, 8)
    port4 = struct.unpack("!H", r1[2:4])[0]
    check(r1[1] == 90 and port4 > 0, "SOCKS4 BIND first reply CD 90, port %d" % port4)
    peer = socket.create_connection(("127.0.0.1", port4), timeout=5)
    r2 = recv_exact(s, 8)
    check(r2[1] == 90, "SOCKS4 BIND second reply CD 90")
    peer.sendall(b"v4-bind")
    check(recv_exact(s, 7) == b"v4-bind", "SOCKS4 BIND relays")
    peer.close()
    s.close()

    # ---------------- UDP ASSOCIATE, raw
    ctl = socks5_request(3, v4("0.0.0.0"), 0)
    rep, uaddr, uport = read_reply5(ctl)
    check(rep == 0 and uaddr == "127.0.0.1" and uport > 0, "UDP ASSOCIATE granted at %s:%s" % (uaddr, uport))
    cu = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cu.bind(("127.0.0.1", 0))
    cu.settimeout(3)
    cu.sendto(udp_header("127.0.0.1", echo1.port) + b"dgram-1", (uaddr, uport))
    data, src = cu.recvfrom(65536)
    want = udp_header("127.0.0.1", echo1.port)
    check(src == (uaddr, uport) and data == want + b"dgram-1",
          "a datagram goes out and its answer comes back with the header (%r)" % data)
    cu.sendto(udp_header("udp.test", echo1.port) + b"by-name", (uaddr, uport))
    data, _ = cu.recvfrom(65536)
    check(data.endswith(b"by-name"), "a datagram to a name (resolved by sockd) is relayed")
    before = echo2.count
    cu.sendto(udp_header("127.0.0.2", echo2.port) + b"denied", (uaddr, uport))
    check(quiet(cu) and echo2.count == before, "a datagram to a destination without a cmd=udp rule is dropped")
    before = echo1.count
    cu.sendto(udp_header("127.0.0.1", echo1.port, frag=1) + b"fragment", (uaddr, uport))
    check(quiet(cu) and echo1.count == before, "FRAG != 0 is dropped")
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.2", 0))
    other.sendto(udp_header("127.0.0.1", echo1.port) + b"spoof", (uaddr, uport))
    check(quiet(other) and echo1.count == before, "a datagram from another address is dropped")
    other.close()
    # Only the destinations the client sent to may answer (no reflection).
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    stranger.sendto(b"unsolicited", echo1.last_peer)
    check(quiet(cu), "a datagram from a host the client never sent to is not passed back")
    stranger.close()
    ctl.close()
    time.sleep(0.5)
    cu.sendto(udp_header("127.0.0.1", echo1.port) + b"after-close", (uaddr, uport))
    check(quiet(cu), "after the control connection closed, nothing is relayed")
    cu.close()
    check(sockd.wait_log("cmd=udp"), "the association is logged")
    udp_lines = [l for l in sockd.log_lines("terminated") if "cmd=udp" in l]
    check(any("up=14" in l and "down=14" in l for l in udp_lines),
          "its line counts the relayed payload bytes (%s)" % udp_lines)

    # ---------------- UDP ASSOCIATE naming another host as the sender
    ctl = socks5_request(3, v4("127.0.0.2"), 0)
    rep, uaddr, uport = read_reply5(ctl)
    spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoof.bind(("127.0.0.2", 0))
    before = echo1.count
    spoof.sendto(udp_header("127.0.0.1", echo1.port) + b"claimed", (uaddr, uport))
    check(rep == 0 and quiet(spoof) and echo1.count == before,
          "DST.ADDR naming another host does not let that host use the association")
    spoof.close()
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    real.bind(("127.0.0.1", 0))
    real.settimeout(3)
    real.sendto(udp_header("127.0.0.1", echo1.port) + b"real", (uaddr, uport))
    try:
        data, _ = real.recvfrom(65536)
    except socket.timeout:
        data = b""
    check(data.endswith(b"real"), "the control connection's own host still can")
    real.close()
    ctl.close()

    # ---------------- UDP ASSOCIATE with PySocks
    import socks
    ps = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    ps.set_proxy(socks.SOCKS5, "127.0.0.1", sockd.port)
    ps.settimeout(5)
    try:
        ps.sendto(b"pysocks-udp", ("127.0.0.1", echo1.port))
        data, src = ps.recvfrom(65536)
        check(data == b"pysocks-udp" and src[1] == echo1.port, "PySocks UDP round trip (%r from %r)" % (data, src))
    except (socks.ProxyError, OSError) as e:
        check(False, "PySocks UDP round trip: %s" % e)
    finally:
        ps.close()
finally:
    rc = sockd.stop()
    echo1.stop()
    echo2.stop()
    dns.stop()
check(rc == 0, "sockd exits 0")
finish()
