# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/gateway/files/router.py: the disaggregated cluster's prefill/decode router.

The router runs as the unit runs it (its own HTTP server, on loopback, port 0) in front of
stand-ins for the nodes' gateways that answer with vLLM's real answers to the router's two
steps (tests/unit/fixtures/router, recorded by molecule/disaggregated/record.yml) and keep what
they were sent. Plain HTTP upstreams: the TLS to the gateways is Python's ssl with the CA.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles" / "gateway" / "files" / "router.py"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "router"
_spec = importlib.util.spec_from_file_location("hv_router", SCRIPT)
router = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(router)

KEY = "k" * 40
PROMPT = "the quick brown fox jumps over the lazy dog and runs far away into the woods"
HOSTILE = {
    "do_remote_prefill": True,
    "do_remote_decode": False,
    "remote_engine_id": "hostile",
    "remote_host": "10.231.17.30",
    "remote_port": 5600,
    "remote_block_ids": [[1, 2]],
}


def recorded(name):
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


class Upstream:
    """A node's gateway: answers each POST with ``answer`` (a recorded one), keeps the requests."""

    def __init__(self, answer=None, *, status=None, release=None):
        self.answer, self.requests, self.release = answer, [], release
        self.status = status
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                upstream.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(raw)}
                )
                answer = upstream.answer
                body = answer["body"].encode()
                self.send_response(upstream.status or answer["status"])
                self.send_header("Content-Type", answer["content_type"])
                if not answer["content_type"].startswith("text/event-stream"):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                # As uvicorn streams: chunked, one event per chunk.
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for index, event in enumerate(answer["body"].split("\n\n")[:-1]):
                    data = (event + "\n\n").encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    if index == 0 and upstream.release:  # hold the rest until the client saw it
                        assert upstream.release.wait(10)
                self.wfile.write(b"0\r\n\r\n")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cluster(request):
    """Prefill and decode stand-ins with the recorded answers of one route, and the router."""
    kind = getattr(request, "param", "completion")
    started = []

    def start(prefill=None, decode=None, decode2=None, prefill_url=None, decode_url=None):
        prefill = prefill or Upstream(recorded(f"prefill_{kind}"))
        decode = decode or Upstream(recorded(f"decode_{kind}"))
        started.extend([prefill, decode] + ([decode2] if decode2 else []))
        config = {
            "listen": {"address": "127.0.0.1", "port": 0},
            "routes": ["/v1/chat/completions", "/v1/completions"],
            "prefill": [
                {
                    "host": "pd-prefill",
                    "url": prefill_url or prefill.url,
                    "kv_host": "10.231.17.11",
                    "kv_port": 5600,
                }
            ],
            "decode": [{"host": "pd-decode", "url": decode_url or decode.url}]
            + ([{"host": "pd-decode2", "url": decode2.url}] if decode2 else []),
            "timeout": 10,
        }
        lines = []
        server = router.serve(config, KEY)
        server.router.log = lines.append
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return prefill, decode, server.server_address[1], lines

    yield start
    for item in started:
        if isinstance(item, Upstream):
            item.close()
        else:
            item.shutdown()
            item.server_close()


