# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vllm_restart_plan: who restarts with whom, and refusing a partial group restart."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter.vllm_restart import FilterModule

restart_plan = FilterModule().filters()["vllm_restart_plan"]


def plan(host, topology, *peers):
    """The parts of a cluster_plan (docs/plan.md) the filter reads."""
    return {
        "schema_version": 1,
        "host": host,
        "topology": topology,
        "peer_hosts": {peer: f"10.0.0.{i + 20}" for i, peer in enumerate(peers)},
    }


FINE = {"active_state": "active", "changed": [], "n_restarts": 0, "api_healthy": True}
ENV = {**FINE, "changed": ["/etc/hardened-vllm/vllm.env"]}
ENV_CHANGED = ["/etc/hardened-vllm/vllm.env changed after the service started"]


@pytest.mark.parametrize("topology", ["data_parallel", "multi_node"])
def test_one_node_with_a_reason_restarts_its_whole_group(topology):
    reasons = {"node1": FINE, "node2": ENV, "node3": FINE}
    for host in reasons:
        peers = sorted(set(reasons) - {host})
        out = restart_plan(reasons, plan(host, topology, *peers))
        assert out == {
            "restart": True,
            "together": True,
            "group": ["node1", "node2", "node3"],
            "reasons": [f"node2: {ENV_CHANGED[0]}"],
            "missing": [],
            "problem": None,
        }


@pytest.mark.parametrize("topology", ["single", "disaggregated"])
def test_independent_nodes_restart_for_their_own_reasons_only(topology):
    reasons = {"prefill1": ENV, "decode1": FINE}
    first = restart_plan(reasons, plan("prefill1", topology, "decode1"))
    second = restart_plan(reasons, plan("decode1", topology, "prefill1"))
    assert (first["restart"], first["group"], first["together"]) == (True, ["prefill1"], False)
    assert first["reasons"] == [f"prefill1: {ENV_CHANGED[0]}"]
    assert (second["restart"], second["reasons"], second["problem"]) == (False, [], None)


def test_nothing_to_do_when_no_node_has_a_reason():
    reasons = {"node1": FINE, "node2": {"api_healthy": None}}
    out = restart_plan(reasons, plan("node1", "data_parallel", "node2"))
    assert (out["restart"], out["reasons"], out["problem"]) == (False, [], None)


def test_a_group_restart_with_a_node_outside_the_play_is_refused_with_the_fix():
    # --limit node2: node2's settings changed, node1 (the head) is not in the play.
    out = restart_plan({"node2": ENV}, plan("node2", "data_parallel", "node1"))
    assert out["restart"] and out["missing"] == ["node1"]
    assert out["problem"].startswith("host node2: vLLM must restart (node2: /etc/hardened-vllm")
    assert "node1 is not in this play" in out["problem"]
    assert "Fix: run the play on all of node1, node2" in out["problem"]


def test_a_partial_play_without_reasons_is_fine():
    out = restart_plan({"node2": FINE}, plan("node2", "data_parallel", "node1"))
    assert (out["restart"], out["missing"], out["problem"]) == (False, ["node1"], None)


def test_every_reason_of_every_member_in_group_order():
    states = {
        "node1": {**FINE, "active_state": "inactive", "api_healthy": False},
        "node2": {**ENV, "n_restarts": 2},
    }
    out = restart_plan(states, plan("node2", "data_parallel", "node1"))
    assert out["reasons"] == [
        "node1: the service is inactive",
        "node1: its API does not answer /health",
        f"node2: {ENV_CHANGED[0]}",
        "node2: systemd restarted it on its own (2x), so it left its group",
    ]


def test_restarts_by_systemd_matter_only_where_nodes_restart_together():
    # A single node that systemd restarted serves again; a DP engine that did cannot rejoin.
    states = {"node1": {**FINE, "n_restarts": 1}}
    assert restart_plan(states, plan("node1", "single"))["restart"] is False
    states["node2"] = FINE
    out = restart_plan(states, plan("node2", "data_parallel", "node1"))
    assert out["reasons"] == ["node1: systemd restarted it on its own (1x), so it left its group"]


@pytest.mark.parametrize("state", ["failed", "inactive", "activating"])
def test_a_service_that_is_not_active_restarts(state):
    out = restart_plan({"gpu1": {**FINE, "active_state": state}}, plan("gpu1", "single"))
    assert out["reasons"] == [f"gpu1: the service is {state}"]


def test_wrong_input_is_refused():
    with pytest.raises(AnsibleFilterError, match="expects"):
        restart_plan(["node1"], plan("node1", "single"))


def test_a_healed_group_is_not_restarted_for_the_crash_loop_before_the_heal():
    # The issue-12 run: NRestarts stayed 4 after the heal's stop and start, but the invocation
    # confirmed healthy after it still runs, so nothing restarts.
    healed = {**FINE, "n_restarts": 4, "restarts_since_healthy": 0}
    states = {"node1": healed, "node2": healed}
    for host, peer in (("node1", "node2"), ("node2", "node1")):
        out = restart_plan(states, plan(host, "data_parallel", peer))
        assert (out["restart"], out["reasons"]) == (False, [])


def test_a_start_since_the_last_healthy_state_restarts_the_group():
    states = {
        "node1": {**FINE, "n_restarts": 4, "restarts_since_healthy": 0},
        "node2": {**FINE, "n_restarts": 0, "restarts_since_healthy": 1},  # rebooted alone
    }
    out = restart_plan(states, plan("node1", "data_parallel", "node2"))
    assert out["restart"] is True
    assert out["reasons"] == [
        "node2: it started again (1x) since it was last healthy with its group, so it left it"
    ]
    # A single node that started again serves again by itself.
    single = {"gpu1": {**FINE, "restarts_since_healthy": 3}}
    assert restart_plan(single, plan("gpu1", "single"))["restart"] is False
