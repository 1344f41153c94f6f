"""The worst possible vLLM, for the verify scenario: on the unix socket vLLM's API uses behind
the gateway, it answers every path and every method with 200 and a JSON body, and serves an
OpenAPI document that lists a route no catalog knows (/v1/secret_debug). Whatever the gateway
lets through therefore answers 200, and the L7 audit must see it.

    python3 vllm-stub.py /run/hardened-vllm/api.sock
"""

import json
import os
import socketserver
import sys
from http.server import BaseHTTPRequestHandler

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "vLLM stub (hardened.vllm verify scenario)", "version": "0.32.0"},
    "paths": {
        "/v1/models": {"get": {}},
        "/v1/models/{model}": {"get": {}},
        "/v1/completions": {"post": {}},
        "/v1/chat/completions": {"post": {}},
        "/invocations": {"post": {}},
        "/health": {"get": {}},
        "/metrics": {"get": {}},
        "/openapi.json": {"get": {}, "head": {}},
        "/v1/secret_debug": {"get": {}, "post": {}},
    },
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vllm-stub/1"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.split("?")[0] == "/openapi.json":
            body = OPENAPI
        else:
            body = {"stub": "vllm", "method": self.command, "path": self.path}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = answer

    def address_string(self):  # a unix socket has no peer address
        return "unix"

    def log_message(self, format, *args):
        sys.stderr.write(f"{self.command} {self.path} {format % args}\n")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


path = sys.argv[1]
if os.path.exists(path):
    os.unlink(path)
with Server(path, Handler) as server:
    server.serve_forever()
