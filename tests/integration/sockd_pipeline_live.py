"""The live half of sockd.netbed_pipeline, run in the bed's `lan`: sends
each flow of a simulate batch file through the relay at 192.0.2.1:1080 with
a real client (PySocks by default; curl when the line's comment says
client=curl; BIND by hand, its peer connecting from `net`), answers sockd's
identd questions as the flow's ident= says (an RFC 1413 server on
192.0.2.10:113), and records for each flow sockd's log line and the egress
address the destination saw. One JSON object per flow.

    python3 sockd_pipeline_live.py FLOWS SOCKD_LOG OUT.jsonl   (env NB_NET: net's namespace)
"""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

import socks

RELAY = ("192.0.2.1", 1080)
PASSWORDS = {"alice": "open sesame"}
SESSION_EVENTS = (" event=terminated ", " event=refused ", " event=failed ")


class Identd:
    """RFC 1413 on 192.0.2.10:113: answers `user`, or ERROR when it is None."""

    def __init__(self):
        self.user = None
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("192.0.2.10", 113))
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            c, _ = self.sock.accept()
            c.settimeout(5)
            try:
                q = b""
                while not q.endswith(b"\n") and len(q) < 1000:
                    chunk = c.recv(1000)
                    if not chunk:
                        break
                    q += chunk
                ports = q.decode().strip()
                if self.user is None:
                    c.sendall(("%s : ERROR : NO-USER\r\n" % ports).encode())
                else:
                    c.sendall(("%s : USERID : UNIX : %s\r\n" % (ports, self.user)).encode())
            except OSError:
                pass
            c.close()


def session_lines(path):
    with open(path, errors="replace") as f:
        return [l.rstrip("\n") for l in f if l.startswith("time=") and
                any(e in l for e in SESSION_EVENTS)]


def parse_flows(path):
    flows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            text, _, comment = line.partition("#")
            words = text.split()
            if not words:
                continue
            fields = {}
            for w in words:
                k, _, v = w.partition("=")
                fields[k] = v
            m = re.search(r"client=(\w+)", comment)
            fields["client"] = m.group(1) if m else "pysocks"
            flows.append((n, fields))
    return flows


def split_to(to):
    if to.startswith("["):
        host, port = to[1:].split("]:")
    else:
        host, port = to.rsplit(":", 1)
    return host, int(port)


def is_ip(host):
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, host)
            return True
        except OSError:
            pass
    return False


def src_of(data):
    m = re.search(rb"SRC (\S+)", data)
    return m.group(1).decode() if m else None


def proxied(f, kind=socket.SOCK_STREAM):
    host, _ = split_to(f["to"])
    # The family of the socket to the relay (192.0.2.1), whatever the destination's.
    s = socks.socksocket(socket.AF_INET, kind)
    user = f.get("user") or None
    if f.get("socks") in ("4", "4a"):
        s.set_proxy(socks.SOCKS4, RELAY[0], RELAY[1], rdns=not is_ip(host), username=user)
    else:
        password = PASSWORDS.get(user) if f.get("auth") == "userpass" else None
        s.set_proxy(socks.SOCKS5, RELAY[0], RELAY[1], rdns=not is_ip(host),
                    username=user if password else None, password=password)
    s.settimeout(10)
    return s


def run_pysocks(f):
    host, port = split_to(f["to"])
    s = proxied(f)
    try:
        s.connect((host, port))
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return src_of(data)
    except (socks.ProxyError, OSError):
        return None
    finally:
        s.close()


def run_curl(f):
    host, port = split_to(f["to"])
    url = "http://%s:%d/" % ("[%s]" % host if ":" in host else host, port)
    p = subprocess.run(["curl", "-s", "--max-time", "10", "--socks5-hostname",
                        "%s:%d" % RELAY, url], capture_output=True, timeout=20)
    return src_of(p.stdout) if p.returncode == 0 else None


def exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise OSError("closed")
        b += chunk
    return b


def socks5_reply(s):
    ver, rep, _, atyp = exact(s, 4)
    if atyp == 1:
        addr = socket.inet_ntoa(exact(s, 4))
    elif atyp == 4:
        addr = socket.inet_ntop(socket.AF_INET6, exact(s, 16))
    else:
        addr = exact(s, exact(s, 1)[0]).decode()
    return rep, addr, struct.unpack("!H", exact(s, 2))[0]


def run_bind(f):
    """RFC 1928 BIND: the first reply's BND.ADDR is the egress; the peer (the
    flow's destination address, in net) connects to it and sends a byte."""
    host, _ = split_to(f["to"])
    s = socket.create_connection(RELAY, timeout=10)
    try:
        s.sendall(b"\x05\x01\x00")
        if exact(s, 2) != b"\x05\x00":
            return None
        s.sendall(b"\x05\x02\x00\x01" + socket.inet_aton(host) + struct.pack("!H", 0))
        rep, addr, port = socks5_reply(s)
        if rep != 0:
            return None
        peer = ("import socket,sys\nc=socket.create_connection((sys.argv[1],int(sys.argv[2])),"
                "timeout=10,source_address=(sys.argv[3],0))\nc.sendall(b'x')\nc.close()\n")
        subprocess.run(["ip", "netns", "exec", os.environ["NB_NET"], "/usr/bin/python3", "-c",
                        peer, addr, str(port), host], check=True, timeout=20)
        rep2, _, _ = socks5_reply(s)
        if rep2 != 0 or exact(s, 1) != b"x":
            return None
        return addr
    except OSError:
        return None
    finally:
        s.close()


def run_udp(f):
    host, port = split_to(f["to"])
    s = proxied(f, socket.SOCK_DGRAM)
    try:
        s.sendto(b"who", (host, port))
        data, _ = s.recvfrom(4096)
        return src_of(data)
    except (socks.ProxyError, OSError):
        return None
    finally:
        s.close()


def main(flows_path, log_path, out_path):
    identd = Identd()
    results = []
    for n, f in parse_flows(flows_path):
        ident = f.get("ident")
        identd.user = None if ident in (None, "none") else (
            f.get("user") if ident == "ok" else ident.split(":", 1)[-1])
        before = len(session_lines(log_path))
        if f.get("command") == "bind":
            egress = run_bind(f)
        elif f.get("command") == "udp":
            egress = run_udp(f)
        elif f["client"] == "curl":
            egress = run_curl(f)
        else:
            egress = run_pysocks(f)
        # The session's one log line, written when it ended: wait for it.
        deadline = time.time() + 15
        lines = session_lines(log_path)
        while len(lines) <= before and time.time() < deadline:
            time.sleep(0.05)
            lines = session_lines(log_path)
        log = lines[before] if len(lines) > before else None
        print("line %d: egress=%s log=%s" % (n, egress, log), flush=True)
        results.append({"request_line": n, "egress": egress, "log": log})
    with open(out_path, "w") as out:
        for r in results:
            out.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
