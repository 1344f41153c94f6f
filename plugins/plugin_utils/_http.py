# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The L7 audit of the API gateway: which routes to try, and what the answers mean.

``http_probe`` (the module) records what the gateway answered to every route, from one
vantage, without a key and with each key. This module judges those answers against the node's
``cluster_plan``: only the allowlist (``api.routes``) may pass, and only with a key; the
monitoring routes pass without a key, to the monitoring audience only; TLS must verify and plain
HTTP must be refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import (
    ADDRESS_AUDIENCES,
    audiences_of,
    bracket,
)
from ansible_collections.hardened.vllm.plugins.plugin_utils import _api_routes
from ansible_collections.hardened.vllm.plugins.plugin_utils._report import table

# What the gateway answers to a request it does not forward (no key, not allowed, no route).
REFUSED = frozenset((401, 403, 404, 405))
RATE_LIMITED = 429
# What nginx answers to plain HTTP sent to its TLS port.
PLAINTEXT_REFUSED = 400
NO_KEY = "none"
AUDIENCES = ADDRESS_AUDIENCES
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "trace")  # HEAD, OPTIONS: not probed
_PARAMETER = re.compile(r"\{[^/{}]*\}")


class HttpInputError(ValueError):
    """The input of a filter is not what it documents (the filter adds its name)."""


def http_routes(openapi=None, extra=None):
    """The catalog, plus every (path, method) a running vLLM's OpenAPI document lists.

    Path parameters (``{model}``) become ``probe``; HEAD and OPTIONS are left out. ``extra``
    adds routes given as ``{path, method}``, ``{path, methods}`` (the plan's allowlist form) or
    a bare path (the catalog's methods for it, else GET and POST).
    """
    routes = {(r["path"], r["method"]) for r in _api_routes.catalog()}
    if openapi is not None:
        if not isinstance(openapi, Mapping) or not isinstance(openapi.get("paths"), Mapping):
            raise HttpInputError(
                f"openapi must be a parsed OpenAPI document with paths, got {openapi!r}"
            )
        for path, item in openapi["paths"].items():
            if (
                not isinstance(path, str)
                or not path.startswith("/")
                or not isinstance(item, Mapping)
            ):
                raise HttpInputError(f"openapi paths: {path!r} is not a path with its operations")
            sample = _PARAMETER.sub("probe", path)
            routes.update((sample, m.upper()) for m in item if str(m).lower() in _HTTP_METHODS)
    for entry in extra or []:
        routes.update(_extra(entry))
    return [{"path": p, "method": m} for p, m in sorted(routes)]


def _extra(entry):
    if isinstance(entry, str):
        path, methods = entry, _api_routes.methods_of(entry)
    elif isinstance(entry, Mapping) and isinstance(entry.get("path"), str):
        path = entry["path"]
        methods = entry.get("methods") or [entry.get("method")]
    else:
        raise HttpInputError(
            f"extra: {entry!r} is neither a path nor a {{path, method(s)}} mapping"
        )
    if not path.startswith("/") or not all(isinstance(m, str) and m for m in methods):
        raise HttpInputError(f"extra: {entry!r} needs a path starting with / and a method")
    return {(path, m.upper()) for m in methods}


def http_findings(runs, plans):
    """Judge http_probe runs (one per vantage) against the plans (``{node: cluster_plan}``).

    One row per target for ``tls`` and ``plaintext``, and for reachable targets one per route and
    key (``none`` for the request without a key). ``finding`` is ``exposed`` (something passed
    or spoke in a way the plan forbids: a violation), ``blocked`` (the plan lets it pass, the
    gateway did not answer it) or ``ok``.
    """
    rows = []
    for run in runs:
        vantage = run.get("vantage") or "unknown vantage"
        for index, result in enumerate(run["results"]):
            node = result.get("node")
            if node not in plans:
                raise HttpInputError(
                    f"{vantage} results[{index}] ({result.get('label') or result.get('address')}):"
                    f" node {node!r} has no plan; give every http_probe target the node it "
                    f"belongs to, one of {sorted(plans)}"
                )
            rows.extend(_target_rows(vantage, result, plans[node]))
    return rows


