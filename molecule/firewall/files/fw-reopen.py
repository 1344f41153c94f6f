"""Outsider's view of a foreign flush: when was a node's internal port open, when closed again.

Usage: fw-reopen.py ADDRESS PORT [SECONDS]. Connects every 0.1 s (each attempt at most 0.25 s;
a dropped SYN is a timeout) and writes /run/fw-reopen.ready after the first attempt. Ends once
the port was seen open and then stayed closed for 3 s, or after SECONDS (default 30). Prints
JSON: opened (first successful connect), last_open, closed (first failed attempt after the
last success; null if never seen open), attempts. Times are the host's clock (time.time), which
every container of the host shares, so they compare with a timestamp taken on the node.
"""

import json
import socket
import sys
import time

address, port = sys.argv[1], int(sys.argv[2])
limit = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
family = socket.AF_INET6 if ":" in address else socket.AF_INET
start = time.time()
opened = last_open = closed = None
attempts = 0
while time.time() - start < limit:
    began = time.time()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(0.25)
    try:
        sock.connect((address, port))
        ok = True
    except OSError:
        ok = False
    finally:
        sock.close()
    attempts += 1
    if attempts == 1:
        with open("/run/fw-reopen.ready", "w") as handle:
            handle.write(f"{began}\n")
    if ok:
        opened = opened or began
        last_open, closed = began, None
    elif last_open is not None and closed is None:
        closed = began
    if closed is not None and time.time() - closed >= 3:
        break
    time.sleep(max(0.0, 0.1 - (time.time() - began)))
print(
    json.dumps({"opened": opened, "last_open": last_open, "closed": closed, "attempts": attempts})
)
