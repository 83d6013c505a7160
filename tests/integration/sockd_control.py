"""sockd's control socket: `stats`, `metrics` and `hits` after a known mix of
permitted, denied, failed and malformed requests (curl, PySocks and raw
SOCKS), their exact values; a reload that starts the hits afresh; the
supervisor's way (an inherited listening socket, --control-fd); and
`sockd-check lint --hits` on the hits output."""
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (HttpServer, Sockd, check, curl, finish, gateway_toml,  # noqa: E402
                           recv_exact, socks5_connect, temp_dir)

import socks  # noqa: E402  (python3-socks)

SOCKD = os.environ.get("SOCKD", "sockd")
SOCKD_CHECK = os.environ.get("SOCKD_CHECK", "sockd-check")

www = temp_dir("sockd-www-")
with open(os.path.join(www, "hello.txt"), "w") as f:
    f.write("hello through diode\n")
http = HttpServer(www)
hp = http.port

# A port where nothing listens: bound, never listening, so the kernel
# refuses connections to it for as long as this socket lives.
closed = socket.socket()
closed.bind(("127.0.0.1", 0))
cp = closed.getsockname()[1]

conf = ("# control socket test\n"
        "deny   127.0.0.1 255.255.255.255 127.0.0.3 255.255.255.255\n"   # line 2
        "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d\n"  # line 3
        "permit 127.0.0.1 255.255.255.255 198.51.100.0/24\n"             # line 4: never used
        "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d\n"  # line 5
        % (hp, cp))
SESSION_EVENTS = (" event=terminated ", " event=refused ", " event=failed ")


def sessions_logged(d):
    return sum(1 for l in d.log_lines() if any(e in l for e in SESSION_EVENTS))


def wait_sessions(d, n, timeout=10.0):
    """Bounded wait for the n-th session line: counters are final then."""
    deadline = time.time() + timeout
    while time.time() < deadline and sessions_logged(d) < n:
        time.sleep(0.02)
    return sessions_logged(d) >= n


def control(path, command):
    p = subprocess.run([SOCKD, "--control", path, command], capture_output=True, text=True,
                       timeout=20)
    return p.returncode, p.stdout


def parse_metrics(text):
    """{sample name with labels: value}, checking every line's shape."""
    samples, families = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if line.startswith("# TYPE "):
                families[parts[2]] = parts[3]
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples, families


