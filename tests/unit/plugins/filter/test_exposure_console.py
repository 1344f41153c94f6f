# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exposure_console: the audit's console lines, on recorded listeners and gateway answers.

TCP rows: probe_findings over the recorded listening_sockets output of a Debian 12 VM (see
test_probe.py); HTTP rows: http_findings over the http_probe recordings against nginx (see
test_http.py). Leaks are hand edits of those recordings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter.exposure_console import FilterModule
from ansible_collections.hardened.vllm.plugins.filter.http_audit import (
    FilterModule as HttpFilters,
)
from ansible_collections.hardened.vllm.plugins.filter.probe import FilterModule as ProbeFilters

FIXTURES = Path(__file__).parents[2] / "fixtures"
console = FilterModule().filters()["exposure_console"]
H = HttpFilters().filters()
P = ProbeFilters().filters()

FACTS = json.loads((FIXTURES / "facts" / "debian12_vm_network.json").read_text())
LISTENERS = json.loads((FIXTURES / "listening_sockets" / "debian12_vm_tcp.json").read_text())
PLAN = {
    "host_ip": "192.0.2.2",
    "peers": {"ipv4": ["192.0.2.3/32"], "ipv6": ["fd00::3/128"]},
    "clients": {"ipv4": ["198.51.100.0/24"], "ipv6": []},
    "admins": {"ipv4": ["203.0.113.5/32"], "ipv6": []},
    "exposure": [
        {"name": "ssh", "proto": "tcp", "port": 22, "audience": "admins"},
        {"name": "api", "proto": "tcp", "port": 47001, "audience": "clients"},
    ],
}
HOSTVARS = {
    "vm": {"cluster_plan": PLAN, "ansible_facts": {**FACTS, "listening_sockets": LISTENERS}}
}
SOURCES = {"client": "198.51.100.7", "outsider": "192.0.2.99", "controller": "203.0.113.5"}


def load_http(name):
    return json.loads((FIXTURES / "http" / f"{name}.json").read_text())


def http_rows(*edits):
    """http_findings of the recorded client and monitor runs, with (path, method, key, status)."""
    client = load_http("client")
    for path, method, key, status in edits:
        for route in client["results"][0]["routes"]:
            if (route["path"], route["method"]) == (path, method):
                answer = route["without_key"] if key == "none" else route["with_key"][key]
                answer.clear()
                answer.update({"status": status, "error": None})
    return H["http_findings"]([load_http("monitor"), client], load_http("plans"))


def tcp_rows(open_from=("client",), vantages=tuple(SOURCES)):
    """probe_findings for every target from each vantage; open where the vantage is listed."""
    targets = P["probe_targets"](HOSTVARS, ["vm"])
    runs = [
        {
            "vantage": vantage,
            "results": [
                {
                    "address": t["address"],
                    "port": t["port"],
                    "open": vantage in open_from and t["port"] == 47001,
                    "state": "open" if vantage in open_from else "timeout",
                    "source": SOURCES.get(vantage, "192.0.2.3"),
                }
                for t in targets
            ],
        }
        for vantage in vantages
    ]
    return P["probe_findings"](runs, targets, HOSTVARS, ["vm"])


def verdict(tcp, http):
    bad = [r["message"] for r in tcp + http if r["finding"] == "exposed"]
    blocked = [r["message"] for r in tcp + http if r["finding"] == "blocked"]
    return bad, blocked


def test_clean_run_counts_then_matrices_and_folds_refused_routes():
    tcp, http = tcp_rows(), http_rows()
    lines = console(tcp, http, *verdict(tcp, http))
    assert lines[0] == (
        f"exposure: 0 violation(s), 0 allowed but unreachable; {len(tcp)} TCP and "
        f"{len(http)} HTTP probes"
    )
    assert lines[1:3] == ["", "TCP: node port x vantage"]
    assert lines[3].split() == ["node", "address:port", "process", "may", "reach", *sorted(SOURCES)]
    assert [line.split()[1] for line in lines[5:9]] == [
        "192.0.2.2:47001",
        "192.0.2.2:47002",
        "[fd00::2]:47002",
        "192.0.2.2:47004",
    ]
    assert lines[5].split()[-3:] == ["OPEN", "-", "-"]  # client, controller, outsider
    http_at = lines.index("HTTP: gateway check or route x vantage")
    checks = [line.split()[2:4] for line in lines[http_at:] if line.startswith("gw")]
    # tls, plaintext, then only what may pass for some vantage: the allowlist and monitoring
    assert [c[0] if c[0] in ("tls", "plaintext") else " ".join(c) for c in checks] == [
        "tls",
        "plaintext",
        "GET /health",
        "GET /metrics",
        "POST /v1/chat/completions",
        "POST /v1/completions",
        "GET /v1/models",
        "tls",
        "plaintext",
    ]
    folded = [line for line in lines if "other route(s) refused from every vantage" in line]
    assert len(folded) == 1 and int(folded[0].split()[0]) > 30
    assert all(len(line) <= 120 for line in lines)
    assert all('"' not in line and "\n" not in line for line in lines)


