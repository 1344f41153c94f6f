# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compute and validate the per-host cluster plan (controller side).

Pure functions over plain data: the filter plugin hands in each cluster host's
inventory variables and gathered facts, and gets back one plan per host, or a
PlanInvalid that lists every problem found (host, variable, fix).
"""

from __future__ import annotations

import bisect
import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import (
    SCHEMA_VERSION,
    Problems,
    Refused,
    bracket,
)
from ansible_collections.hardened.vllm.plugins.plugin_utils import _api_routes
from ansible_collections.hardened.vllm.plugins.plugin_utils._addresses import (
    WIDEST_PREFIX,
    covered_families,
    host_addresses,
    host_network,
    indexed_cidrs,
    netaddr,
    parse_address,
    parse_cidrs,
    split_families,
    too_wide,
    width,
)

TOPOLOGIES = ("single", "data_parallel", "multi_node", "disaggregated")
ROLES = {
    "single": ("single",),
    "data_parallel": ("head", "worker"),
    "multi_node": ("head", "worker"),
    "disaggregated": ("prefill", "decode"),
}
KV_CONNECTORS = ("NixlConnector", "P2pNcclConnector")
DEFAULT_PORTS = {
    "api": 8000,
    "dp_rpc": 29550,
    "master": 29501,
    "kv": 14579,
    "nixl": 5600,
    "ssh": 22,
    # hardened.vllm.vllm's stage: the seeder serves the wheelhouse and the model to its peers on
    # this port of its cluster address while they fetch them, never afterwards (verify checks).
    "stage": 29590,
    "router": 8100,
}
# The prefill/decode router of a disaggregated cluster (hardened.vllm.gateway): on loopback of
# every API node, behind that node's gateway, for these routes; every other inference route
# would reach vLLM with the client's kv_transfer_params, so the plan refuses it there.
ROUTER_ADDRESS = "127.0.0.1"
ROUTER_ROUTES = ("/v1/chat/completions", "/v1/completions")
# Where vLLM's own API listens on nodes that serve it: a unix socket that only the gateway
# (hardened.vllm.gateway, a member of the group) may open. The plan's api address and port are
# the gateway's: TLS, keys, the route allowlist and the monitoring audience are enforced there.
API_SOCKET = "/run/hardened-vllm/api.sock"
API_SOCKET_GROUP = "vllm-api"
# What a path in cluster_api_routes may consist of (the gateway matches it exactly).
_ROUTE_PATH = re.compile(r"/[A-Za-z0-9/_.-]*")
# Linux's default net.ipv4.ip_local_port_range: ports the kernel hands to any socket bound to
# port 0, which is where NCCL, gloo, the TCPStore and ZMQ listen (the plan does not read the
# hosts' sysctl; keep the range at its default or move fixed services below it).
EPHEMERAL_PORTS = (32768, 60999)
# What cluster_accept_risks may acknowledge, one name per class of danger. world_*: wider than
# WIDEST_PREFIX, everyone included; wide_*: wider than WIDEST_PREFIX, but never everyone (peers
# and monitoring get in without a key, so every address is refused outright).
ACCEPTABLE_RISKS = {
    "world_clients": "cluster_client_cidrs wider than /8 (IPv4) or /16 (IPv6), 0.0.0.0/0 and "
    "::/0 included: they reach the API port (the gateway asks for a key)",
    "world_admins": "cluster_admin_cidrs that wide, everyone included: they reach SSH",
    "world_allowance": "cluster_extra_allowances[].from that wide, everyone included (never on "
    "internal ports)",
    "wide_peers": "cluster_extra_peer_cidrs that wide, never everyone: peers reach every port",
    "wide_monitoring": "cluster_monitoring_cidrs that wide, never everyone: /health and "
    "/metrics without a key",
    "ephemeral_ports": "an extra allowance, cluster_ports.api or cluster_ports.ssh inside the "
    "ephemeral port range 32768-60999, open to non-peers",
    "ssh_allowance": "an extra allowance on the SSH port from outside cluster_admin_cidrs",
}


def _role_options(role):
    """The options of a role of this collection, from its meta/argument_specs.yml."""
    spec = Path(__file__).resolve().parents[2] / "roles" / role / "meta" / "argument_specs.yml"
    return yaml.safe_load(spec.read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]


# The one schema of the cluster settings is the cluster role's argument_specs (name, type,
# default, docs); the plan takes names and defaults from there, so they cannot drift apart.
# Per-host settings (host_vars) are these; cluster_group only picks the hosts; every other
# option is cluster-wide and must be the same on every host of the cluster. cluster_name
# splits the group into clusters (hardened.vllm.cluster_plans, _fleet.py); compute_plans
# gets the hosts of one cluster and does not read it.
HOST_VARS = (
    "cluster_host_ip",
    "cluster_node_role",
    "cluster_data_parallel_size_local",
    "cluster_api_address",
    "cluster_name",
)
_OPTIONS = _role_options("cluster")
CLUSTER_WIDE = tuple(n for n in _OPTIONS if n not in HOST_VARS and n != "cluster_group")
SETTING_DEFAULTS = {n: _OPTIONS[n].get("default") for n in CLUSTER_WIDE}
HOST_DEFAULTS = {n: _OPTIONS[n].get("default") for n in HOST_VARS}


class PlanInvalid(Refused):
    """The inventory cannot produce a safe plan; ``problems`` says why."""

    subject = "the cluster inventory"


def compute_plans(hosts, settings):
    """Return ``{host: plan}`` for every host, or raise PlanInvalid.

    ``hosts`` is an ordered mapping ``name -> host variables`` (inventory vars
    plus ``ansible_facts``); ``settings`` holds the cluster-wide variables as
    seen on the host that asks.
    """
    problems = Problems()
    if not hosts:
        problems.add(
            None,
            "cluster_group",
            "the cluster group has no hosts",
            "put the GPU nodes into the group that cluster_group names",
        )
        raise PlanInvalid(problems)
    cfg = copy.deepcopy(SETTING_DEFAULTS)
    cfg.update({k: v for k, v in settings.items() if v is not None})
    _check_cluster_wide_agree(hosts, problems)
    topology = _topology(cfg, problems)
    raw_networks = cfg["cluster_network"]
    if isinstance(raw_networks, str):
        raw_networks = [raw_networks] if raw_networks.strip() else []
    networks = parse_cidrs(raw_networks, "cluster_network", None, problems)
    acks = _Acks(cfg["cluster_accept_risks"], problems)
    ports = _ports(cfg["cluster_ports"], problems)
    _check_ephemeral_ports(ports, acks)
    clients = _audience(
        cfg["cluster_client_cidrs"],
        "cluster_client_cidrs",
        ("world_clients", "reach the API port (the gateway asks for a key)"),
        "list only the clients' own networks",
        problems,
        acks,
    )
    monitoring = _monitoring(cfg["cluster_monitoring_cidrs"], problems, acks)
    routes = _routes(cfg["cluster_api_routes"], cfg["cluster_api_accept_routes"], problems)
    _check_router_routes(topology, routes, problems)
    admins = _audience(
        cfg["cluster_admin_cidrs"],
        "cluster_admin_cidrs",
        ("world_admins", "reach SSH on every node"),
        "list only the admins' own networks or bastion hosts",
        problems,
        acks,
    )
    extra_peers = _extra_peers(cfg["cluster_extra_peer_cidrs"], problems, acks)

    cfg["cluster_tensor_parallel_size"], cfg["cluster_pipeline_parallel_size"] = _parallel_sizes(
        cfg, problems
    )
    _check_kv_extra_config(cfg, topology, problems)
    nodes = {name: _node(name, hv, networks, topology, problems) for name, hv in hosts.items()}
    _check_unique_ips(nodes, problems)
    _check_families(nodes, _flag(cfg, "cluster_allow_mixed_families", problems), problems)
    layout = _layout(topology, nodes, cfg, problems) if topology else {}
    allowances = _allowances(
        cfg["cluster_extra_allowances"],
        ports,
        layout,
        nodes,
        {"peers": extra_peers, "admins": admins},
        problems,
        acks,
    )
    acks.check_stale()
    if problems:
        raise PlanInvalid(problems)

    shared = _Shared(nodes, networks, ports, clients, monitoring, admins, extra_peers, allowances)
    return {
        name: _plan(name, node, shared, topology, layout[name], routes, cfg)
        for name, node in nodes.items()
    }


# --- inputs -----------------------------------------------------------------


def _check_cluster_wide_agree(hosts, problems):
    """Every cluster-wide setting the same on every host; unset (or null) is the role default.

    A value set in one host's host_vars only is compared with the others' defaults, which is
    what those hosts would run with.
    """
    for key in CLUSTER_WIDE:
        default = _canonical(SETTING_DEFAULTS[key])
        seen = {}
        for name, hv in hosts.items():
            value = hv.get(key)
            seen.setdefault(default if value is None else _canonical(value), []).append(name)
        if len(seen) > 1:
            groups = "; ".join(
                f"{', '.join(h)}: {v}" + (" (unset: the role default)" if v == default else "")
                for v, h in seen.items()
            )
            problems.add(
                sorted(h for v, hs in seen.items() if v != default for h in hs)[0],
                key,
                f"differs between cluster hosts ({groups})",
                "set it once for the whole cluster group (group_vars or the play), not in "
                "host_vars; hosts that leave it unset use the role default",
            )


def _canonical(value):
    return json.dumps(value, sort_keys=True, default=str)


def _topology(cfg, problems):
    topology = cfg["cluster_topology"]
    if topology not in TOPOLOGIES:
        problems.add(
            None,
            "cluster_topology",
            f"unknown topology {topology!r}",
            f"use one of {', '.join(TOPOLOGIES)}",
        )
        return None
    if topology == "disaggregated" and cfg["cluster_kv_connector"] not in KV_CONNECTORS:
        problems.add(
            None,
            "cluster_kv_connector",
            f"unknown KV connector {cfg['cluster_kv_connector']!r}",
            f"use one of {', '.join(KV_CONNECTORS)}",
        )
    return topology


def _ports(overrides, problems):
    if not isinstance(overrides, Mapping):
        problems.add(
            None,
            "cluster_ports",
            f"must be a mapping, got {overrides!r}",
            "set cluster_ports to e.g. {api: 8000}",
        )
        return dict(DEFAULT_PORTS)
    ports = dict(DEFAULT_PORTS)
    for key, value in overrides.items():
        if key not in DEFAULT_PORTS:
            problems.add(
                None,
                f"cluster_ports.{key}",
                "is not a known port",
                f"use only {', '.join(DEFAULT_PORTS)}",
            )
            continue
        number = _int(value)
        if number is None or not 1 <= number <= 65535:
            problems.add(
                None,
                f"cluster_ports.{key}",
                f"{value!r} is not a port number",
                "use a whole number from 1 to 65535",
            )
            continue
        ports[key] = number
    by_number = {}
    for key, number in ports.items():
        by_number.setdefault(number, []).append(key)
    for number, keys in sorted(by_number.items()):
        if len(keys) > 1:
            problems.add(
                None,
                "cluster_ports",
                f"port {number} is used for {' and '.join(keys)}",
                "give every purpose its own port",
            )
    return ports


class _Acks:
    """cluster_accept_risks: the named risks acknowledged, and the ones the inventory takes."""

    def __init__(self, raw, problems):
        self.problems, self.listed, self.taken, self.undecided = problems, [], set(), set()
        if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
            problems.add(
                None,
                "cluster_accept_risks",
                f"must be a list of risk names, got {raw!r}",
                "write a YAML list such as [world_clients]",
            )
            raw = []
        for index, name in enumerate(raw):
            if name in ACCEPTABLE_RISKS:
                self.listed.append((index, name))
                continue
            problems.add(
                None,
                f"cluster_accept_risks[{index}]",
                f"{name!r} is not a risk the plan knows",
                f"use only {', '.join(ACCEPTABLE_RISKS)} (docs/plan.md says what each accepts)",
            )

    def need(self, risk, variable, message, fix):
        """The inventory takes ``risk`` here: a problem unless cluster_accept_risks names it."""
        self.taken.add(risk)
        if risk not in {name for _index, name in self.listed}:
            self.problems.add(
                None,
                variable,
                message,
                f"{fix}, or acknowledge the risk with cluster_accept_risks: [{risk}]",
            )

    def undecided_for(self, *risks):
        """Another problem hides whether the inventory takes these risks: none is stale yet."""
        self.undecided.update(risks)

    def check_stale(self):
        for index, name in self.listed:
            if name not in self.taken | self.undecided:
                self.problems.add(
                    None,
                    f"cluster_accept_risks[{index}]",
                    f"acknowledges {name}, but nothing in the inventory takes that risk",
                    "remove the stale acknowledgement",
                )


BOUND = f"at most /{WIDEST_PREFIX[4]} for IPv4, /{WIDEST_PREFIX[6]} for IPv6"


def _audience(raw, variable, risk, fix, problems, acks):
    """An audience's CIDRs; each one wider than WIDEST_PREFIX needs its acknowledgement."""
    name, what = risk
    indexed = indexed_cidrs(raw, variable, None, problems)
    for index, net in indexed:
        if too_wide(net):
            acks.need(
                name,
                f"{variable}[{index}]",
                f"lets {net} ({width(net)}) {what}",
                f"{fix} ({BOUND})",
            )
    return [net for _index, net in indexed]


