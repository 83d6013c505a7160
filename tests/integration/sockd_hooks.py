"""sockd's rule hooks: `: shell command` after %-expansion with NEC's
sanitising (no shell injection through a user name), for permit and deny
lines (identd's hooks: sockd_identd.py), without blocking the relay,
bounded in number (hook_max_running) and time (hook_timeout); hostile user
names reach a real hook's argv neither as options nor as shell syntax."""
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
argv_echo = EchoServer()  # its rule's hook records its argv


def conf(d):
    return (
        "deny 127.0.0.1 255.255.255.255 127.0.0.9 255.255.255.255 : echo denied %%u %%z >> %s/deny.out\n"
        # Unquoted and double-quoted %u: what the administrator's program sees.
        "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d : "
        "%s/argv.sh %%u \"%%u\" end\n"
        % (d, argv_echo.port, d) +
        "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d : sleep 30\n"
        "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d : "
        "echo %%u %%a %%c %%z %%s >> %s/permit.out\n"
        % (slow.port, echo.port, d))


sockd = Sockd(gateway_toml(sockd_extra='hook_timeout = "4s"\nhook_max_running = 2'),
              files={"sockd.conf": "deny 0.0.0.0 0.0.0.0\n"})
d = sockd.dir
# The hook: one NUL-terminated record per argument, one file per run.
sockd.write("argv.sh", '#!/bin/sh\nf=$(mktemp %s/argv.XXXXXX.tmp)\nprintf "%%s\\0" "$@" > "$f"\n'
            'mv "$f" "${f%%.tmp}.out"\n' % d)
os.chmod(d + "/argv.sh", 0o755)
sockd.write("sockd.conf", conf(d))
# A SIGHUP before sockd handles signals would end it: wait for event=started.
check(sockd.wait_log("event=started"), "sockd started")
sockd.signal(__import__("signal").SIGHUP)
check(sockd.wait_log("event=reloaded"), "the hook rules are loaded")


def socks4(port, dst, userid):
    s = socket.create_connection(("127.0.0.1", sockd.port), timeout=5)
    s.sendall(b"\x04\x01" + struct.pack("!H", port) + socket.inet_aton(dst) + userid + b"\x00")
    return s, recv_exact(s, 8)


def wait_until(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def hooks_ended(rule_line):
    """Hook runs of sockd.conf line `rule_line` that have ended (logged with their status)."""
    return sum(("rule=%s/sockd.conf:%d " % (d, rule_line)) in l
               for l in sockd.log_lines("hook"))


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
    check(wait_until(lambda: hooks_ended(4) == 2), "both runs of the echo hook have ended")
    check(not os.path.exists(d + "/pwned"), "no shell injection through %u")

    # Hostile USERIDs against a hook that records its argv: each value must
    # arrive as one argument, never starting with '-', without '\\', quotes,
    # '$', '`', ';' or newlines, in both the unquoted and the quoted place.
    hostile = [(b"-rf", "_rf"), (b"a\\b", "a_b"), (b"a\\", "a_"), (b"$(id)", "__id_"),
               (b"`id`", "_id_"), (b"x;touch " + d.encode() + b"/pwned2", "x_touch_%s/pwned2" % d),
               (b"l1\nl2", "l1_l2"), (b"'\"q", "__q"), (b"--help", "_-help")]
    for userid, want in hostile:
        before = set(f for f in os.listdir(d) if f.startswith("argv.") and f.endswith(".out"))
        s, r = socks4(argv_echo.port, "127.0.0.1", userid)
        s.close()
        check(r[1] == 90, "USERID %r is granted" % userid)
        got = None
        deadline = time.time() + 5
        while got is None and time.time() < deadline:
            new = [f for f in os.listdir(d) if f.startswith("argv.") and f.endswith(".out")
                   and f not in before]
            if new:
                with open(os.path.join(d, new[0]), "rb") as f:
                    got = f.read().split(b"\0")[:-1]
            else:
                time.sleep(0.05)
        check(got == [want.encode(), want.encode(), b"end"],
              "USERID %r reaches the hook as argv %r (%r)" % (userid, [want, want, "end"], got))
    check(not os.path.exists(d + "/pwned2"), "no command ran from a USERID")

    s, r = socks4(9, "127.0.0.9", b"mallory")
    s.close()
    check(r[1] == 91, "deny line: CD 91")
    check(wait_file(d + "/deny.out", "denied mallory 127.0.0.9"), "the deny line's hook ran (NEC's mail on reject)")

    # Hooks that outlive hook_timeout are killed; the relay is not held up;
    # no more than hook_max_running (2) run at once.
    socks_ = []
    for i in range(3):
        s, r = socks4(slow.port, "127.0.0.1", b"slow%d" % i)
        check(r[1] == 90, "session %d on the sleeping hook's rule is granted" % i)
        s.sendall(b"ping")
        check(recv_exact(s, 4) == b"ping", "and relayed at once")
        socks_.append(s)
    # Not a stopwatch: the order of events. Had a session waited for its
    # hook, that hook would have been killed (hook_timeout) before it relayed.
    check(not any("status=timeout" in l for l in sockd.log_lines("hook")),
          "the three sessions relayed while their hooks still ran: hooks do not block")
    check(sockd.wait_log("event=hook_skipped"), "the third hook is skipped (hook_max_running=2)")
    check(sockd.wait_log("status=timeout", timeout=10), "a sleeping hook is killed at hook_timeout")
    for s in socks_:
        s.close()
    check(wait_until(lambda: sum("status=timeout" in l for l in sockd.log_lines("hook")) >= 2, 10),
          "the second sleeping hook is killed too")
    lines = [l for l in sockd.log_lines("hook")]
    check(sum("status=timeout" in l for l in lines) == 2, "both running hooks were killed (%d)" % len(lines))
    check(any("status=exit:0" in l for l in lines), "finished hooks are logged with their exit status")
finally:
    rc = sockd.stop()
    echo.stop()
    slow.stop()
    argv_echo.stop()
check(rc == 0, "sockd exits 0")
finish()
