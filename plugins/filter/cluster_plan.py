# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hardened.vllm.cluster_plan and cluster_plans filters (docs in cluster_plan*.yml)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import refusal
from ansible_collections.hardened.vllm.plugins.plugin_utils import _addresses, _fleet
from ansible_collections.hardened.vllm.plugins.plugin_utils._filters import (
    input_errors,
    require_netaddr,
)
from ansible_collections.hardened.vllm.plugins.plugin_utils._plan import (
    CLUSTER_WIDE,
    HOST_VARS,
    PlanInvalid,
    compute_plans,
)


def cluster_plan(hostvars, group, settings, host=None):
    """Compute every cluster host's plan; return one host's plan or all of them."""
    _check_arguments("cluster_plan", hostvars, group)
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError(
            f"hardened.vllm.cluster_plan: settings must be a mapping, got {settings!r}"
        )
    hosts = {name: _host_input(name, hostvars) for name in group}
    named = {data.get("cluster_name") for data in hosts.values()} - {None}
    if len(named) > 1:
        raise AnsibleFilterError(
            f"hardened.vllm.cluster_plan: the hosts of the group name {len(named)} clusters "
            f"({', '.join(sorted(named))}); cluster_plan computes one cluster with one set of "
            "settings: use hardened.vllm.cluster_plans (as the cluster role does)"
        )
    with input_errors("cluster_plan", PlanInvalid):
        plans = compute_plans(hosts, dict(settings))
    if host is None:
        return plans
    if host not in plans:
        raise AnsibleFilterError(_not_in_group(host, group))
    return plans[host]


def cluster_plans(hostvars, group, asking, settings_var, groups=None):
    """Every asking host's plan or refusal, with one computation per cluster and settings view.

    ``asking`` are the hosts that want a plan (the play's); each one that holds the variable
    ``settings_var`` asks with the cluster-wide settings it holds there, as it sees them (the
    same on every host of a sound cluster: one computation per cluster). The hosts of
    ``group`` form one cluster, or several when they set ``cluster_name`` (``groups``, Ansible's
    ``groups``, lets a host in two clusters' groups be refused). Each host's variables are read
    once. Refusals are returned, not raised, so that a run_once task can hand every host its own.
    """
    _check_arguments("cluster_plans", hostvars, group)
    if isinstance(asking, str) or not isinstance(asking, (list, tuple)):
        raise AnsibleFilterError(
            f"hardened.vllm.cluster_plans: asking must be a list of host names, got {asking!r}"
        )
    if groups is not None and not isinstance(groups, Mapping):
        raise AnsibleFilterError(
            f"hardened.vllm.cluster_plans: groups must be Ansible's groups (a mapping), got "
            f"{type(groups)}"
        )
    read = {}

    def variables(name):
        if name not in read:
            read[name] = hostvars.get(name, {})
        return read[name]

    views = {}
    for name in asking:
        settings = variables(name).get(settings_var)
        if settings is not None:
            if not isinstance(settings, Mapping):
                raise AnsibleFilterError(
                    f"hardened.vllm.cluster_plans: {settings_var} of host {name} must be a "
                    f"mapping of settings, got {settings!r}"
                )
            views[name] = dict(settings)
    try:
        hosts = {name: _host_input(name, hostvars, variables) for name in group}
        members = _fleet.clusters(hosts, groups)
    except AnsibleFilterError as exc:
        return {name: {"refusal": str(exc)} for name in views}
    except _fleet.FleetInvalid as exc:
        return {name: {"refusal": f"hardened.vllm.cluster_plan: {exc}"} for name in views}
    cluster_of = {host: cluster for cluster, names in members.items() for host in names}
    computed, result = {}, {}
    for name, settings in views.items():
        if name not in cluster_of:
            result[name] = {"refusal": _not_in_group(name, group)}
            continue
        cluster = cluster_of[name]
        key = (cluster, json.dumps(settings, sort_keys=True, default=str))
        if key not in computed:
            try:
                cluster_hosts = {host: hosts[host] for host in members[cluster]}
                computed[key] = {"plans": compute_plans(cluster_hosts, settings)}
            except PlanInvalid as exc:
                message = _fleet.cluster_refusal(exc, cluster) or str(exc)
                computed[key] = {"refusal": f"hardened.vllm.cluster_plan: {message}"}
        outcome = computed[key]
        if "refusal" in outcome:
            result[name] = {"refusal": outcome["refusal"]}
        else:
            result[name] = {"plan": outcome["plans"][name]}
    if len(members) > 1:
        planned = {host: out["plan"] for host, out in result.items() if "plan" in out}
        for host, problems in _fleet.duplicate_addresses(planned, cluster_of).items():
            message = refusal(problems, f"the inventory of cluster {cluster_of[host]}")
            result[host] = {"refusal": f"hardened.vllm.cluster_plan: {message}"}
    return result


def cluster_plan_of(plans, host):
    """One host's plan out of cluster_plans' result; its refusal raised as cluster_plan does."""
    if not isinstance(plans, Mapping) or host not in plans:
        raise AnsibleFilterError(
            f"hardened.vllm.cluster_plan_of: no plan or refusal for host {host} in {type(plans)}; "
            "give it what hardened.vllm.cluster_plans returned for the hosts of the play"
        )
    outcome = plans[host]
    if "refusal" in outcome:
        raise AnsibleFilterError(outcome["refusal"])
    return outcome["plan"]


def _check_arguments(name, hostvars, group):
    require_netaddr(name)
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(
            f"hardened.vllm.{name}: input must be hostvars (a mapping), got {type(hostvars)}"
        )
    if isinstance(group, str) or not isinstance(group, (list, tuple)):
        raise AnsibleFilterError(
            f"hardened.vllm.{name}: group must be a list of host names, got {group!r}"
        )


def _not_in_group(host, group):
    return (
        f"hardened.vllm.cluster_plan: host {host} is not in the cluster group "
        f"({', '.join(group)}); run the cluster role only on the cluster's hosts"
    )


def _host_input(name, hostvars, variables=None):
    if name not in hostvars:
        raise AnsibleFilterError(f"hardened.vllm.cluster_plan: no host {name} in the inventory")
    hv = variables(name) if variables else hostvars[name]
    wanted = (*HOST_VARS, *CLUSTER_WIDE)
    data = {key: hv[key] for key in wanted if key in hv}
    facts = hv.get("ansible_facts") or {}
    data["ansible_facts"] = {key: facts[key] for key in _network_fact_keys(facts) if key in facts}
    return data


def _network_fact_keys(facts):
    keys = ["interfaces"]
    for name in facts.get("interfaces") or []:
        keys += _addresses.interface_fact_keys(name)
    return keys


class FilterModule:
    """hardened.vllm cluster plan filters."""

    def filters(self):
        return {
            "cluster_plan": cluster_plan,
            "cluster_plans": cluster_plans,
            "cluster_plan_of": cluster_plan_of,
        }
