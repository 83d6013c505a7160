"""sockd's rule hooks: `: shell command` after %-expansion with NEC's
sanitising (no shell injection through a user name), for permit and deny
lines (identd's hooks: sockd_identd.py), without blocking the relay,
bounded in number (hook_max_running) and time (hook_timeout)."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (EchoServer, Sockd, check, finish, gateway_toml,  # noqa: E402
                           recv_exact)

echo = EchoServer()
slow = EchoServer()     # its rule's hook sleeps


def conf(d):
    return (
        "deny 127.0.0.1 255.255.255.255 127.0.0.9 255.255.255.255 : echo denied %%u %%z >> %s/deny.out\n"
        "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d : sleep 30\n"
        "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d : "
        "echo %%u %%a %%c %%z %%s >> %s/permit.out\n"
        % (d, slow.port, echo.port, d))


sockd = Sockd(gateway_toml(sockd_extra='hook_timeout = "1s"\nhook_max_running = 2'),
              files={"sockd.conf": "deny 0.0.0.0 0.0.0.0\n"})
d = sockd.dir
sockd.write("sockd.conf", conf(d))
sockd.signal(__import__("signal").SIGHUP)
check(sockd.wait_log("event=reloaded"), "the hook rules are loaded")


def socks4(port, dst, userid):
    s = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
    s.sendall(b"\x04\x01" + struct.pack("!H", port) + socket.inet_aton(dst) + userid + b"\x00")
    return s, recv_exact(s, 8)


def wait_file(path, needle, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and needle in open(path, errors="replace").read():
            return True
        time.sleep(0.05)
    return False


try:
    s, r = socks4(echo.port, "127.0.0.1", b"alice")
    check(r[1] == 90, "permit with a hook: granted")
    s.sendall(b"hello")
    check(recv_exact(s, 5) == b"hello", "and relayed")
    s.close()
    check(wait_file(d + "/permit.out", "alice 127.0.0.1 connect 127.0.0.1 %d" % echo.port),
          "the permit line's hook ran with %u %a %c %z %s expanded")

    s, r = socks4(echo.port, "127.0.0.1", b"x;touch " + d.encode() + b"/pwned;$(id)")
    s.close()
    check(r[1] == 90, "a hostile USERID is still just a user name")
    check(wait_file(d + "/permit.out", "x_touch_%s/pwned___id_" % d), "the hostile USERID is sanitised in %u")
    time.sleep(0.3)
    check(not os.path.exists(d + "/pwned"), "no shell injection through %u")

    s, r = socks4(9, "127.0.0.9", b"mallory")
    s.close()
    check(r[1] == 91, "deny line: CD 91")
    check(wait_file(d + "/deny.out", "denied mallory 127.0.0.9"), "the deny line's hook ran (NEC's mail on reject)")

    # Hooks that outlive hook_timeout are killed; the relay is not held up;
    # no more than hook_max_running (2) run at once.
    t0 = time.time()
    socks_ = []
    for i in range(3):
        s, r = socks4(slow.port, "127.0.0.1", b"slow%d" % i)
        check(r[1] == 90, "session %d on the sleeping hook's rule is granted" % i)
        s.sendall(b"ping")
        check(recv_exact(s, 4) == b"ping", "and relayed at once")
        socks_.append(s)
    check(time.time() - t0 < 1.0, "three sessions took %.2fs: hooks do not block" % (time.time() - t0))
    check(sockd.wait_log("event=hook_skipped"), "the third hook is skipped (hook_max_running=2)")
    check(sockd.wait_log("status=timeout", timeout=6), "a sleeping hook is killed at hook_timeout")
    for s in socks_:
        s.close()
    time.sleep(1.5)
    lines = [l for l in sockd.log_lines("hook")]
    check(sum("status=timeout" in l for l in lines) == 2, "both running hooks were killed (%d)" % len(lines))
    check(any("status=exit:0" in l for l in lines), "finished hooks are logged with their exit status")
finally:
    rc = sockd.stop()
    echo.stop()
    slow.stop()
check(rc == 0, "sockd exits 0")
finish()
