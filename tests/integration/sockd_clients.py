"""sockd with real clients over loopback: curl (socks4, socks4a, socks5,
socks5h, with and without username/password), PySocks, proxychains4; rule
denials as the client sees them; a name that resolves to a protected or
denied address is refused."""
import os
import shutil
import subprocess
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sockd_harness import (DnsServer, HttpServer, Sockd, check, curl, finish,  # noqa: E402
                           gateway_toml, temp_dir)

warnings.simplefilter("ignore", DeprecationWarning)
import crypt  # noqa: E402  (deprecated in 3.11, still in Debian 12's python3)

www = temp_dir("sockd-www-")
with open(os.path.join(www, "hello.txt"), "w") as f:
    f.write("hello through diode\n")

http = HttpServer(www)
dns = DnsServer({
    "web.test": ["127.0.0.1"],          # permitted explicitly by the rules below
    "evil.test": ["127.0.0.2"],         # loopback, not named by any rule: protected
    "blocked.test": ["127.0.0.3"],      # named by a deny rule
    "fallback.test": ["127.0.0.5", "::1", "127.0.0.1"],  # only the last one listens
})
hp = http.port

conf = (
    "deny   127.0.0.1 255.255.255.255 127.0.0.3 255.255.255.255\n"
    "permit *=alice 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d\n"
    "deny   *=alice 127.0.0.0/8\n"
    "permit 127.0.0.1 255.255.255.255 127.0.0.1 255.255.255.255 eq %d\n"
    "permit 127.0.0.1 255.255.255.255 127.0.0.5 255.255.255.255 eq %d\n"
    "permit 127.0.0.1 255.255.255.255 ::1/128 eq %d\n"
    "permit 127.0.0.1 255.255.255.255\n" % (hp, hp, hp, hp))
hash_alice = crypt.crypt("wonderland", crypt.mksalt(crypt.METHOD_SHA512))
users = "alice:%s\nbob:!\n" % hash_alice

sockd = Sockd(gateway_toml(dns.port, methods='["userpass", "none"]', users='"{dir}/users"'),
              files={"sockd.conf": conf, "users": users})