def _everyone(variable, indexed, what, fix, problems):
    """Refuse, with no acknowledgement possible, CIDRs that cover every address of a family:
    one /0 entry ("<net> <what[0]>"), or entries that do together ("...every IPv4 address,
    <what[1]>"). Returns the networks without the /0 entries."""
    whole = set()
    for index, net in indexed:
        if net.prefixlen == 0:
            whole.add(net.version)
            problems.add(None, f"{variable}[{index}]", f"{net} {what[0]}", fix)
    for version in covered_families([net for _index, net in indexed]):
        if version not in whole:
            problems.add(
                None,
                variable,
                f"together its entries cover every IPv{version} address, {what[1]}",
                fix,
            )
    return [net for _index, net in indexed if net.prefixlen]


def _monitoring(raw, problems, acks):
    """cluster_monitoring_cidrs: like client CIDRs, but never everyone (it needs no key)."""
    indexed = indexed_cidrs(raw, "cluster_monitoring_cidrs", None, problems)
    fix = "monitoring reads server metrics without a key: name your scrapers' networks"
    what = (
        "lets every address read /health and /metrics",
        "so every address could read /health and /metrics",
    )
    for index, net in indexed:
        if net.prefixlen and too_wide(net):
            acks.need(
                "wide_monitoring",
                f"cluster_monitoring_cidrs[{index}]",
                f"lets {net} ({width(net)}) read /health and /metrics without a key",
                f"name your scrapers' networks ({BOUND})",
            )
    return _everyone("cluster_monitoring_cidrs", indexed, what, fix, problems)


