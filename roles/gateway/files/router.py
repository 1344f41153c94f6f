# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The prefill/decode router of a disaggregated cluster (hardened.vllm.gateway), stdlib only.

The gateway (nginx: TLS, client keys, route allowlist, limits) sends the generation routes to
this service on loopback. For each request it:

1. drops whatever ``kv_transfer_params`` the client sent (they tell a decode node where to
   pull KV blocks from; a client must never choose that);
2. asks the next prefill node (round robin) for one token with
   ``kv_transfer_params: {do_remote_decode: true, ...}`` (not streamed): vLLM's NixlConnector
   computes the prompt, keeps its KV blocks and answers with the parameters a decode node
   needs (``remote_host``, ``remote_port``, ``remote_block_ids``, ...);
3. checks that those parameters name that prefill node's own side channel (the plan's
   address and ``ports.nixl``), then sends the client's request with them to the next decode
   node, and hands decode's answer back as it comes (server-sent events included).

The nodes are reached through their gateways over TLS (verified with the gateway CA) with the
router's own key, which each gateway sends straight to vLLM. A step that fails answers 502 with
the step, the node and the reason; a prefill node's 4xx (the client's request is wrong) is
passed back as it is. Configuration: a JSON file (argv[1]) the role renders from the plan; the
key: the file named by the configuration, usually systemd's credential directory.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# What vLLM's NixlConnector reads on a prefill request: compute, keep the blocks for a remote
# decode, and fill in the rest of these in the answer.
PREFILL_PARAMS = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}
# Hop-by-hop and framing headers never copied from decode's answer.
_SKIP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
)
CHUNK = 65536


class StepFailed(Exception):
    """One step (prefill or decode) failed; ``status`` and ``body`` are the client's answer."""

    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def error_body(message, kind="bad_gateway", code=502):
    """An OpenAI-style error, as the gateway's own errors look."""
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode() + b"\n"


def parse_request(raw):
    """The client's JSON object, or StepFailed(400)."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise StepFailed(
            400, error_body(f"the body is not JSON: {exc}", "bad_request", 400)
        ) from exc
    if not isinstance(body, dict):
        raise StepFailed(400, error_body("the body must be a JSON object", "bad_request", 400))
    return body


def strip(body):
    """The client's request without ``kv_transfer_params`` (a copy), and whether it had any.

    vLLM also takes them from ``vllm_xargs`` (its extra sampling arguments, where a top-level
    ``kv_transfer_params`` overrides them): dropped there too.
    """
    clean = {k: v for k, v in body.items() if k != "kv_transfer_params"}
    stripped = "kv_transfer_params" in body
    xargs = body.get("vllm_xargs")
    if isinstance(xargs, dict) and "kv_transfer_params" in xargs:
        clean["vllm_xargs"] = {k: v for k, v in xargs.items() if k != "kv_transfer_params"}
        stripped = True
    return clean, stripped


def prefill_request(body):
    """The prefill step: the prompt, one token, not streamed, the blocks kept for decode."""
    request = dict(body)
    request["kv_transfer_params"] = dict(PREFILL_PARAMS)
    request["stream"] = False
    request.pop("stream_options", None)
    request["max_tokens"] = 1
    if "max_completion_tokens" in request:  # chat: vLLM takes the smaller one
        request["max_completion_tokens"] = 1
    return request


def decode_params(answer, node):
    """The ``kv_transfer_params`` of a prefill answer, checked against the node asked.

    They must name the node's own side channel (the plan's address and ``ports.nixl``), so a
    decode node only ever pulls from a prefill node of this cluster. Raises StepFailed(502).
    """
    where = f"prefill on {node['host']}"
    params = answer.get("kv_transfer_params") if isinstance(answer, dict) else None
    if not isinstance(params, dict) or not params:
        raise StepFailed(
            502,
            error_body(
                f"{where} answered without kv_transfer_params (is it a kv_producer with "
                "NixlConnector?)"
            ),
        )
    host, port = params.get("remote_host"), params.get("remote_port")
    if str(host) != node["kv_host"] or port != node["kv_port"]:
        raise StepFailed(
            502,
            error_body(
                f"{where} handed out the side channel {host}:{port}, not its own "
                f"{node['kv_host']}:{node['kv_port']} (the plan's host_ip and ports.nixl)"
            ),
        )
    if not params.get("do_remote_prefill"):
        raise StepFailed(502, error_body(f"{where} did not ask for a remote prefill"))
    return params


def decode_request(body, params):
    """The decode step: the client's request (already stripped) with prefill's parameters."""
    request = dict(body)
    request["kv_transfer_params"] = params
    return request


class RoundRobin:
    """The next node of a list, thread-safe."""

    def __init__(self, nodes):
        if not nodes:
            raise ValueError("no nodes")
        self._cycle, self._lock = itertools.cycle(list(nodes)), threading.Lock()

    def next(self):
        with self._lock:
            return next(self._cycle)


class Upstreams:
    """How the router reaches the nodes' gateways: TLS with the CA, the router's key."""

    def __init__(self, config, key):
        self.key, self.timeout = key, float(config.get("timeout", 3600))
        self.context = None
        if config.get("ca"):
            self.context = ssl.create_default_context(cafile=config["ca"])
            self.context.minimum_version = ssl.TLSVersion.TLSv1_2

    def post(self, node, path, body, request_id):
        """Open a POST to ``node``'s gateway; the response, unread. OSError on no connection."""
        url = urlsplit(node["url"])
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(
                url.hostname, url.port, timeout=self.timeout, context=self.context
            )
        else:  # the unit tests' plain upstreams; the plan always writes https
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=self.timeout)
        data = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
            "Authorization": f"Bearer {self.key}",
            "X-Request-Id": request_id,
        }
        conn.request("POST", path, body=data, headers=headers)
        response = conn.getresponse()
        response.conn = conn
        return response