ctl_dir = temp_dir("sockd-ctl-")
ctl = os.path.join(ctl_dir, "ctl")
sockd = Sockd(gateway_toml(), files={"sockd.conf": conf}, extra_args=["--control", ctl])
try:
    sp = str(sockd.port)
    url = "http://127.0.0.1:%d/hello.txt" % hp
    mode = stat.S_IMODE(os.stat(ctl).st_mode)
    check(stat.S_ISSOCK(os.stat(ctl).st_mode) and mode == 0o600, "control socket mode 0600: %o" % mode)
    rc, out = control(ctl, "stats")
    check(rc == 0 and out.startswith("sessions_open=0 sessions_total=0 permitted=0 "),
          "stats before any session: " + out.strip())

    # Permitted by line 3: socks5 and socks4 through curl, socks5 through PySocks.
    rc, out, err = curl(["--socks5", "127.0.0.1:" + sp, url])
    check(rc == 0 and out == "hello through diode\n", "curl socks5 permitted: %s %s" % (rc, err.strip()))
    rc, out, err = curl(["--socks4", "127.0.0.1:" + sp, url])
    check(rc == 0 and out == "hello through diode\n", "curl socks4 permitted: %s %s" % (rc, err.strip()))
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", sockd.port)
    s.settimeout(10)
    s.connect(("127.0.0.1", hp))
    s.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
    body = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        body += b
    s.close()
    check(body.endswith(b"hello through diode\n"), "PySocks socks5 permitted")
    # Denied by line 2, and by no rule at all (the default deny).
    rc, _, err = curl(["--socks5", "127.0.0.1:" + sp, "http://127.0.0.3:%d/" % hp])
    check(rc == 97, "127.0.0.3 denied by line 2: %s %s" % (rc, err.strip()))
    c, rep = socks5_connect(sockd.port, "127.0.0.4", hp)
    c.close()
    check(rep == 2, "127.0.0.4 denied by no rule: REP %d" % rep)
    # Permitted by line 5, but nothing listens there: failed.
    c, rep = socks5_connect(sockd.port, "127.0.0.1", cp)
    c.close()
    check(rep == 5, "permitted, connection refused: REP %d" % rep)
    # Malformed: an unknown SOCKS5 command.
    c = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
    c.sendall(b"\x05\x01\x00")
    recv_exact(c, 2)
    c.sendall(b"\x05\x09\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", hp))
    head = recv_exact(c, 2)
    c.close()
    check(head == b"\x05\x07", "unknown command answered REP 7: %r" % head)

    check(wait_sessions(sockd, 7), "seven sessions logged")
    rc, out = control(ctl, "stats")
    stats = dict(kv.split("=", 1) for kv in out.split())
    want = {"sessions_open": "0", "sessions_total": "7", "permitted": "3", "denied": "2",
            "failed": "1", "malformed": "1", "unresolved": "0", "incomplete": "0",
            "limited": "0", "handshakes": "6", "connects": "3", "reloads": "0", "rules": "4"}
    check(rc == 0 and all(stats.get(k) == v for k, v in want.items()),
          "stats: %s" % {k: stats.get(k) for k in want})
    check(int(stats.get("bytes_down", 0)) > 3 * len("hello through diode\n") and
          int(stats.get("bytes_up", 0)) > 0, "bytes counted: %s/%s" % (stats.get("bytes_up"), stats.get("bytes_down")))

    rc, out = control(ctl, "metrics")
    m, fam = parse_metrics(out)
    expect = {
        "diode_sockd_sessions_accepted_total": 7,
        "diode_sockd_sessions_open": 0,
        'diode_sockd_sessions_total{verdict="permit"}': 4,
        'diode_sockd_sessions_total{verdict="deny"}': 2,
        'diode_sockd_sessions_total{verdict="none"}': 1,
        "diode_sockd_connect_failures_total": 1,
        'diode_sockd_sessions_undecided_total{reason="malformed"}': 1,
        'diode_sockd_replies_total{code="0"}': 2,
        'diode_sockd_replies_total{code="90"}': 1,
        'diode_sockd_replies_total{code="2"}': 2,
        'diode_sockd_replies_total{code="5"}': 1,
        'diode_sockd_replies_total{code="7"}': 1,
        "diode_sockd_handshake_seconds_count": 6,
        'diode_sockd_handshake_seconds_bucket{le="+Inf"}': 6,
        "diode_sockd_connect_seconds_count": 3,
        'diode_sockd_connect_seconds_bucket{le="+Inf"}': 3,
        "diode_sockd_rules": 4,
    }
    bad = {k: m.get(k) for k, v in expect.items() if m.get(k) != v}
    check(rc == 0 and not bad, "metrics values (wrong: %s)" % bad)
    check(m.get('diode_sockd_bytes_total{direction="down"}') == float(stats.get("bytes_down", -1)),
          "metrics bytes equal stats bytes")
    check(fam.get("diode_sockd_handshake_seconds") == "histogram" and
          fam.get("diode_sockd_sessions_open") == "gauge" and
          fam.get("diode_sockd_sessions_total") == "counter", "metric types: %s" % fam)
    buckets = [v for k, v in m.items() if k.startswith("diode_sockd_handshake_seconds_bucket")]
    check(len(buckets) == 15 and buckets == sorted(buckets), "15 cumulative handshake buckets")
    check(all(k.startswith("diode_sockd_") for k in m) and "child=" not in out,
          "every name prefixed diode_sockd_, no child label")

    rc, hits = control(ctl, "hits")
    conf_path = os.path.join(sockd.dir, "sockd.conf")
    lines = hits.splitlines()
    check(rc == 0 and lines[0].startswith("# hits since ") and len(lines) == 6, "hits: %r" % hits)
    want_hits = [("%s:2" % conf_path, 1), ("%s:3" % conf_path, 3), ("%s:4" % conf_path, 0),
                 ("%s:5" % conf_path, 1), ("default", 1)]
    for (label, n), line in zip(want_hits, lines[1:]):
        parts = line.split(" ")
        ok = parts[0] == label and parts[1] == "hits=%d" % n
        ok = ok and (parts[2] == "last=-" if n == 0 else parts[2].endswith("Z"))
        check(ok, "hits line %s: %s" % (label, line))

    # sockd-check lint --hits: line 4 never decided anything; two processes'
    # reports added; a line that is no rule now.
    hits_file = os.path.join(ctl_dir, "hits.txt")
    with open(hits_file, "w") as f:
        f.write(hits + hits + "%s:1 hits=5 last=-\n" % conf_path)
    p = subprocess.run([SOCKD_CHECK, "lint", "--rules", conf_path, "--hits", hits_file],
                       capture_output=True, text=True, timeout=30)
    out = p.stdout
    check(p.returncode == 0 and ("%s:4:1: note: never decided a request since" % conf_path) in out
          and out.count("[never-hit]") == 1, "lint --hits reports line 4 as never hit:\n" + out)
    check(("%s:1: warning: %s counts 5 hit(s)" % (conf_path, hits_file)) in out and "[hits-stale]" in out,
          "lint --hits reports a counted line that is no rule")
    p = subprocess.run([SOCKD_CHECK, "lint", "--json", "--rules", conf_path, "--hits", hits_file],
                       capture_output=True, text=True, timeout=30)
    codes = [x["code"] for x in json.loads(p.stdout)["findings"]]
    check(codes.count("never-hit") == 1 and codes.count("hits-stale") == 1, "lint --hits --json: %s" % codes)

    # A reload starts the hits afresh (other line numbers, other rules).
    sockd.write("sockd.conf", conf + "deny 127.0.0.1 255.255.255.255 127.0.0.9 255.255.255.255\n")
    sockd.signal(signal.SIGHUP)
    check(sockd.wait_log("event=reloaded"), "reloaded")
    rc, hits = control(ctl, "hits")
    lines = hits.splitlines()
    check(len(lines) == 7 and all(" hits=0 last=-" in l for l in lines[1:]), "hits start afresh: %r" % hits)
    rc, out = control(ctl, "stats")
    check(" reloads=1 " in out and " rules=5 " in out and " permitted=3 " in out,
          "counters kept over a reload: " + out.strip())
    rc, out = control(ctl, "bogus")
    check(rc == 1 and out.startswith("error unknown command"), "unknown command: " + out.strip())
finally:
    rc = sockd.stop()
check(rc == 0 and not os.path.exists(ctl), "stopped, control socket removed")

# The supervisor's way: a listening socket it made, inherited. Every socket
# is listening before sockd runs, so the first command just waits for it.
lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
inherited = os.path.join(ctl_dir, "inherited")
lsock.bind(inherited)
lsock.listen(4)
sockd = Sockd(gateway_toml(), files={"sockd.conf": conf},
              extra_args=["--control-fd", str(lsock.fileno())], pass_fds=(lsock.fileno(),))
try:
    rc, out = control(inherited, "hits")
    check(rc == 0 and out.splitlines()[-1] == "default hits=0 last=-", "inherited control socket: " + out)
    check(sockd.wait_log("control=fd:%d" % lsock.fileno()), "the start line names the inherited fd")
finally:
    rc = sockd.stop()
check(rc == 0 and os.path.exists(inherited), "an inherited socket's path is left alone")
lsock.close()
closed.close()
http.stop()
finish()
