# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Serve the files of one transfer from a cluster's seeder node to its peers, for that transfer.

    python3 stage_server.py --bind 10.0.0.11 --port 29590 --max-seconds 1800 \
        --allow 10.0.0.12 [--allow 10.0.0.13 ...] NAME=FILE [NAME=FILE ...]

GET and HEAD of /NAME answer FILE, nothing else (no listings, no directories: a NAME may hold
"/" between its parts, e.g. original/params.json, and is looked up as a whole; every part
starts with a letter or digit, so no NAME can climb out with ".."), and only to the --allow
addresses (the peers that fetch; every other client is disconnected before its request is
read). It binds the node's cluster address, never a wildcard, and exits after --max-seconds at
the latest: hardened.vllm.vllm runs it as a transient systemd unit and stops it as soon as the
peers have the files (the wheelhouse archive, the model's files), and hardened.vllm.verify
fails while anything listens on the plan's stage port. The firewall already lets only peers
reach the cluster address; the allow list is the second lock. Peers check the sha256 of every
file they fetched.
Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import http.server
import ipaddress
import os
import re
import shutil
import socket
import sys
import threading
import urllib.parse

SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
NAME = re.compile(rf"{SEGMENT}(?:/{SEGMENT})*")


class StageError(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--bind", required=True, help="the node's cluster address")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--allow", action="append", default=[], help="a peer's address or network")
    p.add_argument("--max-seconds", type=float, default=1800)
    p.add_argument("files", nargs="+", metavar="NAME=FILE")
    return p.parse_args(argv)


def check(args):
    """The bind address, the allowed networks and the served files, or StageError."""
    try:
        bind = ipaddress.ip_address(args.bind)
    except ValueError:
        raise StageError(f"--bind {args.bind!r} is not an IP address") from None
    if bind.is_unspecified:
        raise StageError(f"--bind {args.bind}: a wildcard address would serve every interface")
    if not args.allow:
        raise StageError("give at least one --allow address: nobody else may fetch")
    try:
        allow = [ipaddress.ip_network(a, strict=False) for a in args.allow]
    except ValueError as exc:
        raise StageError(f"--allow: {exc}") from None
    files = {}
    for item in args.files:
        name, sep, path = item.partition("=")
        if not sep or not NAME.fullmatch(name) or not os.path.isfile(path):
            raise StageError(f"{item!r}: expected NAME=FILE with an existing regular FILE")
        files[name] = os.path.realpath(path)
    return bind, allow, files


def allowed(client, allow):
    """Whether a client address (a v4-mapped v6 address counts as its v4) may fetch."""
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in allow)


def resolve(files, url_path):
    """The file a request path names (exactly /NAME, one of the served names), or None."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
    return files.get(path[1:]) if path.startswith("/") else None


def handler(files):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "hardened-vllm-stage"
        sys_version = ""

        def do_HEAD(self):
            self._answer(body=False)

        def do_GET(self):
            self._answer(body=True)

        def _answer(self, body):
            path = resolve(files, self.path)
            if path is None:
                self.send_error(404)
                return
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if body:
                    shutil.copyfileobj(f, self.wfile, 1 << 20)

        def log_message(self, fmt, *args):
            sys.stderr.write(f"{self.client_address[0]} {fmt % args}\n")

    return Handler


def server(bind, port, allow, files):
    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if bind.version == 6 else socket.AF_INET
        daemon_threads = True

        def verify_request(self, request, client_address):
            if allowed(client_address[0], allow):
                return True
            sys.stderr.write(f"{client_address[0]} refused: not a peer that fetches\n")
            return False

    return Server((str(bind), port), handler(files))


def main(argv=None):
    args = parse_args(argv)
    bind, allow, files = check(args)
    httpd = server(bind, args.port, allow, files)
    timer = threading.Timer(args.max_seconds, httpd.shutdown)
    timer.daemon = True
    timer.start()
    print(f"serving {', '.join(sorted(files))} on {bind}:{args.port}", file=sys.stderr)
    httpd.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except (StageError, OSError) as e:
        print(f"stage_server.py: {e}", file=sys.stderr)
        sys.exit(1)
