"""Listen on PORT on every IPv4 address until STOPFILE exists (at most SECONDS); print the
peers that connected, as JSON. READYFILE is created once it listens (waiting for the port by
connecting to it would count as a peer).

The outsider runs it where a hostile kv_transfer_params points a decode node (remote_host,
remote_port): the router must strip them, so nothing of the cluster may ever connect here.
"""

import json
import os
import select
import socket
import sys
import time

port, seconds, stop, ready = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", port))
server.listen(16)
with open(ready, "w", encoding="utf-8"):
    pass
peers, end = [], time.monotonic() + seconds
while time.monotonic() < end and not os.path.exists(stop):
    if select.select([server], [], [], 0.5)[0]:
        conn, peer = server.accept()
        peers.append(peer[0])
        conn.close()
print(json.dumps({"port": port, "seconds": seconds, "peers": peers}))