def test_violations_come_first_and_their_lines_are_shown():
    tcp = tcp_rows(open_from=("client", "outsider"))
    http = http_rows(("/invocations", "POST", "none", 200))
    bad, blocked = verdict(tcp, http)
    lines = console(tcp, http, bad, blocked)
    assert lines[0].startswith(f"exposure: {len(bad)} violation(s), 0 allowed but unreachable")
    assert lines[1 : 1 + len(bad)] == [f"VIOLATION: {m}" for m in bad]
    assert any("POST /invocations answered 200 from client" in line for line in lines[1:])
    tcp_api = next(line for line in lines if line.startswith("vm") and ":47001" in line)
    assert tcp_api.split()[-1] == "OPEN!"  # the outsider column
    invocations = [line for line in lines if "POST /invocations" in line and line.startswith("gw")]
    assert len(invocations) == 1 and invocations[0].split()[-2] == "200/404,404!"


def test_blocked_lines_follow_the_violations():
    tcp = tcp_rows(open_from=())
    bad, blocked = verdict(tcp, [])
    assert bad == [] and blocked
    lines = console(tcp, [], bad, blocked)
    assert lines[1 : 1 + len(blocked)] == [f"UNREACHABLE: {m}" for m in blocked]
    assert lines[-1] == "no gateway was called"


def test_long_lists_and_matrices_are_capped_with_what_was_left_out():
    tcp = tcp_rows(open_from=("client", "outsider"))
    http = http_rows()
    bad, blocked = verdict(tcp, http)
    assert len(bad) == 1
    lines = console(tcp, http, bad * 5, blocked, max_rows=2)
    assert lines[1:3] == [f"VIOLATION: {bad[0]}"] * 2
    assert lines[3] == "... 3 more violation(s) (all in exposure.json)"
    tcp_lines = [line for line in lines if line.startswith("vm ")]
    # the differing port is kept though it is not first; then the first as planned
    assert [line.split()[1] for line in tcp_lines] == ["192.0.2.2:47001", "192.0.2.2:47002"]
    assert tcp_lines[0].endswith("OPEN!")
    assert "... 2 more node port(s), all as the plan says (see the report files)" in lines
    assert "... 7 more gateway line(s), all as the plan says (see the report files)" in lines
    lines = console(tcp, http, bad, blocked, max_rows=1)
    assert [line.split()[1] for line in lines if line.startswith("vm ")] == ["192.0.2.2:47001"]


def test_many_vantages_fold_the_nodes_into_peers():
    # node vm2 is a copy of vm; each probes the other (peers may reach every port)
    rows = tcp_rows(open_from=("client", "vm2"), vantages=(*SOURCES, "vm2"))
    rows += [
        {**r, "node": "vm2", "vantage": "vm" if r["vantage"] == "vm2" else r["vantage"]}
        for r in rows
    ]
    lines = console(rows, [], max_vantages=4)
    header = next(line for line in lines if line.startswith("node"))
    assert header.split()[-4:] == ["client", "controller", "outsider", "peers"]
    cells = {tuple(line.split()[:2]): line.split()[-1] for line in lines if line.startswith("vm")}
    assert cells[("vm", "192.0.2.2:47001")] == "OPEN"
    assert cells[("vm2", "192.0.2.2:47002")] == "-!"  # a peer could not reach it: blocked
    assert console(rows, [], max_vantages=5)[3].split()[-2:] == ["vm", "vm2"]


def test_no_probe_at_all():
    assert console([], None) == [
        "exposure: 0 violation(s), 0 allowed but unreachable; 0 TCP and 0 HTTP probes",
        "",
        "TCP: node port x vantage",
        "no TCP probe ran",
        "",
        "HTTP: gateway check or route x vantage",
        "no gateway was called",
    ]


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        (({"node": "a"},), {}, "must be a list of rows, got {'node': 'a'}"),
        (([{"node": "a"}],), {}, "TCP findings row 0 lacks address, port, vantage"),
        (([], [{"node": "a"}]), {}, "HTTP findings row 0 lacks address"),
        (([], [], "boom"), {}, "violations must be a list of messages, got 'boom'"),
        (([], [], [], [1]), {}, "blocked must be a list of messages, got [1]"),
        (([],), {"max_rows": 0}, "max_rows must be a whole number of 1 or more, got 0"),
        (([],), {"max_vantages": True}, "max_vantages must be a whole number of 1 or more"),
        (([],), {"width": 80}, "unknown option(s) width"),
    ],
)
def test_bad_input_names_the_filter_and_the_value(args, kwargs, says):
    with pytest.raises(AnsibleFilterError, match=r"^hardened\.vllm\.exposure_console: ") as exc:
        console(*args, **kwargs)
    assert says in str(exc.value)