def _extra_peers(raw, problems, acks):
    """cluster_extra_peer_cidrs: trusted on every port, so never everyone; wide ones need an ack."""
    indexed = indexed_cidrs(raw, "cluster_extra_peer_cidrs", None, problems)
    unauthenticated = "trusted on every port, where vLLM's traffic has no authentication"
    fix = "list only the hosts outside the inventory that take part in the cluster traffic"
    for index, net in indexed:
        if net.prefixlen and too_wide(net):
            acks.need(
                "wide_peers",
                f"cluster_extra_peer_cidrs[{index}]",
                f"makes {net} ({width(net)}) cluster peers, {unauthenticated}",
                f"{fix} ({BOUND})",
            )
    return _everyone(
        "cluster_extra_peer_cidrs",
        indexed,
        (
            f"would make every address a cluster peer, {unauthenticated}",
            f"so every address would be a cluster peer, {unauthenticated}",
        ),
        f"{fix} (a KV proxy, a router); no acknowledgement makes everyone a peer",
        problems,
    )


def _in_ephemeral_range(port):
    return EPHEMERAL_PORTS[0] <= port <= EPHEMERAL_PORTS[1]


EPHEMERAL = (
    f"lies in the kernel's ephemeral port range {EPHEMERAL_PORTS[0]}-{EPHEMERAL_PORTS[1]}, where "
    "NCCL, gloo, the TCPStore and ZMQ listen on ports the kernel picks"
)
EPHEMERAL_FIX = (
    f"use a port outside {EPHEMERAL_PORTS[0]}-{EPHEMERAL_PORTS[1]} (or below the hosts' "
    "net.ipv4.ip_local_port_range)"
)


def _check_ephemeral_ports(ports, acks):
    """The API and SSH ports are open to non-peers; inside the ephemeral range a vLLM socket
    may be given that port while the gateway or sshd is down, and clients or admins reach it."""
    for key, who, service in (("api", "clients", "the gateway"), ("ssh", "admins", "sshd")):
        if _in_ephemeral_range(ports[key]):
            acks.need(
                "ephemeral_ports",
                f"cluster_ports.{key}",
                f"{ports[key]} {EPHEMERAL}; {who} would reach whichever of them gets this port "
                f"while {service} does not hold it",
                EPHEMERAL_FIX,
            )


def _path_list(raw, variable, problems):
    if isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        return raw
    problems.add(
        None,
        variable,
        f"must be a list of path strings, got {raw!r}",
        "write a YAML list such as [/v1/models, /v1/chat/completions]",
    )
    return []


