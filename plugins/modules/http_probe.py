#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_probe
short_description: Call the API gateway's routes from this host, with and without keys
version_added: 0.1.0
author: hardened.vllm maintainers (@hardened-vllm)
description:
  - For every target (a TLS front door of the vLLM API), from the host it runs on, opens a TCP
    connection; a target that refuses or drops it is reported unreachable and nothing else is
    tried.
  - Sends a plain HTTP/1.1 C(GET /) without TLS to the same port. A TLS gateway (nginx) answers
    400; anything else that answers serves plain HTTP and would carry API keys in clear.
  - Makes a TLS handshake (TLS 1.2 at least) that verifies the server against O(ca) for the
    target's server name, offering ALPN C(h2) and C(http/1.1), and reports the version, cipher and
    protocol chosen.
  - Sends every route of O(routes) over verified TLS (HTTP/1.1, one connection per request, no
    redirects followed), once without a key and once with each key of O(keys) as a C(Bearer)
    token in the C(Authorization) header, and records the HTTP status of each.
  - C(POST) sends the body C({}) as C(application/json), so that an inference route reached
    behind the gateway answers 400 or 422 at once instead of generating.
  - The keys are never returned; the optional body excerpts are scrubbed of them.
  - Uses only the Python standard library on the probing host. Judge the results on the
    controller with P(hardened.vllm.http_findings#filter).
requirements:
  - Python 3 on the managed host (standard library only)
options:
  targets:
    description: Gateways to probe.
    type: list
    elements: dict
    required: true
    suboptions:
      address:
        description: IPv4 or IPv6 address to connect to.
        type: str
        required: true
      port:
        description: TCP port of the gateway.
        type: int
        required: true
      server_name:
        description:
          - Name the certificate must be valid for; sent as SNI and in the C(Host) header.
          - An IP address is checked against the certificate's IP subject alternative names.
          - Defaults to O(targets[].address).
        type: str
      node:
        description: Cluster node the gateway belongs to, echoed in the result.
        type: str
      label:
        description: Free text echoed in the result.
        type: str
  routes:
    description:
      - Requests to send to every reachable target, e.g. from P(hardened.vllm.http_routes#filter).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Request path, starting with C(/).
        type: str
        required: true
      method:
        description: HTTP method, e.g. C(GET) or C(POST).
        type: str
        required: true
  keys:
    description:
      - API keys to send each route with, one request per key. Every key given should be valid, as
        P(hardened.vllm.http_findings#filter) expects the allowlisted routes to answer to each.
      - The key names must be unique and must not be V(none), which stands for no key.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the key in the results.
        type: str
        required: true
      key:
        description: The key itself. Never returned.
        type: str
        required: true
  ca:
    description: PEM text of the CA certificate(s) the gateway's certificate must chain to.
    type: str
    required: true
  client_cert:
    description:
      - PEM text of a client certificate (with its chain), for gateways that require mutual TLS.
      - Written with O(client_key) to a private temporary file that is removed afterwards.
    type: str
  client_key:
    description: PEM text of the private key of O(client_cert).
    type: str
  source:
    description:
      - Local address to connect from; by default the kernel picks it. A host with several
        addresses can so speak for each audience of the cluster plan in turn.
    type: str
  evidence:
    description:
      - Keep the first 200 bytes of the body of every answer that passed the gateway (any status
        but 401, 403, 404 and 405) as C(evidence), with any key text replaced by C(<key>).
    type: bool
    default: false
  timeout:
    description: Seconds to wait for each connection, handshake and answer.
    type: float
    default: 5.0
  parallel:
    description: How many requests to have in flight at the same time.
    type: int
    default: 16
  vantage:
    description: Name of this probing host, echoed in the result so that runs from several hosts
      can be told apart after they are gathered.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module changes nothing on this host and runs in check mode too (see the notes
      for what a broken gateway may let through to vLLM).
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Every route is sent to the gateway, including control routes such as C(/sleep) or
    C(/collective_rpc). Behind a correct gateway they are refused; behind a broken one they reach
    vLLM with the body C({}), which vLLM rejects for most routes but not necessarily for all.
    Only probe gateways you operate.
  - One TLS connection per request keeps results independent of each other (no keep-alive state);
    nginx rate limits per connection are therefore not exercised, per-key limits are (429).
seealso:
  - module: hardened.vllm.tcp_probe
    description: Which ports accept TCP connections at all; this module judges what the gateway
      answers once connected.
"""

EXAMPLES = r"""
- name: Call every route of the gateway from the client host
  hardened.vllm.http_probe:
    targets:
      - {node: node1, address: 10.0.0.11, port: 8000, label: node1 api}
    routes: "{{ None | hardened.vllm.http_routes }}"
    keys:
      - name: ci
        key: "{{ vault_api_keys.ci }}"
    ca: "{{ lookup('ansible.builtin.file', 'pki/cluster-ca.pem') }}"
    vantage: client
  register: gateway_probe
"""

RETURN = r"""
results:
  description: One entry per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    node:
      description: O(targets[].node), or null.
      type: str
      returned: always
      sample: node1
    label:
      description: O(targets[].label), or null.
      type: str
      returned: always
      sample: node1 api
    address:
      description: O(targets[].address).
      type: str
      returned: always
      sample: 10.0.0.11
    port:
      description: O(targets[].port).
      type: int
      returned: always
      sample: 8000
    server_name:
      description: The name the certificate was checked against.
      type: str
      returned: always
      sample: 10.0.0.11
    source:
      description: The local address the connection used (or would use), or null.
      type: str
      returned: always
      sample: 10.0.0.50
    reachable:
      description: Whether the TCP connection was accepted.
      type: bool
      returned: always
      sample: true
    state:
      description: V(open), V(refused), V(timeout) (dropped), V(unreachable) (no route) or V(error).
      type: str
      returned: always
      sample: open
    error:
      description: Why the TCP connection failed, or null.
      type: str
      returned: always
      sample: null
    plaintext:
      description:
        - Outcome of a plain HTTP C(GET /) on the port, C(status) (int or null) and C(error)
          (str or null). Null when the target was not reachable.
      type: dict
      returned: always
      sample: {status: 400, error: null}
    tls:
      description:
        - The verified handshake, C(ok), C(error), C(version), C(cipher) and C(alpn) (the
          protocol the server chose from C(h2) and C(http/1.1)). Null when not reachable.
        - Under TLS 1.3 a server that requires a client certificate rejects a missing one only
          after the handshake; C(ok) is then true and the requests fail.
      type: dict
      returned: always
      sample:
        ok: true
        error: null
        version: TLSv1.3
        cipher: TLS_AES_256_GCM_SHA384
        alpn: h2
    routes:
      description:
        - One entry per route, C(path), C(method), C(without_key) and C(with_key) (by key name),
          each outcome C({status, error}) and, with O(evidence), C(evidence) where the request
          passed the gateway. Empty when the target was not reachable; when the handshake
          failed, every outcome has the error C(not tried, TLS failed).
      type: list
      elements: dict
      returned: always
      sample:
        - path: /v1/models
          method: GET
          without_key: {status: 401, error: null}
          with_key:
            ci: {status: 200, error: null}
vantage:
  description: The O(vantage) given, or null.
  returned: always
  type: str
  sample: client
"""

import contextlib
import http.client
import ipaddress
import os
import re
import shutil
import socket
import ssl
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import bracket
from ansible_collections.hardened.vllm.plugins.module_utils._tcp import (
    connect,
    failure,
    source_address,
    targets_problem,
)

# What a front door answers to a request it does not forward.
REFUSED = frozenset((401, 403, 404, 405))
EVIDENCE_BYTES = 200
NO_KEY = "none"
USER_AGENT = "hardened.vllm-http_probe"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 method token


class SetupError(Exception):
    """The CA or the client certificate cannot be loaded; nothing was probed."""


def host_header(server_name, port):
    return bracket(server_name) if port == 443 else f"{bracket(server_name)}:{port}"


def describe(exc):
    """A short, key-free description of a connection or protocol failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, socket.timeout):  # TimeoutError only from Python 3.10 on
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed the connection without an answer"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def scrub(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<key>")
    return text


def tls_context(ca, alpn, cert_file=None, key_file=None):
    """A client context that trusts only ``ca``, checks the name and takes TLS 1.2 or newer."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(alpn)
    return context


@contextlib.contextmanager
def client_files(cert, key):
    """The client certificate and key as private temporary files (0600), removed afterwards."""
    if not cert:
        yield None, None
        return
    folder = tempfile.mkdtemp(prefix="http_probe.")  # 0700
    try:
        paths = []
        for name, text in (("cert.pem", cert), ("key.pem", key)):
            path = os.path.join(folder, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            paths.append(path)
        yield paths[0], paths[1]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tcp_check(target, timeout, source=None):
    """Whether the port accepts a connection: ``{reachable, state, error, source}``."""
    address, port = target["address"], target["port"]
    try:
        with connect(address, port, timeout, source) as sock:
            return {"reachable": True, "state": "open", "error": None, "source": _local(sock)}
    except OSError as exc:
        state, error = failure(exc)
        return {
            "reachable": False,
            "state": state,
            "error": error,
            "source": source_address(address, port, source),
        }


def _local(sock):
    return sock.getsockname()[0]


def _http(sock, target, method, path, headers, body, want_body):
    """One HTTP/1.1 exchange on a connected socket: ``(status, first bytes of the body)``."""
    conn = http.client.HTTPConnection(target["address"], target["port"])
    conn.sock = sock  # already connected (and wrapped): http.client only talks
    try:
        conn.request(
            method,
            path,
            body=body,
            headers={
                "Host": host_header(target["server_name"], target["port"]),
                "User-Agent": USER_AGENT,
                "Accept": "*/*",
                "Connection": "close",
                **headers,
            },
        )
        response = conn.getresponse()
        data = response.read(EVIDENCE_BYTES) if want_body(response.status) else b""
        return response.status, data
    finally:
        conn.close()


def plaintext_check(target, timeout, source=None):
    """A plain-HTTP ``GET /`` on the TLS port: ``{status, error}``."""
    try:
        sock = connect(target["address"], target["port"], timeout, source)
        answer = _http(sock, target, "GET", "/", {}, None, lambda status: False)
        return {"status": answer[0], "error": None}
    except (OSError, http.client.HTTPException) as exc:
        return {"status": None, "error": describe(exc)}


def tls_check(target, context, timeout, source=None):
    """The verified handshake alone: ``{ok, error, version, cipher, alpn}``."""
    result = {"ok": False, "error": None, "version": None, "cipher": None, "alpn": None}
    address, port, name = target["address"], target["port"], target["server_name"]
    try:
        with connect(address, port, timeout, source) as raw, context.wrap_socket(
            raw, server_hostname=name
        ) as sock:
            result.update(
                ok=True,
                version=sock.version(),
                cipher=sock.cipher()[0],
                alpn=sock.selected_alpn_protocol(),
            )
    except (OSError, ValueError) as exc:
        result["error"] = describe(exc)
    return result


def route_request(target, context, route, key, timeout, source=None, evidence=False):
    """One route over verified TLS, without a key (``key`` None) or with it: ``{status, error}``."""
    headers, body = {}, None
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if route["method"].upper() == "POST":
        headers["Content-Type"] = "application/json"
        body = b"{}"
    try:
        raw = connect(target["address"], target["port"], timeout, source)
        try:
            sock = context.wrap_socket(raw, server_hostname=target["server_name"])
        except BaseException:
            raw.close()
            raise
        status, data = _http(
            sock,
            target,
            route["method"],
            route["path"],
            headers,
            body,
            lambda status: evidence and status not in REFUSED,
        )
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return {"status": None, "error": describe(exc)}
    result = {"status": status, "error": None}
    if evidence and status not in REFUSED:
        result["evidence"] = data.decode("utf-8", "replace")
    return result


def probe_all(
    targets,
    routes,
    keys,
    ca,
    client_cert=None,
    client_key=None,
    source=None,
    evidence=False,
    timeout=5.0,
    parallel=16,
):
    """Probe every target; the module's whole work, returned as its ``results``."""
    targets = [
        {
            "node": t.get("node"),
            "label": t.get("label"),
            "address": t["address"],
            "port": int(t["port"]),
            "server_name": t.get("server_name") or t["address"],
        }
        for t in targets
    ]
    secrets = [k["key"] for k in keys]
    workers = max(1, parallel)
    with client_files(client_cert, client_key) as (cert_file, key_file):
        try:
            probe_context = tls_context(ca, ["h2", "http/1.1"], cert_file, key_file)
            request_context = tls_context(ca, ["http/1.1"], cert_file, key_file)
        except (ssl.SSLError, ValueError) as exc:
            raise SetupError(f"ca or client_cert/client_key unusable: {exc}") from exc
        with ThreadPoolExecutor(max_workers=workers) as pool:
            checks = list(
                pool.map(lambda t: _target_checks(t, probe_context, timeout, source), targets)
            )
            jobs = [
                (index, route, key)
                for index, target in enumerate(checks)
                if target["reachable"] and target["tls"]["ok"]
                for route in routes
                for key in [None, *keys]
            ]
            outcomes = pool.map(
                lambda job: route_request(
                    checks[job[0]],
                    request_context,
                    job[1],
                    None if job[2] is None else job[2]["key"],
                    timeout,
                    source,
                    evidence,
                ),
                jobs,
            )
            answered = dict(
                zip([(i, r["path"], r["method"], k and k["name"]) for i, r, k in jobs], outcomes)
            )
    results = []
    for index, target in enumerate(checks):
        if target["reachable"]:
            target["routes"] = [
                _route_entry(index, target, route, keys, answered) for route in routes
            ]
        results.append(_scrubbed(target, secrets))
    return results


def _target_checks(target, context, timeout, source):
    result = dict(target)
    result.update(tcp_check(target, timeout, source))
    result.update(plaintext=None, tls=None, routes=[])
    if result["reachable"]:
        result["plaintext"] = plaintext_check(target, timeout, source)
        result["tls"] = tls_check(target, context, timeout, source)
    return result


def _route_entry(index, target, route, keys, answered):
    def outcome(name):
        if not target["tls"]["ok"]:
            return {"status": None, "error": "not tried, TLS failed"}
        return answered[(index, route["path"], route["method"], name)]

    return {
        "path": route["path"],
        "method": route["method"],
        "without_key": outcome(None),
        "with_key": {k["name"]: outcome(k["name"]) for k in keys},
    }


def _scrubbed(value, secrets):
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: _scrubbed(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, secrets) for v in value]
    return value


