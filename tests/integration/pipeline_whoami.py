"""The destination of sockd.netbed_pipeline's flows, in the bed's `net`:
on each TCP address:port given, answers at once with a tiny HTTP response
whose body is `SRC <address it was reached from>` and closes; on each UDP
one, answers a datagram with the same text. So a client learns which
egress sockd used. Prints `ready` once every socket listens.

    python3 pipeline_whoami.py tcp:198.51.100.7:8000 tcp:[2001:db8:2::7]:8000 udp:198.51.100.7:8000
"""
import socket
import sys
import threading


def parse(spec):
    kind, rest = spec.split(":", 1)
    host, port = rest.rsplit(":", 1)
    host = host.strip("[]")
    return kind, host, int(port)


def body(peer):
    text = "SRC %s\n" % peer
    return ("HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(text), text)).encode()


def serve_tcp(s):
    while True:
        c, addr = s.accept()
        try:
            c.sendall(body(addr[0]))
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        c.close()


def serve_udp(s):
    while True:
        _, addr = s.recvfrom(2048)
        s.sendto(("SRC %s\n" % addr[0]).encode(), addr)


for spec in sys.argv[1:]:
    kind, host, port = parse(spec)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if kind == "tcp":
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(64)
        threading.Thread(target=serve_tcp, args=(s,), daemon=True).start()
    else:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, port))
        threading.Thread(target=serve_udp, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