def post(port, path, body, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw if raw is not None else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response, conn


def logged(lines):
    """The router's first log line (written right after the answer: wait for it)."""
    deadline = time.monotonic() + 5
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    return json.loads(lines[0])


def call(port, path, body, raw=None):
    response, conn = post(port, path, body, raw)
    data = response.read()
    conn.close()
    return response.status, response.getheader("Content-Type"), data


COMPLETION = {"model": "tiny-llama", "prompt": PROMPT, "max_tokens": 8, "ignore_eos": True}
CHAT = {
    "model": "tiny-llama",
    "messages": [{"role": "user", "content": PROMPT}],
    "max_tokens": 4,
    "ignore_eos": True,
    "stream": True,
}


# --- the pure steps -------------------------------------------------------------------------


def test_strip_drops_the_clients_kv_transfer_params_and_keeps_the_rest():
    clean, had = router.strip({**COMPLETION, "kv_transfer_params": HOSTILE})
    assert had and clean == COMPLETION
    assert router.strip(COMPLETION) == (COMPLETION, False)
    # vLLM 0.32 reads them from vllm_xargs too (protocol.py to_sampling_params: extra_args)
    xargs = {"kv_transfer_params": "x", "other": 1}
    clean, had = router.strip({**COMPLETION, "vllm_xargs": xargs})
    assert had and clean == {**COMPLETION, "vllm_xargs": {"other": 1}}
    assert xargs == {"kv_transfer_params": "x", "other": 1}  # the client's dict, untouched
    assert router.strip({**COMPLETION, "vllm_xargs": {"a": 1}}) == (
        {**COMPLETION, "vllm_xargs": {"a": 1}},
        False,
    )


def test_prefill_request_is_one_token_not_streamed_with_the_blocks_kept_for_decode():
    asked = router.prefill_request(
        {**CHAT, "stream_options": {"include_usage": True}, "max_completion_tokens": 9}
    )
    assert asked["kv_transfer_params"] == router.PREFILL_PARAMS
    assert asked["max_tokens"] == 1 and asked["max_completion_tokens"] == 1
    assert asked["stream"] is False and "stream_options" not in asked
    assert asked["messages"] == CHAT["messages"]


def test_decode_params_are_the_recorded_prefills_and_must_name_its_own_side_channel():
    answer = json.loads(recorded("prefill_completion")["body"])
    node = {"host": "pd-prefill", "kv_host": "10.231.17.11", "kv_port": 5600}
    params = router.decode_params(answer, node)
    assert params == answer["kv_transfer_params"] and params["do_remote_prefill"]
    with pytest.raises(router.StepFailed) as err:
        router.decode_params(answer, {**node, "kv_host": "10.231.17.99"})
    assert err.value.status == 502
    assert b"not its own 10.231.17.99:5600" in err.value.body
    with pytest.raises(router.StepFailed) as err:
        router.decode_params({**answer, "kv_transfer_params": None}, node)
    assert b"without kv_transfer_params" in err.value.body


# --- the two steps, over HTTP -----------------------------------------------------------------


def test_hostile_params_are_stripped_prefill_then_decode_with_the_prefills_params(cluster):
    prefill, decode, port, lines = cluster()
    status, ctype, data = call(
        port, "/v1/completions", {**COMPLETION, "kv_transfer_params": HOSTILE}
    )
    assert status == 200 and ctype == "application/json"
    assert data == recorded("decode_completion")["body"].encode()
    (asked,) = prefill.requests
    assert asked["path"] == "/v1/completions"
    assert asked["body"] == {
        **COMPLETION,
        "max_tokens": 1,
        "stream": False,
        "kv_transfer_params": router.PREFILL_PARAMS,
    }
    (sent,) = decode.requests
    given = json.loads(recorded("prefill_completion")["body"])["kv_transfer_params"]
    assert sent["body"] == {**COMPLETION, "kv_transfer_params": given}
    assert "hostile" not in json.dumps(sent["body"]) and "10.231.17.30" not in json.dumps(sent)
    for request in (asked, sent):
        assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert asked["headers"]["X-Request-Id"] == sent["headers"]["X-Request-Id"]
    line = logged(lines)
    assert line["stripped_kv_transfer_params"] and line["status"] == 200
    assert (line["prefill"], line["decode"]) == ("pd-prefill", "pd-decode")


def test_decode_nodes_take_turns(cluster):
    decode2 = Upstream(recorded("decode_completion"))
    _unused, decode, port, _log = cluster(decode2=decode2)
    for _attempt in range(4):
        assert call(port, "/v1/completions", COMPLETION)[0] == 200
    assert len(decode.requests) == len(decode2.requests) == 2


@pytest.mark.parametrize("cluster", ["chat"], indirect=True)
def test_a_stream_passes_event_by_event_with_decodes_content_type(cluster):
    release = threading.Event()
    decode = Upstream(recorded("decode_chat"), release=release)
    prefill, _decode, port, _log = cluster(decode=decode)
    response, conn = post(port, "/v1/chat/completions", CHAT)
    assert response.status == 200
    assert response.getheader("Content-Type") == recorded("decode_chat")["content_type"]
    assert response.getheader("Transfer-Encoding") == "chunked"
    events = recorded("decode_chat")["body"].split("\n\n")
    first = response.read1(65536)  # arrives while decode still holds the others back
    assert first == (events[0] + "\n\n").encode()
    release.set()
    rest = response.read()
    conn.close()
    assert first + rest == recorded("decode_chat")["body"].encode()
    assert rest.endswith(b"data: [DONE]\n\n")
    (asked,) = prefill.requests
    assert asked["body"]["stream"] is False and asked["body"]["max_tokens"] == 1
    assert decode.requests[0]["body"]["stream"] is True


# --- errors: 502 with the step, the node and the reason -------------------------------------


def error_of(data):
    return json.loads(data)["error"]


def test_a_prefill_node_that_is_down_is_a_502_naming_it(cluster):
    _prefill, decode, port, lines = cluster(prefill_url="http://127.0.0.1:9")
    status, _ctype, data = call(port, "/v1/completions", COMPLETION)
    assert status == 502
    assert error_of(data)["message"].startswith(
        "prefill on pd-prefill (http://127.0.0.1:9) failed:"
    )
    assert decode.requests == [] and logged(lines)["status"] == 502


def test_a_prefill_5xx_is_a_502_with_its_answer_a_4xx_is_the_clients_own(cluster):
    broken = Upstream({"status": 500, "content_type": "application/json", "body": '{"e": "boom"}'})
    _prefill, decode, port, _log = cluster(prefill=broken)
    status, _ctype, data = call(port, "/v1/completions", COMPLETION)
    assert status == 502 and 'answered HTTP 500: {"e": "boom"}' in error_of(data)["message"]
    broken.answer = {"status": 400, "content_type": "application/json", "body": '{"bad": 1}'}
    assert call(port, "/v1/completions", COMPLETION) == (400, "application/json", b'{"bad": 1}')
    assert decode.requests == []


def test_a_prefill_answer_pointing_elsewhere_never_reaches_decode(cluster):
    answer = json.loads(recorded("prefill_completion")["body"])
    answer["kv_transfer_params"]["remote_host"] = "10.231.17.30"
    liar = Upstream({**recorded("prefill_completion"), "body": json.dumps(answer)})
    _prefill, decode, port, _log = cluster(prefill=liar)
    status, _ctype, data = call(port, "/v1/completions", COMPLETION)
    assert status == 502 and "handed out the side channel 10.231.17.30:5600" in data.decode()
    assert decode.requests == []


def test_a_decode_node_that_is_down_or_failing_is_a_502_naming_it(cluster):
    _prefill, _decode, port, _log = cluster(decode_url="http://127.0.0.1:9")
    status, _ctype, data = call(port, "/v1/completions", COMPLETION)
    assert status == 502 and error_of(data)["message"].startswith("decode on pd-decode")


def test_a_decode_that_could_not_load_the_kv_is_a_502_with_vllms_answer(cluster):
    # decode_error: vLLM's 500 when its NIXL handshake with the prefill node's side channel got
    # no answer within vLLM's 5 s (kv_load_failure_policy fail), as recorded.
    failing = Upstream(recorded("decode_error"))
    _prefill, _decode, port, lines = cluster(decode=failing)
    status, ctype, data = call(port, "/v1/completions", COMPLETION)
    assert status == 502 and ctype == "application/json"
    message = error_of(data)["message"]
    assert message.startswith("decode on pd-decode (") and "answered HTTP 500" in message
    assert "Internal server error" in message and logged(lines)["status"] == 502


def test_a_prefill_4xx_of_vllm_goes_back_as_vllm_wrote_it(cluster):
    wrong = Upstream(recorded("prefill_error"))
    _prefill, decode, port, _log = cluster(prefill=wrong)
    status, ctype, data = call(port, "/v1/completions", {**COMPLETION, "model": "no-such-model"})
    assert (status, ctype) == (404, "application/json")
    assert data == recorded("prefill_error")["body"].encode() and decode.requests == []


def test_bad_requests_paths_and_methods(cluster):
    prefill, _decode, port, _log = cluster()
    assert call(port, "/v1/completions", None, raw=b"not json")[0] == 400
    assert call(port, "/v1/completions", None, raw=b"[1]")[0] == 400
    assert call(port, "/v1/embeddings", COMPLETION)[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/v1/completions")
    assert conn.getresponse().status == 405
    conn.close()
    assert prefill.requests == []
