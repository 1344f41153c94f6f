"""Test listeners: the API port, the DP RPC port and a kernel-chosen high port, each on
0.0.0.0 and on [::] (IPv6-only socket). Accepts and closes every connection. The high port
is written to /run/fw-listeners.port."""

import selectors
import socket
import sys

FIXED = [int(p) for p in sys.argv[1:]]


def listen(family, address, port):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, port))
    sock.listen(64)
    return sock


def pair(port):
    """An IPv4 and an IPv6 socket on the same port (port 0: let the kernel choose)."""
    while True:
        v4 = listen(socket.AF_INET, "0.0.0.0", port)
        try:
            return [v4, listen(socket.AF_INET6, "::", v4.getsockname()[1])]
        except OSError:
            v4.close()
            if port:
                raise


sockets = [s for port in FIXED for s in pair(port)] + pair(0)
with open("/run/fw-listeners.port", "w") as handle:
    handle.write(f"{sockets[-1].getsockname()[1]}\n")
selector = selectors.DefaultSelector()
for sock in sockets:
    selector.register(sock, selectors.EVENT_READ)
while True:
    for key, _events in selector.select():
        connection, _peer = key.fileobj.accept()
        connection.close()
