"""sockd with session lines not logged ([log] level above info): the
sessions are counted and the rules' hits kept exactly as when they are
logged (the fields only a line shows are then not even formatted), no
session line is written; after a reload to level info the next session's
line is whole (time, client, listener, dst, addr, rule)."""
import datetime
import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (EchoServer, Sockd, check, finish, gateway_toml,  # noqa: E402
                           recv_exact, socks5_connect, temp_dir)

import subprocess  # noqa: E402

SOCKD = os.environ.get("SOCKD", "sockd")

echo = EchoServer()
# A port where nothing listens: bound, never listening.
closed = socket.socket()
closed.bind(("127.0.0.1", 0))
cp = closed.getsockname()[1]
conf = ("permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d\n"  # line 1
        "deny   127.0.0.1 255.255.255.255 127.0.0.3 255.255.255.255\n"         # line 2
        "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d\n"  # line 3
        % (echo.port, cp))
SESSION_EVENTS = (" event=terminated ", " event=refused ", " event=failed ")


def toml_at(level):
    return gateway_toml() + '\n[log]\nlevel = "%s"\n' % level


def control(path, command):
    p = subprocess.run([SOCKD, "--control", path, command], capture_output=True, text=True,
                       timeout=20)
    return p.returncode, p.stdout


def stats(path):
    rc, out = control(path, "stats")
    return dict(kv.split("=", 1) for kv in out.split()) if rc == 0 else {}


def wait_total(path, n, timeout=10.0):
    """Bounded wait until `n` sessions have ended (the counter, as no line comes)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if stats(path).get("sessions_total") == str(n) and stats(path).get("sessions_open") == "0":
            return True
        time.sleep(0.02)
    return False


def echo_session(port, payload):
    s, rep = socks5_connect(port, "127.0.0.1", echo.port)
    s.sendall(payload)
    back = recv_exact(s, len(payload))
    s.close()
    return rep == 0 and back == payload


ctl = os.path.join(temp_dir("sockd-quiet-"), "ctl")
sockd = Sockd(toml_at("notice"), files={"sockd.conf": conf}, extra_args=["--control", ctl])
try:
    port = sockd.port
    check(echo_session(port, b"one" * 100), "a permitted session, echoed")
    check(echo_session(port, b"two" * 50), "a second one")
    c, rep = socks5_connect(port, "127.0.0.3", echo.port)
    c.close()
    check(rep == 2, "denied by line 2: REP %d" % rep)
    c, rep = socks5_connect(port, "127.0.0.4", echo.port)
    c.close()
    check(rep == 2, "denied by no rule: REP %d" % rep)
    c, rep = socks5_connect(port, "127.0.0.1", cp)
    c.close()
    check(rep == 5, "permitted, connection refused: REP %d" % rep)
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"\x05\x01\x00")
    recv_exact(c, 2)
    c.sendall(b"\x05\x09\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo.port))
    head = recv_exact(c, 2)
    c.close()
    check(head == b"\x05\x07", "unknown command answered REP 7: %r" % head)

    check(wait_total(ctl, 6), "six sessions ended: %s" % stats(ctl))
    st = stats(ctl)
    want = {"sessions_total": "6", "permitted": "2", "denied": "2", "failed": "1",
            "malformed": "1", "incomplete": "0", "connects": "2"}
    check(all(st.get(k) == v for k, v in want.items()), "counted as when logged: %s" %
          {k: st.get(k) for k in want})
    check(st.get("bytes_up") == str(300 + 150) and st.get("bytes_down") == str(300 + 150),
          "bytes counted: %s up, %s down" % (st.get("bytes_up"), st.get("bytes_down")))
    check(not any(e in l for l in sockd.log_lines() for e in SESSION_EVENTS),
          "no session line at level notice")

    rc, hits = control(ctl, "hits")
    conf_path = os.path.join(sockd.dir, "sockd.conf")
    lines = hits.splitlines()
    check(rc == 0 and len(lines) == 5, "hits: %r" % hits)
    now = datetime.datetime.now(datetime.timezone.utc)
    for (label, n), line in zip([("%s:1" % conf_path, 2), ("%s:2" % conf_path, 1),
                                 ("%s:3" % conf_path, 1), ("default", 1)], lines[1:]):
        parts = line.split(" ")
        ok = len(parts) == 3 and parts[0] == label and parts[1] == "hits=%d" % n
        if ok:
            last = datetime.datetime.strptime(parts[2], "last=%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc)
            ok = abs((now - last).total_seconds()) < 120
        check(ok, "hits line %s, last use stamped now: %s" % (label, line))

    # Level info from a reload: the next session's line is whole.
    sockd.write("gateway.toml", toml_at("info").replace("{dir}", sockd.dir))
    sockd.signal(signal.SIGHUP)
    check(sockd.wait_log("event=reloaded"), "reloaded")
    s, rep = socks5_connect(port, "127.0.0.1", echo.port)
    s.sendall(b"three")
    check(rep == 0 and recv_exact(s, 5) == b"three", "a session after the reload")
    client_port = s.getsockname()[1]
    s.close()
    check(sockd.wait_log(" event=terminated "), "its line is written")
    line = sockd.log_lines("terminated")[0]
    fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
    started = datetime.datetime.strptime(fields.get("time", "")[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    check(abs((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()) < 120,
          "time= is the session's start: %s" % fields.get("time"))
    want = {"client": "127.0.0.1:%d" % client_port, "listener": "127.0.0.1:%d" % port,
            "dst": "127.0.0.1:%d" % echo.port, "addr": "127.0.0.1:%d" % echo.port,
            "rule": "%s:1" % conf_path, "verdict": "permit", "up": "5", "down": "5"}
    bad = {k: fields.get(k) for k, v in want.items() if fields.get(k) != v}
    check(not bad, "every field of the line (wrong: %s): %s" % (bad, line))
finally:
    rc = sockd.stop()
    echo.stop()
    closed.close()
check(rc == 0, "sockd exits 0")
check("runtime error" not in sockd.log() and "Sanitizer" not in sockd.log(),
      "no sanitizer finding in sockd's output")
finish()
