# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Active-probe filters: targets, peers, shard, findings, matrix (docs in probe_*.yml)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.plugin_utils import _probe
from ansible_collections.hardened.vllm.plugins.plugin_utils._filters import require_netaddr


def _node_data(name, hostvars, group):
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(f"hardened.vllm.{name}: input must be hostvars (a mapping)")
    nodes = {}
    for host in group:
        hv = hostvars[host]
        facts = hv.get("ansible_facts") or {}
        if "cluster_plan" not in hv or "listening_sockets" not in facts:
            raise AnsibleFilterError(
                f"hardened.vllm.{name}: host {host} has no cluster_plan or listening_sockets "
                "facts; run the cluster role and hardened.vllm.listening_sockets on every "
                "cluster host first"
            )
        nodes[host] = {
            "plan": hv["cluster_plan"],
            "listeners": facts["listening_sockets"],
            "facts": facts,
        }
    return nodes


def probe_targets(hostvars, group):
    """Targets for hardened.vllm.tcp_probe: every network-reachable TCP listener of the nodes."""
    require_netaddr("probe_targets")
    return _probe.probe_targets(_node_data("probe_targets", hostvars, group))


def probe_peers(hosts, per_node):
    """Which peers each node probes (O(per_node) each), and who probes each node."""
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(
            f"hardened.vllm.probe_peers: input must be the list of the play's hosts, got {hosts!r}"
        )
    if isinstance(per_node, bool) or not isinstance(per_node, int) or per_node < 1:
        raise AnsibleFilterError(
            f"hardened.vllm.probe_peers: per_node must be a whole number of 1 or more, got "
            f"{per_node!r}; set verify_probe_peers to how many peers each node probes"
        )
    assignment = _probe.peer_assignment(list(hosts), per_node)
    return {**assignment, "probed_by": _probe.probed_by(assignment)}


def probe_shard(targets, assignment):
    """Each vantage's share of the targets: those of the nodes probe_peers gave it."""
    if not isinstance(targets, list) or not all(
        isinstance(t, Mapping) and "node" in t for t in targets
    ):
        raise AnsibleFilterError(
            "hardened.vllm.probe_shard: input must be a list of targets, each with a node, "
            f"got {targets!r}"
        )
    if not isinstance(assignment, Mapping) or "probes" not in assignment:
        raise AnsibleFilterError(
            "hardened.vllm.probe_shard: assignment must be what hardened.vllm.probe_peers "
            f"returned, got {assignment!r}"
        )
    return _probe.shard(targets, assignment)


def probe_findings(runs, targets, hostvars, group):
    """Judge tcp_probe runs (one per vantage) against the plans."""
    require_netaddr("probe_findings")
    if not isinstance(runs, list) or not all(
        isinstance(r, Mapping) and "results" in r for r in runs
    ):
        raise AnsibleFilterError(
            "hardened.vllm.probe_findings: input must be a list of registered "
            f"hardened.vllm.tcp_probe results, got {runs!r}"
        )
    plans = {host: _with_effective_admins(hostvars[host]) for host in group}
    return _probe.probe_findings(runs, targets, plans)


def _with_effective_admins(hv):
    """The plan, with the admins the audit found in effect (see exposure_verdict's admins)."""
    plan = hv["cluster_plan"]
    admins = (hv.get("verify_verdict") or {}).get("admins")
    return {**plan, "admins": admins} if admins else plan


def probe_matrix(rows):
    """Plain-text exposure matrix of probe findings."""
    require_netaddr("probe_matrix")
    if not isinstance(rows, list):
        raise AnsibleFilterError(f"hardened.vllm.probe_matrix: input must be a list, got {rows!r}")
    return _probe.probe_matrix(rows)


class FilterModule:
    """hardened.vllm active-probe filters."""

    def filters(self):
        return {
            "probe_targets": probe_targets,
            "probe_peers": probe_peers,
            "probe_shard": probe_shard,
            "probe_findings": probe_findings,
            "probe_matrix": probe_matrix,
        }
