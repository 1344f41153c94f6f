# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hardened.vllm.cluster_plan filter (documentation in cluster_plan.yml)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.plugin_utils import _addresses
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
    require_netaddr("cluster_plan")
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(
            f"hardened.vllm.cluster_plan: input must be hostvars (a mapping), got {type(hostvars)}"
        )
    if isinstance(group, str) or not isinstance(group, (list, tuple)):
        raise AnsibleFilterError(
            f"hardened.vllm.cluster_plan: group must be a list of host names, got {group!r}"
        )
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError(
            f"hardened.vllm.cluster_plan: settings must be a mapping, got {settings!r}"
        )
    hosts = {name: _host_input(name, hostvars) for name in group}
    with input_errors("cluster_plan", PlanInvalid):
        plans = compute_plans(hosts, dict(settings))
    if host is None:
        return plans
    if host not in plans:
        raise AnsibleFilterError(
            f"hardened.vllm.cluster_plan: host {host} is not in the cluster group "
            f"({', '.join(group)}); run the cluster role only on the cluster's hosts"
        )
    return plans[host]


def _host_input(name, hostvars):
    if name not in hostvars:
        raise AnsibleFilterError(f"hardened.vllm.cluster_plan: no host {name} in the inventory")
    hv = hostvars[name]
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
    """hardened.vllm cluster plan filter."""

    def filters(self):
        return {"cluster_plan": cluster_plan}
