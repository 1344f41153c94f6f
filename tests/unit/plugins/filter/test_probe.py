# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""probe_targets / probe_findings / probe_matrix on recorded listening_sockets output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter.probe import FilterModule

FIXTURES = Path(__file__).parents[2] / "fixtures"
# Real network facts and real hardened.vllm.listening_sockets output of one Debian 12 VM
# (eth0 192.0.2.2 + fd00::2) with listeners on 0.0.0.0:47001, [::]:47002 (dual-stack),
# 127.0.0.1:47003 and 192.0.2.2:47004.
FACTS = json.loads((FIXTURES / "facts" / "debian12_vm_network.json").read_text())
LISTENERS = json.loads((FIXTURES / "listening_sockets" / "debian12_vm_tcp.json").read_text())
F = FilterModule().filters()
PLAN = {
    "host_ip": "192.0.2.2",
    "peers": {"ipv4": ["192.0.2.3/32"], "ipv6": ["fd00::3/128"]},
    "clients": {"ipv4": ["198.51.100.0/24"], "ipv6": []},
    "admins": {"ipv4": ["203.0.113.5/32"], "ipv6": []},
    "exposure": [
        {"name": "ssh", "proto": "tcp", "port": 22, "audience": "admins"},
        {"name": "api", "proto": "tcp", "port": 47001, "audience": "clients"},
        {
            "name": "scrape",
            "proto": "tcp",
            "port": 47004,
            "audience": "custom",
            "from": {"ipv4": ["203.0.113.0/24"], "ipv6": []},
        },
    ],
}
HOSTVARS = {
    "vm": {"cluster_plan": PLAN, "ansible_facts": {**FACTS, "listening_sockets": LISTENERS}}
}


def targets():
    return F["probe_targets"](HOSTVARS, ["vm"])


def test_targets_skip_loopback_and_expand_wildcards_by_family():
    got = {(t["address"], t["port"]) for t in targets()}
    assert got == {
        ("192.0.2.2", 47001),
        ("192.0.2.2", 47002),
        ("fd00::2", 47002),
        ("192.0.2.2", 47004),
    }
    dual = next(t for t in targets() if t["address"] == "fd00::2")
    assert dual["bind"] == "[::]:47002" and dual["process"] == "python3"
    assert dual["label"] == "vm [fd00::2]:47002 (python3)"
    assert dual["probe"] == {"address": "fd00::2", "port": 47002, "label": dual["label"]}


def test_findings_exposed_blocked_and_ok():
    runs = [
        {
            "vantage": "outsider",
            "results": [
                {
                    "address": "192.0.2.2",
                    "port": 47002,
                    "open": True,
                    "state": "open",
                    "source": "192.0.2.99",
                },
                {
                    "address": "192.0.2.2",
                    "port": 47001,
                    "open": False,
                    "state": "timeout",
                    "source": "192.0.2.99",
                },
            ],
        },
        {
            "vantage": "client",
            "results": [
                {
                    "address": "192.0.2.2",
                    "port": 47001,
                    "open": False,
                    "state": "refused",
                    "source": "198.51.100.7",
                },
                {
                    "address": "192.0.2.2",
                    "port": 47004,
                    "open": False,
                    "state": "timeout",
                    "source": "198.51.100.7",
                },
            ],
        },
        {
            "vantage": "peer",
            "results": [
                {
                    "address": "fd00::2",
                    "port": 47002,
                    "open": True,
                    "state": "open",
                    "source": "fd00::3",
                }
            ],
        },
        {
            "vantage": "scraper",
            "results": [
                {
                    "address": "192.0.2.2",
                    "port": 47004,
                    "open": True,
                    "state": "open",
                    "source": "203.0.113.9",
                }
            ],
        },
    ]
    rows = F["probe_findings"](runs, targets(), HOSTVARS, ["vm"])
    by = {(r["vantage"], r["port"]): r for r in rows}
    exposed = by[("outsider", 47002)]
    assert exposed["finding"] == "exposed" and exposed["audience"] == ["peers"]
    assert exposed["message"] == (
        "vm tcp 192.0.2.2:47002 (python3, pid 5958) accepted a connection from outsider "
        "(192.0.2.99), which the plan does not allow (audience: peers)"
    )
    assert by[("outsider", 47001)]["finding"] == "ok"
    blocked = by[("client", 47001)]
    assert blocked["finding"] == "blocked" and blocked["source_audiences"] == ["clients"]
    assert "although the plan allows it (audience: clients)" in blocked["message"]
    assert by[("client", 47004)]["finding"] == "ok"
    assert by[("peer", 47002)]["finding"] == "ok" and by[("peer", 47002)]["expected"]
    assert by[("scraper", 47004)]["finding"] == "ok"