def run_prefill(upstreams, node, path, body, request_id):
    """Prefill on ``node``; the checked parameters for decode, or StepFailed."""
    where = f"prefill on {node['host']} ({node['url']})"
    try:
        response = upstreams.post(node, path, prefill_request(body), request_id)
        raw = response.read()
        response.conn.close()
    except (OSError, http.client.HTTPException) as exc:
        raise StepFailed(502, error_body(f"{where} failed: {exc or type(exc).__name__}")) from exc
    if 400 <= response.status < 500:  # the client's request is wrong: say so as vLLM did
        raise StepFailed(
            response.status, raw, {"Content-Type": response.getheader("Content-Type", "")}
        )
    if response.status != 200:
        raise StepFailed(
            502, error_body(f"{where} answered HTTP {response.status}: {_excerpt(raw)}")
        )
    try:
        answer = json.loads(raw)
    except ValueError as exc:
        raise StepFailed(502, error_body(f"{where} answered no JSON: {_excerpt(raw)}")) from exc
    return decode_params(answer, node)


def _excerpt(raw, limit=300):
    text = raw.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."


class Router:
    """The two steps of one request, from the configuration the role renders."""

    def __init__(self, config, key, log=None):
        self.routes = frozenset(config["routes"])
        self.prefill = RoundRobin(config["prefill"])
        self.decode = RoundRobin(config["decode"])
        self.upstreams = Upstreams(config, key)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    def handle(self, path, raw, respond):
        """Route one POST; ``respond(status, headers, chunks)`` writes the answer."""
        request_id = f"hv-{uuid.uuid4().hex}"
        started, prefill, decode, stripped = time.monotonic(), None, None, False
        try:
            body, stripped = strip(parse_request(raw))
            prefill = self.prefill.next()
            params = run_prefill(self.upstreams, prefill, path, body, request_id)
            decode = self.decode.next()
            status = self._decode(decode, path, decode_request(body, params), request_id, respond)
        except StepFailed as failed:
            status = failed.status
            headers = {"Content-Type": "application/json", **failed.headers}
            respond(failed.status, headers, [failed.body])
        self.log(
            json.dumps(
                {
                    "request": request_id,
                    "path": path,
                    "prefill": prefill and prefill["host"],
                    "decode": decode and decode["host"],
                    "stripped_kv_transfer_params": stripped,
                    "status": status,
                    "seconds": round(time.monotonic() - started, 3),
                }
            )
        )

    def _decode(self, node, path, body, request_id, respond):
        where = f"decode on {node['host']} ({node['url']})"
        try:
            response = self.upstreams.post(node, path, body, request_id)
        except (OSError, http.client.HTTPException) as exc:
            raise StepFailed(
                502, error_body(f"{where} failed: {exc or type(exc).__name__}")
            ) from exc
        try:
            if response.status >= 500:
                raw = response.read()
                raise StepFailed(
                    502, error_body(f"{where} answered HTTP {response.status}: {_excerpt(raw)}")
                )
            headers = {k: v for k, v in response.getheaders() if k.lower() not in _SKIP_HEADERS}
            respond(response.status, headers, _chunks(response))
            return response.status
        finally:
            response.conn.close()


def _chunks(response):
    """Decode's body as it arrives (each server-sent event as soon as vLLM sends it)."""
    while True:
        chunk = response.read1(CHUNK)
        if not chunk:
            return
        yield chunk


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 on loopback for the gateway; POST to the configured routes only."""

    protocol_version = "HTTP/1.1"
    server_version = "hardened-vllm-router"
    sys_version = ""

    def do_POST(self):
        router = self.server.router
        if self.path not in router.routes:
            self._send(404, error_body("no such route", "not_found", 404))
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, error_body("Content-Length is required", "length_required", 411))
            return
        raw = self.rfile.read(length)
        router.handle(self.path, raw, self._respond)

    def do_GET(self):
        self._send(405, error_body("method not allowed; use POST", "method_not_allowed", 405))

    def _send(self, status, body):
        self._respond(status, {"Content-Type": "application/json"}, [body])

    def _respond(self, status, headers, chunks):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if isinstance(chunks, list):
            data = b"".join(chunks)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away: stop reading from decode
            self.close_connection = True

    def log_message(self, format, *args):
        """Router.handle logs one line per request; http.server's own lines are dropped."""


def serve(config, key):
    """A threading server on the configured loopback address, not yet serving."""
    address = config["listen"]["address"]
    server = ThreadingHTTPServer((address, int(config["listen"]["port"])), Handler)
    server.daemon_threads = True
    server.router = Router(config, key)
    return server


def main(argv):
    with open(argv[1], encoding="utf-8") as handle:
        config = json.load(handle)
    key_file = config.get("key_file", "")
    if key_file.startswith("$CREDENTIALS_DIRECTORY/"):
        key_file = os.path.join(os.environ["CREDENTIALS_DIRECTORY"], key_file.split("/", 1)[1])
    with open(key_file, encoding="utf-8") as handle:
        key = handle.read().strip()
    server = serve(config, key)
    print(
        f"routing {sorted(config['routes'])} on {config['listen']['address']}:"
        f"{config['listen']['port']}: prefill {[n['host'] for n in config['prefill']]}, "
        f"decode {[n['host'] for n in config['decode']]}",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