def _routes(raw, raw_accepted, problems):
    """cluster_api_routes -> the sorted allowlist; risky or unknown routes need acknowledging."""
    paths = _path_list(raw, "cluster_api_routes", problems)
    accepted = _path_list(raw_accepted, "cluster_api_accept_routes", problems)
    allowed = set()
    for index, path in enumerate(paths):
        where = f"cluster_api_routes[{index}]"
        if not _ROUTE_PATH.fullmatch(path) or "//" in path or ".." in path:
            problems.add(
                None,
                where,
                f"{path!r} is not a plain URL path",
                "write the exact path the gateway forwards, starting with / and made of "
                "letters, digits and / _ . - only, without // or .. (e.g. /v1/models)",
            )
            continue
        kind = _api_routes.kind_of(path)
        if kind == "monitoring":
            problems.add(
                None,
                where,
                f"{path} is a monitoring route; the gateway serves it without a key to the "
                "monitoring audience only",
                "remove it from cluster_api_routes and list the load balancers' and "
                "scrapers' networks in cluster_monitoring_cidrs",
            )
            continue
        if kind not in _api_routes.FREE_KINDS and path not in accepted:
            problems.add(None, where, *_unvetted(path, kind))
            continue
        allowed.add(path)
    for index, path in enumerate(accepted):
        if path not in paths:
            problems.add(
                None,
                f"cluster_api_accept_routes[{index}]",
                f"acknowledges {path!r}, which is not in cluster_api_routes",
                "remove the stale acknowledgement, or add the route to cluster_api_routes",
            )
    return sorted(allowed)


def _check_router_routes(topology, routes, problems):
    """disaggregated: inference goes through the router, which knows only ROUTER_ROUTES."""
    if topology != "disaggregated":
        return
    for path in routes:
        if _api_routes.kind_of(path) == "inference" and path not in ROUTER_ROUTES:
            problems.add(
                None,
                "cluster_api_routes",
                f"{path} is an inference route the disaggregated router does not drive (it "
                f"routes {' and '.join(ROUTER_ROUTES)}): it would reach one node's vLLM with "
                "the client's kv_transfer_params",
                "remove it from cluster_api_routes for this topology",
            )


def _unvetted(path, kind):
    """The message and fix for a route that needs an acknowledgement in accept_routes."""
    accept = f"remove it, or acknowledge the risk by listing {path} in cluster_api_accept_routes"
    if kind == "control":
        return (
            f"{path} is a control route: API clients could change or stop the server "
            "(pause, sleep, weights, profiling, LoRA adapters, RPC)",
            f"{accept} (control routes change or stop the server)",
        )
    if kind == "docs":
        return (
            f"{path} is a documentation route: it describes every route of the server, "
            "including the ones the gateway refuses",
            f"{accept} (docs describe every route)",
        )
    return (
        f"{path} is not in this collection's catalog of the routes vLLM 0.32 serves "
        "(plugins/plugin_utils/_api_routes.py)",
        f"check the path; {accept} (unknown routes are not vetted for this vLLM version)",
    )


PARALLEL = {
    "cluster_tensor_parallel_size": "the GPUs each model layer is split over",
    "cluster_pipeline_parallel_size": "the pipeline stages the model's layers are split into",
}


def _parallel_sizes(cfg, problems):
    """(tensor, pipeline) parallel sizes as whole numbers of 1 or more; None where they are not."""
    sizes = []
    for key, what in PARALLEL.items():
        number = _int(cfg[key])
        if number is None or number < 1:
            problems.add(
                None,
                key,
                f"{cfg[key]!r} is not a whole number of 1 or more",
                f"set it to the number of {what} (1 for none)",
            )
            number = None
        sizes.append(number)
    return tuple(sizes)


def _flag(cfg, key, problems):
    """A setting that must be a YAML boolean ("false" as a string would be true)."""
    if isinstance(cfg[key], bool):
        return cfg[key]
    problems.add(
        None,
        key,
        f"{cfg[key]!r} is not a boolean",
        "write true or false without quotes (on the command line: -e '{\"" + key + "\": true}')",
    )
    return SETTING_DEFAULTS[key]


# The keys of NixlConnector's kv_connector_extra_config the plan passes on (vLLM 0.32), each a
# whole number: its lowest value and an example for the message. Others are refused:
# "backends", for one, would start NIXL transports whose listeners the plan does not model.
NIXL_EXTRA_CONFIG = {
    # Seconds the prefill node keeps a request's KV blocks for the decode node to read (the
    # decode node's heartbeats renew it while it waits); vLLM's default is 30.
    "kv_lease_duration": (1, 120),
    # NIXL's UCX worker threads (vLLM's default 4).
    "num_threads": (0, 4),
}


def _check_kv_extra_config(cfg, topology, problems):
    extra = cfg["cluster_kv_extra_config"]
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
        problems.add(
            None,
            "cluster_kv_extra_config",
            f"must be a mapping with string keys, got {extra!r}",
            "write it as key: value pairs, e.g. {proxy_ip: 10.0.0.5, proxy_port: 30001}",
        )
        cfg["cluster_kv_extra_config"] = {}
    elif extra and topology != "disaggregated":
        problems.add(
            None,
            "cluster_kv_extra_config",
            "is only read by the KV connector of topology disaggregated, so it would be ignored",
            "remove it, or set cluster_topology: disaggregated",
        )
    elif extra and cfg["cluster_kv_connector"] == "NixlConnector":
        known = ", ".join(sorted(NIXL_EXTRA_CONFIG))
        for key, value in extra.items():
            lowest, example = NIXL_EXTRA_CONFIG.get(key, (None, None))
            if lowest is None:
                problems.add(
                    None,
                    f"cluster_kv_extra_config.{key}",
                    f"is not a NixlConnector setting this collection passes on (only {known})",
                    f"remove it; NixlConnector takes {known}",
                )
            elif _int(value) is None or _int(value) < lowest:
                problems.add(
                    None,
                    f"cluster_kv_extra_config.{key}",
                    f"must be a whole number of at least {lowest}, got {value!r}",
                    f"write a number, e.g. {key}: {example}",
                )


