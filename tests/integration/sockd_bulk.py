"""Bulk through sockd (docs/sockd.md, "I/O paths"): a direction whose reads
fill a whole buffer moves to splice(2) through a pipe, on both loops. Each
session here sends 16 MiB of a seeded pseudo-random stream through sockd to
an echo server while reading the echo back, then half-closes; every byte
must come back in order (SHA-256 of both ends), the echo's close must end
the session, and sockd's log must count every byte both ways. Four such
sessions at once share the thread's pipes."""
import hashlib
import os
import random
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import EchoServer, Sockd, check, finish, gateway_toml, socks5_connect  # noqa: E402

SIZE = 16 * 1024 * 1024
CHUNK = 256 * 1024

echo = EchoServer()
conf = "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255\n"
sockd = Sockd(gateway_toml(), files={"sockd.conf": conf})


def session(seed, results):
    """One bulk session; results[seed] = (sent digest, received digest, bytes back, clean end)."""
    sent = hashlib.sha256()
    got = hashlib.sha256()
    back = 0
    clean = False
    try:
        s, rep = socks5_connect(sockd.port, "127.0.0.1", echo.port, timeout=30)
        if rep != 0:
            results[seed] = (None, None, 0, False)
            return
        s.settimeout(30)
        rng = random.Random(seed)

        def send():
            left = SIZE
            while left > 0:
                n = min(CHUNK, left)
                block = rng.randbytes(n)
                sent.update(block)
                s.sendall(block)
                left -= n
            s.shutdown(socket.SHUT_WR)  # the half-close follows the bulk

        t = threading.Thread(target=send)
        t.start()
        while True:
            b = s.recv(1 << 20)
            if not b:
                clean = True  # the echo server's close, passed on after its bytes
                break
            got.update(b)
            back += len(b)
        t.join(60)
        s.close()
    except OSError as e:
        print("  (session %d: %s)" % (seed, e))
    results[seed] = (sent.hexdigest(), got.hexdigest(), back, clean)


try:
    results = {}
    session(1, results)
    sent, got, back, clean = results[1]
    check(back == SIZE, "16 MiB come back through sockd (%d bytes)" % back)
    check(sent == got, "every byte in order (SHA-256 of what was sent and what came back)")
    check(clean, "the echo server's close ends the session after the last byte")
    check(sockd.wait_log("up=%d down=%d" % (SIZE, SIZE)),
          "the log counts 16 MiB up and 16 MiB down for the session")

    results = {}
    threads = [threading.Thread(target=session, args=(seed, results)) for seed in (2, 3, 4, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    ok = all(seed in results and results[seed][2] == SIZE and results[seed][0] == results[seed][1]
             and results[seed][3] for seed in (2, 3, 4, 5))
    check(ok, "four bulk sessions at once: every byte back in order, each ended cleanly")
    check(sockd.log().count("up=%d down=%d" % (SIZE, SIZE)) == 5, "and each logged with its byte counts")
finally:
    rc = sockd.stop()
    echo.stop()
check(rc == 0, "sockd exits 0")
check("Sanitizer" not in sockd.log() and "runtime error" not in sockd.log(),
      "no sanitizer finding in sockd's output")
finish()
