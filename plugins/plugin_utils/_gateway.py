# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the API gateway of one node serves, from its cluster plan and the gateway settings.

Pure functions over plain data (controller side). ``gateway_config`` validates every gateway
setting of one host at once and returns what the role's nginx templates render: where to
listen, the names its certificate must carry, the exact routes and their methods, the
monitoring sources, the tenants' names (never their keys) and the limits. Problems name the
host, the variable and the fix; nothing on any host has changed when they are raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import (
    Problems,
    Refused,
    bracket,
)

# What a client key may consist of: it is matched inside nginx's configuration, so quotes,
# backslashes, spaces, '$', ';' and braces are out; base64, base64url and hex keys all fit.
KEY = re.compile(r"[A-Za-z0-9._~+/=-]+")
KEY_MIN, KEY_MAX = 32, 200
TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
DNS_NAME = re.compile(
    r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
SIZE = re.compile(r"[1-9][0-9]{0,5}[kKmMgG]?")
PEM_CERT = "-----BEGIN CERTIFICATE-----"
PEM_KEY = re.compile(r"-----BEGIN (EC |RSA |ENCRYPTED )?PRIVATE KEY-----")
HTTP2_ON = (1, 25, 1)  # nginx >= 1.25.1: `http2 on;`; before: `listen ... ssl http2`
GENERATE = "generate"  # gateway_tls_source: the private CA on the controller
# disaggregated: the tenant of the router's own key; its requests go straight to vLLM.
ROUTER_TENANT = "hv-router"


class GatewayInvalid(Refused):
    """The gateway settings of a host are unsafe or impossible; ``problems`` says why."""

    subject = "the gateway settings"


def gateway_config(plan, settings):
    """The gateway of ``plan``'s host, or GatewayInvalid listing every problem.

    Nodes without an API (headless workers) get ``{"serves_api": False}`` and no checks.
    """
    host = plan["host"]
    api = plan.get("api")
    if not api:
        return {"serves_api": False, "host": host}
    problems = Problems()
    tenants = _keys(host, settings.get("keys"), problems)
    tls = _tls(host, settings, problems)
    limits = _limits(host, settings, problems)
    names = _names(host, settings.get("server_names"), problems)
    router = _router(host, api.get("router"), settings, tenants, tls, problems)
    if problems:
        raise GatewayInvalid(problems)
    address = api["address"]
    unspecified = address in ("0.0.0.0", "::")
    ips = ([] if unspecified else [address]) + [plan["host_ip"]]
    monitoring = plan.get("monitoring") or {}
    return {
        "serves_api": True,
        "host": host,
        "listen": _listen(address, api["port"]),
        "port": api["port"],
        "cert_names": {"dns": names, "ips": sorted(set(ips), key=ips.index)},
        "routes": [
            {"path": r["path"], "methods": sorted({m.upper() for m in r["methods"]})}
            for r in api["routes"]
        ],
        "monitoring_routes": list(api.get("monitoring_routes") or []),
        "monitoring_sources": list(monitoring.get("ipv4") or [])
        + list(monitoring.get("ipv6") or []),
        "socket": api["socket"],
        "socket_group": api["socket_group"],
        "tenants": tenants,
        "tls": tls,
        "router": router,
        **limits,
    }


def _router(host, planned, settings, tenants, tls, problems):
    """disaggregated: the router the gateway sends the generation routes to, else None.

    What the role renders into the router's configuration (no key); the key is checked like
    a client key and must be no client's.
    """
    if not planned:
        return None
    key = settings.get("router_key")
    if ROUTER_TENANT in tenants:
        problems.add(
            host,
            "gateway_keys",
            f"the tenant name {ROUTER_TENANT} is the router's own (disaggregated)",
            "give that client key another name",
        )
    if (
        not isinstance(key, str)
        or len(key) < KEY_MIN
        or len(key) > KEY_MAX
        or not KEY.fullmatch(key)
    ):
        problems.add(
            host,
            "gateway_router_key",
            f"must be {KEY_MIN}-{KEY_MAX} letters, digits or ._~+/=- (the router's key to the "
            "nodes' gateways)",
            "leave it unset (a random key kept in gateway_tls_ca_dir on the controller) or set "
            "one random key for the whole cluster, vaulted",
        )
    elif any(
        key.lower() == (k.get("key") or "").lower()
        for k in settings.get("keys") or []
        if isinstance(k, Mapping) and isinstance(k.get("key"), str)
    ):
        problems.add(
            host,
            "gateway_router_key",
            "equals a client key of gateway_keys (ignoring case)",
            "give the router a key of its own; a client holding it would reach vLLM without "
            "the router",
        )
    if tls["mutual"]:
        problems.add(
            host,
            "gateway_client_ca",
            "mutual TLS with the disaggregated router: the router holds no client certificate "
            "for the other nodes' gateways",
            "leave gateway_client_ca empty for this topology",
        )
    return {
        "address": planned["address"],
        "port": planned["port"],
        "routes": list(planned["routes"]),
        "prefill": [dict(n) for n in planned["prefill"]],
        "decode": [dict(n) for n in planned["decode"]],
        "tenant": ROUTER_TENANT,
    }


def http2_on(version):
    """Whether this nginx version takes ``http2 on;`` (else ``listen ... http2``)."""
    parts = tuple(int(p) for p in re.findall(r"\d+", str(version))[:3])
    return parts >= HTTP2_ON


def _listen(address, port):
    if address == "0.0.0.0":
        return [f"0.0.0.0:{port}"]
    if address == "::":
        return [f"[::]:{port} ipv6only=off"]
    return [f"{bracket(address)}:{port}"]


def _keys(host, keys, problems):
    variable = "gateway_keys"
    if not isinstance(keys, list) or not keys:
        problems.add(
            host,
            variable,
            "no client key: nobody could call the API"
            if isinstance(keys, list)
            else f"must be a list of {{name, key}}, got {type(keys).__name__}",
            "list at least one {name: <tenant>, key: <32+ random characters, vaulted>}; "
            "e.g. openssl rand -base64 33",
        )
        return []
    names, folded = [], {}
    for index, entry in enumerate(keys):
        where = f"{variable}[{index}]"
        if not isinstance(entry, Mapping) or set(entry) - {"name", "key"}:
            problems.add(
                host,
                where,
                "must be a mapping with exactly name and key",
                "write {name: tenant-a, key: <vaulted key>}",
            )
            continue
        name, key = entry.get("name"), entry.get("key")
        if not isinstance(name, str) or not TENANT.fullmatch(name):
            problems.add(
                host,
                f"{where}.name",
                f"{name!r} is not a tenant name (it appears in logs and limits)",
                "use 1-64 letters, digits, '-' or '_', starting with a letter or digit",
            )
        elif name in names:
            problems.add(
                host, f"{where}.name", f"{name} is listed twice", "give each key its own name"
            )
        else:
            names.append(name)
        label = name if isinstance(name, str) else index
        if not isinstance(key, str) or len(key) < KEY_MIN:
            problems.add(
                host,
                f"{where}.key",
                f"the key of {label} is shorter than {KEY_MIN} characters",
                f"use at least {KEY_MIN} random characters (openssl rand -base64 33), vaulted",
            )
        elif len(key) > KEY_MAX or not KEY.fullmatch(key):
            problems.add(
                host,
                f"{where}.key",
                f"the key of {label} is longer than {KEY_MAX} characters or holds characters "
                "other than letters, digits and ._~+/=-",
                "use a base64, base64url or hex key (openssl rand -base64 33)",
            )
        elif key.lower() in folded:
            problems.add(
                host,
                f"{where}.key",
                f"the key of {label} equals the key of {folded[key.lower()]} ignoring case "
                "(the gateway looks keys up ignoring case first)",
                "give every tenant its own random key",
            )
        else:
            folded[key.lower()] = label
    return names


def _tls(host, settings, problems):
    cert = settings.get("tls_certificate") or ""
    key = settings.get("tls_private_key") or ""
    ca = settings.get("tls_ca") or ""
    ca_dir = settings.get("tls_ca_dir") or ""
    client_ca = settings.get("client_ca") or ""
    if cert or key:
        if not (isinstance(cert, str) and PEM_CERT in cert):
            problems.add(
                host,
                "gateway_tls_certificate",
                "is not a PEM certificate (chain)"
                if cert
                else "is empty, but gateway_tls_private_key is set",
                "give the server certificate, then its intermediates, as PEM text",
            )
        if not (isinstance(key, str) and PEM_KEY.search(key)):
            problems.add(
                host,
                "gateway_tls_private_key",
                "is not a PEM private key"
                if key
                else "is empty, but gateway_tls_certificate is set",
                "give the certificate's unencrypted private key as PEM text (vaulted)",
            )
        if not (isinstance(ca, str) and PEM_CERT in ca):
            problems.add(
                host,
                "gateway_tls_ca",
                "is not a PEM certificate" if ca else "is empty, but your own certificate is set",
                "give the CA certificate clients verify the gateway with (the audit pins it)",
            )
        source = "operator"
    elif ca_dir:
        if not (isinstance(ca_dir, str) and ca_dir.startswith("/")):
            problems.add(
                host,
                "gateway_tls_ca_dir",
                f"must be an absolute directory on the controller, got {ca_dir!r}",
                "set it to where the private CA lives, e.g. {{ inventory_dir }}/gateway-ca",
            )
        source = GENERATE
    else:
        problems.add(
            host,
            "gateway_tls_certificate",
            "no certificate source: neither your own certificate nor a directory for a "
            "private CA (gateway_tls_ca_dir) is set",
            "set gateway_tls_certificate, gateway_tls_private_key and gateway_tls_ca (vaulted), "
            "or gateway_tls_ca_dir on the controller",
        )
        source = None
    if client_ca and not (isinstance(client_ca, str) and PEM_CERT in client_ca):
        problems.add(
            host,
            "gateway_client_ca",
            "is not a PEM certificate",
            "give the CA that signs client certificates as PEM text, or leave it empty",
        )
    return {"source": source, "mutual": bool(client_ca)}


def _limits(host, settings, problems):
    out = {}
    for name, variable, low, high in (
        ("rate", "gateway_rate", 1, 100000),
        ("burst", "gateway_burst", 0, 100000),
        ("concurrency", "gateway_concurrency", 1, 65535),
        ("read_timeout", "gateway_read_timeout", 1, 86400),
    ):
        value = settings.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            value = None
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not low <= number <= high:
            problems.add(
                host,
                variable,
                f"must be a whole number from {low} to {high}, got {settings.get(name)!r}",
                f"set a number such as {max(low, 10)}",
            )
        out[name] = number
    size = settings.get("max_body_size")
    if not isinstance(size, str) or not SIZE.fullmatch(size):
        problems.add(
            host,
            "gateway_client_max_body_size",
            f"must be an nginx size such as 16m, got {size!r}",
            "write a number with k, m or g",
        )
    out["max_body_size"] = size
    return out


def _names(host, names, problems):
    """The DNS names of the node's certificate: the given ones, and the host's own name."""
    if names is None:
        names = []
    if not isinstance(names, list):
        problems.add(
            host,
            "gateway_tls_server_names",
            f"must be a list of DNS names, got {names!r}",
            "list the names clients use for this node, e.g. [gpu-a.example.com]",
        )
        return []
    clean = [host.lower()] if DNS_NAME.fullmatch(host) else []
    for index, name in enumerate(names):
        if not isinstance(name, str) or not DNS_NAME.fullmatch(name):
            problems.add(
                host,
                f"gateway_tls_server_names[{index}]",
                f"{name!r} is not a DNS name",
                "write a host name such as gpu-a.example.com (addresses are added on their own)",
            )
        elif name.lower() not in clean:
            clean.append(name.lower())
    return clean