def _int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _node(name, hv, networks, topology, problems):
    """Resolve one host's address, interface and role from its vars and facts."""
    facts = hv.get("ansible_facts") or {}
    if "interfaces" not in facts:
        problems.add(
            name,
            "ansible_facts",
            "network facts of this host were not gathered",
            "run the cluster role against the whole cluster group "
            "(it gathers missing facts) and make sure the host is reachable",
        )
        return {"ip": None, "iface": None, "role": None, "addresses": []}
    addresses = host_addresses(facts)
    ip, iface = _host_ip(name, hv.get("cluster_host_ip"), networks, addresses, problems)
    role = hv.get("cluster_node_role") or ("single" if topology in (None, "single") else None)
    if topology and role not in ROLES[topology]:
        wanted = " or ".join(ROLES[topology])
        problems.add(
            name,
            "cluster_node_role",
            f"{role!r} is not a role of topology {topology}"
            if role
            else f"is not set; topology {topology} needs it",
            f"set cluster_node_role: {wanted} for this host",
        )
    local = _int(
        hv.get(
            "cluster_data_parallel_size_local", HOST_DEFAULTS["cluster_data_parallel_size_local"]
        )
    )
    if local is None or local < 1:
        problems.add(
            name,
            "cluster_data_parallel_size_local",
            f"{hv.get('cluster_data_parallel_size_local')!r} is not a positive number",
            "set it to the number of data-parallel ranks on this host (1 or more)",
        )
        local = 1
    api = _api_address(name, hv.get("cluster_api_address"), ip, addresses, problems)
    return {
        "ip": ip,
        "iface": iface,
        "role": role,
        "local": local,
        "api": api,
        "addresses": addresses,
    }


def _host_ip(name, wanted, networks, addresses, problems):
    if wanted:
        ip = parse_address(wanted, "cluster_host_ip", name, problems)
        if ip is None:
            return None, None
        if not _usable(ip, name, "cluster_host_ip", problems):
            return None, None
        matches = [a for a in addresses if a["ip"] == ip]
        if not matches:
            problems.add(
                name,
                "cluster_host_ip",
                f"{ip} is not configured on {name} (its addresses: {_describe(addresses)})",
                "set cluster_host_ip to one of the host's addresses, "
                "or remove it and set cluster_network",
            )
            return None, None
        if networks and not any(ip in n for n in networks):
            problems.add(
                name,
                "cluster_host_ip",
                f"{ip} is outside cluster_network ({', '.join(map(str, networks))})",
                "use an address inside cluster_network or widen cluster_network",
            )
        return ip, matches[0]["iface"]
    if not networks:
        problems.add(
            name,
            "cluster_host_ip",
            "is not set and cluster_network is empty",
            "set cluster_host_ip for this host or cluster_network for the cluster",
        )
        return None, None
    for net in networks:
        found = [a for a in addresses if a["ip"] in net and not a["ip"].is_link_local()]
        if len(found) == 1:
            return found[0]["ip"], found[0]["iface"]
        if len(found) > 1:
            problems.add(
                name,
                "cluster_host_ip",
                f"{name} has several addresses in {net}: {_describe(found)}",
                "set cluster_host_ip for this host to the one vLLM should use",
            )
            return None, None
    problems.add(
        name,
        "cluster_network",
        f"{name} has no address in {', '.join(map(str, networks))} "
        f"(its addresses: {_describe(addresses)})",
        "put the host on the cluster network or set cluster_host_ip",
    )
    return None, None


def _usable(ip, name, variable, problems):
    for test, what in (
        (ip.is_loopback, "a loopback"),
        (ip.is_link_local, "a link-local"),
        (ip.is_multicast, "a multicast"),
    ):
        if test():
            problems.add(
                name,
                variable,
                f"{ip} is {what} address, peers cannot use it",
                "use the host's address on the cluster network",
            )
            return False
    if int(ip) == 0:
        problems.add(
            name,
            variable,
            f"{ip} is a wildcard, vLLM would listen everywhere",
            "use the host's address on the cluster network",
        )
        return False
    return True


def _api_address(name, wanted, ip, addresses, problems):
    if not wanted:
        return ip
    api = parse_address(wanted, "cluster_api_address", name, problems)
    if api is None or int(api) == 0:
        return api
    if not any(a["ip"] == api for a in addresses):
        problems.add(
            name,
            "cluster_api_address",
            f"{api} is not configured on {name}",
            "use one of the host's addresses, or 0.0.0.0 / :: to serve on all",
        )
    return api


def _describe(addresses):
    usable = [a for a in addresses if not (a["ip"].is_loopback() or a["ip"].is_link_local())]
    return ", ".join(f"{a['ip']} on {a['iface']}" for a in usable) or "none usable"


def _check_unique_ips(nodes, problems):
    owners = {}
    for name, node in nodes.items():
        if node["ip"] is not None:
            owners.setdefault(node["ip"], []).append(name)
    for ip, names in owners.items():
        if len(names) > 1:
            problems.add(
                names[1],
                "cluster_host_ip",
                f"{ip} is used by {' and '.join(names)}",
                "give every cluster host its own address",
            )


def _check_families(nodes, allow_mixed, problems):
    families = {n["ip"].version for n in nodes.values() if n["ip"] is not None}
    if len(families) > 1 and not allow_mixed:
        v4 = [h for h, n in nodes.items() if n["ip"] is not None and n["ip"].version == 4]
        v6 = [h for h, n in nodes.items() if n["ip"] is not None and n["ip"].version == 6]
        problems.add(
            v6[0],
            "cluster_host_ip",
            f"mixed address families: IPv4 on {', '.join(v4)}, IPv6 on {', '.join(v6)}",
            "use one family for all hosts, or set cluster_allow_mixed_families: true",
        )


# --- topology ---------------------------------------------------------------


def _layout(topology, nodes, cfg, problems):
    """Per host: which role-specific facts apply (ranks, head address, internal ports)."""
    names = list(nodes)
    if topology == "single":
        return {n: {"serves_api": True, "internal": []} for n in names}
    if topology == "disaggregated":
        for wanted in ("prefill", "decode"):
            if not any(nodes[n]["role"] == wanted for n in names):
                problems.add(
                    None,
                    "cluster_node_role",
                    f"no host has role {wanted}",
                    "disaggregated serving needs at least one prefill and one decode host",
                )
        key = "nixl" if cfg["cluster_kv_connector"] == "NixlConnector" else "kv"
        return {n: {"serves_api": True, "internal": [key]} for n in names}
    heads = [n for n in names if nodes[n]["role"] == "head"]
    if len(heads) != 1:
        problems.add(
            heads[1] if heads else None,
            "cluster_node_role",
            f"{len(heads)} hosts have role head" + (f" ({', '.join(heads)})" if heads else ""),
            "mark exactly one host cluster_node_role: head, the others worker",
        )
        return {}
    order = heads + [n for n in names if n != heads[0]]
    if topology == "data_parallel":
        return _layout_dp(order, nodes, cfg, problems)
    return _layout_multi_node(order, cfg, problems)


