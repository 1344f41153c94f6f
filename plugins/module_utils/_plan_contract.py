# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster plan's contract, shared by its producer and every consumer (stdlib only).

hardened.vllm.cluster publishes the plan (plugin_utils/_plan.py); the firewall (on the node and
on the controller), the vLLM service filter, the exposure verdict and the probes read it. They
all take from here: the schema version and the check of a plan, the audiences and which
audience may reach a port, the vLLM options and environment variables that the plan decides,
the "host X, variable Y: ... Fix: ..." message and the refusal that lists them (Problems,
Refused), and how an address is written next to a port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

SCHEMA_VERSION = 1
TABLE = "inet hardened_vllm"  # the firewall's nftables table: family and name
AUDIENCES = ("admins", "clients", "monitoring", "peers", "custom")
# Audiences that are address sets of the plan ({"ipv4": [...], "ipv6": [...]}); ``custom``
# entries of the exposure carry their own ``from``.
ADDRESS_AUDIENCES = ("peers", "clients", "monitoring", "admins")

# vLLM options and environment variables whose values the plan decides (the cluster_*
# variables): nothing else may set them, or the firewall and the audit would not know.
PLAN_OPTIONS = frozenset(
    {
        "--host",
        "--port",
        "--uds",
        "--headless",
        "--data-parallel-size",
        "--data-parallel-size-local",
        "--data-parallel-address",
        "--data-parallel-rpc-port",
        "--data-parallel-start-rank",
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
        "--nnodes",
        "--node-rank",
        "--master-addr",
        "--master-port",
        "--kv-transfer-config",
        # vLLM's short forms of the same options
        "-tp",
        "-pp",
        "-dp",
        "-dpl",
        "-dpa",
        "-dpp",
        "-dpr",
        "-n",
        "-r",
    }
)
PLAN_ENV = frozenset(
    {
        "VLLM_HOST_IP",
        "GLOO_SOCKET_IFNAME",
        "NCCL_SOCKET_IFNAME",
        "TP_SOCKET_IFNAME",
        "VLLM_NIXL_SIDE_CHANNEL_HOST",
        "VLLM_NIXL_SIDE_CHANNEL_PORT",
        "UCX_NET_DEVICES",
    }
)


class PlanContractError(ValueError):
    """A value that is not a plan of this collection's schema; the message says what to do."""


def problem(host, variable, what, fix):
    """The one shape of every refusal: where, which variable, what is wrong, what to do."""
    where = f"host {host}" if host else "cluster (all hosts)"
    return f"{where}, variable {variable}: {what}. Fix: {fix}."


class Problems(list):
    """Problems collected in one pass, each in the shape of problem()."""

    def add(self, host, variable, what, fix):
        self.append(problem(host, variable, what, fix))


class Refused(ValueError):
    """Every problem found in one set of settings; raised before anything changes.

    Subclasses name the settings (``subject``); ``problems`` holds the messages.
    """

    subject = "the settings"
    outcome = "no host was changed"

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__(refusal(self.problems, self.subject, self.outcome))


def refusal(problems, subject, outcome="no host was changed"):
    """The one text of a refusal: how many problems in what, what did not happen, the list."""
    lines = "\n".join(f"- {p}" for p in problems)
    return f"{len(problems)} problem(s) in {subject}; {outcome}:\n{lines}"


def check_plan(plan, keys=()):
    """The plan's host after checking its schema version and that it holds ``keys``."""
    if not isinstance(plan, Mapping):
        raise PlanContractError(
            problem(
                None,
                "cluster_plan",
                f"must be the plan mapping, got {type(plan).__name__}",
                "run the role hardened.vllm.cluster first; it publishes the plan",
            )
        )
    host = plan.get("host")
    if plan.get("schema_version") != SCHEMA_VERSION or not isinstance(host, str) or not host:
        raise PlanContractError(
            problem(
                host if isinstance(host, str) else None,
                "cluster_plan",
                f"schema_version {plan.get('schema_version')!r} with host {host!r} is not a "
                f"version {SCHEMA_VERSION} plan",
                "publish it with hardened.vllm.cluster of this collection's version",
            )
        )
    missing = [key for key in keys if key not in plan]
    if missing:
        raise PlanContractError(
            problem(
                host,
                "cluster_plan",
                f"lacks {', '.join(missing)}",
                "publish it again with hardened.vllm.cluster of this collection's version",
            )
        )
    return host


def port_exposure(plan, proto, port):
    """The plan's exposure entries for one port, and the audience names that may reach it.

    Ports the plan does not list are for peers only.
    """
    entries = [e for e in plan["exposure"] if e.get("proto") == proto and e.get("port") == port]
    return entries, sorted({e["audience"] for e in entries}) or ["peers"]


def audiences_of(source, plan):
    """Which of the plan's address audiences a source address belongs to (missing ones: none)."""
    if not source:
        return set()
    ip = ipaddress.ip_address(str(source))
    family = f"ipv{ip.version}"
    return {
        name
        for name in ADDRESS_AUDIENCES
        if any(
            ip in ipaddress.ip_network(str(net), strict=False)
            for net in (plan.get(name) or {}).get(family) or []
        )
    }


def bracket(address):
    """An address as it is written before ``:port`` (IPv6 in brackets)."""
    text = str(address)
    return f"[{text}]" if ":" in text else text