def _target_rows(vantage, result, plan):
    source = result.get("source")
    audiences = audiences_of(source, plan)
    api = plan.get("api") or {}
    allowed = {(r["path"], m.upper()) for r in api.get("routes") or [] for m in r["methods"]}
    ctx = {
        "audiences": audiences,
        "where": f"{result['node']} https://{bracket(result['address'])}:{result['port']}",
        "who": f"{vantage} ({source})",
        "result": result,
    }
    base = {
        "vantage": vantage,
        "source": source,
        "source_audiences": sorted(audiences) or ["others"],
        "node": result["node"],
        "address": result["address"],
        "port": result["port"],
        "reachable": bool(result.get("reachable")),
    }
    rows = [{**base, **_tls_row(ctx)}, {**base, **_plaintext_row(ctx)}]
    if not result.get("reachable") or not (result.get("tls") or {}).get("ok"):
        return rows  # nothing was tried: the tls row says why
    monitoring_routes = set(api.get("monitoring_routes") or [])
    for route in result.get("routes") or []:
        outcomes = [(NO_KEY, route["without_key"]), *sorted(route["with_key"].items())]
        for key, outcome in outcomes:
            judged = _route_row(ctx, route, key, outcome, allowed, monitoring_routes)
            rows.append({**base, **judged})
    return rows


def _unreachable(ctx, check):
    result = ctx["result"]
    message = (
        f"{ctx['where']} {check}: not reachable from {ctx['who']} ({result.get('state')}); "
        "who may connect at all is the TCP audit's to judge (hardened.vllm.probe_findings)"
    )
    return {"status": None, "finding": "ok", "message": message}


def _tls_row(ctx):
    row = {"check": "tls", "path": None, "method": None, "key": NO_KEY, "expected": "answered"}
    result = ctx["result"]
    if not result.get("reachable"):
        return {**row, **_unreachable(ctx, "TLS")}
    tls = result.get("tls") or {}
    name = result.get("server_name") or result["address"]
    if tls.get("ok"):
        message = (
            f"{ctx['where']} TLS from {ctx['who']}: {tls.get('version')} {tls.get('cipher')}, "
            f"certificate verified for {name}"
        )
        return {**row, "status": tls.get("version"), "finding": "ok", "message": message}
    message = (
        f"{ctx['where']} TLS from {ctx['who']} failed: {tls.get('error')}; clients cannot "
        f"verify the gateway (server name {name}, the cluster CA) and the routes were not tried"
    )
    return {**row, "status": None, "finding": "exposed", "message": message}


def _plaintext_row(ctx):
    row = {"check": "plaintext", "path": "/", "method": "GET", "key": NO_KEY}
    row["expected"] = "refused"
    result = ctx["result"]
    if not result.get("reachable"):
        return {**row, **_unreachable(ctx, "plain HTTP")}
    plain = result.get("plaintext") or {}
    status = plain.get("status")
    if status is None or status == PLAINTEXT_REFUSED:
        answer = f"answered {status}" if status else f"no answer ({plain.get('error')})"
        message = f"{ctx['where']} plain HTTP GET / from {ctx['who']}: {answer}, as it must"
        return {**row, "status": status, "finding": "ok", "message": message}
    message = (
        f"{ctx['where']} answered plain HTTP GET / with {status} from {ctx['who']}; a port "
        f"that speaks plain HTTP carries API keys in clear: the gateway must answer "
        f"{PLAINTEXT_REFUSED} to anything but TLS"
    )
    return {**row, "status": status, "finding": "exposed", "message": message}