try:
    sp = str(sockd.port)
    url = "http://127.0.0.1:%d/hello.txt" % hp
    for flag in ("--socks4", "--socks4a", "--socks5", "--socks5-hostname"):
        rc, out, err = curl([flag, "127.0.0.1:" + sp, url])
        check(rc == 0 and out == "hello through diode\n", "curl %s to an address: %s %s" % (flag, rc, err.strip()))

    # Names resolved by sockd (socks4a, socks5h) through c-ares and our DNS server.
    name_url = "http://web.test:%d/hello.txt" % hp
    for flag in ("--socks4a", "--socks5-hostname"):
        rc, out, err = curl([flag, "127.0.0.1:" + sp, name_url])
        check(rc == 0 and out == "hello through diode\n", "curl %s to a name: %s %s" % (flag, rc, err.strip()))
    check(("web.test", 1) in dns.queries, "sockd asked our DNS server for web.test")

    # A name that resolves to a protected address is refused after resolution.
    rc, _, err = curl(["--socks5-hostname", "127.0.0.1:" + sp, "http://evil.test:%d/" % hp])
    check(rc == 97 and "(2)" in err, "evil.test (127.0.0.2, protected) refused with REP 2: %s %s" % (rc, err.strip()))
    rc, _, err = curl(["--socks4a", "127.0.0.1:" + sp, "http://evil.test:%d/" % hp])
    check(rc == 97 and "91" in err, "evil.test over socks4a refused with 91: %s %s" % (rc, err.strip()))
    # A name that resolves to an address a deny rule names.
    rc, _, err = curl(["--socks5-hostname", "127.0.0.1:" + sp, "http://blocked.test:%d/" % hp])
    check(rc == 97 and "(2)" in err, "blocked.test (deny rule) refused with REP 2: %s" % err.strip())
    # A name that does not exist: host unreachable.
    rc, _, err = curl(["--socks5-hostname", "127.0.0.1:" + sp, "http://nowhere.test:%d/" % hp])
    check(rc == 97 and "(4)" in err, "nowhere.test (NXDOMAIN) gets REP 4: %s" % err.strip())

    # Happy eyeballs: the name's other addresses are tried when the first fail.
    rc, out, err = curl(["--socks5-hostname", "127.0.0.1:" + sp, "http://fallback.test:%d/hello.txt" % hp])
    check(rc == 0 and out == "hello through diode\n", "fallback.test: refused addresses skipped: %s %s" % (rc, err.strip()))
    check(sockd.wait_log("dst=fallback.test:%d addr=127.0.0.1:%d" % (hp, hp)), "the address that answered is logged")

    # A protected destination without a rule naming it (another port of 127.0.0.1).
    rc, _, err = curl(["--socks5", "127.0.0.1:" + sp, "http://127.0.0.1:%d/" % (hp + 1 if hp < 65535 else hp - 1)])
    check(rc == 97 and "(2)" in err, "127.0.0.1 on an unnamed port refused as protected: %s" % err.strip())

    # Username/password (RFC 1929): alice may reach the web server, bad passwords fail.
    rc, out, err = curl(["--socks5", "127.0.0.1:" + sp, "-U", "alice:wonderland", url])
    check(rc == 0 and out == "hello through diode\n", "curl -U alice:wonderland: %s %s" % (rc, err.strip()))
    rc, out, err = curl(["--socks5", "127.0.0.1:" + sp, "-U", "alice:wonderland", url])
    check(rc == 0, "a second login by alice (cached verification) works")
    # (the stopped line below says whether the cache answered it)
    rc, _, err = curl(["--socks5", "127.0.0.1:" + sp, "-U", "alice:wrong", url])
    check(rc == 97, "curl -U alice:wrong is refused: %s %s" % (rc, err.strip()))
    rc, _, err = curl(["--socks5", "127.0.0.1:" + sp, "-U", "bob:anything", url])
    check(rc == 97, "a locked account is refused: %s" % err.strip())

    # PySocks: SOCKS5 and SOCKS4 CONNECT, by address and by name.
    import socks
    for ptype, rdns, host in ((socks.SOCKS5, False, "127.0.0.1"), (socks.SOCKS5, True, "web.test"),
                              (socks.SOCKS4, False, "127.0.0.1"), (socks.SOCKS4, True, "web.test")):
        s = socks.socksocket()
        s.settimeout(10)
        s.set_proxy(ptype, "127.0.0.1", sockd.port, rdns=rdns)
        try:
            s.connect((host, hp))
            s.sendall(b"GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while len(data) < 100000:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            ok = data.endswith(b"hello through diode\n")
        except (socks.ProxyError, OSError) as e:
            ok = False
            print("   pysocks error:", e)
        finally:
            s.close()
        check(ok, "PySocks type %d rdns=%s to %s" % (ptype, rdns, host))

    # proxychains4 running an unmodified curl.
    # scripts/setup.sh installs proxychains4; its absence is a failure.
    check(shutil.which("proxychains4") is not None, "proxychains4 is installed")
    if shutil.which("proxychains4"):
        pc = os.path.join(sockd.dir, "proxychains.conf")
        with open(pc, "w") as f:
            f.write("strict_chain\nquiet_mode\ntcp_read_time_out 10000\ntcp_connect_time_out 5000\n"
                    "[ProxyList]\nsocks5 127.0.0.1 %d\n" % sockd.port)
        p = subprocess.run(["proxychains4", "-q", "-f", pc, "curl", "-sS", "--max-time", "10",
                            "--noproxy", "*", url], capture_output=True, text=True, timeout=20)
        check(p.returncode == 0 and p.stdout == "hello through diode\n",
              "proxychains4 curl: %s %s" % (p.returncode, p.stderr.strip()))

    # The log: one line per session, with the keys docs/sockd.md lists.
    term = sockd.log_lines("terminated")
    refused = sockd.log_lines("refused")
    check(len(term) >= 10, "terminated lines logged (%d)" % len(term))
    check(any("user=alice method=userpass" in l and "verdict=permit" in l for l in term),
          "a userpass session is logged with its user and method")
    check(any("dst=evil.test:" in l and "addr=127.0.0.2:" in l and 'reason="protected destination"' in l
              for l in refused), "the protected name is logged with name and address")
    check(any("dst=blocked.test:" in l and "rule=%s/sockd.conf:1" % sockd.dir in l for l in refused),
          "the deny is logged with its rule file:line")
    check(any("user=alice" in l and "verdict=deny" in l and "method=userpass" in l for l in refused),
          "the failed login is logged")
    for key in ("time=", "client=", "version=", "user=", "method=", "cmd=", "dst=", "addr=",
                "rule=", "verdict=", "reply=", "up=", "down=", "duration=", "reason="):
        check(all(key in l for l in term + refused), "every session line has " + key)
finally:
    rc = sockd.stop()
    http.stop()
    dns.stop()
check(rc == 0, "sockd exits 0 on SIGTERM")
# alice's first login, alice:wrong and the locked bob (against a dummy) each
# ran a hash; alice's second login was answered by the verification cache.
stopped = [l for l in sockd.log_lines("stopped")]
check(len(stopped) == 1 and " auth_cache_hits=1" in stopped[0],
      "the second login by alice was a cache hit: %s" % stopped)
check(len(stopped) == 1 and " auth_hashes=3" in stopped[0], "three logins ran a hash: %s" % stopped)
finish()