def _layout_dp(order, nodes, cfg, problems):
    total = sum(nodes[n]["local"] for n in order)
    wanted = cfg["cluster_data_parallel_size"]
    if wanted is not None and _int(wanted) != total:
        detail = ", ".join(f"{n}: {nodes[n]['local']}" for n in order)
        problems.add(
            None,
            "cluster_data_parallel_size",
            f"is {wanted} but the hosts' cluster_data_parallel_size_local add up "
            f"to {total} ({detail})",
            "make cluster_data_parallel_size the sum of the local sizes, or unset it",
        )
    layout, rank = {}, 0
    for name in order:
        layout[name] = {
            "serves_api": name == order[0],
            "head": order[0],
            "size": total,
            "start_rank": rank,
            "internal": ["dp_rpc"] if name == order[0] else [],
        }
        rank += nodes[name]["local"]
    return layout


def _layout_multi_node(order, cfg, problems):
    tp, pp = cfg["cluster_tensor_parallel_size"], cfg["cluster_pipeline_parallel_size"]
    if tp and pp and (tp * pp) % len(order):  # None: _parallel_sizes said why
        problems.add(
            None,
            "cluster_tensor_parallel_size",
            f"tensor ({tp}) x pipeline ({pp}) parallel size does not split "
            f"evenly over {len(order)} nodes",
            "choose sizes whose product is a multiple of the number of nodes",
        )
    return {
        name: {
            "serves_api": rank == 0,
            "head": order[0],
            "rank": rank,
            "nnodes": len(order),
            "internal": ["master"] if rank == 0 else [],
        }
        for rank, name in enumerate(order)
    }


def _allowances(raw, ports, layout, nodes, audiences, problems, acks):
    """Validate cluster_extra_allowances; internal ports never open to non-peers."""
    if not isinstance(raw, list):
        problems.add(
            None,
            "cluster_extra_allowances",
            f"must be a list, got {raw!r}",
            "give a list of {name, port, proto, from}",
        )
        return []
    internal = {ports[k] for lay in layout.values() for k in lay["internal"]}
    internal |= {ports[k] for k in ("dp_rpc", "master", "kv", "nixl", "stage")}
    peer_cidrs = [host_network(n["ip"]) for n in nodes.values() if n["ip"] is not None]
    trusted = peer_cidrs + list(audiences["peers"])
    result = []
    for index, item in enumerate(raw):
        where = f"cluster_extra_allowances[{index}]"
        if not isinstance(item, Mapping) or "port" not in item or "from" not in item:
            problems.add(
                None,
                where,
                f"{item!r} lacks port or from",
                "write {name: ..., port: 9400, proto: tcp, from: [CIDR, ...]}",
            )
            acks.undecided_for("world_allowance", "ephemeral_ports", "ssh_allowance")
            continue
        sources = indexed_cidrs(item["from"], f"{where}.from", None, problems)
        nets = [net for _index, net in sources]
        port, proto = _int(item["port"]), item.get("proto", "tcp")
        if port is None or not 1 <= port <= 65535:
            problems.add(
                None,
                f"{where}.port",
                f"{item['port']!r} is not a port number",
                "use a whole number from 1 to 65535",
            )
            acks.undecided_for("world_allowance", "ephemeral_ports", "ssh_allowance")
            continue
        if proto not in ("tcp", "udp"):
            problems.add(None, f"{where}.proto", f"{proto!r} is not tcp or udp", "use tcp or udp")
            acks.undecided_for("world_allowance", "ephemeral_ports", "ssh_allowance")
            continue
        if port in internal and proto == "tcp":
            _check_internal_opening(where, port, nets, peer_cidrs, audiences["peers"], problems)
        else:
            opening = (where, port, proto)
            _check_opening(opening, sources, ports, trusted, audiences["admins"], acks)
        result.append(
            {
                "name": str(item.get("name") or f"extra-{proto}-{port}"),
                "proto": proto,
                "port": port,
                "from": nets,
            }
        )
    return result


def _check_opening(opening, sources, ports, trusted, admins, acks):
    """An allowance on a port that is not internal: too-wide sources, SSH past the admins, and
    ports in the ephemeral range for anyone who is not a peer, each need an acknowledgement."""
    where, port, proto = opening
    for index, net in sources:
        if too_wide(net):
            acks.need(
                "world_allowance",
                f"{where}.from[{index}]",
                f"lets {net} ({width(net)}) reach port {port}/{proto}",
                f"list only the networks that need this port ({BOUND})",
            )
    nets = [net for _index, net in sources]
    if proto == "tcp" and port == ports["ssh"]:
        outside = [n for n in nets if not any(n in a for a in admins)]
        if outside:
            acks.need(
                "ssh_allowance",
                f"{where}.port",
                f"opens SSH (port {port}) to {', '.join(map(str, outside))}, outside "
                + (
                    "cluster_admin_cidrs"
                    if admins
                    else "cluster_admin_cidrs (empty: the firewall admits only the controller)"
                ),
                "remove the allowance and add those networks to cluster_admin_cidrs",
            )
    if _in_ephemeral_range(port):
        outside = [n for n in nets if not any(n in t for t in trusted)]
        if outside:
            acks.need(
                "ephemeral_ports",
                f"{where}.port",
                f"{port} {EPHEMERAL}; {', '.join(map(str, outside))} would reach whichever of "
                "them gets this port",
                EPHEMERAL_FIX,
            )


def _check_internal_opening(where, port, sources, peer_cidrs, extra_peers, problems):
    everyone = [s for s in sources if s.prefixlen == 0]
    if everyone:
        problems.add(
            None,
            f"{where}.from",
            f"opens internal port {port} to everyone ({everyone[0]})",
            "internal ports carry unauthenticated vLLM traffic: never open them to "
            "0.0.0.0/0 or ::/0; add trusted hosts to cluster_extra_peer_cidrs instead",
        )
        return
    trusted = list(peer_cidrs) + list(extra_peers)
    outside = [s for s in sources if not any(s in t for t in trusted)]
    if outside:
        problems.add(
            None,
            f"{where}.from",
            f"opens internal port {port} to non-peers ({', '.join(map(str, outside))})",
            "remove the allowance; if those hosts must take part in the cluster "
            "traffic, add them to cluster_extra_peer_cidrs",
        )


