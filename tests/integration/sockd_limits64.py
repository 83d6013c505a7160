"""max_sessions_per_client counts an IPv6 client by its /64: addresses of one
/64 share the limit, another /64 has its own. The client addresses live on
loopback in a network namespace of the test's own (unshare -n); it needs
root, and fails without it (CI runs as root: no skip)."""
import os
import socket
import subprocess
import sys
import time

if os.environ.get("SOCKD_LIMITS64_NETNS") != "1":
    if os.geteuid() != 0:
        print("FAIL - needs root for a private network namespace")
        sys.exit(1)
    env = dict(os.environ, SOCKD_LIMITS64_NETNS="1")
    setup = ("ip link set lo up && "
             "for a in 2001:db8:64::1 2001:db8:64::2 2001:db8:64::3 2001:db8:65::1; do "
             "ip -6 addr add $a/64 dev lo nodad || exit 1; done && exec \"$0\" \"$@\"")
    p = subprocess.run(["unshare", "-n", "sh", "-c", setup, sys.executable, os.path.abspath(__file__)],
                       env=env, timeout=110)
    sys.exit(p.returncode)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import Sockd, check, finish, gateway_toml, recv_all, recv_exact  # noqa: E402

sockd = Sockd(gateway_toml(sockd_extra="max_sessions_per_client = 2"),
              files={"sockd.conf": "permit ::/0\n"}, listen="[::1]:0")


def session_from(src):
    """Opens a session from `src`; returns it if admitted (it answers the
    method negotiation), None if closed at once."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((src, 0))
    try:
        s.connect(("::1", sockd.port))
        s.sendall(b"\x05\x01\x00")
        if recv_exact(s, 2) == b"\x05\x00":
            return s
    except OSError:  # closed at once: EOF, or a reset for the unread request
        pass
    s.close()
    return None


try:
    a = session_from("2001:db8:64::1")
    b = session_from("2001:db8:64::2")
    check(a is not None and b is not None, "two sessions from two addresses of one /64")
    c = session_from("2001:db8:64::3")
    check(c is None, "a third address of the same /64 is over its limit of 2")
    check(sockd.wait_log('client=[2001:db8:64::3]:') and sockd.wait_log('reason="per-client session limit"'),
          "and is logged as the per-client limit")
    d = session_from("2001:db8:65::1")
    check(d is not None, "another /64 has a limit of its own")
    for s in (a, b, c, d):
        if s is not None:
            s.close()
    check(sockd.wait_log("event=refused client=[2001:db8:64::1]:") and
          sockd.wait_log("event=refused client=[2001:db8:64::2]:"), "the /64's sessions ended")
    # A session gives its place back just after its line is logged: poll, bounded.
    e = None
    for _ in range(50):
        e = session_from("2001:db8:64::3")
        if e is not None:
            break
        time.sleep(0.05)
    check(e is not None, "once they closed, the /64 is admitted again")
    if e is not None:
        e.close()
finally:
    sockd.stop()
finish()
