# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several clusters in one inventory: split the cluster group by ``cluster_name``.

Pure functions over the host inputs the cluster_plans filter reads. A group whose hosts leave
``cluster_name`` unset is one cluster (named None), exactly as before fleets existed.
"""

from __future__ import annotations

import re

from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import (
    Problems,
    Refused,
    refusal,
)

# What an inventory group name may be (Ansible's own rule): the cluster's group is named after it.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FleetInvalid(Refused):
    """The split of the cluster group into clusters is ambiguous; ``problems`` says why."""

    subject = "the fleet inventory (the clusters of the cluster group)"


def clusters(hosts, groups=None):
    """Return ``{cluster name or None: [hosts in group order]}``, or raise FleetInvalid.

    ``hosts`` maps each host of the cluster group (in inventory order) to its inputs, with
    ``cluster_name`` where the inventory sets it. ``groups`` (Ansible's ``groups``) lets a host
    that is in the inventory group of another cluster than its own be refused: Ansible keeps
    one ``cluster_name`` of a host in two clusters' groups, silently.
    """
    problems = Problems()
    names = {}
    for host, data in hosts.items():
        name = data.get("cluster_name")
        if name is None:
            continue
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.add(
                host,
                "cluster_name",
                f"{name!r} is not a cluster name",
                "name the cluster like an inventory group (letters, digits, _; not starting "
                "with a digit) and name its group the same",
            )
            continue
        names[host] = name
    unnamed = [h for h in hosts if hosts[h].get("cluster_name") is None]
    if names and unnamed:
        named = sorted(set(names.values()))
        for host in unnamed:
            problems.add(
                host,
                "cluster_name",
                "unset, while other hosts of the cluster group (cluster_group) name their "
                f"cluster ({', '.join(named)})",
                "set cluster_name for every host of the cluster group (in the vars of each "
                "cluster's inventory group), or for none of them (one cluster)",
            )
    for cluster in sorted(set(names.values())):
        for host in (groups or {}).get(cluster) or []:
            own = names.get(host)
            if host in hosts and own is not None and own != cluster:
                problems.add(
                    host,
                    "cluster_name",
                    f"{host} is in the inventory groups of two clusters, {own} and {cluster} "
                    f"(Ansible kept cluster_name {own})",
                    "put each host in the group of one cluster only",
                )
    if problems:
        raise FleetInvalid(problems)
    members = {}
    for host in hosts:
        members.setdefault(names.get(host), []).append(host)
    return members


def cluster_refusal(exc, cluster):
    """A cluster's refusal (PlanInvalid) naming the cluster, when the group holds several."""
    if cluster is None:
        return None
    problems = [
        p.replace("cluster (all hosts)", f"cluster {cluster} (all hosts)", 1) for p in exc.problems
    ]
    return refusal(problems, f"the inventory of cluster {cluster}", exc.outcome)


def duplicate_addresses(plans, cluster_of):
    """Host -> problem, for hosts whose host_ip another cluster's host uses too."""
    by_ip = {}
    for host, plan in plans.items():
        by_ip.setdefault(plan["host_ip"], []).append(host)
    problems = {}
    for ip, users in by_ip.items():
        if len({cluster_of[h] for h in users}) < 2:
            continue
        for host in users:
            others = [f"{h} (cluster {cluster_of[h]})" for h in users if h != host]
            problems[host] = Problems()
            problems[host].add(
                host,
                "cluster_host_ip",
                f"{ip} is also the address of {', '.join(others)}",
                "give every host of the fleet its own address",
            )
    return problems