def _route_row(ctx, route, key, outcome, allowed, monitoring_routes):
    path, method = route["path"], route["method"].upper()
    status, error = outcome.get("status"), outcome.get("error")
    row = {"check": "route", "path": path, "method": method, "key": key, "status": status}
    what = f"{ctx['where']} {method} {path}"
    keyed = key != NO_KEY
    by = f"from {ctx['who']} " + (f"with key {key}" if keyed else "without a key")
    answer = f"answered {status}" if status is not None else f"got no answer ({error})"
    rate_limited = keyed and status == RATE_LIMITED
    passed = status is not None and status not in REFUSED and not rate_limited

    if path in monitoring_routes and "monitoring" in ctx["audiences"]:
        row["expected"] = "answered"
        if keyed:  # the source may read it anyway; a key neither adds nor takes away
            note = "" if passed else "; the monitoring audience reads it without a key"
            return {**row, "finding": "ok", "message": f"{what} {answer} {by}{note}"}
        if status is not None and 200 <= status < 300:
            return {**row, "finding": "ok", "message": f"{what} {answer} {by}, as the plan says"}
        message = (
            f"{what} {answer} {by}; the monitoring audience (cluster_plan.monitoring) must "
            "read it without a key (2xx)"
        )
        return {**row, "finding": "blocked", "message": message}

    if path in monitoring_routes:
        row["expected"] = "refused"
        if passed:
            message = (
                f"{what} {answer} {by}; only the monitoring audience (cluster_plan.monitoring) "
                "may read it, and a key does not change that"
            )
            return {**row, "finding": "exposed", "message": message}
        return {**row, "finding": "ok", "message": f"{what} {answer} {by}, as the plan says"}

    if keyed and (path, method) in allowed:
        row["expected"] = "answered"
        if rate_limited:
            message = f"{what} {answer} {by} (rate limited): the key was accepted"
            return {**row, "finding": "ok", "message": message}
        if passed:
            return {**row, "finding": "ok", "message": f"{what} {answer} {by}, as the plan says"}
        message = (
            f"{what} {answer} {by}, although it is in the plan's allowlist "
            "(cluster_plan.api.routes): clients with a key must get through"
        )
        return {**row, "finding": "blocked", "message": message}

    row["expected"] = "refused"
    if not passed:
        note = " (rate limited before the allowlist was checked)" if rate_limited else ""
        return {**row, "finding": "ok", "message": f"{what} {answer} {by}{note}, as the plan says"}
    if keyed:
        message = (
            f"{what} {answer} {by}; it is not in the plan's allowlist "
            "(cluster_plan.api.routes), so the gateway must refuse it, key or not"
        )
    else:
        message = (
            f"{what} {answer} {by}; only the allowlist may pass the gateway, and only with a key"
        )
    return {**row, "finding": "exposed", "message": message}


def http_matrix(rows):
    """A plain-text table: one line per node target and check or route, one column per vantage."""
    vantages = sorted({r["vantage"] for r in rows})
    keys = sorted({r["key"] for r in rows if r["key"] != NO_KEY})
    unreachable = {
        (r["node"], r["port"], r["address"], r["vantage"]) for r in rows if not r["reachable"]
    }
    untried = {
        (r["node"], r["port"], r["address"], r["vantage"])
        for r in rows
        if r["check"] == "tls" and r["reachable"] and r["finding"] != "ok"
    }
    lines_by_key = {}
    for row in rows:
        order = {"tls": 0, "plaintext": 1}.get(row["check"], 2)
        label = row["check"] if order < 2 else f"{row['method']} {row['path']}"
        line = (row["node"], row["port"], row["address"], order, row["path"] or "", label)
        cell = lines_by_key.setdefault(line, {}).setdefault(
            row["vantage"], {"none": None, "keyed": {}, "bad": False}
        )
        cell["bad"] = cell["bad"] or row["finding"] != "ok"
        mark = "err" if row["status"] is None else str(row["status"])
        if row["key"] == NO_KEY:
            cell["none"] = mark
        else:
            cell["keyed"][row["key"]] = mark
    header = ["node", "address:port", "check", *vantages]
    lines = [header]
    for (node, port, address, _order, _path, label), cells in sorted(lines_by_key.items()):
        lines.append(
            [node, f"{bracket(address)}:{port}", label]
            + [
                _cell(cells.get(v), (node, port, address, v), unreachable, untried)
                for v in vantages
            ]
        )
    text = table(lines)
    text.append("")
    text.append(
        "route cells: status without a key/status with each key"
        + (f" ({', '.join(keys)})" if keys else "")
        + "; tls: protocol version; plaintext: status of plain HTTP"
    )
    text.append(
        "- = not reachable, x = not tried (TLS failed), err = no answer, ! = differs from the plan"
    )
    return "\n".join(text) + "\n"


def _cell(cell, where, unreachable, untried):
    if where in unreachable:
        return "-"
    if cell is None:
        return "x" if where in untried else ""
    text = cell["none"] or "?"
    if cell["keyed"]:
        text += "/" + ",".join(cell["keyed"][k] for k in sorted(cell["keyed"]))
    return text + ("!" if cell["bad"] else "")
