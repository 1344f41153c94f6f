# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan contract: schema check, the refusal message, audiences, ports, brackets."""

from __future__ import annotations

import pytest

from ansible_collections.hardened.vllm.plugins.module_utils import _plan_contract as contract

PLAN = {
    "schema_version": contract.SCHEMA_VERSION,
    "host": "gpu-a",
    "peers": {"ipv4": ["10.0.0.12/32"], "ipv6": ["fd00::12/128"]},
    "clients": {"ipv4": ["192.0.2.0/24"], "ipv6": []},
    "admins": {"ipv4": ["198.51.100.7/32"], "ipv6": []},
    "exposure": [
        {"name": "api", "proto": "tcp", "port": 8000, "audience": "clients"},
        {"name": "api", "proto": "tcp", "port": 8000, "audience": "monitoring"},
        {"name": "ssh", "proto": "tcp", "port": 22, "audience": "admins"},
    ],
}


def test_the_message_names_host_or_cluster_variable_and_fix():
    assert contract.problem("a", "v", "is bad", "set it") == (
        "host a, variable v: is bad. Fix: set it."
    )
    assert contract.problem(None, "v", "w", "f").startswith("cluster (all hosts), variable v:")


@pytest.mark.parametrize(
    "plan, words",
    [
        (None, "must be the plan mapping, got NoneType"),
        ({"host": "a"}, "host a, variable cluster_plan: schema_version None"),
        ({**PLAN, "schema_version": 2}, "schema_version 2 with host 'gpu-a'"),
        ({**PLAN, "host": ""}, "cluster (all hosts), variable cluster_plan"),
    ],
)
def test_anything_but_a_plan_of_this_schema_is_refused_with_the_fix(plan, words):
    with pytest.raises(contract.PlanContractError) as err:
        contract.check_plan(plan)
    assert words in str(err.value) and "Fix: " in str(err.value)


def test_missing_keys_are_named():
    assert contract.check_plan(PLAN, ("peers", "exposure")) == "gpu-a"
    with pytest.raises(contract.PlanContractError, match="lacks vllm, api"):
        contract.check_plan(PLAN, ("vllm", "api", "peers"))


def test_audiences_of_a_source():
    assert contract.audiences_of("10.0.0.12", PLAN) == {"peers"}
    assert contract.audiences_of("fd00::12", PLAN) == {"peers"}
    assert contract.audiences_of("192.0.2.44", PLAN) == {"clients"}
    assert contract.audiences_of("203.0.113.1", PLAN) == set()
    assert contract.audiences_of(None, PLAN) == set()
    # an audience the plan lacks (a plan before monitoring existed) holds nobody
    assert "monitoring" not in contract.audiences_of("192.0.2.44", PLAN)


def test_port_exposure_and_the_default_audience_peers():
    entries, names = contract.port_exposure(PLAN, "tcp", 8000)
    assert len(entries) == 2 and names == ["clients", "monitoring"]
    assert contract.port_exposure(PLAN, "tcp", 29550) == ([], ["peers"])
    assert contract.port_exposure(PLAN, "udp", 22) == ([], ["peers"])


@pytest.mark.parametrize(
    "address, shown", [("10.0.0.1", "10.0.0.1"), ("fd00::1", "[fd00::1]"), ("::", "[::]")]
)
def test_bracket(address, shown):
    assert contract.bracket(address) == shown


def test_problems_collect_in_the_one_shape():
    problems = contract.Problems()
    problems.add("a", "v", "is bad", "set it")
    problems.add(None, "w", "is worse", "remove it")
    assert problems == [
        "host a, variable v: is bad. Fix: set it.",
        "cluster (all hosts), variable w: is worse. Fix: remove it.",
    ]


def test_a_refusal_counts_names_its_settings_and_lists_every_problem():
    class Invalid(contract.Refused):
        subject = "the test settings"

    problems = contract.Problems()
    problems.add("a", "v", "is bad", "set it")
    problems.add("b", "v", "is bad", "set it")
    err = Invalid(problems)
    assert isinstance(err, ValueError) and err.problems == list(problems)
    assert str(err) == (
        "2 problem(s) in the test settings; no host was changed:\n"
        "- host a, variable v: is bad. Fix: set it.\n"
        "- host b, variable v: is bad. Fix: set it."
    )
    assert contract.refusal(["x"], "the vLLM settings", "nothing was changed") == (
        "1 problem(s) in the vLLM settings; nothing was changed:\n- x"
    )
