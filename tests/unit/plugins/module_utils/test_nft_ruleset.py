# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall renderer: shape of the table, sets, validation, and nft's own verdict."""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter.nft_ruleset import FilterModule
from ansible_collections.hardened.vllm.plugins.module_utils._nft_ruleset import PlanError, render

PLAN = json.loads((Path(__file__).parents[2] / "fixtures" / "nft" / "plan_node1.json").read_text())
CAN_NFT = shutil.which("nft") and shutil.which("unshare") and os.geteuid() == 0
needs_nft = pytest.mark.skipif(not CAN_NFT, reason="needs root, nft and unshare")


def plan(**changes):
    data = copy.deepcopy(PLAN)
    data.update(changes)
    return data


def chain(text):
    """The rules of the input chain, one string each."""
    body = text[text.index("chain input {") :].splitlines()[1:]
    return [line.strip() for line in body if line.strip() not in ("", "}")]


def set_elements(text, name):
    match = re.search(rf"set {name} {{(.*?)\n\t}}", text, re.S)
    assert match, f"no set {name}"
    elements = re.search(r"elements = \{(.*?)\}", match.group(1), re.S)
    return [e.strip() for e in elements.group(1).split(",")] if elements else []


def nft_check(text, tmp_path, *, apply_and_list=False):
    """Let nft itself judge the script, in a throwaway network namespace."""
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    command = f"nft -f {path} && nft list table inet hardened_vllm" if apply_and_list else None
    argv = (
        ["unshare", "-n", "sh", "-c", command]
        if command
        else ["unshare", "-n", "nft", "-c", "-f", str(path)]
    )
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_replaces_only_its_own_table_in_one_script():
    text = render(PLAN)
    statements = [
        line for line in text.splitlines() if line and not line.startswith(("#", "\t", "}"))
    ]
    assert statements == [
        "table inet hardened_vllm",
        "delete table inet hardened_vllm",
        "table inet hardened_vllm {",
    ]
    assert "flush" not in text


def test_input_chain_order_and_policy():
    rules = chain(render(PLAN))
    assert rules[0] == "type filter hook input priority filter; policy drop;"
    assert rules[1:4] == [
        "ct state established,related accept",
        "ct state invalid drop",
        'iif "lo" accept',
    ]
    assert rules[-1] == 'counter drop comment "default deny"'
    assert rules[-2].startswith("limit rate 10/minute log prefix")
    assert 'iifname "eth0" ip saddr @peers_v4 accept comment "cluster peers: every port"' in rules
    assert 'iifname "eth0" ip6 saddr @peers_v6 accept comment "cluster peers: every port"' in rules


def test_ipv6_keeps_neighbour_discovery_and_pmtu():
    icmpv6 = next(r for r in chain(render(PLAN)) if r.startswith("icmpv6 type {"))
    for needed in (
        "nd-neighbor-solicit",
        "nd-neighbor-advert",
        "nd-router-advert",
        "packet-too-big",
    ):
        assert needed in icmpv6


def test_exposure_entries_become_port_rules_from_their_sets():
    rules = chain(render(PLAN))
    assert 'tcp dport 22 ip saddr @admins_v4 accept comment "ssh from admins"' in rules
    assert 'tcp dport 22 ip6 saddr @admins_v6 accept comment "ssh from admins"' in rules
    assert 'tcp dport 8000 ip saddr @clients_v4 accept comment "api from clients"' in rules
    assert (
        'tcp dport 9400 ip saddr @custom4_v4 accept comment "metrics-scraper from custom"' in rules
    )
    # Internal ports (audience peers) get no port rule: peers reach every port anyway.
    assert not [r for r in rules if "29550" in r]


