# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hardened.vllm.stage_plan filter (docs in stage_plan.yml)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

NAME = "hardened.vllm.stage_plan"


def _clusters(nodes):
    """The play's hosts grouped by cluster (a host and its peers), each in play order."""
    order = {host: i for i, host in enumerate(nodes)}
    seen, groups = set(), []
    for host, node in nodes.items():
        if host in seen:
            continue
        members = sorted({host, *(p for p in node.get("peers") or () if p in nodes)}, key=order.get)
        seen.update(members)
        groups.append(members)
    return groups


def _check(nodes, files):
    if not isinstance(nodes, Mapping) or not isinstance(files, list):
        raise AnsibleFilterError(f"{NAME}: expects {{host: node}} | stage_plan(files)")
    known = set()
    for entry in files:
        if (
            not isinstance(entry, Mapping)
            or not isinstance(entry.get("path"), str)
            or not isinstance(entry.get("size"), int)
        ):
            raise AnsibleFilterError(
                f"{NAME}: bad file entry {entry!r} (expected path, size, sha256)"
            )
        known.add(entry["path"])
    for host, node in nodes.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("lacks"), list):
            raise AnsibleFilterError(
                f"{NAME}: host {host}: expected {{lacks: [...], keeps, ip, peers}}, got {node!r}"
            )
        unknown = [name for name in node["lacks"] if name not in known]
        if unknown:
            raise AnsibleFilterError(
                f"{NAME}: host {host} lacks files that are not staged: {unknown}"
            )
        if node["lacks"] and not node.get("ip"):
            raise AnsibleFilterError(
                f"{NAME}: host {host} lacks files but has no cluster address (ip)"
            )


def _plan_cluster(members, nodes, files, index):
    """{member: what it does} for one cluster."""
    lacks = {m: set(nodes[m]["lacks"]) for m in members}
    wanted = set().union(*lacks.values())
    idle = {"seeder": None, "send": [], "serve": [], "fetch": [], "allow": []}
    if not wanted:
        return {m: dict(idle) for m in members}
    # A node holds what it keeps and does not lack; one that keeps nothing holds nothing to serve.
    holds = {m: set(index) - lacks[m] if nodes[m].get("keeps") else set() for m in members}
    cost = {m: sum(files[index[name]]["size"] for name in wanted - holds[m]) for m in members}
    # The node that needs least from the controller seeds; of those, one that lacks files itself
    # (what the controller sends it is then of use to it, and a node that lacks nothing is not
    # sent what it does not need), then the first in play order.
    seeder = min(members, key=lambda m: (cost[m], not lacks[m], members.index(m)))
    fetchers = [m for m in members if m != seeder and lacks[m]]
    served = set().union(*(lacks[m] for m in fetchers))

    def listed(names):
        return [files[i] for i in sorted(index[n] for n in names)]

    result = {m: dict(idle, seeder=seeder) for m in members}
    result[seeder].update(
        send=listed(wanted - holds[seeder]),
        serve=listed(served),
        allow=[nodes[m]["ip"] for m in fetchers],
    )
    for m in fetchers:
        result[m]["fetch"] = listed(lacks[m])
    return result


def stage_plan(nodes, files):
    """Who receives what from the controller, serves it, and fetches it, per cluster."""
    _check(nodes, files)
    index = {entry["path"]: i for i, entry in enumerate(files)}
    result = {}
    for members in _clusters(nodes):
        result.update(_plan_cluster(members, nodes, files, index))
    return result


class FilterModule:
    """hardened.vllm staging: files once per cluster, spread over the cluster network."""

    def filters(self):
        return {"stage_plan": stage_plan}
