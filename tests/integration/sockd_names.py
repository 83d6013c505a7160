"""Names of RFC 6761 through sockd: `localhost` and every name below it (any
case, with or without the final dot) are loopback without a DNS query, and
then meet protect_internal like any address; every other name, single-label
ones too, goes to the nameserver."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (DnsServer, HttpServer, Sockd, check, curl, finish,  # noqa: E402
                           gateway_toml, temp_dir)

www = temp_dir("sockd-www-")
with open(os.path.join(www, "hello.txt"), "w") as f:
    f.write("hello localhost\n")
http = HttpServer(www)
hp = http.port
dns = DnsServer({"intranet": ["127.0.0.1"]})

LOCAL_NAMES = ("localhost", "localhost.", "LocalHost", "x.localhost", "X.Y.LOCALHOST.")

# sockd's built-in policy: loopback clients may reach what protect_internal
# does not shield, and loopback is shielded.
builtin = "permit 127.0.0.0 255.0.0.0\npermit ::1/128\n"
guarded = Sockd(gateway_toml(dns.port), files={"sockd.conf": builtin})
# A rule naming 127.0.0.1 opens it.
opened = Sockd(gateway_toml(dns.port),
               files={"sockd.conf": "permit 127.0.0.1/32 127.0.0.1/32 eq %d\n"
                                    "permit 127.0.0.1/32\n" % hp})
try:
    for name in LOCAL_NAMES:
        rc, _, err = curl(["--socks5-hostname", "127.0.0.1:%d" % guarded.port,
                           "http://%s:%d/hello.txt" % (name, hp)])
        check(rc == 97 and "(2)" in err,
              "built-in policy: %s is loopback, refused with REP 2 (%s %s)" % (name, rc, err.strip()))
        dst = "dst=%s:%d " % (name, hp)
        check(guarded.wait_log(dst), "its session is logged (%s)" % dst.strip())
        line = [l for l in guarded.log_lines("refused") if dst in l]
        check(bool(line) and "reply=2 " in line[-1] and 'reason="protected destination"' in line[-1],
              "refused by protect_internal, not as unresolvable: %s" % (line[-1] if line else "-"))
    for name in LOCAL_NAMES:
        rc, out, err = curl(["--socks5-hostname", "127.0.0.1:%d" % opened.port,
                             "http://%s:%d/hello.txt" % (name, hp)])
        check(rc == 0 and out == "hello localhost\n",
              "a rule naming 127.0.0.1 opens %s (%s %s)" % (name, rc, err.strip()))
    rc, out, err = curl(["--socks4a", "127.0.0.1:%d" % opened.port, "http://localhost:%d/hello.txt" % hp])
    check(rc == 0 and out == "hello localhost\n", "socks4a to localhost too (%s %s)" % (rc, err.strip()))
    asked = [n for n, _ in dns.queries if "localhost" in n]
    check(asked == [], "no DNS query for any name of localhost (%s)" % asked)

    # Everything else still goes to the nameserver: a single label, and a
    # name that merely ends in the letters "localhost".
    rc, out, err = curl(["--socks5-hostname", "127.0.0.1:%d" % opened.port,
                         "http://intranet:%d/hello.txt" % hp])
    check(rc == 0 and out == "hello localhost\n", "a single-label name is resolved by DNS (%s %s)" % (rc, err.strip()))
    check(("intranet", 1) in dns.queries, "the nameserver was asked for it")
    rc, _, err = curl(["--socks5-hostname", "127.0.0.1:%d" % opened.port, "http://xlocalhost:%d/" % hp])
    check(rc == 97 and ("xlocalhost", 1) in dns.queries,
          "xlocalhost is not below localhost: asked of DNS, NXDOMAIN (%s %s)" % (rc, err.strip()))
finally:
    guarded.stop()
    opened.stop()
    http.stop()
    dns.stop()
finish()