def test_sets_hold_the_plan_addresses():
    text = render(PLAN)
    assert set_elements(text, "peers_v4") == ["10.89.0.3"]
    assert set_elements(text, "peers_v6") == ["fd42:89::3"]
    assert set_elements(text, "clients_v4") == ["10.89.0.10", "192.0.2.0/24"]
    assert set_elements(text, "admins_v4") == ["198.51.100.0/24"]
    assert set_elements(text, "admins_v6") == []
    assert set_elements(text, "custom4_v4") == ["203.0.113.7"]
    assert set_elements(text, "monitoring_v4") == ["10.89.5.0/28"]
    assert set_elements(text, "monitoring_v6") == ["fd42:89:5::9"]


def test_monitoring_reaches_the_api_port_from_its_own_sets():
    rules = chain(render(PLAN))
    for match, suffix in (("ip", "v4"), ("ip6", "v6")):
        assert (
            f"tcp dport 8000 {match} saddr @monitoring_{suffix} accept "
            'comment "api-monitoring from monitoring"'
        ) in rules
        assert (
            f'tcp dport 8000 {match} saddr @clients_{suffix} accept comment "api from clients"'
        ) in rules


def test_plan_without_monitoring_has_empty_monitoring_sets_and_no_rule():
    """A plan published before the gateway (no monitoring key, no monitoring entry)."""
    data = plan(exposure=[e for e in PLAN["exposure"] if e["audience"] != "monitoring"])
    del data["monitoring"]
    text = render(data)
    assert set_elements(text, "monitoring_v4") == []
    assert set_elements(text, "monitoring_v6") == []
    assert not [r for r in chain(text) if "@monitoring_" in r]


def test_overlapping_networks_are_merged():
    data = plan(clients={"ipv4": ["10.0.0.0/24", "10.0.0.7/32", "10.0.1.0/24"], "ipv6": []})
    assert set_elements(render(data), "clients_v4") == ["10.0.0.0/23"]


def test_admins_argument_replaces_plan_admins_per_family():
    text = render(PLAN, admins=["192.0.2.10/32", "2001:db8::5/128"])
    assert set_elements(text, "admins_v4") == ["192.0.2.10"]
    assert set_elements(text, "admins_v6") == ["2001:db8::5"]


def test_headless_node_without_api_has_no_api_rule():
    # A headless node's plan has neither the api nor the api-monitoring entry.
    data = plan(
        api=None,
        exposure=[e for e in PLAN["exposure"] if e["name"] not in ("api", "api-monitoring")],
    )
    assert not [r for r in chain(render(data)) if "dport 8000" in r]


def test_options_log_and_ping():
    quiet = chain(render(PLAN, log_dropped=False, icmp_echo=False))
    assert not [r for r in quiet if " log " in r or "echo-request" in r]
    assert "limit rate 3/second log" in render(PLAN, log_rate="3/second")


def test_rule_count_does_not_grow_with_the_cluster():
    def many(count):
        hosts = [str(ipaddress.ip_address("10.64.0.0") + i) + "/32" for i in range(count)]
        return plan(
            peers={"ipv4": hosts[::3], "ipv6": []},
            clients={"ipv4": hosts[1::3], "ipv6": []},
            monitoring={"ipv4": hosts[2::3], "ipv6": []},
        )

    small, large = render(many(6)), render(many(6144))
    assert len(chain(small)) == len(chain(large))
    assert len(set_elements(large, "peers_v4")) == 2048
    assert len(set_elements(large, "monitoring_v4")) == 2048


