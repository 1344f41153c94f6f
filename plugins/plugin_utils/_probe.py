# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Active probes: what to connect to, and what the answers mean against the plan."""

from __future__ import annotations

from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import (
    ADDRESS_AUDIENCES,
    audiences_of,
    bracket,
    port_exposure,
)
from ansible_collections.hardened.vllm.plugins.plugin_utils._addresses import (
    host_addresses,
    netaddr,  # None when missing; the filters say so with missing_required_lib
)
from ansible_collections.hardened.vllm.plugins.plugin_utils._report import table

# The plan's audiences that are sets of addresses (custom openings carry their own ``from``).
AUDIENCES = ADDRESS_AUDIENCES


def probe_targets(nodes):
    """Every (address, port) at which a node's TCP listeners can be reached from the network.

    ``nodes`` maps node name to ``{"plan", "listeners", "facts"}``. Loopback listeners and
    listeners of other network namespaces are left out; a wildcard listener is tried on every
    usable address of the families it accepts (an IPv6 dual-stack socket accepts IPv4 too).
    """
    targets, seen = [], set()
    for node, data in nodes.items():
        usable = [
            a["ip"]
            for a in host_addresses(data["facts"])
            if not (a["ip"].is_loopback() or a["ip"].is_link_local())
        ]
        for sock in data["listeners"]:
            if sock["protocol"] != "tcp" or sock["loopback"] or not sock.get("netns_is_host", True):
                continue
            for address in _addresses_of(sock, usable):
                key = (node, address, sock["port"])
                if key in seen:
                    continue
                seen.add(key)
                label = (
                    f"{node} {bracket(address)}:{sock['port']} "
                    f"({sock.get('process') or 'no process'})"
                )
                targets.append(
                    {
                        "node": node,
                        "address": address,
                        "port": sock["port"],
                        "process": sock.get("process"),
                        "pid": sock.get("pid"),
                        "bind": f"{bracket(sock['address'])}:{sock['port']}",
                        "label": label,
                        # exactly the target options of hardened.vllm.tcp_probe
                        "probe": {"address": address, "port": sock["port"], "label": label},
                    }
                )
    return targets


def peer_assignment(nodes, per_node):
    """Which nodes each node probes as a peer: O(per_node) each, every node probed.

    ``nodes`` in a stable order (the play's hosts). Node i probes the nodes at ``offsets``
    after it on the ring of ``nodes``: ``per_node`` distinct offsets spread over the ring
    (1, 1 + step, 1 + 2 step, ...), so each node is probed by exactly as many peers as each
    probes, and not only by its inventory neighbours. With ``per_node`` >= N - 1 every node
    probes every other (the full matrix).
    """
    count = len(nodes)
    if count < 2:
        return {"per_node": 0, "offsets": [], "probes": {n: [] for n in nodes}}
    if per_node >= count - 1:
        offsets = list(range(1, count))
    else:
        step = (count - 1) // per_node
        offsets = [1 + j * step for j in range(per_node)]
    probes = {
        node: [nodes[(index + offset) % count] for offset in offsets]
        for index, node in enumerate(nodes)
    }
    return {"per_node": len(offsets), "offsets": offsets, "probes": probes}


def probed_by(assignment):
    """Node -> the peers that probe it (the coverage of an assignment)."""
    result = {node: [] for node in assignment["probes"]}
    for vantage, targets in assignment["probes"].items():
        for node in targets:
            result[node].append(vantage)
    return result


def shard(targets, assignment):
    """Vantage -> the targets (whole entries, any with a ``node``) of the nodes it probes."""
    by_node = {}
    for target in targets:
        by_node.setdefault(target["node"], []).append(target)
    return {
        vantage: [t for node in nodes for t in by_node.get(node, [])]
        for vantage, nodes in assignment["probes"].items()
    }