def validate(params):
    """Return the first problem with the options, or None."""
    problem = targets_problem(params["targets"])
    if problem:
        return problem
    for index, route in enumerate(params["routes"]):
        if not route["path"].startswith("/") or any(c.isspace() for c in route["path"]):
            return f"routes[{index}].path: {route['path']!r} must start with / and hold no spaces"
        if not _TOKEN.match(route["method"]):
            return f"routes[{index}].method: {route['method']!r} is not an HTTP method"
    names = set()
    for index, key in enumerate(params["keys"]):
        if key["name"] == NO_KEY or key["name"] in names:
            return (
                f"keys[{index}].name: {key['name']!r} is taken (names must be unique, "
                f"and {NO_KEY!r} stands for no key)"
            )
        names.add(key["name"])
        if not key["key"] or any(c in key["key"] for c in "\r\n"):
            return f"keys[{index}].key (of {key['name']!r}) is empty or holds a line break"
    if params["source"]:
        try:
            ipaddress.ip_address(params["source"])
        except ValueError:
            return f"source: {params['source']!r} is not an IP address"
    if bool(params["client_cert"]) != bool(params["client_key"]):
        return "client_cert and client_key go together"
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "targets": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "address": {"type": "str", "required": True},
                    "port": {"type": "int", "required": True},
                    "server_name": {"type": "str"},
                    "node": {"type": "str"},
                    "label": {"type": "str"},
                },
            },
            "routes": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "str", "required": True},
                    "method": {"type": "str", "required": True},
                },
            },
            "keys": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "no_log": False,
                "options": {
                    "name": {"type": "str", "required": True},
                    "key": {"type": "str", "required": True, "no_log": True},
                },
            },
            "ca": {"type": "str", "required": True},
            "client_cert": {"type": "str"},
            "client_key": {"type": "str", "no_log": True},
            "source": {"type": "str"},
            "evidence": {"type": "bool", "default": False},
            "timeout": {"type": "float", "default": 5.0},
            "parallel": {"type": "int", "default": 16},
            "vantage": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    problem = validate(params)
    if problem:
        module.fail_json(msg=f"http_probe: {problem}")
    try:
        results = probe_all(
            params["targets"],
            [{"path": r["path"], "method": r["method"].upper()} for r in params["routes"]],
            params["keys"],
            params["ca"],
            client_cert=params["client_cert"],
            client_key=params["client_key"],
            source=params["source"],
            evidence=params["evidence"],
            timeout=params["timeout"],
            parallel=params["parallel"],
        )
    except SetupError as exc:
        module.fail_json(msg=f"http_probe: {exc}")
    module.exit_json(changed=False, results=results, vantage=params["vantage"])


if __name__ == "__main__":
    main()
