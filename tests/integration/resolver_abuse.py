"""Attacks on a live diode-resolver (run by resolver_abuse.sh, which starts
it on 127.0.0.1 port 53 with resolver_abuse_auth.py as the root zone).
Every wait is bounded. Exits non-zero with a message on the first failure.

usage: resolver_abuse.py CHECK RESOLVER_PID DIR
  forged  : 40 forged replies before the true one; the client gets the true one
  logflood: 500 queries that each cause a SERVFAIL write far fewer than 500 lines,
            and the log_suppressed lines account for the rest
  tcp     : an address outside `allow` is closed at accept; 8 connections from one
            address and no more; 8 clients that send queries and never read leave
            the resolver's memory bounded, while another client gets answers; they
            are closed once they have not read for tcp_idle_timeout
"""

import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import resolver_dnslib as d  # noqa: E402

A, TXT = 1, 16
SERVER = "127.0.0.1"
BINARY = os.path.join(os.environ["DIODE_BINARY_DIR"], "resolver", "diode-resolver")


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def stats(dirname):
    out = subprocess.run([BINARY, "--control", os.path.join(dirname, "ctl"), "stats"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return {k: int(v) for k, v in (kv.split("=", 1) for kv in out.split() if "=" in kv)
            if v.isdigit()}


def udp_query(name, qtype, source="127.0.0.1", timeout=5.0, qid=0x1234):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(d.query(name, qtype, qid, edns=1232), (SERVER, 53))
        return d.parse_reply(s.recv(65535))
    except socket.timeout:
        return None
    finally:
        s.close()


def check_forged(pid, dirname):
    before = stats(dirname)
    t0 = time.monotonic()
    r = udp_query("forged.test.", A, timeout=10.0)
    took = time.monotonic() - t0
    if r is None:
        fail("no answer to forged.test.")
    addrs = [socket.inet_ntoa(rd) for (_o, t, _ttl, rd) in r["answers"] if t == A]
    if r["rcode"] != 0 or addrs != ["198.51.100.70"]:
        fail(f"forged.test.: rcode {r['rcode']} addresses {addrs}, want NOERROR 198.51.100.70")
    after = stats(dirname)
    ignored = after["upstream_ignored"] - before["upstream_ignored"]
    timeouts = after["upstream_timeouts"] - before["upstream_timeouts"]
    if ignored < 40:
        fail(f"upstream_ignored rose by {ignored}, want at least 40")
    if timeouts != 0:
        fail(f"upstream_timeouts rose by {timeouts}: forged replies ended a wait")
    print(f"ok forged: true answer in {took:.2f} s, {ignored} forged datagrams dropped, "
          "no timeout", flush=True)


def log_lines(dirname):
    with open(os.path.join(dirname, "log"), encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()


def check_logflood(pid, dirname):
    n = 500
    before = stats(dirname)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5.0)
    servfails = 0
    t0 = time.monotonic()
    for start in range(0, n, 50):
        for i in range(start, start + 50):
            s.sendto(d.query(f"fail{i}.test.", A, i), (SERVER, 53))
        for _ in range(50):
            try:
                r = d.parse_reply(s.recv(65535))
            except socket.timeout:
                break
            servfails += r["rcode"] == 2
    took = time.monotonic() - t0
    if servfails < n - 10:
        fail(f"only {servfails} of {n} queries got SERVFAIL")
    time.sleep(2.5)  # the suppressed count is written once the window is over
    after = stats(dirname)
    caused = after["servfail"] - before["servfail"]
    lines = log_lines(dirname)
    written = sum(1 for ln in lines if " event=servfail " in ln)
    suppressed = 0
    for ln in lines:
        if " event=log_suppressed " in ln and " what=servfail " in ln:
            suppressed += int(ln.split(" count=")[1].split()[0])
    limit = 10 * (int(took) + 3)
    print(f"{n} queries in {took:.2f} s: {caused} SERVFAIL, {written} servfail lines, "
          f"{suppressed} suppressed", flush=True)
    if written > limit or written >= n // 4:
        fail(f"{written} servfail lines for {n} SERVFAILs in {took:.1f} s (want at most {limit})")
    if written + suppressed != caused:
        fail(f"{written} lines + {suppressed} suppressed != {caused} SERVFAILs")
    # The resolver still answers a well-behaved client.
    r = udp_query("ok.test.", A)
    if r is None or r["rcode"] != 0:
        fail("no answer to ok.test. after the flood")
    print("ok logflood", flush=True)


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    fail("no VmRSS")
    return 0


def tcp_connect(source):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.bind((source, 0))
    c.settimeout(3.0)
    c.connect((SERVER, 53))
    return c


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def tcp_query(source, name, qtype, qid=7):
    """The reply over a new TCP connection, or None when it is closed or silent."""
    try:
        c = tcp_connect(source)
    except OSError:
        return None
    try:
        q = d.query(name, qtype, qid)
        c.sendall(struct.pack("!H", len(q)) + q)
        head = recv_exact(c, 2)
        if head is None:
            return None
        body = recv_exact(c, struct.unpack("!H", head)[0])
        return None if body is None else d.parse_reply(body)
    except OSError:  # reset, timeout
        return None
    finally:
        c.close()


def closed_at_once(c, within=1.5):
    """True when the server closes `c` (EOF or reset) within `within` s."""
    c.settimeout(within)
    try:
        return c.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def well_behaved(label):
    r = tcp_query("127.0.0.2", "ok.test.", A)
    if r is None or r["rcode"] != 0 or r["an"] != 1:
        fail(f"{label}: the well-behaved client got no TCP answer")
    r = udp_query("ok.test.", A, source="127.0.0.2")
    if r is None or r["rcode"] != 0:
        fail(f"{label}: the well-behaved client got no UDP answer")


def check_tcp(pid, dirname):
    # Warm the cache: every flood query below is a cache hit of ~1 KB.
    r = udp_query("big.test.", TXT)
    if r is None or r["rcode"] != 0 or r["an"] != 1:
        fail("no answer to big.test. TXT")
    well_behaved("before")

    # The ACL at accept: an outsider's connection is closed at once.
    c = tcp_connect("127.0.0.3")
    if not closed_at_once(c):
        fail("a connection from 127.0.0.3 (not in allow) was kept open")
    c.close()
    print("ok tcp: outsider closed at accept", flush=True)

    # 8 connections from one address; the 9th is closed at once.
    hogs = [tcp_connect("127.0.0.1") for _ in range(8)]
    extra = tcp_connect("127.0.0.1")
    if not closed_at_once(extra):
        fail("a 9th connection from 127.0.0.1 was kept open")
    extra.close()
    well_behaved("with 8 connections held by 127.0.0.1")
    st = stats(dirname)
    if st.get("tcp_refused") != 2:
        fail(f"tcp_refused={st.get('tcp_refused')}, want 2 (the outsider and the 9th)")
    print("ok tcp: 8 connections per client address", flush=True)

    # The 8 send queries (cache hits, ~1 KB answers each) and never read.
    q = d.query("big.test.", TXT, 9)
    frame = (struct.pack("!H", len(q)) + q) * 256
    rss0 = rss_kib(pid)
    for h in hogs:
        h.setblocking(False)
    sent = [0] * len(hogs)
    stalled = [0.0] * len(hogs)
    budget = 4 * 1024 * 1024  # queries per connection: ~130 MB of answers each
    t_end = time.monotonic() + 8.0
    while time.monotonic() < t_end and any(s < budget for s in sent):
        progress = False
        for i, h in enumerate(hogs):
            if sent[i] >= budget or stalled[i] > 1.0:
                continue
            try:
                n = h.send(frame)
                sent[i] += n
                progress = progress or n > 0
            except BlockingIOError:
                stalled[i] += 0.001
            except OSError:
                stalled[i] = 99  # closed by the resolver: fine
        if not progress:
            time.sleep(0.001)
            if all(s >= budget or st > 1.0 for s, st in zip(sent, stalled)):
                break
    # The resolver works through what the kernel buffered: watch it a while.
    rss1 = rss_kib(pid)
    for _ in range(30):
        time.sleep(0.1)
        rss1 = max(rss1, rss_kib(pid))
    well_behaved("during the flood")
    grew = (rss1 - rss0) // 1024
    print(f"tcp flood: {sum(sent) // 1024} KiB of queries accepted from 8 connections, "
          f"resolver RSS {rss0 // 1024} -> {rss1 // 1024} MiB", flush=True)
    if grew > 48:
        fail(f"the resolver grew by {grew} MiB for 8 clients that do not read")
    # Clients that leave their answers unread are closed like idle ones
    # (tcp_idle_timeout = 5s, without progress): 127.0.0.1 gets its
    # connections back although the 8 never close theirs.
    t0 = time.monotonic()
    while tcp_query("127.0.0.1", "ok.test.", A) is None:
        if time.monotonic() - t0 > 15:
            fail("connections that never read were not closed after 15 s")
        time.sleep(0.5)
    print(f"ok tcp: clients that do not read closed after {time.monotonic() - t0:.1f} s",
          flush=True)
    for h in hogs:
        h.close()
    well_behaved("after")
    print("ok tcp", flush=True)


def main():
    check, pid, dirname = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    checks = {"forged": check_forged, "logflood": check_logflood, "tcp": check_tcp}
    if check not in checks:
        fail("unknown check " + check)
    checks[check](pid, dirname)


if __name__ == "__main__":
    main()
