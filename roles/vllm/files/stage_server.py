# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's short-lived stage server: one node serves staged files to its peers.

    python3 stage_server.py --bind 10.0.0.11 --port 29590 --max-seconds 3600 \
        --allow 10.0.0.12/32 [--allow ...] NAME=DIR [NAME=DIR ...]

GET and HEAD of /NAME/PATH answer the file DIR/PATH (Range requests for resumed transfers),
only to clients whose address is in an --allow network, only for regular files inside DIR, no
listings. It binds the host's cluster address, never a wildcard, and exits after --max-seconds
at the latest (the role stops it as soon as the peers have their files; systemd's
RuntimeMaxSec= is the backstop). The firewall already lets only peers reach the cluster
address; the allow list is the second lock. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import http.server
import ipaddress
import os
import re
import socket
import sys
import threading
import urllib.parse

CHUNK = 1 << 20
RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--bind", required=True, help="the host's cluster address")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--allow", action="append", default=[], help="a peer network (CIDR)")
    p.add_argument("--max-seconds", type=float, default=3600)
    p.add_argument("trees", nargs="+", metavar="NAME=DIR")
    args = p.parse_args(argv)
    address = ipaddress.ip_address(args.bind)
    if address.is_unspecified:
        p.error(f"--bind {args.bind}: a wildcard address would serve every interface")
    if not args.allow:
        p.error("give at least one --allow network: nobody else may fetch")
    args.allow = [ipaddress.ip_network(a, strict=False) for a in args.allow]
    trees = {}
    for item in args.trees:
        name, sep, path = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not os.path.isdir(path):
            p.error(f"{item!r}: expected NAME=DIR with an existing DIR")
        trees[name] = os.path.realpath(path)
    args.trees = trees
    return args


def resolve(trees, url_path):
    """The file a request path names, or None (outside every tree, not a regular file)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
    name, _sep, rel = path.lstrip("/").partition("/")
    root = trees.get(name)
    if root is None or not rel or "\0" in rel:
        return None
    full = os.path.realpath(os.path.join(root, rel))
    if os.path.commonpath([root, full]) != root or not os.path.isfile(full):
        return None
    return full


def allowed(networks, client):
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in net for net in networks)


def byte_range(header, size):
    """(start, end inclusive) of a Range header, None for the whole file, False if unusable."""
    if not header:
        return None
    match = RANGE.match(header.strip())
    if not match:
        return False
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else size - 1
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


def handler(trees, networks):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "hardened-vllm-stage"
        sys_version = ""

        def do_HEAD(self):  # http.server's naming
            self.answer(body=False)

        def do_GET(self):
            self.answer(body=True)

        def answer(self, body):
            if not allowed(networks, self.client_address[0]):
                self.send_error(403, "not a peer")
                return
            full = resolve(trees, self.path)
            if full is None:
                self.send_error(404)
                return
            size = os.path.getsize(full)
            span = byte_range(self.headers.get("Range"), size)
            if span is False:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = span or (0, size - 1)
            self.send_response(206 if span else 200)
            if span:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(max(end - start + 1, 0)))
            self.end_headers()
            if not body or size == 0:
                return
            with open(full, "rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    block = f.read(min(CHUNK, left))
                    if not block:
                        break
                    self.wfile.write(block)
                    left -= len(block)

    return Handler


def make_server(args):
    family_server = type(
        "StageServer",
        (http.server.ThreadingHTTPServer,),
        {
            "address_family": socket.AF_INET6 if ":" in args.bind else socket.AF_INET,
            "daemon_threads": True,
        },
    )
    return family_server((args.bind, args.port), handler(args.trees, args.allow))


def main(argv=None):
    args = parse_args(argv)
    server = make_server(args)
    timer = threading.Timer(args.max_seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    print(f"serving {sorted(args.trees)} on {args.bind}:{args.port} to {args.allow}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
