# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan computed once per cluster equals, for every host, what one call per host gave.

tests/unit/fixtures/plan/golden.json holds every host's plan (or refusal) of the inventories in
cases.py as the plan computed them with one filter call per host, each building every host's
plan (record.py, run before the plan was computed once per cluster).
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import netaddr
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter import cluster_plan as module
from ansible_collections.hardened.vllm.plugins.filter.cluster_plan import FilterModule
from ansible_collections.hardened.vllm.plugins.plugin_utils._addresses import split_families
from ansible_collections.hardened.vllm.plugins.plugin_utils._plan import CLUSTER_WIDE

FIXTURES = Path(__file__).parents[2] / "fixtures" / "plan"
_spec = importlib.util.spec_from_file_location("plan_cases", FIXTURES / "cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)
GOLDEN = json.loads((FIXTURES / "golden.json").read_text(encoding="utf-8"))
FILTERS = FilterModule().filters()


def _view(case, hv, host):
    """The cluster-wide settings as one host sees them: its host_vars over the group's."""
    return {**case["settings"], **{k: v for k, v in hv[host].items() if k in CLUSTER_WIDE}}


def test_the_recording_covers_every_case():
    assert sorted(GOLDEN) == sorted(cases.CASES)


@pytest.mark.parametrize("name", sorted(cases.CASES))
def test_one_call_per_host_still_gives_the_recorded_plan(name):
    case = cases.CASES[name]
    hv = cases.hostvars(case)
    for host, want in GOLDEN[name].items():
        if "plan" in want:
            got = FILTERS["cluster_plan"](hv, list(hv), _view(case, hv, host), host)
            assert got == want["plan"], host
        else:
            with pytest.raises(AnsibleFilterError) as err:
                FILTERS["cluster_plan"](hv, list(hv), _view(case, hv, host), host)
            assert str(err.value) == want["refusal"], host


def _asked(case):
    """hostvars as the role leaves them: each host holds the settings it sees."""
    hv = cases.hostvars(case)
    for host in hv:
        hv[host]["seen"] = _view(case, hv, host)
    return hv


@pytest.mark.parametrize("name", sorted(cases.CASES))
def test_once_per_cluster_gives_every_host_its_recorded_plan_or_refusal(name):
    hv = _asked(cases.CASES[name])
    plans = FILTERS["cluster_plans"](hv, list(hv), list(hv), "seen")
    assert plans == GOLDEN[name]
    for host, want in GOLDEN[name].items():
        if "plan" in want:
            assert FILTERS["cluster_plan_of"](plans, host) == want["plan"]
        else:
            with pytest.raises(AnsibleFilterError) as err:
                FILTERS["cluster_plan_of"](plans, host)
            assert str(err.value) == want["refusal"]


def test_one_computation_per_distinct_view(monkeypatch):
    calls = []
    real = module.compute_plans
    monkeypatch.setattr(module, "compute_plans", lambda h, s: calls.append(s) or real(h, s))
    hv = _asked(cases.CASES["dp-32-contiguous"])
    FILTERS["cluster_plans"](hv, list(hv), list(hv), "seen")
    assert len(calls) == 1
    calls.clear()
    hv = _asked(cases.CASES["refused-topology-in-one-host"])
    FILTERS["cluster_plans"](hv, list(hv), list(hv), "seen")
    assert len(calls) == 2


def test_hosts_that_ask_without_settings_are_left_out_and_strangers_refused():
    hv = _asked(cases.CASES["dp2"])
    hv["outsider"] = {"seen": hv["node1"]["seen"]}
    hv["bystander"] = {}
    plans = FILTERS["cluster_plans"](
        hv, ["node1", "node2"], ["node1", "outsider", "bystander"], "seen"
    )
    assert sorted(plans) == ["node1", "outsider"]
    assert plans["outsider"] == {
        "refusal": "hardened.vllm.cluster_plan: host outsider is not in the cluster group "
        "(node1, node2); run the cluster role only on the cluster's hosts"
    }
    with pytest.raises(AnsibleFilterError, match="no plan or refusal for host bystander"):
        FILTERS["cluster_plan_of"](plans, "bystander")


def test_a_group_host_missing_from_the_inventory_refuses_every_asking_host():
    hv = _asked(cases.CASES["dp2"])
    plans = FILTERS["cluster_plans"](hv, ["node1", "node2", "ghost"], ["node1", "node2"], "seen")
    assert plans == {
        h: {"refusal": "hardened.vllm.cluster_plan: no host ghost in the inventory"}
        for h in ("node1", "node2")
    }


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (({}, "node1", [], "seen"), "group must be a list"),
        (({}, [], "node1", "seen"), "asking must be a list"),
        (({"a": {"seen": "x"}}, ["a"], ["a"], "seen"), "seen of host a must be a mapping"),
    ],
)
def test_cluster_plans_rejects_wrong_arguments(args, match):
    with pytest.raises(AnsibleFilterError, match=match):
        FILTERS["cluster_plans"](*args)


def test_peer_lists_equal_a_full_merge_for_random_clusters():
    """Each host's peers (the shared merge less its own addresses) against merging afresh."""
    rng = random.Random(15)
    for _round in range(20):
        count = rng.randint(1, 40)
        v4 = rng.sample(range(1, 200), count)
        v6 = rng.sample(range(1, 300), count)
        hosts = {
            f"h{i}": {
                "ipv4": f"10.0.0.{v4[i]}",
                "ipv6": f"fd00::{v6[i]:x}" if rng.random() < 0.5 else None,
                "cluster_host_ip": f"10.0.0.{v4[i]}",
                "extra_v4": [f"10.0.1.{rng.randint(1, 8)}"] if rng.random() < 0.3 else [],
            }
            for i in range(count)
        }
        extra = rng.choice([[], ["10.0.0.0/28"], ["10.0.0.64/27", "fd00::/124"]])
        case = {"hosts": hosts, "settings": {"cluster_extra_peer_cidrs": extra}}
        hv = cases.hostvars(case)
        plans = FILTERS["cluster_plan"](hv, list(hv), case["settings"])
        for name, plan in plans.items():
            others = [
                netaddr.IPNetwork(a)
                for n, p in plans.items()
                if n != name
                for a in [p["host_ip"], *_others_on_eth0(hv[n])]
            ]
            want = split_families(others + [netaddr.IPNetwork(e) for e in extra])
            assert plan["peers"] == want, (name, hosts[name])


def _others_on_eth0(hv):
    eth0 = hv["ansible_facts"]["eth0"]
    v4 = [eth0["ipv4"]["address"]] + [a["address"] for a in eth0["ipv4_secondaries"]]
    v6 = [a["address"] for a in eth0["ipv6"] if a["scope"] == "global"]
    return v4 + v6