def test_admins_in_effect_replace_the_plans_empty_admins():
    plan = {**PLAN, "admins": {"ipv4": [], "ipv6": []}}
    runs = [
        {
            "vantage": "controller",
            "results": [
                {
                    "address": "192.0.2.2",
                    "port": 47001,
                    "open": True,
                    "state": "open",
                    "source": "192.0.2.1",
                }
            ],
        }
    ]
    exposure = [{"name": "ssh", "proto": "tcp", "port": 47001, "audience": "admins"}]
    bare = {"vm": {**HOSTVARS["vm"], "cluster_plan": {**plan, "exposure": exposure}}}
    assert F["probe_findings"](runs, targets(), bare, ["vm"])[0]["finding"] == "exposed"
    derived = {
        "vm": {**bare["vm"], "verify_verdict": {"admins": {"ipv4": ["192.0.2.1/32"], "ipv6": []}}}
    }
    row = F["probe_findings"](runs, targets(), derived, ["vm"])[0]
    assert row["finding"] == "ok" and row["source_audiences"] == ["admins"]


def _result(address, port, source, is_open=True):
    return {
        "address": address,
        "port": port,
        "open": is_open,
        "state": "open" if is_open else "timeout",
        "source": source,
    }


def test_monitoring_may_reach_the_api_port_only():
    plan = {
        **PLAN,
        "monitoring": {"ipv4": ["203.0.113.64/26"], "ipv6": ["2001:db8:5::/64"]},
        "exposure": [
            *PLAN["exposure"],
            {"name": "api-monitoring", "proto": "tcp", "port": 47001, "audience": "monitoring"},
        ],
    }
    hostvars = {"vm": {**HOSTVARS["vm"], "cluster_plan": plan}}
    runs = [
        {
            "vantage": "prometheus",
            "results": [
                _result("192.0.2.2", 47001, "203.0.113.70"),
                _result("192.0.2.2", 47002, "203.0.113.70"),
                _result("192.0.2.2", 47004, "203.0.113.70", is_open=False),
            ],
        },
        {"vantage": "outsider", "results": [_result("192.0.2.2", 47001, "192.0.2.99")]},
    ]
    rows = F["probe_findings"](runs, targets(), hostvars, ["vm"])
    by = {(r["vantage"], r["port"]): r for r in rows}
    api = by[("prometheus", 47001)]
    assert api["finding"] == "ok" and api["expected"]
    assert api["audience"] == ["clients", "monitoring"]
    assert api["source_audiences"] == ["monitoring"]
    internal = by[("prometheus", 47002)]
    assert internal["finding"] == "exposed" and internal["audience"] == ["peers"]
    # 203.0.113.64/26 lies inside the custom opening's 203.0.113.0/24 as well: that one decides
    assert by[("prometheus", 47004)]["finding"] == "blocked"
    assert by[("outsider", 47001)]["finding"] == "exposed"
    assert by[("outsider", 47001)]["source_audiences"] == ["others"]


def test_plan_without_monitoring_knows_no_monitoring_sources():
    plan = {k: v for k, v in PLAN.items() if k != "monitoring"}
    hostvars = {"vm": {**HOSTVARS["vm"], "cluster_plan": plan}}
    runs = [{"vantage": "prometheus", "results": [_result("192.0.2.2", 47001, "203.0.113.70")]}]
    row = F["probe_findings"](runs, targets(), hostvars, ["vm"])[0]
    assert row["source_audiences"] == ["others"] and row["finding"] == "exposed"


def test_matrix_marks_differences():
    rows = F["probe_findings"](
        [
            {
                "vantage": "outsider",
                "results": [
                    {
                        "address": "192.0.2.2",
                        "port": 47002,
                        "open": True,
                        "state": "open",
                        "source": "192.0.2.99",
                    }
                ],
            },
            {
                "vantage": "client",
                "results": [
                    {
                        "address": "192.0.2.2",
                        "port": 47001,
                        "open": True,
                        "state": "open",
                        "source": "198.51.100.7",
                    }
                ],
            },
        ],
        targets(),
        HOSTVARS,
        ["vm"],
    )
    lines = F["probe_matrix"](rows).splitlines()
    assert lines[0].split() == [
        "node",
        "address:port",
        "process",
        "may",
        "reach",
        "client",
        "outsider",
    ]
    assert lines[2].split() == ["vm", "192.0.2.2:47001", "python3", "clients", "OPEN"]
    assert lines[3].split() == ["vm", "192.0.2.2:47002", "python3", "peers", "OPEN!"]
    assert "! = differs from the plan" in lines[-1]


def test_missing_facts_and_bad_input_are_named():
    with pytest.raises(AnsibleFilterError, match="host vm has no cluster_plan or listening_"):
        F["probe_targets"]({"vm": {"ansible_facts": FACTS}}, ["vm"])
    with pytest.raises(AnsibleFilterError, match=r"list of registered hardened\.vllm\.tcp_probe"):
        F["probe_findings"]([{"skipped": True}], [], HOSTVARS, ["vm"])
    with pytest.raises(AnsibleFilterError, match="probe_matrix: input must be a list"):
        F["probe_matrix"]("rows")