def test_user_chosen_names_cannot_break_out_of_comments():
    data = plan(host='evil"\n}')
    assert 'default-deny input of evil___"' in render(data)
    data["exposure"][4]["name"] = 'x" accept; tcp dport 1 accept comment "'
    rule = next(r for r in chain(render(data)) if "dport 9400 ip saddr" in r)
    assert rule.count('"') == 2
    assert rule.endswith('comment "x_ accept_ tcp dport 1 accept comment _ from custom"')


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"schema_version": 2}, "host node1, variable cluster_plan: schema_version 2"),
        (
            {"cluster_iface": 'eth0" accept'},
            "variable cluster_plan.cluster_iface: 'eth0\" accept' is not",
        ),
        (
            {"peers": {"ipv4": ["10.0.0.300/32"], "ipv6": []}},
            "cluster_plan.peers.ipv4[0]: '10.0.0.300/32' is not an IP",
        ),
        (
            {"peers": {"ipv4": ["fd00::1/128"], "ipv6": []}},
            "cluster_plan.peers.ipv4[0]: fd00::1/128 is not an IPv4",
        ),
        (
            {"clients": ["10.0.0.0/8"]},
            "variable cluster_plan.clients: must be {ipv4: [...], ipv6: [...]}",
        ),
        (
            {"admins": {"ipv4": "10.0.0.0/8", "ipv6": []}},
            "cluster_plan.admins.ipv4: must be a list",
        ),
        ({"exposure": "ssh"}, "variable cluster_plan.exposure: must be a list"),
        (
            {"monitoring": ["10.89.5.0/28"]},
            "variable cluster_plan.monitoring: must be {ipv4: [...], ipv6: [...]}",
        ),
        (
            {"monitoring": {"ipv4": [], "ipv6": ["10.89.5.0/28"]}},
            "cluster_plan.monitoring.ipv6[0]: 10.89.5.0/28 is not an IPv6",
        ),
    ],
)
def test_bad_plans_name_host_variable_and_fix(changes, expected):
    with pytest.raises(PlanError, match=re.escape(expected)) as raised:
        render(plan(**changes))
    assert "Fix: " in str(raised.value)


@pytest.mark.parametrize(
    ("index", "entry", "expected"),
    [
        (0, {"port": 70000}, "cluster_plan.exposure[0].port: 70000 is not a port number"),
        (0, {"port": True}, "cluster_plan.exposure[0].port: True is not a port number"),
        (1, {"proto": "sctp"}, "cluster_plan.exposure[1].proto: 'sctp' is not tcp or udp"),
        (1, {"audience": "everyone"}, "cluster_plan.exposure[1]: "),
        (4, {"from": None}, "cluster_plan.exposure[4].from: a custom opening needs from"),
        (2, {"port": 0}, "cluster_plan.exposure[2].port: 0 is not a port number"),
    ],
)
def test_bad_exposure_entries(index, entry, expected):
    data = plan()
    data["exposure"][index].update(entry)
    with pytest.raises(PlanError, match=re.escape(expected)):
        render(data)


def test_bad_options_and_non_plans():
    with pytest.raises(PlanError, match="variable firewall_log_rate: '10 per minute'"):
        render(PLAN, log_rate="10 per minute")
    with pytest.raises(PlanError, match=r"firewall admins \(derived\)\[0\]: 'nope' is not an IP"):
        render(PLAN, admins=["nope"])
    with pytest.raises(PlanError, match=r"run the role hardened\.vllm\.cluster first"):
        render(None)


def test_filter_wraps_errors():
    nft_ruleset = FilterModule().filters()["nft_ruleset"]
    assert nft_ruleset(PLAN) == render(PLAN)
    with pytest.raises(
        AnsibleFilterError, match=r"^hardened.vllm.nft_ruleset: host node1, variable"
    ):
        nft_ruleset(plan(cluster_iface=None))


@needs_nft
def test_nft_accepts_the_rendered_script(tmp_path):
    checked = nft_check(render(PLAN, admins=["192.0.2.10", "2001:db8::/64"]), tmp_path)
    assert checked.returncode == 0, checked.stderr


@needs_nft
def test_nft_accepts_empty_sets_and_many_elements(tmp_path):
    hosts = [f"fd00:{i:x}::/64" for i in range(300)]
    data = plan(
        peers={"ipv4": [], "ipv6": hosts},
        clients={"ipv4": [], "ipv6": []},
        admins={"ipv4": [], "ipv6": []},
    )
    loaded = nft_check(render(data), tmp_path, apply_and_list=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.count("fd00:") == 300


@needs_nft
def test_nft_rejects_what_the_renderer_would_not_catch(tmp_path):
    """The check really runs: a broken script fails it (so a pass above means something)."""
    checked = nft_check(render(PLAN).replace("policy drop;", "policy maybe;"), tmp_path)
    assert checked.returncode != 0
