# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""http_probe: real TLS and plain HTTP servers on loopback, and the module's entry point.

The "door" below behaves like the nginx gateway where it matters to the probe: TLS with a
certificate from a CA made for the test, 400 to plain HTTP on the TLS port, 401 without the
key, an allowlist, 404 elsewhere. Recorded answers of a real nginx are in fixtures/http.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import socket
import socketserver
import ssl
import stat
import threading
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.modules import http_probe

_SPEC = importlib.util.spec_from_file_location(
    "testpki", Path(__file__).parents[2] / "fixtures" / "http" / "testpki.py"
)
testpki = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(testpki)

KEY = "sk-test-7d1f0c9a2b"  # throwaway
OTHER_KEY = "sk-test-other-55e1"
ALLOWED = {("/v1/models", "GET"), ("/v1/completions", "POST"), ("/echo", "GET")}
ROUTES = [
    {"path": "/v1/models", "method": "GET"},
    {"path": "/v1/completions", "method": "POST"},
    {"path": "/v1/models", "method": "POST"},
    {"path": "/health", "method": "GET"},
    {"path": "/sleep", "method": "POST"},
    {"path": "/redirect", "method": "GET"},
    {"path": "/echo", "method": "GET"},
]
KEYS = [{"name": "ci", "key": KEY}, {"name": "old", "key": OTHER_KEY}]


class DoorHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _door(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        route = (self.path, self.command)
        if self.path == "/redirect":
            return self._answer(302, headers=[("Location", "/v1/models")])
        if self.path == "/health":
            return self._answer(200, b"ok")
        if route not in ALLOWED:
            known = {path for path, _method in ALLOWED}
            return self._answer(405 if self.path in known else 404, b"no")
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._answer(401, b"key required")
        if self.path == "/v1/completions":
            return self._answer(400, b'{"error": "model: field required"}')
        if self.path == "/echo":  # a careless upstream that repeats the request headers
            return self._answer(200, json.dumps(dict(self.headers)).encode())
        return self._answer(200, b'{"object": "list", "data": []}')

    do_GET = do_POST = _door


class Door(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """TLS on the port, and nginx's 400 for plain HTTP sent to it."""

    daemon_threads = True

    def __init__(self, address, context):
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.context = context
        self.seen = []
        super().__init__((address, 0), DoorHandler)

    def server_bind(self):  # HTTPServer's would look up the FQDN
        socketserver.TCPServer.server_bind(self)

    def finish_request(self, request, client_address):
        request.settimeout(5)
        first = request.recv(1, socket.MSG_PEEK)
        if first != b"\x16":  # not a TLS ClientHello
            if first:
                request.sendall(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            return
        tls = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            return
        self.RequestHandlerClass(tls, client_address, self)

    def handle_error(self, request, client_address):
        pass


class Plain(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)

    def handle_error(self, request, client_address):
        pass


class PlainHandler(DoorHandler):
    def _door(self):
        self._answer(200, b"served in clear")

    do_GET = do_POST = _door


@pytest.fixture(scope="module")
def pki():
    ca = testpki.CA()
    return {
        "ca": ca,
        "server": ca.issue("gateway", dns=["gateway.test"], ips=["127.0.0.1", "::1"]),
        "client": ca.issue("probe", client=True),
        "other_ca": testpki.CA("some other CA"),
    }


def server_context(pki, require_client=False):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # the module's own helper: PEM text to private files that ssl can load
    with http_probe.client_files(pki["server"].cert, pki["server"].key) as (cert, key):
        context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=pki["ca"].pem)
    return context


def serve(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def door(pki, request):
    address = getattr(request, "param", "127.0.0.1")
    server = serve(Door(address, server_context(pki)))
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def plain():
    server = serve(Plain(("127.0.0.1", 0), PlainHandler))
    yield server
    server.shutdown()
    server.server_close()


def target_of(server, **extra):
    address, port = server.server_address[:2]
    return {"address": address, "port": port, "node": "gw", "label": "gw api", **extra}


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def statuses(result):
    return {
        f"{r['method']} {r['path']}": (
            r["without_key"]["status"],
            *(r["with_key"][name]["status"] for name in sorted(r["with_key"])),
        )
        for r in result["routes"]
    }


def test_gateway_answers_are_recorded_per_route_and_key(door, pki):
    [result] = http_probe.probe_all([target_of(door)], ROUTES, KEYS, pki["ca"].pem, parallel=4)
    assert result["reachable"] is True and result["state"] == "open"
    assert result["source"] == "127.0.0.1"
    assert (result["node"], result["label"], result["server_name"]) == ("gw", "gw api", "127.0.0.1")
    assert result["plaintext"] == {"status": 400, "error": None}
    assert result["tls"]["ok"] is True and result["tls"]["error"] is None
    assert result["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert result["tls"]["alpn"] == "h2" and result["tls"]["cipher"]
    # (without key, ci, old)
    assert statuses(result) == {
        "GET /v1/models": (401, 200, 401),
        "POST /v1/completions": (401, 400, 401),
        "POST /v1/models": (405, 405, 405),
        "GET /health": (200, 200, 200),
        "POST /sleep": (404, 404, 404),
        "GET /redirect": (302, 302, 302),
        "GET /echo": (401, 200, 401),
    }
    assert all(
        outcome["error"] is None and "evidence" not in outcome
        for r in result["routes"]
        for outcome in [r["without_key"], *r["with_key"].values()]
    )


def test_requests_carry_host_key_and_an_empty_json_body_and_redirects_are_not_followed(door, pki):
    routes = [{"path": "/v1/completions", "method": "POST"}, {"path": "/redirect", "method": "GET"}]
    target = target_of(door, server_name="gateway.test")
    http_probe.probe_all([target], routes, KEYS[:1], pki["ca"].pem)
    port = target["port"]
    posts = [s for s in door.seen if s["method"] == "POST"]
    assert len(posts) == 2 and all(s["body"] == b"{}" for s in posts)
    assert all(s["headers"]["Content-Type"] == "application/json" for s in posts)
    assert sorted(s["headers"].get("Authorization", "") for s in posts) == ["", f"Bearer {KEY}"]
    assert {s["headers"]["Host"] for s in door.seen} == {f"gateway.test:{port}"}
    # the 302 was recorded, its Location never requested
    assert [s["path"] for s in door.seen if s["method"] == "GET"] == ["/redirect", "/redirect"]


@pytest.mark.parametrize("door", ["::1"], indirect=True)
def test_ipv6_gateway_is_verified_against_its_ip_san_and_bracketed_in_host(door, pki):
    [result] = http_probe.probe_all(
        [target_of(door)], ROUTES[:1], KEYS[:1], pki["ca"].pem, parallel=2
    )
    assert result["source"] == "::1" and result["server_name"] == "::1"
    assert result["tls"]["ok"] is True
    assert statuses(result) == {"GET /v1/models": (401, 200)}
    assert {s["headers"]["Host"] for s in door.seen} == {f"[::1]:{door.server_address[1]}"}


def test_keys_never_appear_and_evidence_is_scrubbed(door, pki):
    [result] = http_probe.probe_all([target_of(door)], ROUTES, KEYS, pki["ca"].pem, evidence=True)
    text = json.dumps(result)
    assert KEY not in text and OTHER_KEY not in text
    echo = next(r for r in result["routes"] if r["path"] == "/echo")
    assert "Bearer <key>" in echo["with_key"]["ci"]["evidence"]
    assert "evidence" not in echo["without_key"]  # 401: refused, no body kept
    models = next(r for r in result["routes"] if r["path"] == "/v1/models")
    assert models["with_key"]["ci"]["evidence"] == '{"object": "list", "data": []}'
    assert len(echo["with_key"]["ci"]["evidence"]) <= http_probe.EVIDENCE_BYTES


def test_wrong_ca_fails_verification_and_no_route_is_tried(door, pki):
    [result] = http_probe.probe_all([target_of(door)], ROUTES, KEYS, pki["other_ca"].pem)
    assert result["reachable"] is True
    assert result["tls"]["ok"] is False
    assert result["tls"]["error"].startswith("certificate verify failed: ")
    assert result["plaintext"]["status"] == 400
    assert {r["without_key"]["error"] for r in result["routes"]} == {"not tried, TLS failed"}
    assert {o["error"] for r in result["routes"] for o in r["with_key"].values()} == {
        "not tried, TLS failed"
    }
    assert [s["path"] for s in door.seen] == []


@pytest.mark.parametrize("name", ["other.test", "127.0.0.2"])
def test_wrong_server_name_fails_verification(door, pki, name):
    target = target_of(door, server_name=name)
    [result] = http_probe.probe_all([target], ROUTES[:1], [], pki["ca"].pem)
    assert result["tls"]["ok"] is False
    assert "mismatch" in result["tls"]["error"] and name in result["tls"]["error"]


def test_plain_http_server_is_caught_by_the_plaintext_check(plain, pki):
    [result] = http_probe.probe_all([target_of(plain)], ROUTES[:1], KEYS[:1], pki["ca"].pem)
    assert result["plaintext"] == {"status": 200, "error": None}
    assert result["tls"]["ok"] is False and result["tls"]["error"].startswith("TLS: ")
    assert result["routes"][0]["without_key"] == {"status": None, "error": "not tried, TLS failed"}


def test_closed_port_is_unreachable_and_nothing_else_is_tried(pki):
    target = {"address": "127.0.0.1", "port": closed_port()}
    [result] = http_probe.probe_all([target], ROUTES, KEYS, pki["ca"].pem)
    assert result["reachable"] is False and result["state"] == "refused"
    assert result["error"] == "connection refused" and result["source"] == "127.0.0.1"
    assert (result["plaintext"], result["tls"], result["routes"]) == (None, None, [])
    assert result["node"] is None and result["server_name"] == "127.0.0.1"


def test_a_dropped_connection_counts_as_timeout(monkeypatch, pki):
    class Dropping(socket.socket):
        def connect(self, address):
            raise TimeoutError("timed out")

    monkeypatch.setattr(http_probe.socket, "socket", Dropping)
    result = http_probe.tcp_check({"address": "127.0.0.1", "port": 9}, 0.1)
    assert result["state"] == "timeout" and result["reachable"] is False
    assert result["error"] == "timed out"


def test_source_option_binds_the_connection(door, pki):
    [result] = http_probe.probe_all(
        [target_of(door)], ROUTES[:1], KEYS[:1], pki["ca"].pem, source="127.0.0.7"
    )
    assert result["source"] == "127.0.0.7"
    assert statuses(result) == {"GET /v1/models": (401, 200)}


def test_mutual_tls_with_and_without_a_client_certificate(pki):
    server = serve(Door("127.0.0.1", server_context(pki, require_client=True)))
    try:
        target = target_of(server)
        [with_cert] = http_probe.probe_all(
            [target],
            ROUTES[:1],
            KEYS[:1],
            pki["ca"].pem,
            client_cert=pki["client"].cert,
            client_key=pki["client"].key,
        )
        [without] = http_probe.probe_all([target], ROUTES[:1], KEYS[:1], pki["ca"].pem)
    finally:
        server.shutdown()
        server.server_close()
    assert statuses(with_cert) == {"GET /v1/models": (401, 200)}
    # TLS 1.3 lets the client finish its handshake before the server rejects it: the
    # requests then fail instead of the handshake
    outcomes = [without["routes"][0]["without_key"], without["routes"][0]["with_key"]["ci"]]
    assert without["tls"]["ok"] is False or all(o["status"] is None for o in outcomes)
    assert all(o["status"] is None and o["error"] for o in outcomes)


def test_client_files_are_private_and_removed(pki):
    with http_probe.client_files(pki["client"].cert, pki["client"].key) as (cert, key):
        assert stat.S_IMODE(os.stat(cert).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode) == 0o700
        assert Path(key).read_text() == pki["client"].key
    assert not os.path.exists(os.path.dirname(key))
    with http_probe.client_files(None, None) as paths:
        assert paths == (None, None)


def test_tls_context_trusts_only_the_ca_and_needs_tls12():
    context = http_probe.tls_context(testpki.CA().pem, ["http/1.1"])
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.check_hostname is True and context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1


def params(**overrides):
    base = {
        "targets": [{"address": "10.0.0.1", "port": 8000}],
        "routes": [{"path": "/v1/models", "method": "GET"}],
        "keys": [],
        "source": None,
        "client_cert": None,
        "client_key": None,
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"targets": [{"address": "gw1", "port": 1}]}, "targets[0].address: 'gw1'"),
        ({"targets": [{"address": "::1", "port": 0}]}, "targets[0].port: 0"),
        ({"routes": [{"path": "v1/models", "method": "GET"}]}, "routes[0].path"),
        ({"routes": [{"path": "/a b", "method": "GET"}]}, "routes[0].path"),
        ({"routes": [{"path": "/", "method": "GE T"}]}, "routes[0].method"),
        ({"keys": [{"name": "none", "key": "k"}]}, "keys[0].name: 'none' is taken"),
        ({"keys": [{"name": "a", "key": "k"}, {"name": "a", "key": "j"}]}, "keys[1].name"),
        ({"keys": [{"name": "a", "key": "k\r\nX-Evil: 1"}]}, "keys[0].key (of 'a')"),
        ({"source": "me"}, "source: 'me'"),
        ({"client_cert": "PEM"}, "client_cert and client_key go together"),
    ],
)
def test_validate_names_the_bad_option(overrides, problem):
    assert http_probe.validate(params()) is None
    assert problem in http_probe.validate(params(**overrides))


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        http_probe.main()
    out = capsys.readouterr().out
    return exit_info.value.code, json.loads(out), out


def test_main_probes_and_returns_no_key(door, pki, capsys):
    code, out, text = run_main(
        {
            "targets": [target_of(door), {"address": "127.0.0.1", "port": closed_port()}],
            "routes": [{"path": "/v1/models", "method": "get"}],
            "keys": [{"name": "ci", "key": KEY}],
            "ca": pki["ca"].pem,
            "vantage": "client",
            "timeout": 2,
            "_ansible_check_mode": True,
        },
        capsys,
    )
    assert code == 0 and out["changed"] is False and out["vantage"] == "client"
    assert [r["reachable"] for r in out["results"]] == [True, False]
    assert statuses(out["results"][0]) == {"GET /v1/models": (401, 200)}
    assert KEY not in text


def test_main_fails_on_an_unusable_ca(capsys):
    code, out, _text = run_main(
        {
            "targets": [{"address": "127.0.0.1", "port": closed_port()}],
            "routes": [],
            "ca": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        },
        capsys,
    )
    assert code == 1 and out["msg"].startswith("http_probe: ca or client_cert/client_key unusable")


def test_main_fails_on_bad_target(capsys):
    code, out, _text = run_main(
        {"targets": [{"address": "gw", "port": 1}], "routes": [], "ca": "x"}, capsys
    )
    assert code == 1 and "targets[0].address" in out["msg"]