# --- output -----------------------------------------------------------------


class _Shared:
    """What every host's plan draws on, built once per cluster.

    The peer networks of a host are every cluster address and extra peer merged, less the
    host's own addresses: the merged prefixes are computed once, and each host's list is that
    list with only the prefixes holding its own addresses split (a binary search finds them).
    The result is the prefixes that merging the other hosts' addresses with the extra peers
    gives, exactly (a maximal prefix that loses an address splits only into prefixes inside
    itself), in O(log N) work per host besides copying the list.
    """

    def __init__(self, nodes, networks, ports, clients, monitoring, admins, extra, allowances):
        self.nodes, self.ports = nodes, ports
        self.router_nodes = None  # disaggregated: the router's node lists, built once
        self.networks = [str(n) for n in networks]
        self.audiences = {
            "clients": split_families(clients),
            "monitoring": split_families(monitoring),
            "admins": split_families(admins),
        }
        self.allowances = [{**a, "from": split_families(a["from"])} for a in allowances]
        self.has_monitoring = bool(monitoring)
        self.ips = {n: str(node["ip"]) for n, node in nodes.items()}
        # Addresses as (family, integer): hashing and comparing them is cheap.
        self.own = {
            n: {(a.version, int(a)) for a in _cluster_addresses(node)} for n, node in nodes.items()
        }
        self.holders = {}
        for owned in self.own.values():
            for key in owned:
                self.holders[key] = self.holders.get(key, 0) + 1
        extra_set = netaddr.IPSet(extra)
        self.extra = {v: [] for v in (4, 6)}
        for span in extra_set.iter_ipranges():
            self.extra[span.version].append((span.first, span.last))
        everything = netaddr.IPSet(
            [*(host_network(netaddr.IPAddress(i, v)) for v, i in self.holders), *extra]
        )
        self.merged = {v: [] for v in (4, 6)}
        for net in everything.iter_cidrs():
            self.merged[net.version].append((net.first, net.prefixlen, str(net)))
        self.starts = {v: [first for first, _p, _s in nets] for v, nets in self.merged.items()}
        self.strings = {v: [text for _f, _p, text in nets] for v, nets in self.merged.items()}

    def peer_hosts(self, name):
        peers = dict(self.ips)
        del peers[name]
        return peers

    def peers(self, name):
        """``split_families`` of every other host's cluster addresses and the extra peers."""
        # An address leaves the set only if no other host holds it and no extra peer covers it.
        gone = {4: [], 6: []}
        for key in self.own[name]:
            if self.holders[key] == 1 and not self._in_extra(*key):
                gone[key[0]].append(key[1])
        return {f"ipv{v}": self._without(v, gone[v]) for v in (4, 6)}

    def _in_extra(self, version, value):
        spans = self.extra[version]
        index = bisect.bisect_right(spans, (value, float("inf"))) - 1
        return index >= 0 and spans[index][0] <= value <= spans[index][1]

    def _without(self, version, gone):
        strings = self.strings[version]
        if not gone:
            return list(strings)
        split = {}
        for value in gone:
            split.setdefault(bisect.bisect_right(self.starts[version], value) - 1, []).append(value)
        result, done = [], 0
        for index in sorted(split):
            first, prefixlen, _text = self.merged[version][index]
            result += strings[done:index]
            result += _block_without(version, first, prefixlen, split[index])
            done = index + 1
        return result + strings[done:]


def _block_without(version, first, prefixlen, values):
    """The prefixes of one aligned block less some of its addresses, in address order."""
    bits = 32 if version == 4 else 128
    if len(values) > 1:
        block = netaddr.IPNetwork((first, prefixlen), version=version)
        rest = netaddr.IPSet([block]) - netaddr.IPSet(netaddr.IPAddress(v, version) for v in values)
        return [str(n) for n in rest.iter_cidrs()]
    # One address: at each level below the block's prefix, the half without it stays whole.
    (value,) = values
    pieces = []
    for length in range(prefixlen + 1, bits + 1):
        size = 1 << (bits - length)
        start = (value >> (bits - length)) << (bits - length)
        pieces.append((start ^ size, length))
    pieces.sort()
    return [_prefix(version, start, length) for start, length in pieces]


def _prefix(version, start, length):
    """A prefix as netaddr writes it (IPv4 by hand: the bulk of the work on large clusters)."""
    if version == 4:
        return f"{start >> 24}.{(start >> 16) & 255}.{(start >> 8) & 255}.{start & 255}/{length}"
    return str(netaddr.IPNetwork((start, length), version=6))


def _plan(name, node, shared, topology, lay, routes, cfg):
    ip, iface, ports = node["ip"], node["iface"], shared.ports
    api = _api(node, ports, routes) if lay["serves_api"] else None
    if api and topology == "disaggregated":
        api["router"] = _router(shared, routes)
    internal = sorted({ports[k] for k in lay["internal"]})
    exposure = [{"name": "ssh", "proto": "tcp", "port": ports["ssh"], "audience": "admins"}]
    if api:
        exposure.append(
            {"name": "api", "proto": "tcp", "port": ports["api"], "audience": "clients"}
        )
        if shared.has_monitoring:
            exposure.append(
                {
                    "name": "api-monitoring",
                    "proto": "tcp",
                    "port": ports["api"],
                    "audience": "monitoring",
                }
            )
    exposure += [
        {"name": k, "proto": "tcp", "port": ports[k], "audience": "peers"} for k in lay["internal"]
    ]
    exposure += [
        {
            "name": a["name"],
            "proto": a["proto"],
            "port": a["port"],
            "audience": "custom",
            "from": _families_copy(a["from"]),
        }
        for a in shared.allowances
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "host": name,
        "topology": topology,
        "role": node["role"],
        "host_ip": str(ip),
        "family": f"ipv{ip.version}",
        "cluster_iface": iface,
        "cluster_networks": list(shared.networks),
        "peer_hosts": shared.peer_hosts(name),
        "peers": shared.peers(name),
        "clients": _families_copy(shared.audiences["clients"]),
        "monitoring": _families_copy(shared.audiences["monitoring"]),
        "admins": _families_copy(shared.audiences["admins"]),
        "ports": dict(ports),
        "api": api,
        "internal_ports": internal,
        "exposure": exposure,
        "vllm": {
            "args": _args(name, node, shared.nodes, topology, lay, ports, cfg),
            "env": _env(node, ports, topology, cfg),
        },
    }


