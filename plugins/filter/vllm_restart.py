# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hardened.vllm.vllm_restart_plan filter (docs in vllm_restart_plan.yml)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Topologies whose nodes form one vLLM instance: data-parallel engines handshake with the head
# and torch.distributed ranks rendezvous once, at start. A node that restarts alone cannot
# rejoin, so they stop and start together.
TOGETHER = frozenset({"data_parallel", "multi_node"})


def own_reasons(state, together):
    """Why one node's vLLM must restart, from what the role found on it."""
    why = []
    if state.get("active_state", "active") != "active":
        why.append(f"the service is {state['active_state']}")
    why += [f"{path} changed after the service started" for path in state.get("changed") or []]
    since = state.get("restarts_since_healthy")
    if since is None:  # no record of a healthy state: every restart systemd did counts
        restarts = state.get("n_restarts") or 0
        if together and restarts:
            why.append(f"systemd restarted it on its own ({restarts}x), so it left its group")
    elif together and since:
        why.append(
            f"it started again ({since}x) since it was last healthy with its group, so it left it"
        )
    if state.get("api_healthy") is False:
        why.append("its API does not answer /health")
    return why


def vllm_restart_plan(states, plan):
    """Whether this host's vLLM restarts, given every play host's service state and its plan."""
    if not isinstance(states, Mapping) or not isinstance(plan, Mapping):
        raise AnsibleFilterError(
            "hardened.vllm.vllm_restart_plan: expects {host: state} | "
            "vllm_restart_plan(cluster_plan)"
        )
    host = plan["host"]
    together = plan["topology"] in TOGETHER
    group = sorted({host, *plan.get("peer_hosts", {})}) if together else [host]
    why = [
        f"{member}: {reason}"
        for member in group
        for reason in own_reasons(states.get(member) or {}, together)
    ]
    missing = [member for member in group if member not in states]
    problem = None
    if why and missing:
        problem = (
            f"host {host}: vLLM must restart ({'; '.join(why)}), and the nodes of a "
            f"{plan['topology']} cluster restart together, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not in this play (--limit, or a failure "
            f"earlier in the run). Fix: run the play on all of {', '.join(group)}. Nothing was "
            "restarted; the running service keeps its old settings until then."
        )
    return {
        "restart": bool(why),
        "together": together,
        "group": group,
        "reasons": why,
        "missing": missing,
        "problem": problem,
    }


class FilterModule:
    """hardened.vllm restart planning."""

    def filters(self):
        return {"vllm_restart_plan": vllm_restart_plan}
