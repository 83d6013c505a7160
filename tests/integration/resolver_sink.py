"""A DNS sink for the resolver's netbed test: takes UDP datagrams on ADDR
port 53, answers none and logs each ("query FROM") on stdout, so that the
test can tell whether the resolver sent anything to an address it must not
query (one in the LAN, or the gateway's own). Bounded: 1000 datagrams or
300 s.

usage: resolver_sink.py ADDR
"""

import socket
import sys
import time


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((sys.argv[1], 53))
    sock.settimeout(1.0)
    print("listening", flush=True)
    deadline = time.monotonic() + 300
    for _ in range(1000):
        if time.monotonic() > deadline:
            break
        try:
            _, peer = sock.recvfrom(4096)
        except socket.timeout:
            continue
        print(f"query {peer[0]}", flush=True)


if __name__ == "__main__":
    main()