def _families_copy(families):
    """Each plan gets lists of its own (a consumer that edits one host's plan edits no other)."""
    return {"ipv4": list(families["ipv4"]), "ipv6": list(families["ipv6"])}


def _api(node, ports, routes):
    """Where the gateway listens, what it forwards, and vLLM's unix socket behind it."""
    api = {
        "address": str(node["api"]),
        "port": ports["api"],
        "routes": [{"path": p, "methods": list(_api_routes.methods_of(p))} for p in routes],
        "monitoring_routes": list(_api_routes.MONITORING),
        "socket": API_SOCKET,
        "socket_group": API_SOCKET_GROUP,
    }
    return api


def _router(shared, routes):
    """Where this API node's router listens (loopback), what it routes, and to which nodes.

    Each prefill and decode node is reached through its gateway (the address the gateway's
    certificate names, the API port); a prefill node's answer must name its own side channel.
    """
    if shared.router_nodes is None:
        nodes, port = {"prefill": [], "decode": []}, shared.ports["api"]
        for name, node in shared.nodes.items():
            api = node["api"]
            address = str(node["ip"] if str(api) in ("0.0.0.0", "::") else api)
            entry = {"host": name, "url": f"https://{bracket(address)}:{port}"}
            if node["role"] == "prefill":
                entry.update(kv_host=str(node["ip"]), kv_port=shared.ports["nixl"])
            nodes[node["role"]].append(entry)
        shared.router_nodes = nodes
    return {
        "address": ROUTER_ADDRESS,
        "port": shared.ports["router"],
        "routes": [p for p in routes if p in ROUTER_ROUTES],
        "prefill": [dict(e) for e in shared.router_nodes["prefill"]],
        "decode": [dict(e) for e in shared.router_nodes["decode"]],
    }


def _cluster_addresses(node):
    """host_ip and the host's other global addresses on the cluster interface (either family).

    A dual-stack peer also talks over its other family on the same link (NCCL and gloo pick
    addresses by interface), so the firewall must admit both.
    """
    others = [
        a["ip"]
        for a in node["addresses"]
        if a["iface"] == node["iface"]
        and a["ip"] != node["ip"]
        and not (a["ip"].is_loopback() or a["ip"].is_link_local())
    ]
    return [node["ip"], *others]


def _args(name, node, nodes, topology, lay, ports, cfg):
    args = []
    if lay["serves_api"]:
        # vLLM serves its API on the unix socket only (it ignores --host/--port with --uds);
        # the gateway listens on the plan's api address and port.
        args += ["--uds", API_SOCKET]
    tp, pp = str(cfg["cluster_tensor_parallel_size"]), str(cfg["cluster_pipeline_parallel_size"])
    args += ["--tensor-parallel-size", tp, "--pipeline-parallel-size", pp]
    if topology == "data_parallel":
        args += [
            "--data-parallel-size",
            str(lay["size"]),
            "--data-parallel-size-local",
            str(node["local"]),
            "--data-parallel-address",
            str(nodes[lay["head"]]["ip"]),
            "--data-parallel-rpc-port",
            str(ports["dp_rpc"]),
        ]
        if not lay["serves_api"]:
            args += ["--headless", "--data-parallel-start-rank", str(lay["start_rank"])]
    elif topology == "multi_node":
        args += [
            "--nnodes",
            str(lay["nnodes"]),
            "--node-rank",
            str(lay["rank"]),
            "--master-addr",
            str(nodes[lay["head"]]["ip"]),
            "--master-port",
            str(ports["master"]),
        ]
        if lay["rank"]:
            args.append("--headless")
    elif topology == "disaggregated":
        args += [
            "--kv-transfer-config",
            json.dumps(_kv_config(node, ports, cfg), sort_keys=True, separators=(",", ":")),
        ]
    return args


def _kv_config(node, ports, cfg):
    connector = cfg["cluster_kv_connector"]
    role = "kv_producer" if node["role"] == "prefill" else "kv_consumer"
    if connector == "NixlConnector":
        # vLLM 0.32 deprecates kv_both for NIXL; the KV buffer device is the platform's
        # (host memory on the CPU build, NIXL DRAM over UCX). The extra config only when set,
        # as numbers (checked above), so a cluster without it keeps its argv.
        kv = {"kv_connector": connector, "kv_role": role}
        extra = cfg.get("cluster_kv_extra_config") or {}
        if extra:
            kv["kv_connector_extra_config"] = {k: _int(v) for k, v in extra.items()}
        return kv
    return {
        "kv_connector": connector,
        "kv_role": role,
        "kv_ip": str(node["ip"]),
        "kv_port": ports["kv"],
        "kv_connector_extra_config": dict(cfg.get("cluster_kv_extra_config") or {}),
    }


def _env(node, ports, topology, cfg):
    iface = node["iface"]
    env = {
        "VLLM_HOST_IP": str(node["ip"]),
        "GLOO_SOCKET_IFNAME": iface,
        "NCCL_SOCKET_IFNAME": iface,
        "TP_SOCKET_IFNAME": iface,
    }
    if topology == "disaggregated" and cfg["cluster_kv_connector"] == "NixlConnector":
        env["VLLM_NIXL_SIDE_CHANNEL_HOST"] = str(node["ip"])
        env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(ports["nixl"])
        # NIXL moves the KV blocks over UCX, whose TCP transport listens on kernel-chosen ports
        # of every interface it may use: only cluster_iface (where peers are trusted).
        env["UCX_NET_DEVICES"] = iface
    return env
