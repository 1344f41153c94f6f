# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""probe_peers / probe_shard: O(k) peer probes per node, every node and port still covered."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter.probe import FilterModule

FILTERS = FilterModule().filters()
probe_peers, probe_shard = FILTERS["probe_peers"], FILTERS["probe_shard"]


def hosts(count):
    return [f"n{i:04d}" for i in range(count)]


def targets(names, ports=(22, 8000, 29550, 41234)):
    """Two addresses per node, four ports each: what probe_targets gives a dual-stack node."""
    return [
        {"node": n, "address": a, "port": p, "probe": {"address": a, "port": p, "label": n}}
        for i, n in enumerate(names)
        for a in (f"10.0.{i // 250}.{i % 250 + 1}", f"fd00::{i + 1:x}")
        for p in ports
    ]


@pytest.mark.parametrize("count", [2, 3, 4, 5, 7, 16, 64, 100, 257, 1024, 4096])
@pytest.mark.parametrize("per_node", [1, 2, 3, 5])
def test_every_node_and_port_is_probed_by_peers_and_each_node_probes_at_most_k(count, per_node):
    names = hosts(count)
    sample = probe_peers(names, per_node)
    k = min(per_node, count - 1)
    assert sample["per_node"] == k
    for vantage, probed in sample["probes"].items():
        assert len(probed) == len(set(probed)) == k
        assert vantage not in probed
    # Every node probed by exactly k distinct peers: no node is left out, none is favoured.
    for node in names:
        assert len(sample["probed_by"][node]) == len(set(sample["probed_by"][node])) == k
        assert node not in sample["probed_by"][node]
    shares = probe_shard(targets(names), sample)
    covered = {}
    for vantage, share in shares.items():
        assert len(share) == k * 8  # O(k) per node, whatever N
        for t in share:
            assert t["node"] != vantage
            covered.setdefault((t["node"], t["address"], t["port"]), set()).add(vantage)
    assert set(covered) == {(t["node"], t["address"], t["port"]) for t in targets(names)}
    assert {len(v) for v in covered.values()} == {k}


@pytest.mark.parametrize("count", [2, 3, 4])
def test_small_clusters_keep_the_full_matrix(count):
    names = hosts(count)
    sample = probe_peers(names, 3)
    assert all(sorted(p) == sorted(set(names) - {v}) for v, p in sample["probes"].items())


def test_the_peers_are_spread_over_the_ring_not_only_the_neighbours():
    sample = probe_peers(hosts(100), 3)
    assert sample["offsets"] == [1, 34, 67]
    assert sample["probes"]["n0000"] == ["n0001", "n0034", "n0067"]
    assert sample["probed_by"]["n0000"] == ["n0033", "n0066", "n0099"]


def test_one_node_probes_no_peer():
    assert probe_peers(["solo"], 3) == {
        "per_node": 0,
        "offsets": [],
        "probes": {"solo": []},
        "probed_by": {"solo": []},
    }


def test_nodes_without_targets_get_an_empty_share():
    sample = probe_peers(hosts(3), 3)
    shares = probe_shard(targets(["n0001"]), sample)
    assert [len(shares[n]) for n in hosts(3)] == [8, 0, 8]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: probe_peers("n1", 3), "list of the play's hosts"),
        (lambda: probe_peers(["a", "b"], 0), "verify_probe_peers"),
        (lambda: probe_peers(["a", "b"], True), "whole number"),
        (lambda: probe_shard([{"port": 1}], {"probes": {}}), "each with a node"),
        (lambda: probe_shard([], {}), "what hardened.vllm.probe_peers returned"),
    ],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(AnsibleFilterError, match=match):
        call()
