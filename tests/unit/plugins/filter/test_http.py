# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""http_routes / http_findings / http_matrix on recorded http_probe runs against real nginx.

fixtures/http holds what hardened.vllm.http_probe recorded (record.sh) against nginx 1.22 on
127.0.0.1 set up as the gateway: keys alice and bob, the default allowlist (GET /v1/models,
POST /v1/completions, POST /v1/chat/completions), /health and /metrics for the monitoring
source 127.0.0.10 only, 404 elsewhere. Vantages: monitor (127.0.0.10), client (127.0.0.20),
misnamed (the client expecting a name the certificate lacks). gw2's gateway was down.
The leaks and failures below are hand edits of those recordings.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter.http_audit import FilterModule
from ansible_collections.hardened.vllm.plugins.plugin_utils import _addresses, _api_routes

FIXTURES = Path(__file__).parents[2] / "fixtures" / "http"
F = FilterModule().filters()


def load(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


PLANS = load("plans")
MONITOR, CLIENT, MISNAMED = load("monitor"), load("client"), load("client_wrong_name")
PORT = PLANS["gw1"]["api"]["port"]
GW1 = f"gw1 https://127.0.0.1:{PORT}"


def edited(run, path, method, key, **outcome):
    """A copy of a run where one route's answer to one key (or none) is replaced."""
    run = copy.deepcopy(run)
    for route in run["results"][0]["routes"]:
        if (route["path"], route["method"]) == (path, method):
            target = route["without_key"] if key == "none" else route["with_key"][key]
            target.clear()
            target.update({"status": None, "error": None, **outcome})
            return run
    raise AssertionError(f"{method} {path} not recorded")


def row(rows, vantage, check="route", path=None, method=None, key="none", node="gw1"):
    [found] = [
        r
        for r in rows
        if (r["vantage"], r["node"], r["check"], r["key"]) == (vantage, node, check, key)
        and (check != "route" or (r["path"], r["method"]) == (path, method))
    ]
    return found


# http_routes


def test_routes_without_openapi_are_the_catalog():
    assert F["http_routes"](None) == _api_routes.catalog()


def test_routes_add_the_servers_openapi_paths_and_extra():
    openapi = {
        "openapi": "3.1.0",
        "paths": {
            "/v1/models": {"get": {}, "head": {}},
            "/v1/models/{model}": {"get": {}, "delete": {}, "parameters": []},
            "/new/{a}/route/{b}": {"post": {}, "options": {}},
        },
    }
    extra = ["/only/path", {"path": "/plan/form", "methods": ["get", "POST"]}]
    extra.append({"path": "/probe/form", "method": "PUT"})
    routes = F["http_routes"](openapi, extra)
    pairs = [(r["path"], r["method"]) for r in routes]
    assert pairs == sorted(set(pairs))
    added = set(pairs) - {(r["path"], r["method"]) for r in _api_routes.catalog()}
    assert added == {
        ("/v1/models/probe", "GET"),
        ("/v1/models/probe", "DELETE"),
        ("/new/probe/route/probe", "POST"),
        ("/only/path", "GET"),
        ("/only/path", "POST"),
        ("/plan/form", "GET"),
        ("/plan/form", "POST"),
        ("/probe/form", "PUT"),
    }
    assert not {method for _path, method in pairs} & {"HEAD", "OPTIONS"}


def test_routes_take_the_plans_allowlist_as_extra():
    routes = F["http_routes"](None, PLANS["gw1"]["api"]["routes"])
    assert routes == _api_routes.catalog()  # the allowlist is in the catalog already


@pytest.mark.parametrize(
    ("openapi", "extra", "says"),
    [
        ("not json", None, "openapi must be a parsed OpenAPI document"),
        ({"info": {}}, None, "openapi must be a parsed OpenAPI document"),
        ({"paths": {"v1": {}}}, None, "openapi paths: 'v1'"),
        (None, "/v1/models", "extra must be a list"),
        (None, [42], "extra: 42"),
        (None, [{"path": "nope", "method": "GET"}], "needs a path starting with /"),
        (None, [{"path": "/x"}], "needs a path starting with / and a method"),
    ],
)
def test_routes_name_the_filter_and_the_bad_input(openapi, extra, says):
    with pytest.raises(AnsibleFilterError, match=r"^hardened\.vllm\.http_routes: ") as info:
        F["http_routes"](openapi, extra)
    assert says in str(info.value)


# http_findings on the recordings


def test_recorded_gateway_is_as_the_plan_says_from_both_vantages():
    rows = F["http_findings"]([MONITOR, CLIENT], PLANS)
    routes = load("manifest")["routes"]  # the catalog and the allowed paths' other methods
    assert routes == len(_api_routes.catalog()) + len(_api_routes.DEFAULT_ALLOWED)
    # per vantage: gw1 tls + plaintext + every route without a key and with alice and bob;
    # gw2 (down) tls + plaintext
    assert len(rows) == 2 * (2 + 3 * routes + 2)
    assert [r["message"] for r in rows if r["finding"] != "ok"] == []
    assert set(rows[0]) == {
        "vantage",
        "source",
        "source_audiences",
        "node",
        "address",
        "port",
        "reachable",
        "check",
        "path",
        "method",
        "key",
        "status",
        "expected",
        "finding",
        "message",
    }
    assert row(rows, "monitor", check="tls")["source_audiences"] == ["monitoring"]
    assert row(rows, "client", check="tls")["source_audiences"] == ["clients"]


def test_recorded_keys_pass_the_allowlist_only():
    rows = F["http_findings"]([CLIENT], PLANS)
    models = row(rows, "client", path="/v1/models", method="GET", key="alice")
    assert (models["status"], models["expected"], models["finding"]) == (200, "answered", "ok")
    completion = row(rows, "client", path="/v1/completions", method="POST", key="bob")
    assert (completion["status"], completion["expected"]) == (400, "answered")  # passed: {}
    unkeyed = row(rows, "client", path="/v1/completions", method="POST")
    assert (unkeyed["status"], unkeyed["expected"], unkeyed["finding"]) == (401, "refused", "ok")
    wrong_method = row(rows, "client", path="/v1/models", method="POST", key="alice")
    assert wrong_method["expected"] == "refused" and wrong_method["status"] in (403, 405)
    sleep = row(rows, "client", path="/sleep", method="POST", key="alice")
    assert (sleep["status"], sleep["expected"], sleep["finding"]) == (404, "refused", "ok")


def test_recorded_monitoring_routes_answer_the_monitoring_source_only():
    rows = F["http_findings"]([MONITOR, CLIENT], PLANS)
    for path in ("/health", "/metrics"):
        monitor = row(rows, "monitor", path=path, method="GET")
        assert (monitor["status"], monitor["expected"], monitor["finding"]) == (
            200,
            "answered",
            "ok",
        )
        for key in ("none", "alice"):
            client = row(rows, "client", path=path, method="GET", key=key)
            assert (client["status"], client["expected"], client["finding"]) == (
                404,
                "refused",
                "ok",
            )


def test_recorded_tls_and_plaintext_rows():
    rows = F["http_findings"]([CLIENT], PLANS)
    tls = row(rows, "client", check="tls")
    assert (tls["status"], tls["finding"]) == ("TLSv1.3", "ok")
    assert "certificate verified for gateway.test" in tls["message"]
    plain = row(rows, "client", check="plaintext")
    assert (plain["status"], plain["expected"], plain["finding"]) == (400, "refused", "ok")
    down = [r for r in rows if r["node"] == "gw2"]
    assert [(r["check"], r["reachable"], r["finding"]) for r in down] == [
        ("tls", False, "ok"),
        ("plaintext", False, "ok"),
    ]
    assert "not reachable from client (127.0.0.20) (refused)" in down[0]["message"]


def test_recorded_name_mismatch_is_a_tls_violation_and_nothing_else_is_judged():
    rows = F["http_findings"]([MISNAMED], PLANS)
    assert [(r["check"], r["finding"]) for r in rows] == [("tls", "exposed"), ("plaintext", "ok")]
    assert rows[0]["message"] == (
        f"{GW1} TLS from misnamed (127.0.0.20) failed: certificate verify failed: Hostname "
        "mismatch, certificate is not valid for 'wrong.test'.; clients cannot verify the "
        "gateway (server name wrong.test, the cluster CA) and the routes were not tried"
    )


# http_findings on hand-edited leaks


def test_a_route_that_answers_without_a_key_is_exposed():
    leaky = edited(CLIENT, "/invocations", "POST", "none", status=200)
    rows = F["http_findings"]([leaky], PLANS)
    [bad] = [r for r in rows if r["finding"] != "ok"]
    assert (bad["path"], bad["key"], bad["expected"], bad["finding"]) == (
        "/invocations",
        "none",
        "refused",
        "exposed",
    )
    assert bad["message"] == (
        f"{GW1} POST /invocations answered 200 from client (127.0.0.20) without a key; "
        "only the allowlist may pass the gateway, and only with a key"
    )


@pytest.mark.parametrize("status", [200, 302, 400, 422, 500])
def test_a_keyed_route_outside_the_allowlist_that_passes_is_exposed(status):
    leaky = edited(CLIENT, "/collective_rpc", "POST", "bob", status=status)
    [bad] = [r for r in F["http_findings"]([leaky], PLANS) if r["finding"] != "ok"]
    assert bad["finding"] == "exposed" and bad["key"] == "bob"
    assert bad["message"] == (
        f"{GW1} POST /collective_rpc answered {status} from client (127.0.0.20) with key bob; "
        "it is not in the plan's allowlist (cluster_plan.api.routes), so the gateway must "
        "refuse it, key or not"
    )


def test_rate_limits_count_as_refused_with_a_key_only():
    limited = edited(CLIENT, "/v1/models", "GET", "alice", status=429)
    limited = edited(limited, "/sleep", "POST", "alice", status=429)
    limited = edited(limited, "/version", "GET", "none", status=429)
    rows = F["http_findings"]([limited], PLANS)
    allowed = row(rows, "client", path="/v1/models", method="GET", key="alice")
    assert allowed["finding"] == "ok" and "(rate limited)" in allowed["message"]
    other = row(rows, "client", path="/sleep", method="POST", key="alice")
    assert other["finding"] == "ok" and "rate limited" in other["message"]
    unkeyed = row(rows, "client", path="/version", method="GET")
    assert unkeyed["finding"] == "exposed"


@pytest.mark.parametrize(
    ("outcome", "answer"),
    [({"status": 401}, "answered 401"), ({"error": "timed out"}, "got no answer (timed out)")],
)
def test_an_allowlisted_route_refused_with_a_key_is_blocked(outcome, answer):
    blocked = edited(CLIENT, "/v1/chat/completions", "POST", "alice", **outcome)
    [bad] = [r for r in F["http_findings"]([blocked], PLANS) if r["finding"] != "ok"]
    assert (bad["expected"], bad["finding"]) == ("answered", "blocked")
    assert bad["message"] == (
        f"{GW1} POST /v1/chat/completions {answer} from client (127.0.0.20) with key alice, "
        "although it is in the plan's allowlist (cluster_plan.api.routes): clients with a key "
        "must get through"
    )


def test_an_unanswered_request_that_must_be_refused_is_fine():
    silent = edited(CLIENT, "/pause", "POST", "none", error="timed out")
    rows = F["http_findings"]([silent], PLANS)
    assert row(rows, "client", path="/pause", method="POST")["finding"] == "ok"


def test_monitoring_routes_leaking_to_clients_or_missing_for_monitoring():
    leak = edited(CLIENT, "/metrics", "GET", "alice", status=200)
    monitor = edited(MONITOR, "/health", "GET", "none", status=503)
    monitor = edited(monitor, "/metrics", "GET", "bob", status=404)
    rows = F["http_findings"]([leak, monitor], PLANS)
    bad = {(r["vantage"], r["path"], r["key"]): r for r in rows if r["finding"] != "ok"}
    assert set(bad) == {("client", "/metrics", "alice"), ("monitor", "/health", "none")}
    assert bad["client", "/metrics", "alice"]["finding"] == "exposed"
    assert bad["client", "/metrics", "alice"]["message"] == (
        f"{GW1} GET /metrics answered 200 from client (127.0.0.20) with key alice; only the "
        "monitoring audience (cluster_plan.monitoring) may read it, and a key does not change "
        "that"
    )
    assert bad["monitor", "/health", "none"]["finding"] == "blocked"
    assert (
        "answered 503 from monitor (127.0.0.10) without a key"
        in (bad["monitor", "/health", "none"]["message"])
    )
    # the monitoring source with a key: either answer is fine, it reads the route without one
    assert (
        "reads it without a key"
        in row(rows, "monitor", path="/metrics", method="GET", key="bob")["message"]
    )


def test_a_plan_without_monitoring_has_no_monitoring_audience():
    plans = copy.deepcopy(PLANS)
    for plan in plans.values():
        del plan["monitoring"]
    rows = F["http_findings"]([MONITOR], plans)
    assert row(rows, "monitor", check="tls")["source_audiences"] == ["others"]
    bad = {(r["path"], r["key"]) for r in rows if r["finding"] != "ok"}
    assert bad == {(p, k) for p in ("/health", "/metrics") for k in ("none", "alice", "bob")}


def test_a_node_without_api_in_its_plan_must_refuse_everything():
    plans = copy.deepcopy(PLANS)
    plans["gw1"]["api"] = None
    rows = F["http_findings"]([CLIENT], plans)
    bad = {(r["method"], r["path"]) for r in rows if r["finding"] != "ok"}
    assert bad == {(m, p) for p in _api_routes.DEFAULT_ALLOWED for m in _api_routes.methods_of(p)}


@pytest.mark.parametrize(("status", "finding"), [(200, "exposed"), (301, "exposed"), (None, "ok")])
def test_plain_http_on_the_port(status, finding):
    run = copy.deepcopy(CLIENT)
    run["results"][0]["plaintext"] = {"status": status, "error": None if status else "reset"}
    plain = row(F["http_findings"]([run], PLANS), "client", check="plaintext")
    assert plain["finding"] == finding
    if finding == "exposed":
        assert plain["message"].startswith(
            f"{GW1} answered plain HTTP GET / with {status} from client (127.0.0.20); "
        )


def test_findings_name_the_filter_and_the_bad_input():
    with pytest.raises(AnsibleFilterError, match="http_findings: input must be a list"):
        F["http_findings"](MONITOR, PLANS)
    with pytest.raises(AnsibleFilterError, match="http_findings: plans must map each node"):
        F["http_findings"]([MONITOR], [PLANS])
    with pytest.raises(AnsibleFilterError, match=r"node 'gw2' has no plan; .* \['gw1'\]"):
        F["http_findings"]([MONITOR], {"gw1": PLANS["gw1"]})


def test_findings_say_when_netaddr_is_missing(monkeypatch):
    monkeypatch.setattr(_addresses, "netaddr", None)
    with pytest.raises(AnsibleFilterError, match=r"http_findings: .*netaddr"):
        F["http_findings"]([MONITOR], PLANS)


# http_matrix


def test_matrix_of_the_recordings():
    rows = F["http_findings"]([MONITOR, CLIENT, MISNAMED], PLANS)
    text = F["http_matrix"](rows)
    lines = text.splitlines()
    assert lines[0].split() == ["node", "address:port", "check", "client", "misnamed", "monitor"]
    assert set(lines[1]) == {"-", " "}
    by_check = {}
    for line in lines[2:]:
        cells = line.split()
        if not cells or cells[0] not in ("gw1", "gw2"):
            continue
        check = cells[2] if cells[2] in ("tls", "plaintext") else f"{cells[2]} {cells[3]}"
        by_check[cells[0], check] = cells[-3:]
    assert by_check["gw1", "tls"] == ["TLSv1.3", "err!", "TLSv1.3"]
    assert by_check["gw1", "plaintext"] == ["400", "400", "400"]
    assert by_check["gw1", "GET /v1/models"] == ["401/200,200", "x", "401/200,200"]
    assert by_check["gw1", "POST /v1/completions"] == ["401/400,400", "x", "401/400,400"]
    assert by_check["gw1", "GET /health"] == ["404/404,404", "x", "200/200,200"]
    assert by_check["gw1", "POST /sleep"] == ["404/404,404", "x", "404/404,404"]
    gw2 = [line for line in lines if line.startswith("gw2")]
    assert [line.split()[2:] for line in gw2] == [["tls", "-", "-"], ["plaintext", "-", "-"]]
    # tls and plaintext first, then the routes by path and method
    checks = [line.split()[2:4] for line in lines[2:] if line.startswith("gw1")]
    assert checks[:2] == [["tls", "TLSv1.3"], ["plaintext", "400"]]
    routes = [(c[1], c[0]) for c in checks[2:]]
    assert routes == sorted(routes)
    assert text.endswith(
        "route cells: status without a key/status with each key (alice, bob); tls: protocol "
        "version; plaintext: status of plain HTTP\n- = not reachable, x = not tried (TLS "
        "failed), err = no answer, ! = differs from the plan\n"
    )


def test_matrix_marks_differences_and_does_not_depend_on_row_order():
    leaky = edited(CLIENT, "/invocations", "POST", "none", status=200)
    rows = F["http_findings"]([MONITOR, leaky], PLANS)
    text = F["http_matrix"](rows)
    [line] = [line for line in text.splitlines() if "POST /invocations" in line]
    assert line.split()[-2:] == ["200/404,404!", "404/404,404"]
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    assert F["http_matrix"](shuffled) == text


def test_matrix_rejects_what_is_not_rows():
    with pytest.raises(AnsibleFilterError, match="http_matrix: input must be a list"):
        F["http_matrix"]({"rows": []})