def _addresses_of(sock, usable):
    if sock.get("mapped_ipv4"):
        return [sock["mapped_ipv4"]]
    if not sock["wildcard"]:
        return [sock["address"]]
    versions = {4} if sock["family"] == "ipv4" else ({4, 6} if sock["dual_stack"] else {6})
    return [str(ip) for ip in usable if ip.version in versions]


def allowed(source, port, plan):
    """Whether the plan lets ``source`` reach ``port`` on this node, and the port's audience."""
    exposure, names = port_exposure(plan, "tcp", port)
    audiences = audiences_of(source, plan)
    if "peers" in audiences:
        return True, names
    for entry in exposure:
        if entry["audience"] in audiences:
            return True, names
        if entry["audience"] == "custom" and source:
            ip = netaddr.IPAddress(source)
            if any(ip in netaddr.IPNetwork(c) for c in entry["from"][f"ipv{ip.version}"]):
                return True, names
    return False, names


def probe_findings(runs, targets, plans):
    """Compare probe runs (one per vantage) with what the plans allow.

    ``runs`` are tcp_probe results, each with ``vantage`` and ``results``. Returns one row per
    probe with ``expected``/``open`` and a ``finding``: ``exposed`` (open though the plan forbids
    it: a violation), ``blocked`` (allowed but not reachable) or ``ok``.
    """
    by_key = {(t["address"], t["port"]): t for t in targets}
    rows = []
    for run in runs:
        vantage = run.get("vantage") or "unknown vantage"
        for result in run["results"]:
            target = by_key.get((result["address"], result["port"]))
            if target is None:
                continue
            rows.append(_row(vantage, result, target, plans[target["node"]]))
    return rows


def _row(vantage, result, target, plan):
    source = result.get("source")
    expected, audience = allowed(source, result["port"], plan)
    finding = "ok"
    if result["open"] and not expected:
        finding = "exposed"
    elif expected and not result["open"]:
        finding = "blocked"
    return {
        "vantage": vantage,
        "source": source,
        "source_audiences": sorted(audiences_of(source, plan)) or ["others"],
        "node": target["node"],
        "address": result["address"],
        "port": result["port"],
        "process": target["process"],
        "audience": audience,
        "expected": expected,
        "open": result["open"],
        "state": result["state"],
        "finding": finding,
        "message": _message(finding, vantage, result, target, audience),
    }


def _message(finding, vantage, result, target, audience):
    where = (
        f"{target['node']} tcp {bracket(result['address'])}:{result['port']} "
        f"({target['process'] or 'no process'}, pid {target['pid']})"
    )
    if finding == "exposed":
        return (
            f"{where} accepted a connection from {vantage} ({result.get('source')}), "
            f"which the plan does not allow (audience: {', '.join(audience)})"
        )
    if finding == "blocked":
        return (
            f"{where} was not reachable from {vantage} ({result.get('source')}, "
            f"{result['state']}) although the plan allows it (audience: {', '.join(audience)})"
        )
    return f"{where} from {vantage}: {result['state']}, as the plan says"


def probe_matrix(rows):
    """A plain-text table: one line per node port, one column per vantage (open/closed)."""
    vantages = sorted({r["vantage"] for r in rows})
    ports = {}
    for row in rows:
        key = (row["node"], row["address"], row["port"])
        ports.setdefault(key, {"process": row["process"], "audience": row["audience"], "cells": {}})
        mark = "OPEN" if row["open"] else "-"
        if row["finding"] != "ok":
            mark += "!"
        ports[key]["cells"][row["vantage"]] = mark
    header = ["node", "address:port", "process", "may reach", *vantages]
    lines = [header]
    for (node, address, port), info in sorted(
        ports.items(), key=lambda i: (i[0][0], i[0][2], i[0][1])
    ):
        lines.append(
            [
                node,
                f"{bracket(address)}:{port}",
                info["process"] or "?",
                ",".join(info["audience"]),
                *[info["cells"].get(v, "") for v in vantages],
            ]
        )
    text = table(lines)
    text.append("")
    text.append("OPEN = connected, - = refused or dropped, ! = differs from the plan")
    return "\n".join(text) + "\n"
