# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several clusters in one inventory (cluster_name): each cluster planned as if alone.

The hosts are the recorded Debian 12 network facts with their addresses replaced
(tests/unit/fixtures/plan/cases.py), as in the golden tests.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter import cluster_plan as module
from ansible_collections.hardened.vllm.plugins.filter.cluster_plan import FilterModule

FIXTURES = Path(__file__).parents[2] / "fixtures" / "plan"
_spec = importlib.util.spec_from_file_location("plan_cases", FIXTURES / "cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)
FILTERS = FilterModule().filters()

DP = {
    "cluster_topology": "data_parallel",
    "cluster_network": ["10.0.0.0/24"],
    "cluster_client_cidrs": ["192.0.2.0/24"],
    "cluster_admin_cidrs": ["198.51.100.7/32"],
}
# Two data-parallel clusters of two nodes on one network, as in molecule/fleet.
FLEET = {
    "a1": {"ipv4": "10.0.0.11", "cluster_node_role": "head", "cluster_name": "alpha"},
    "a2": {"ipv4": "10.0.0.12", "cluster_node_role": "worker", "cluster_name": "alpha"},
    "b1": {"ipv4": "10.0.0.21", "cluster_node_role": "head", "cluster_name": "beta"},
    "b2": {"ipv4": "10.0.0.22", "cluster_node_role": "worker", "cluster_name": "beta"},
}


def _fleet(hosts=None, settings=None, per_host=None):
    """hostvars as the cluster role leaves them: each host holds the settings it sees."""
    hosts = {name: dict(spec) for name, spec in (hosts or FLEET).items()}
    hv = cases.hostvars({"hosts": hosts})
    for name in hv:
        hv[name]["seen"] = {**DP, **(settings or {}), **(per_host or {}).get(name, {})}
    return hv


def _groups(hv):
    groups = {"vllm_cluster": list(hv)}
    for name, data in hv.items():
        if data.get("cluster_name"):
            groups.setdefault(data["cluster_name"], []).append(name)
    return groups


def _plans(hv, groups=None):
    return FILTERS["cluster_plans"](hv, list(hv), list(hv), "seen", groups=groups or _groups(hv))


def _alone(hv, names, settings):
    """The plans of some hosts as a cluster of their own (no cluster_name, one group)."""
    alone = {n: {k: v for k, v in hv[n].items() if k != "cluster_name"} for n in names}
    return FILTERS["cluster_plan"](alone, list(names), settings)


def test_each_cluster_gets_the_plan_it_would_get_alone():
    hv = _fleet()
    plans = _plans(hv)
    assert sorted(plans) == ["a1", "a2", "b1", "b2"]
    for names in (["a1", "a2"], ["b1", "b2"]):
        alone = _alone(hv, names, DP)
        for name in names:
            assert plans[name] == {"plan": alone[name]}, name
    assert plans["a1"]["plan"]["peer_hosts"] == {"a2": "10.0.0.12"}
    assert plans["b2"]["plan"]["peer_hosts"] == {"b1": "10.0.0.21"}
    assert plans["a2"]["plan"]["peers"]["ipv4"] == ["10.0.0.11/32"]
    # Each cluster has its own head: its workers join it, not the other cluster's.
    for worker, head in (("a2", "10.0.0.11"), ("b2", "10.0.0.21")):
        args = plans[worker]["plan"]["vllm"]["args"]
        assert args[args.index("--data-parallel-address") + 1] == head
        assert args[args.index("--data-parallel-size") + 1] == "2"


def test_clusters_may_differ_in_cluster_wide_settings():
    hv = _fleet(
        per_host={h: {"cluster_topology": "single"} for h in ("b1", "b2")},
        hosts={**FLEET, **{h: {**FLEET[h], "cluster_node_role": "single"} for h in ("b1", "b2")}},
    )
    plans = _plans(hv)
    assert plans["a1"]["plan"]["topology"] == "data_parallel"
    assert plans["b1"]["plan"]["topology"] == "single"
    assert plans["b1"]["plan"]["peer_hosts"] == {"b2": "10.0.0.22"}


def test_one_computation_per_cluster(monkeypatch):
    calls = []
    real = module.compute_plans
    monkeypatch.setattr(module, "compute_plans", lambda h, s: calls.append(sorted(h)) or real(h, s))
    _plans(_fleet())
    assert calls == [["a1", "a2"], ["b1", "b2"]]


def test_a_cluster_without_head_is_refused_naming_the_cluster_the_other_is_planned():
    hosts = {**FLEET, "b1": {**FLEET["b1"], "cluster_node_role": "worker"}}
    plans = _plans(_fleet(hosts))
    assert "plan" in plans["a1"] and "plan" in plans["a2"]
    want = (
        "hardened.vllm.cluster_plan: 1 problem(s) in the inventory of cluster beta; no host "
        "was changed:\n- cluster beta (all hosts), variable cluster_node_role: 0 hosts have "
        "role head. Fix: mark exactly one host cluster_node_role: head, the others worker."
    )
    assert plans["b1"] == plans["b2"] == {"refusal": want}


def test_a_cluster_wide_setting_that_differs_inside_one_cluster_is_refused_there():
    # In b2's host_vars: b2 sees it, and the plan reads it from b2's hostvars.
    wide = {"cluster_client_cidrs": ["203.0.113.0/24"]}
    hosts = {**FLEET, "b2": {**FLEET["b2"], **wide}}
    plans = _plans(_fleet(hosts, per_host={"b2": wide}))
    assert "plan" in plans["a1"] and "plan" in plans["a2"]
    for host in ("b1", "b2"):
        message = plans[host]["refusal"]
        assert "in the inventory of cluster beta" in message, message
        assert "cluster_client_cidrs" in message and "b2" in message, message
        assert "a1" not in message and "a2" not in message, message


def test_a_host_in_two_clusters_groups_is_refused_on_every_host():
    hv = _fleet()
    groups = _groups(hv)
    groups["beta"].append("a2")  # a2 is in alpha's and beta's group; Ansible kept alpha
    plans = _plans(hv, groups)
    want = (
        "hardened.vllm.cluster_plan: 1 problem(s) in the fleet inventory (the clusters of the "
        "cluster group); no host was changed:\n- host a2, variable cluster_name: a2 is in the "
        "inventory groups of two clusters, alpha and beta (Ansible kept cluster_name alpha). "
        "Fix: put each host in the group of one cluster only."
    )
    assert plans == {h: {"refusal": want} for h in FLEET}
    with pytest.raises(AnsibleFilterError, match="two clusters, alpha and beta"):
        FILTERS["cluster_plan_of"](plans, "b1")


def test_hosts_without_a_cluster_name_next_to_named_ones_are_refused():
    hosts = {**FLEET, "x": {"ipv4": "10.0.0.30", "cluster_node_role": "worker"}}
    plans = _plans(_fleet(hosts))
    message = plans["a1"]["refusal"]
    assert all(p == {"refusal": message} for p in plans.values())
    assert (
        "- host x, variable cluster_name: unset, while other hosts of the cluster group "
        "(cluster_group) name their cluster (alpha, beta). Fix: set cluster_name for every "
        "host of the cluster group" in message
    )


@pytest.mark.parametrize("name", ["", "9lives", "my-model", 3])
def test_a_name_that_cannot_be_a_group_is_refused(name):
    hosts = {**FLEET, "a2": {**FLEET["a2"], "cluster_name": name}}
    message = _plans(_fleet(hosts))["a1"]["refusal"]
    assert f"- host a2, variable cluster_name: {name!r} is not a cluster name" in message


def test_the_same_address_in_two_clusters_is_refused_on_both_hosts():
    hosts = {**FLEET, "b2": {**FLEET["b2"], "ipv4": "10.0.0.12"}}
    plans = _plans(_fleet(hosts))
    assert "plan" in plans["a1"] and "plan" in plans["b1"]
    assert "10.0.0.12 is also the address of b2 (cluster beta)" in plans["a2"]["refusal"]
    assert "10.0.0.12 is also the address of a2 (cluster alpha)" in plans["b2"]["refusal"]


def test_an_inventory_without_cluster_names_is_one_cluster_as_before():
    hosts = {n: {k: v for k, v in spec.items() if k != "cluster_name"} for n, spec in FLEET.items()}
    hosts["b1"]["cluster_node_role"] = "worker"
    hv = _fleet(hosts)
    plans = _plans(hv)
    alone = _alone(hv, list(hv), DP)
    assert plans == {n: {"plan": alone[n]} for n in hv}
    assert sorted(plans["a1"]["plan"]["peer_hosts"]) == ["a2", "b1", "b2"]


def test_the_one_cluster_filter_refuses_a_fleet():
    hv = _fleet()
    with pytest.raises(
        AnsibleFilterError,
        match=r"name 2 clusters \(alpha, beta\); .* use hardened.vllm.cluster_plans",
    ):
        FILTERS["cluster_plan"](hv, list(hv), DP)


def test_groups_must_be_a_mapping():
    hv = _fleet()
    with pytest.raises(AnsibleFilterError, match="groups must be Ansible's groups"):
        FILTERS["cluster_plans"](hv, list(hv), list(hv), "seen", groups=["alpha"])
