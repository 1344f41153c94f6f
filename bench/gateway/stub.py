# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in for vLLM's API on its unix socket: every request gets one fixed small completion.

    python3 stub.py [SOCKET]        (default /run/hardened-vllm/api.sock)

HTTP/1.1 with keep-alive, one thread per connection, the request body read and dropped, the
answer a vLLM-shaped /v1/completions JSON (about 300 bytes). GET /v1/models answers too (the
gateway role's own check asks for it). The socket gets mode 0770 (umask 007) and the group of
its directory (setgid, as vLLM's unit makes it), so only the gateway's group may connect.
Run by bench/gateway/stub-play.yml as hv-bench-stub.service; standard library only.
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import sys

COMPLETION = json.dumps(
    {
        "id": "cmpl-bench",
        "object": "text_completion",
        "created": 1764633600,
        "model": "tiny-llama",
        "choices": [{"index": 0, "text": " world", "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 2, "total_tokens": 4, "completion_tokens": 2},
    }
).encode()
MODELS = json.dumps(
    {"object": "list", "data": [{"id": "tiny-llama", "object": "model", "owned_by": "bench"}]}
).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = MODELS if self.path == "/v1/models" else COMPLETION
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, format, *args):  # one line per request would cost more than the answer
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 512

    def get_request(self):
        request = super().get_request()[0]
        return request, ("unix", 0)  # BaseHTTPRequestHandler wants a (host, port) pair


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/run/hardened-vllm/api.sock"
    os.umask(0o007)
    if os.path.exists(path):
        os.unlink(path)  # a stale socket from an earlier run, as vLLM's unit removes it
    with Server(path, Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
