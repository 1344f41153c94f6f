# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cluster_plan: happy paths per topology and every validation error."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter.cluster_plan import FilterModule
from ansible_collections.hardened.vllm.plugins.plugin_utils import _api_routes
from ansible_collections.hardened.vllm.plugins.plugin_utils._plan import (
    ACCEPTABLE_RISKS,
    API_SOCKET,
    API_SOCKET_GROUP,
    CLUSTER_WIDE,
    HOST_DEFAULTS,
    HOST_VARS,
    SETTING_DEFAULTS,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "facts"
# Real `setup gather_subset=network` output of a Debian 12 VM (eth0 dual-stack, lo, 2 ifb).
RECORDED = json.loads((FIXTURES / "debian12_vm_network.json").read_text())
cluster_plan = FilterModule().filters()["cluster_plan"]


def facts(ipv4=None, ipv6=None, extra_v4=()):
    """The recorded facts with eth0's addresses replaced (None removes that family)."""
    data = copy.deepcopy(RECORDED)
    eth0 = data["eth0"]
    if ipv4:
        eth0["ipv4"]["address"] = ipv4
    else:
        del eth0["ipv4"]
    eth0["ipv4_secondaries"] = [{"address": a, "prefix": "24"} for a in extra_v4]
    eth0["ipv6"] = [a for a in eth0["ipv6"] if a["scope"] == "link"]
    if ipv6:
        eth0["ipv6"].insert(0, {"address": ipv6, "prefix": "64", "scope": "global"})
    return data


def host(ipv4=None, ipv6=None, **variables):
    return {"ansible_facts": facts(ipv4, ipv6, variables.pop("extra_v4", ())), **variables}


def plan(hosts, who=None, **settings):
    return cluster_plan(hosts, list(hosts), settings, who)


def fails(hosts, match, **settings):
    with pytest.raises(AnsibleFilterError, match=match) as err:
        plan(hosts, **settings)
    return str(err.value)


DP2 = {
    "node1": host("10.0.0.11", cluster_node_role="head"),
    "node2": host("10.0.0.12", cluster_node_role="worker"),
}
DP_SETTINGS = {
    "cluster_topology": "data_parallel",
    "cluster_network": ["10.0.0.0/24"],
    "cluster_client_cidrs": ["192.0.2.0/24"],
    "cluster_admin_cidrs": ["198.51.100.7/32"],
}


# --- happy paths --------------------------------------------------------------


def test_recorded_facts_single_node_ipv4():
    hosts = {"gpu1": {"ansible_facts": RECORDED, "cluster_host_ip": "192.0.2.2"}}
    p = plan(hosts, "gpu1", cluster_client_cidrs=["203.0.113.0/24"])
    assert p["host_ip"] == "192.0.2.2"
    assert p["cluster_iface"] == "eth0"
    assert p["role"] == "single"
    assert p["peers"] == {"ipv4": [], "ipv6": []}
    assert p["api"] == {
        "address": "192.0.2.2",
        "port": 8000,
        "socket": "/run/hardened-vllm/api.sock",
        "socket_group": "vllm-api",
        "routes": [
            {"path": "/v1/chat/completions", "methods": ["POST"]},
            {"path": "/v1/completions", "methods": ["POST"]},
            {"path": "/v1/models", "methods": ["GET"]},
        ],
        "monitoring_routes": ["/health", "/metrics"],
    }
    assert p["internal_ports"] == []
    assert p["vllm"]["args"][:2] == ["--uds", "/run/hardened-vllm/api.sock"]
    assert "--host" not in p["vllm"]["args"] and "--port" not in p["vllm"]["args"]
    assert p["vllm"]["env"]["VLLM_HOST_IP"] == "192.0.2.2"
    assert p["vllm"]["env"]["GLOO_SOCKET_IFNAME"] == "eth0"
    assert p["clients"] == {"ipv4": ["203.0.113.0/24"], "ipv6": []}
    assert p["monitoring"] == {"ipv4": [], "ipv6": []}
    assert [e["name"] for e in p["exposure"]] == ["ssh", "api"]


def test_two_node_data_parallel():
    plans = plan(DP2, **DP_SETTINGS)
    head, worker = plans["node1"], plans["node2"]
    assert head["role"] == "head" and worker["role"] == "worker"
    assert head["peer_hosts"] == {"node2": "10.0.0.12"}
    assert head["peers"] == {"ipv4": ["10.0.0.12/32"], "ipv6": []}
    assert worker["peers"]["ipv4"] == ["10.0.0.11/32"]
    assert head["internal_ports"] == [29550]
    assert worker["internal_ports"] == []
    assert worker["api"] is None
    assert "--headless" not in head["vllm"]["args"]
    args = worker["vllm"]["args"]
    assert args[args.index("--data-parallel-start-rank") + 1] == "1"
    assert args[args.index("--data-parallel-address") + 1] == "10.0.0.11"
    assert args[args.index("--data-parallel-size") + 1] == "2"
    assert "--headless" in args and "--host" not in args
    assert [e["audience"] for e in head["exposure"]] == ["admins", "clients", "peers"]
    assert [e["name"] for e in worker["exposure"]] == ["ssh"]
    assert head["admins"]["ipv4"] == ["198.51.100.7/32"]


def test_data_parallel_ranks_follow_local_sizes_with_head_first():
    hosts = {
        "w1": host("10.0.0.12", cluster_node_role="worker", cluster_data_parallel_size_local=2),
        "h": host("10.0.0.11", cluster_node_role="head", cluster_data_parallel_size_local=4),
        "w2": host("10.0.0.13", cluster_node_role="worker", cluster_data_parallel_size_local=2),
    }
    plans = plan(hosts, **{**DP_SETTINGS, "cluster_data_parallel_size": 8})
    ranks = {n: p["vllm"]["args"] for n, p in plans.items()}
    assert ranks["w1"][ranks["w1"].index("--data-parallel-start-rank") + 1] == "4"
    assert ranks["w2"][ranks["w2"].index("--data-parallel-start-rank") + 1] == "6"
    assert ranks["h"][ranks["h"].index("--data-parallel-size-local") + 1] == "4"


def test_ipv6_cluster_derived_from_network():
    hosts = {
        "a": host(None, "fd10::11", cluster_node_role="head"),
        "b": host(None, "fd10::12", cluster_node_role="worker"),
    }
    p = plan(
        hosts,
        "a",
        cluster_topology="data_parallel",
        cluster_network="fd10::/64",
        cluster_client_cidrs=["2001:db8::/48"],
    )
    assert p["host_ip"] == "fd10::11" and p["family"] == "ipv6"
    assert p["peers"] == {"ipv4": [], "ipv6": ["fd10::12/128"]}
    assert p["clients"]["ipv6"] == ["2001:db8::/48"]


def test_dual_stack_hosts_pick_first_network_and_keep_extra_peers_per_family():
    hosts = {
        "a": host("10.0.0.11", "fd10::11", cluster_node_role="head"),
        "b": host("10.0.0.12", "fd10::12", cluster_node_role="worker"),
    }
    p = plan(
        hosts,
        "b",
        cluster_topology="data_parallel",
        cluster_network=["fd10::/64", "10.0.0.0/24"],
        cluster_extra_peer_cidrs=["10.0.9.0/24", "fd99::/64"],
    )
    assert p["host_ip"] == "fd10::12"
    # The peer's IPv4 address on the same interface is a peer too (gloo/NCCL may use it);
    # link-local and loopback addresses are not.
    assert p["peers"] == {
        "ipv4": ["10.0.0.11/32", "10.0.9.0/24"],
        "ipv6": ["fd10::11/128", "fd99::/64"],
    }
    assert p["peer_hosts"] == {"a": "fd10::11"}


def test_four_node_tensor_and_pipeline_parallel():
    hosts = {
        f"n{i}": host(f"10.0.0.{10 + i}", cluster_node_role="head" if i == 3 else "worker")
        for i in range(4)
    }
    plans = plan(
        hosts,
        cluster_topology="multi_node",
        cluster_network=["10.0.0.0/24"],
        cluster_tensor_parallel_size=8,
        cluster_pipeline_parallel_size=2,
        cluster_ports={"master": 29600},
    )
    ranks = {}
    for name, p in plans.items():
        args = p["vllm"]["args"]
        ranks[name] = int(args[args.index("--node-rank") + 1])
        assert args[args.index("--master-addr") + 1] == "10.0.0.13"
        assert args[args.index("--master-port") + 1] == "29600"
        assert args[args.index("--nnodes") + 1] == "4"
        assert args[args.index("--tensor-parallel-size") + 1] == "8"
        assert ("--headless" in args) == (name != "n3")
    assert ranks == {"n3": 0, "n0": 1, "n1": 2, "n2": 3}
    assert plans["n3"]["internal_ports"] == [29600]
    assert plans["n3"]["api"]["port"] == 8000 and plans["n0"]["api"] is None


def test_prefill_decode_with_nixl():
    hosts = {
        "p": host("10.0.0.11", cluster_node_role="prefill"),
        "d": host("10.0.0.12", cluster_node_role="decode"),
    }
    plans = plan(hosts, cluster_topology="disaggregated", cluster_network=["10.0.0.0/24"])
    for name, p in plans.items():
        kv = json.loads(p["vllm"]["args"][p["vllm"]["args"].index("--kv-transfer-config") + 1])
        role = {"p": "kv_producer", "d": "kv_consumer"}[name]
        assert kv == {"kv_connector": "NixlConnector", "kv_role": role}
        assert p["vllm"]["env"]["VLLM_NIXL_SIDE_CHANNEL_HOST"] == p["host_ip"]
        assert p["vllm"]["env"]["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "5600"
        # UCX (NIXL's transport) listens on the cluster interface only, where peers are let in.
        env = p["vllm"]["env"]
        assert env["UCX_NET_DEVICES"] == env["GLOO_SOCKET_IFNAME"] == "eth0"
        assert p["internal_ports"] == [5600]
        assert p["api"]["address"] == p["host_ip"], name


def test_nixl_extra_config_is_rendered_as_numbers_and_only_when_set():
    hosts = {
        "p": host("10.0.0.11", cluster_node_role="prefill"),
        "d": host("10.0.0.12", cluster_node_role="decode"),
    }

    def kv_of(plans, name):
        args = plans[name]["vllm"]["args"]
        return json.loads(args[args.index("--kv-transfer-config") + 1])

    settings = {"cluster_topology": "disaggregated", "cluster_network": ["10.0.0.0/24"]}
    plain = plan(hosts, **settings)
    assert kv_of(plain, "p") == {"kv_connector": "NixlConnector", "kv_role": "kv_producer"}
    leased = plan(
        hosts, **settings, cluster_kv_extra_config={"kv_lease_duration": "300", "num_threads": 2}
    )
    for name, role in (("p", "kv_producer"), ("d", "kv_consumer")):
        assert kv_of(leased, name) == {
            "kv_connector": "NixlConnector",
            "kv_role": role,
            "kv_connector_extra_config": {"kv_lease_duration": 300, "num_threads": 2},
        }


def test_prefill_decode_with_p2p_nccl():
    hosts = {
        "p": host("10.0.0.11", cluster_node_role="prefill"),
        "d": host("10.0.0.12", cluster_node_role="decode"),
    }
    plans = plan(
        hosts,
        cluster_topology="disaggregated",
        cluster_network=["10.0.0.0/24"],
        cluster_kv_connector="P2pNcclConnector",
        cluster_kv_extra_config={"proxy_ip": "10.0.0.5", "proxy_port": "30001"},
    )
    args = plans["p"]["vllm"]["args"]
    kv = json.loads(args[args.index("--kv-transfer-config") + 1])
    assert kv["kv_role"] == "kv_producer" and kv["kv_ip"] == "10.0.0.11"
    assert kv["kv_port"] == 14579
    assert kv["kv_connector_extra_config"]["proxy_ip"] == "10.0.0.5"
    assert plans["d"]["internal_ports"] == [14579]
    assert "VLLM_NIXL_SIDE_CHANNEL_HOST" not in plans["d"]["vllm"]["env"]


def test_extra_allowance_from_peers_and_custom_port():
    p = plan(
        DP2,
        "node1",
        **DP_SETTINGS,
        cluster_extra_peer_cidrs=["10.0.1.0/24"],
        cluster_extra_allowances=[
            {"name": "scrape", "port": 9400, "from": ["192.0.2.9"]},
            {"port": 29550, "proto": "tcp", "from": ["10.0.1.0/25"]},
        ],
    )
    custom = [e for e in p["exposure"] if e["audience"] == "custom"]
    assert custom[0] == {
        "name": "scrape",
        "proto": "tcp",
        "port": 9400,
        "audience": "custom",
        "from": {"ipv4": ["192.0.2.9/32"], "ipv6": []},
    }
    assert custom[1]["name"] == "extra-tcp-29550"


def test_api_on_wildcard_is_allowed_and_explicit():
    hosts = {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11", cluster_api_address="0.0.0.0")}
    assert plan(hosts, "a")["api"]["address"] == "0.0.0.0"


def test_returns_every_host_without_host_argument():
    assert sorted(plan(DP2, **DP_SETTINGS)) == ["node1", "node2"]


# --- the gateway: API on a unix socket, monitoring, route allowlist --------------------------


def test_api_nodes_serve_vllm_on_the_unix_socket_and_headless_nodes_on_nothing():
    plans = plan(DP2, **DP_SETTINGS)
    head, worker = plans["node1"], plans["node2"]
    assert head["api"]["socket"] == API_SOCKET == "/run/hardened-vllm/api.sock"
    assert head["api"]["socket_group"] == API_SOCKET_GROUP == "vllm-api"
    assert (head["api"]["address"], head["api"]["port"]) == ("10.0.0.11", 8000)
    args = head["vllm"]["args"]
    assert args[args.index("--uds") + 1] == API_SOCKET
    assert "--host" not in args and "--port" not in args
    assert not {"--uds", "--host", "--port"} & set(worker["vllm"]["args"])


def test_multi_node_rank_zero_alone_gets_the_socket():
    hosts = {
        "n0": host("10.0.0.10", cluster_node_role="head"),
        "n1": host("10.0.0.11", cluster_node_role="worker"),
    }
    plans = plan(
        hosts,
        cluster_topology="multi_node",
        cluster_network=["10.0.0.0/24"],
        cluster_tensor_parallel_size=2,
    )
    assert plans["n0"]["vllm"]["args"][:2] == ["--uds", API_SOCKET]
    assert "--uds" not in plans["n1"]["vllm"]["args"] and plans["n1"]["api"] is None


def test_monitoring_is_split_by_family_and_opens_the_api_port_on_api_nodes_only():
    plans = plan(
        DP2,
        **DP_SETTINGS,
        cluster_monitoring_cidrs=["10.0.5.9", "2001:db8:5::/64", "10.0.5.0/24"],
    )
    head, worker = plans["node1"], plans["node2"]
    expected = {"ipv4": ["10.0.5.0/24"], "ipv6": ["2001:db8:5::/64"]}
    assert head["monitoring"] == worker["monitoring"] == expected
    assert head["exposure"][1:3] == [
        {"name": "api", "proto": "tcp", "port": 8000, "audience": "clients"},
        {"name": "api-monitoring", "proto": "tcp", "port": 8000, "audience": "monitoring"},
    ]
    assert [e["audience"] for e in worker["exposure"]] == ["admins"]
    assert head["api"]["monitoring_routes"] == ["/health", "/metrics"]


def test_monitoring_follows_the_api_port():
    p = plan(
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        "a",
        cluster_ports={"api": 8443},
        cluster_monitoring_cidrs=["10.0.5.0/24"],
    )
    assert [(e["name"], e["port"]) for e in p["exposure"]] == [
        ("ssh", 22),
        ("api", 8443),
        ("api-monitoring", 8443),
    ]


def test_routes_are_sorted_deduplicated_and_carry_the_catalog_methods():
    p = plan(
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        "a",
        cluster_api_routes=["/v1/embeddings", "/ping", "/v1/models", "/v1/embeddings"],
    )
    assert p["api"]["routes"] == [
        {"path": "/ping", "methods": ["GET", "POST"]},
        {"path": "/v1/embeddings", "methods": ["POST"]},
        {"path": "/v1/models", "methods": ["GET"]},
    ]


def test_acknowledged_control_docs_and_unknown_routes_are_forwarded():
    routes = ["/v1/models", "/sleep", "/docs", "/v1/private"]
    p = plan(
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        "a",
        cluster_api_routes=routes,
        cluster_api_accept_routes=["/sleep", "/docs", "/v1/private"],
    )
    assert p["api"]["routes"] == [
        {"path": "/docs", "methods": ["GET"]},
        {"path": "/sleep", "methods": ["POST"]},
        {"path": "/v1/models", "methods": ["GET"]},
        # outside the catalog: the methods the audit tries on unknown paths
        {"path": "/v1/private", "methods": ["GET", "POST"]},
    ]


def test_an_empty_allowlist_forwards_nothing():
    p = plan({"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")}, "a", cluster_api_routes=[])
    assert p["api"]["routes"] == [] and p["api"]["monitoring_routes"] == ["/health", "/metrics"]


def test_unset_gateway_settings_take_the_defaults():
    p = plan(
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        "a",
        cluster_monitoring_cidrs=None,
        cluster_api_routes=None,
        cluster_api_accept_routes=None,
    )
    assert [r["path"] for r in p["api"]["routes"]] == [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
    ]
    assert p["monitoring"] == {"ipv4": [], "ipv6": []}


# --- validation errors ----------------------------------------------------------

ERRORS = [
    (
        "not_an_ip",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0")},
        {},
        r"host a, variable cluster_host_ip: '10.0.0' is not an IP address",
    ),
    (
        "not_on_host",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.99")},
        {},
        r"host a, variable cluster_host_ip: 10.0.0.99 is not configured on a \(its addresses: "
        r"10.0.0.11 on eth0",
    ),
    (
        "loopback",
        {"a": host("10.0.0.11", cluster_host_ip="127.0.0.1")},
        {},
        r"127.0.0.1 is a loopback address",
    ),
    ("wildcard", {"a": host("10.0.0.11", cluster_host_ip="0.0.0.0")}, {}, r"0.0.0.0 is a wildcard"),
    (
        "link_local",
        {"a": host("10.0.0.11", cluster_host_ip="fe80::fc:ff:fe00:1")},
        {},
        r"fe80::fc:ff:fe00:1 is a link-local address",
    ),
    (
        "duplicate_ip",
        {
            "a": host("10.0.0.11", cluster_host_ip="10.0.0.11"),
            "b": host("10.0.0.11", cluster_host_ip="10.0.0.11"),
        },
        {},
        r"host b, variable cluster_host_ip: 10.0.0.11 is used by a and b",
    ),
    (
        "outside_network",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_network": ["10.1.0.0/16"]},
        r"10.0.0.11 is outside cluster_network",
    ),
    (
        "no_address_in_network",
        {"a": host("10.0.0.11")},
        {"cluster_network": ["10.9.0.0/24"]},
        r"host a, variable cluster_network: a has no address in 10.9.0.0/24",
    ),
    (
        "ambiguous_network",
        {"a": host("10.0.0.11", extra_v4=["10.0.0.12"])},
        {"cluster_network": ["10.0.0.0/24"]},
        r"a has several addresses in 10.0.0.0/24",
    ),
    (
        "nothing_to_derive_from",
        {"a": host("10.0.0.11")},
        {},
        r"cluster_host_ip: is not set and cluster_network is empty",
    ),
    (
        "bad_network",
        {"a": host("10.0.0.11")},
        {"cluster_network": ["10.0.0.0/33"]},
        r"cluster_network\[0\]: '10.0.0.0/33' is not an IP network",
    ),
    (
        "host_bits",
        {"a": host("10.0.0.11")},
        {"cluster_network": ["10.0.0.1/24"]},
        r"10.0.0.1/24 has host bits set. Fix: write the network address, 10.0.0.0/24",
    ),
    (
        "port_range",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_ports": {"api": 70000}},
        r"cluster_ports.api: 70000 is not a port number",
    ),
    (
        "port_type",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_ports": {"api": "http"}},
        r"cluster_ports.api: 'http' is not a port number",
    ),
    (
        "port_twice",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_ports": {"api": 29550}},
        r"port 29550 is used for api and dp_rpc",
    ),
    (
        "unknown_port",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_ports": {"metrics": 9000}},
        r"cluster_ports.metrics: is not a known port",
    ),
    (
        "client_cidr",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_client_cidrs": ["clients.example"]},
        r"cluster_client_cidrs\[0\]: 'clients.example' is not an IP network",
    ),
    (
        "client_cidr_not_list",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_client_cidrs": "10.0.0.0/8"},
        r"cluster_client_cidrs: must be a list of CIDRs",
    ),
    (
        "admin_cidr",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_admin_cidrs": ["10.0.0.0/40"]},
        r"cluster_admin_cidrs\[0\]",
    ),
    (
        "peer_cidr",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_extra_peer_cidrs": ["fd00::zz/64"]},
        r"cluster_extra_peer_cidrs\[0\]",
    ),
    (
        "internal_port_to_clients",
        DP2,
        {**DP_SETTINGS, "cluster_extra_allowances": [{"port": 29550, "from": ["192.0.2.0/24"]}]},
        r"cluster_extra_allowances\[0\].from: opens internal port 29550 to non-peers "
        r"\(192.0.2.0/24\)",
    ),
    (
        "internal_port_to_everyone",
        DP2,
        {**DP_SETTINGS, "cluster_extra_allowances": [{"port": 29501, "from": ["::/0"]}]},
        r"opens internal port 29501 to everyone \(::/0\)",
    ),
    (
        "allowance_malformed",
        DP2,
        {**DP_SETTINGS, "cluster_extra_allowances": [{"port": 1}]},
        r"cluster_extra_allowances\[0\]: .* lacks port or from",
    ),
    (
        "allowance_proto",
        DP2,
        {**DP_SETTINGS, "cluster_extra_allowances": [{"port": 9, "proto": "sctp", "from": []}]},
        r"cluster_extra_allowances\[0\].proto: 'sctp' is not tcp or udp",
    ),
    (
        "no_head",
        {
            "a": host("10.0.0.11", cluster_node_role="worker"),
            "b": host("10.0.0.12", cluster_node_role="worker"),
        },
        DP_SETTINGS,
        r"cluster_node_role: 0 hosts have role head",
    ),
    (
        "two_heads",
        {
            "a": host("10.0.0.11", cluster_node_role="head"),
            "b": host("10.0.0.12", cluster_node_role="head"),
        },
        DP_SETTINGS,
        r"host b, variable cluster_node_role: 2 hosts have role head \(a, b\)",
    ),
    (
        "role_missing",
        {"a": host("10.0.0.11"), "b": host("10.0.0.12")},
        DP_SETTINGS,
        r"host a, variable cluster_node_role: is not set; topology data_parallel needs it",
    ),
    (
        "role_wrong",
        {"a": host("10.0.0.11", cluster_node_role="prefill")},
        DP_SETTINGS,
        r"'prefill' is not a role of topology data_parallel",
    ),
    (
        "dp_ranks",
        DP2,
        {**DP_SETTINGS, "cluster_data_parallel_size": 4},
        r"cluster_data_parallel_size: is 4 but the hosts' cluster_data_parallel_size_local add up "
        r"to 2 \(node1: 1, node2: 1\)",
    ),
    (
        "dp_local",
        {"a": host("10.0.0.11", cluster_node_role="head", cluster_data_parallel_size_local=0)},
        DP_SETTINGS,
        r"host a, variable cluster_data_parallel_size_local: 0 is not a positive number",
    ),
    (
        "mixed_families",
        {
            "a": host("10.0.0.11", cluster_host_ip="10.0.0.11"),
            "b": host(None, "fd10::12", cluster_host_ip="fd10::12"),
        },
        {},
        r"host b, variable cluster_host_ip: mixed address families: IPv4 on a, IPv6 on b",
    ),
    (
        "unknown_topology",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")},
        {"cluster_topology": "ring"},
        r"cluster_topology: unknown topology 'ring'",
    ),
    (
        "tp_pp_split",
        {
            "a": host("10.0.0.11", cluster_node_role="head"),
            "b": host("10.0.0.12", cluster_node_role="worker"),
            "c": host("10.0.0.13", cluster_node_role="worker"),
        },
        {**DP_SETTINGS, "cluster_topology": "multi_node", "cluster_tensor_parallel_size": 2},
        r"does not split evenly over 3 nodes",
    ),
    (
        "no_decode",
        {"a": host("10.0.0.11", cluster_node_role="prefill")},
        {**DP_SETTINGS, "cluster_topology": "disaggregated"},
        r"no host has role decode",
    ),
    (
        "kv_connector",
        {"a": host("10.0.0.11", cluster_node_role="prefill")},
        {**DP_SETTINGS, "cluster_topology": "disaggregated", "cluster_kv_connector": "Lmcache"},
        r"unknown KV connector 'Lmcache'",
    ),
    (
        "facts_missing",
        {"a": {"cluster_host_ip": "10.0.0.11"}},
        {},
        r"host a, variable ansible_facts: network facts of this host were not gathered",
    ),
    (
        "api_address",
        {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11", cluster_api_address="192.0.2.77")},
        {},
        r"cluster_api_address: 192.0.2.77 is not configured on a",
    ),
    (
        "cluster_wide_differs",
        {
            "a": host("10.0.0.11", cluster_host_ip="10.0.0.11", cluster_topology="single"),
            "b": host("10.0.0.12", cluster_host_ip="10.0.0.12", cluster_topology="data_parallel"),
        },
        {},
        r"cluster_topology: differs between cluster hosts",
    ),
    ("empty_group", {}, {}, r"the cluster group has no hosts"),
]


@pytest.mark.parametrize(
    ("hosts", "settings", "match"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_bad_inventory_is_refused_with_host_variable_and_fix(hosts, settings, match):
    message = fails(hosts, match, **settings)
    assert "no host was changed" in message
    assert "Fix: " in message


ONE = {"a": host("10.0.0.11", cluster_host_ip="10.0.0.11")}
ACK = "remove it, or acknowledge the risk by listing {} in cluster_api_accept_routes"
PATH_FIX = (
    "write the exact path the gateway forwards, starting with / and made of letters, digits "
    "and / _ . - only, without // or .. (e.g. /v1/models)"
)
GATEWAY_ERRORS = [
    (
        "monitoring_everyone_v4",
        {"cluster_monitoring_cidrs": ["10.0.5.0/24", "0.0.0.0/0"]},
        "cluster_monitoring_cidrs[1]",
        "0.0.0.0/0 lets every address read /health and /metrics",
        "monitoring reads server metrics without a key: name your scrapers' networks",
    ),
    (
        "monitoring_everyone_v6",
        {"cluster_monitoring_cidrs": ["::/0"]},
        "cluster_monitoring_cidrs[0]",
        "::/0 lets every address read /health and /metrics",
        "monitoring reads server metrics without a key: name your scrapers' networks",
    ),
    (
        "monitoring_not_a_cidr",
        {"cluster_monitoring_cidrs": ["prometheus.example"]},
        "cluster_monitoring_cidrs[0]",
        "'prometheus.example' is not an IP network",
        "write a CIDR such as 10.0.0.0/24 or fd00::/64",
    ),
    (
        "monitoring_host_bits",
        {"cluster_monitoring_cidrs": ["10.0.5.9/24"]},
        "cluster_monitoring_cidrs[0]",
        "10.0.5.9/24 has host bits set",
        "write the network address, 10.0.5.0/24",
    ),
    (
        "monitoring_not_a_list",
        {"cluster_monitoring_cidrs": "10.0.5.0/24"},
        "cluster_monitoring_cidrs",
        "must be a list of CIDRs, got '10.0.5.0/24'",
        "write a YAML list such as [10.0.0.0/24]",
    ),
    (
        "routes_not_a_list",
        {"cluster_api_routes": "/v1/models"},
        "cluster_api_routes",
        "must be a list of path strings, got '/v1/models'",
        "write a YAML list such as [/v1/models, /v1/chat/completions]",
    ),
    (
        "routes_not_strings",
        {"cluster_api_routes": ["/v1/models", {"path": "/v1/completions"}]},
        "cluster_api_routes",
        "must be a list of path strings, got ['/v1/models', {'path': '/v1/completions'}]",
        "write a YAML list such as [/v1/models, /v1/chat/completions]",
    ),
    (
        "route_relative",
        {"cluster_api_routes": ["v1/models"]},
        "cluster_api_routes[0]",
        "'v1/models' is not a plain URL path",
        PATH_FIX,
    ),
    (
        "route_empty",
        {"cluster_api_routes": [""]},
        "cluster_api_routes[0]",
        "'' is not a plain URL path",
        PATH_FIX,
    ),
    (
        "route_query",
        {"cluster_api_routes": ["/v1/models", "/v1/models?x=1"]},
        "cluster_api_routes[1]",
        "'/v1/models?x=1' is not a plain URL path",
        PATH_FIX,
    ),
    (
        "route_pattern",
        {"cluster_api_routes": ["/v1/*"]},
        "cluster_api_routes[0]",
        "'/v1/*' is not a plain URL path",
        PATH_FIX,
    ),
    (
        "route_double_slash",
        {"cluster_api_routes": ["//v1/models"]},
        "cluster_api_routes[0]",
        "'//v1/models' is not a plain URL path",
        PATH_FIX,
    ),
    (
        "route_dot_dot",
        {"cluster_api_routes": ["/v1/../sleep"]},
        "cluster_api_routes[0]",
        "'/v1/../sleep' is not a plain URL path",
        PATH_FIX,
    ),
    (
        "route_health",
        {"cluster_api_routes": ["/v1/models", "/health"]},
        "cluster_api_routes[1]",
        "/health is a monitoring route; the gateway serves it without a key to the "
        "monitoring audience only",
        "remove it from cluster_api_routes and list the load balancers' and scrapers' "
        "networks in cluster_monitoring_cidrs",
    ),
    (
        "route_metrics_even_acknowledged",
        {"cluster_api_routes": ["/metrics"], "cluster_api_accept_routes": ["/metrics"]},
        "cluster_api_routes[0]",
        "/metrics is a monitoring route; the gateway serves it without a key to the "
        "monitoring audience only",
        "remove it from cluster_api_routes and list the load balancers' and scrapers' "
        "networks in cluster_monitoring_cidrs",
    ),
    (
        "route_control",
        {"cluster_api_routes": ["/v1/models", "/sleep"]},
        "cluster_api_routes[1]",
        "/sleep is a control route: API clients could change or stop the server "
        "(pause, sleep, weights, profiling, LoRA adapters, RPC)",
        ACK.format("/sleep") + " (control routes change or stop the server)",
    ),
    (
        "route_lora",
        {"cluster_api_routes": ["/v1/load_lora_adapter"]},
        "cluster_api_routes[0]",
        "/v1/load_lora_adapter is a control route: API clients could change or stop the "
        "server (pause, sleep, weights, profiling, LoRA adapters, RPC)",
        ACK.format("/v1/load_lora_adapter") + " (control routes change or stop the server)",
    ),
    (
        "route_docs",
        {"cluster_api_routes": ["/openapi.json"]},
        "cluster_api_routes[0]",
        "/openapi.json is a documentation route: it describes every route of the server, "
        "including the ones the gateway refuses",
        ACK.format("/openapi.json") + " (docs describe every route)",
    ),
    (
        "route_unknown",
        {"cluster_api_routes": ["/v1/models/"]},
        "cluster_api_routes[0]",
        "/v1/models/ is not in this collection's catalog of the routes vLLM 0.32 serves "
        "(plugins/plugin_utils/_api_routes.py)",
        "check the path; "
        + ACK.format("/v1/models/")
        + " (unknown routes are not vetted for this vLLM version)",
    ),
    (
        "accept_not_a_list",
        {"cluster_api_accept_routes": "/sleep"},
        "cluster_api_accept_routes",
        "must be a list of path strings, got '/sleep'",
        "write a YAML list such as [/v1/models, /v1/chat/completions]",
    ),
    (
        "accept_stale",
        {"cluster_api_routes": ["/v1/models"], "cluster_api_accept_routes": ["/sleep"]},
        "cluster_api_accept_routes[0]",
        "acknowledges '/sleep', which is not in cluster_api_routes",
        "remove the stale acknowledgement, or add the route to cluster_api_routes",
    ),
]


@pytest.mark.parametrize(
    ("settings", "variable", "what", "fix"),
    [e[1:] for e in GATEWAY_ERRORS],
    ids=[e[0] for e in GATEWAY_ERRORS],
)
def test_gateway_settings_are_refused_with_host_variable_and_fix(settings, variable, what, fix):
    message = fails(ONE, r"problem\(s\) in the cluster inventory", **settings)
    line = f"- cluster (all hosts), variable {variable}: {what}. Fix: {fix}."
    assert line in message.splitlines(), message
    assert "no host was changed" in message


TP_FIX = "set it to the number of the GPUs each model layer is split over (1 for none)"
PP_FIX = (
    "set it to the number of the pipeline stages the model's layers are split into (1 for none)"
)
PD = {
    "p": host("10.0.0.11", cluster_node_role="prefill"),
    "d": host("10.0.0.12", cluster_node_role="decode"),
}
MULTI = {
    "a": host("10.0.0.11", cluster_node_role="head"),
    "b": host("10.0.0.12", cluster_node_role="worker"),
}
# (id, hosts, settings, the whole problem line after "- ")
SETTING_ERRORS = [
    (
        "tp_zero_single",
        ONE,
        {"cluster_tensor_parallel_size": 0},
        "cluster (all hosts), variable cluster_tensor_parallel_size: 0 is not a whole number "
        f"of 1 or more. Fix: {TP_FIX}.",
    ),
    (
        "tp_negative_data_parallel",
        DP2,
        {**DP_SETTINGS, "cluster_tensor_parallel_size": -2},
        "cluster (all hosts), variable cluster_tensor_parallel_size: -2 is not a whole number "
        f"of 1 or more. Fix: {TP_FIX}.",
    ),
    (
        "tp_fraction",
        ONE,
        {"cluster_tensor_parallel_size": 2.5},
        "cluster (all hosts), variable cluster_tensor_parallel_size: 2.5 is not a whole number "
        f"of 1 or more. Fix: {TP_FIX}.",
    ),
    (
        "tp_word",
        ONE,
        {"cluster_tensor_parallel_size": "two"},
        "cluster (all hosts), variable cluster_tensor_parallel_size: 'two' is not a whole "
        f"number of 1 or more. Fix: {TP_FIX}.",
    ),
    (
        "tp_boolean",
        ONE,
        {"cluster_tensor_parallel_size": True},
        "cluster (all hosts), variable cluster_tensor_parallel_size: True is not a whole number "
        f"of 1 or more. Fix: {TP_FIX}.",
    ),
    (
        "tp_zero_multi_node",
        MULTI,
        {**DP_SETTINGS, "cluster_topology": "multi_node", "cluster_tensor_parallel_size": 0},
        "cluster (all hosts), variable cluster_tensor_parallel_size: 0 is not a whole number "
        f"of 1 or more. Fix: {TP_FIX}.",
    ),
    (
        "pp_zero_disaggregated",
        PD,
        {
            "cluster_topology": "disaggregated",
            "cluster_network": ["10.0.0.0/24"],
            "cluster_pipeline_parallel_size": 0,
        },
        "cluster (all hosts), variable cluster_pipeline_parallel_size: 0 is not a whole number "
        f"of 1 or more. Fix: {PP_FIX}.",
    ),
    (
        "pp_negative_string",
        ONE,
        {"cluster_pipeline_parallel_size": "-1"},
        "cluster (all hosts), variable cluster_pipeline_parallel_size: '-1' is not a whole "
        f"number of 1 or more. Fix: {PP_FIX}.",
    ),
    (
        "mixed_families_string",
        ONE,
        {"cluster_allow_mixed_families": "false"},
        "cluster (all hosts), variable cluster_allow_mixed_families: 'false' is not a boolean. "
        "Fix: write true or false without quotes (on the command line: "
        """-e '{"cluster_allow_mixed_families": true}').""",
    ),
    (
        "kv_extra_config_list",
        PD,
        {
            "cluster_topology": "disaggregated",
            "cluster_network": ["10.0.0.0/24"],
            "cluster_kv_connector": "P2pNcclConnector",
            "cluster_kv_extra_config": ["proxy"],
        },
        "cluster (all hosts), variable cluster_kv_extra_config: must be a mapping with string "
        "keys, got ['proxy']. Fix: write it as key: value pairs, e.g. "
        "{proxy_ip: 10.0.0.5, proxy_port: 30001}.",
    ),
    (
        "kv_extra_config_key_nixl_does_not_take",
        PD,
        {
            "cluster_topology": "disaggregated",
            "cluster_network": ["10.0.0.0/24"],
            "cluster_kv_extra_config": {"proxy_ip": "10.0.0.5"},
        },
        "cluster (all hosts), variable cluster_kv_extra_config.proxy_ip: is not a NixlConnector "
        "setting this collection passes on (only kv_lease_duration, num_threads). Fix: remove "
        "it; NixlConnector takes kv_lease_duration, num_threads.",
    ),
    (
        # "backends" would start NIXL transports whose listeners the plan does not model.
        "kv_extra_config_nixl_backends",
        PD,
        {
            "cluster_topology": "disaggregated",
            "cluster_network": ["10.0.0.0/24"],
            "cluster_kv_extra_config": {"backends": ["UCX", "MOONCAKE"]},
        },
        "cluster (all hosts), variable cluster_kv_extra_config.backends: is not a NixlConnector "
        "setting this collection passes on (only kv_lease_duration, num_threads). Fix: remove "
        "it; NixlConnector takes kv_lease_duration, num_threads.",
    ),
    (
        "kv_lease_duration_zero",
        PD,
        {
            "cluster_topology": "disaggregated",
            "cluster_network": ["10.0.0.0/24"],
            "cluster_kv_extra_config": {"kv_lease_duration": 0},
        },
        "cluster (all hosts), variable cluster_kv_extra_config.kv_lease_duration: must be a "
        "whole number of at least 1, got 0. Fix: write a number, e.g. kv_lease_duration: 120.",
    ),
    (
        "kv_lease_duration_words",
        PD,
        {
            "cluster_topology": "disaggregated",
            "cluster_network": ["10.0.0.0/24"],
            "cluster_kv_extra_config": {"kv_lease_duration": "5 min"},
        },
        "cluster (all hosts), variable cluster_kv_extra_config.kv_lease_duration: must be a "
        "whole number of at least 1, got '5 min'. Fix: write a number, e.g. "
        "kv_lease_duration: 120.",
    ),
    (
        "num_threads_negative",
        PD,
        {
            "cluster_topology": "disaggregated",
            "cluster_network": ["10.0.0.0/24"],
            "cluster_kv_extra_config": {"num_threads": -1},
        },
        "cluster (all hosts), variable cluster_kv_extra_config.num_threads: must be a whole "
        "number of at least 0, got -1. Fix: write a number, e.g. num_threads: 4.",
    ),
    (
        "kv_extra_config_without_disaggregated",
        ONE,
        {"cluster_kv_extra_config": {"kv_lease_duration": 60}},
        "cluster (all hosts), variable cluster_kv_extra_config: is only read by the KV connector "
        "of topology disaggregated, so it would be ignored. Fix: remove it, or set "
        "cluster_topology: disaggregated.",
    ),
]


@pytest.mark.parametrize(
    ("hosts", "settings", "line"),
    [e[1:] for e in SETTING_ERRORS],
    ids=[e[0] for e in SETTING_ERRORS],
)
def test_settings_are_refused_with_the_whole_message(hosts, settings, line):
    message = fails(hosts, r"problem\(s\) in the cluster inventory", **settings)
    assert f"- {line}" in message.splitlines(), message


@pytest.mark.parametrize("size", [1, 4, "2"])
def test_parallel_sizes_reach_vllm_as_whole_numbers(size):
    p = plan(ONE, "a", cluster_tensor_parallel_size=size, cluster_pipeline_parallel_size=size)
    args = p["vllm"]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == str(int(size))
    assert args[args.index("--pipeline-parallel-size") + 1] == str(int(size))


BOUND = "at most /8 for IPv4, /16 for IPv6"
EPHEMERAL = (
    "lies in the kernel's ephemeral port range 32768-60999, where NCCL, gloo, the TCPStore and "
    "ZMQ listen on ports the kernel picks"
)
EPHEMERAL_FIX = "use a port outside 32768-60999 (or below the hosts' net.ipv4.ip_local_port_range)"
# (id, hosts, settings, the problem line without its acknowledgement, the risks that accept it)
RISKY = [
    (
        "clients_everyone_v4",
        ONE,
        {"cluster_client_cidrs": ["0.0.0.0/0"]},
        "cluster_client_cidrs[0]: lets 0.0.0.0/0 (every IPv4 address) reach the API port (the "
        f"gateway asks for a key). Fix: list only the clients' own networks ({BOUND})",
        ["world_clients"],
    ),
    (
        "clients_wide_v6",
        ONE,
        {"cluster_client_cidrs": ["2001:db8::/48", "2000::/3"]},
        "cluster_client_cidrs[1]: lets 2000::/3 (wider than /16) reach the API port (the gateway "
        f"asks for a key). Fix: list only the clients' own networks ({BOUND})",
        ["world_clients"],
    ),
    (
        "admins_everyone",
        DP2,
        {**DP_SETTINGS, "cluster_admin_cidrs": ["10.99.0.0/24", "::/0"]},
        "cluster_admin_cidrs[1]: lets ::/0 (every IPv6 address) reach SSH on every node. Fix: "
        f"list only the admins' own networks or bastion hosts ({BOUND})",
        ["world_admins"],
    ),
    (
        "admins_wide",
        ONE,
        {"cluster_admin_cidrs": ["0.0.0.0/1"]},
        "cluster_admin_cidrs[0]: lets 0.0.0.0/1 (wider than /8) reach SSH on every node. Fix: "
        f"list only the admins' own networks or bastion hosts ({BOUND})",
        ["world_admins"],
    ),
    (
        "allowance_everyone",
        DP2,
        {**DP_SETTINGS, "cluster_extra_allowances": [{"port": 9400, "from": ["0.0.0.0/0"]}]},
        "cluster_extra_allowances[0].from[0]: lets 0.0.0.0/0 (every IPv4 address) reach port "
        f"9400/tcp. Fix: list only the networks that need this port ({BOUND})",
        ["world_allowance"],
    ),
    (
        "peers_wide",
        ONE,
        {"cluster_extra_peer_cidrs": ["10.0.0.0/7"]},
        "cluster_extra_peer_cidrs[0]: makes 10.0.0.0/7 (wider than /8) cluster peers, trusted on "
        "every port, where vLLM's traffic has no authentication. Fix: list only the hosts "
        f"outside the inventory that take part in the cluster traffic ({BOUND})",
        ["wide_peers"],
    ),
    (
        "monitoring_wide",
        ONE,
        {"cluster_monitoring_cidrs": ["fd00::/8"]},
        "cluster_monitoring_cidrs[0]: lets fd00::/8 (wider than /16) read /health and /metrics "
        f"without a key. Fix: name your scrapers' networks ({BOUND})",
        ["wide_monitoring"],
    ),
    (
        "allowance_ephemeral",
        DP2,
        {**DP_SETTINGS, "cluster_extra_allowances": [{"port": 40000, "from": ["192.0.2.0/24"]}]},
        f"cluster_extra_allowances[0].port: 40000 {EPHEMERAL}; 192.0.2.0/24 would reach "
        f"whichever of them gets this port. Fix: {EPHEMERAL_FIX}",
        ["ephemeral_ports"],
    ),
    (
        "allowance_ephemeral_udp_from_everyone",
        DP2,
        {
            **DP_SETTINGS,
            "cluster_extra_allowances": [{"port": 51820, "proto": "udp", "from": ["::/0"]}],
        },
        f"cluster_extra_allowances[0].port: 51820 {EPHEMERAL}; ::/0 would reach whichever of "
        f"them gets this port. Fix: {EPHEMERAL_FIX}",
        ["ephemeral_ports", "world_allowance"],
    ),
    (
        "api_port_ephemeral",
        ONE,
        {"cluster_ports": {"api": 40000}},
        f"cluster_ports.api: 40000 {EPHEMERAL}; clients would reach whichever of them gets this "
        f"port while the gateway does not hold it. Fix: {EPHEMERAL_FIX}",
        ["ephemeral_ports"],
    ),
    (
        "ssh_port_ephemeral",
        ONE,
        {"cluster_ports": {"ssh": 60999}},
        f"cluster_ports.ssh: 60999 {EPHEMERAL}; admins would reach whichever of them gets this "
        f"port while sshd does not hold it. Fix: {EPHEMERAL_FIX}",
        ["ephemeral_ports"],
    ),
    (
        "allowance_on_ssh_past_the_admins",
        DP2,
        {**DP_SETTINGS, "cluster_extra_allowances": [{"port": 22, "from": ["192.0.2.0/24"]}]},
        "cluster_extra_allowances[0].port: opens SSH (port 22) to 192.0.2.0/24, outside "
        "cluster_admin_cidrs. Fix: remove the allowance and add those networks to "
        "cluster_admin_cidrs",
        ["ssh_allowance"],
    ),
    (
        "allowance_on_moved_ssh_without_admins",
        ONE,
        {
            "cluster_ports": {"ssh": 2222},
            "cluster_extra_allowances": [{"port": 2222, "from": ["198.51.100.0/24"]}],
        },
        "cluster_extra_allowances[0].port: opens SSH (port 2222) to 198.51.100.0/24, outside "
        "cluster_admin_cidrs (empty: the firewall admits only the controller). Fix: remove the "
        "allowance and add those networks to cluster_admin_cidrs",
        ["ssh_allowance"],
    ),
]


@pytest.mark.parametrize(
    ("hosts", "settings", "line", "risks"), [e[1:] for e in RISKY], ids=[e[0] for e in RISKY]
)
def test_risky_openings_are_refused_unless_acknowledged(hosts, settings, line, risks):
    message = fails(hosts, r"problem\(s\) in the cluster inventory", **settings)
    ack = f", or acknowledge the risk with cluster_accept_risks: [{risks[0]}]."
    assert f"- cluster (all hosts), variable {line}{ack}" in message.splitlines(), message
    assert plan(hosts, **settings, cluster_accept_risks=risks)


SAFE_OPENINGS = [
    ("clients_at_the_bound", ONE, {"cluster_client_cidrs": ["10.0.0.0/8", "2001::/16"]}),
    (
        "ephemeral_port_from_peers_only",
        DP2,
        {
            **DP_SETTINGS,
            "cluster_extra_peer_cidrs": ["10.0.9.0/24"],
            "cluster_extra_allowances": [{"port": 40000, "from": ["10.0.0.12", "10.0.9.0/25"]}],
        },
    ),
    (
        "ssh_allowance_inside_the_admins",
        DP2,
        {**DP_SETTINGS, "cluster_extra_allowances": [{"port": 22, "from": ["198.51.100.7"]}]},
    ),
    (
        "udp_on_the_ssh_port",
        ONE,
        {"cluster_extra_allowances": [{"port": 22, "proto": "udp", "from": ["192.0.2.0/24"]}]},
    ),
    (
        "old_ssh_port_after_moving_ssh",
        ONE,
        {
            "cluster_ports": {"ssh": 2222},
            "cluster_extra_allowances": [{"port": 22, "from": ["192.0.2.0/24"]}],
        },
    ),
    ("just_below_the_ephemeral_range", ONE, {"cluster_ports": {"api": 32767}}),
    ("just_above_the_ephemeral_range", ONE, {"cluster_ports": {"api": 61000}}),
]


@pytest.mark.parametrize(
    ("hosts", "settings"), [e[1:] for e in SAFE_OPENINGS], ids=[e[0] for e in SAFE_OPENINGS]
)
def test_bounded_openings_need_no_acknowledgement(hosts, settings):
    assert plan(hosts, **settings)


PEER_FIX = (
    "list only the hosts outside the inventory that take part in the cluster traffic (a KV "
    "proxy, a router); no acknowledgement makes everyone a peer"
)
UNAUTHENTICATED = "trusted on every port, where vLLM's traffic has no authentication"
MONITORING_FIX = "monitoring reads server metrics without a key: name your scrapers' networks"
# (id, settings with every acknowledgement that could apply, the whole problem line)
NEVER = [
    (
        "peers_everyone_v4",
        {"cluster_extra_peer_cidrs": ["0.0.0.0/0"]},
        "cluster_extra_peer_cidrs[0]: 0.0.0.0/0 would make every address a cluster peer, "
        f"{UNAUTHENTICATED}. Fix: {PEER_FIX}.",
    ),
    (
        "peers_everyone_v6_acknowledged",
        {"cluster_extra_peer_cidrs": ["fd99::/64", "::/0"], "cluster_accept_risks": ["wide_peers"]},
        "cluster_extra_peer_cidrs[1]: ::/0 would make every address a cluster peer, "
        f"{UNAUTHENTICATED}. Fix: {PEER_FIX}.",
    ),
    (
        "peers_halves_cover_everyone",
        {
            "cluster_extra_peer_cidrs": ["0.0.0.0/1", "128.0.0.0/1"],
            "cluster_accept_risks": ["wide_peers"],
        },
        "cluster_extra_peer_cidrs: together its entries cover every IPv4 address, so every "
        f"address would be a cluster peer, {UNAUTHENTICATED}. Fix: {PEER_FIX}.",
    ),
    (
        "monitoring_halves_cover_everyone",
        {
            "cluster_monitoring_cidrs": ["::/1", "8000::/1"],
            "cluster_accept_risks": ["wide_monitoring"],
        },
        "cluster_monitoring_cidrs: together its entries cover every IPv6 address, so every "
        f"address could read /health and /metrics. Fix: {MONITORING_FIX}.",
    ),
    (
        "internal_port_to_everyone_acknowledged",
        {
            "cluster_extra_allowances": [{"port": 29550, "from": ["0.0.0.0/0"]}],
            "cluster_accept_risks": ["world_allowance", "ephemeral_ports"],
        },
        "cluster_extra_allowances[0].from: opens internal port 29550 to everyone (0.0.0.0/0). "
        "Fix: internal ports carry unauthenticated vLLM traffic: never open them to 0.0.0.0/0 "
        "or ::/0; add trusted hosts to cluster_extra_peer_cidrs instead.",
    ),
]


@pytest.mark.parametrize(("settings", "line"), [e[1:] for e in NEVER], ids=[e[0] for e in NEVER])
def test_everyone_as_peers_monitoring_or_on_internal_ports_is_never_acceptable(settings, line):
    message = fails(ONE, r"problem\(s\) in the cluster inventory", **settings)
    assert f"- cluster (all hosts), variable {line}" in message.splitlines(), message


RISK_NAMES = (
    "world_clients, world_admins, world_allowance, wide_peers, wide_monitoring, "
    "ephemeral_ports, ssh_allowance"
)
ACK_ERRORS = [
    (
        "unknown",
        {"cluster_accept_risks": ["world"]},
        f"cluster_accept_risks[0]: 'world' is not a risk the plan knows. Fix: use only "
        f"{RISK_NAMES} (docs/plan.md says what each accepts).",
    ),
    (
        "not_a_list",
        {"cluster_accept_risks": "world_clients"},
        "cluster_accept_risks: must be a list of risk names, got 'world_clients'. Fix: write a "
        "YAML list such as [world_clients].",
    ),
    (
        "stale",
        {"cluster_admin_cidrs": ["10.99.0.0/24"], "cluster_accept_risks": ["world_admins"]},
        "cluster_accept_risks[0]: acknowledges world_admins, but nothing in the inventory takes "
        "that risk. Fix: remove the stale acknowledgement.",
    ),
    (
        "stale_second",
        {
            "cluster_client_cidrs": ["0.0.0.0/0"],
            "cluster_accept_risks": ["world_clients", "ssh_allowance"],
        },
        "cluster_accept_risks[1]: acknowledges ssh_allowance, but nothing in the inventory "
        "takes that risk. Fix: remove the stale acknowledgement.",
    ),
]


@pytest.mark.parametrize(
    ("settings", "line"), [e[1:] for e in ACK_ERRORS], ids=[e[0] for e in ACK_ERRORS]
)
def test_acknowledgements_must_be_known_and_in_use(settings, line):
    message = fails(ONE, r"problem\(s\) in the cluster inventory", **settings)
    assert f"- cluster (all hosts), variable {line}" in message.splitlines(), message


def test_an_allowance_hidden_by_another_problem_does_not_make_its_acknowledgement_stale():
    settings = {
        "cluster_extra_allowances": [{"port": "40k", "from": ["0.0.0.0/0"]}],
        "cluster_accept_risks": ["ephemeral_ports", "world_allowance"],
    }
    message = fails(ONE, r"1 problem\(s\)", **settings)
    assert "cluster_extra_allowances[0].port: '40k' is not a port number" in message


def test_the_risk_names_are_the_argument_specs_choices_and_documented():
    assert list(ACCEPTABLE_RISKS) == SPEC["cluster_accept_risks"]["choices"]
    documented = (COLLECTION / "docs" / "plan.md").read_text(encoding="utf-8")
    for name in ACCEPTABLE_RISKS:
        assert f"| `{name}` |" in documented, name


def test_gateway_settings_must_agree_between_hosts():
    hosts = {
        "a": host("10.0.0.11", cluster_host_ip="10.0.0.11", cluster_api_routes=["/v1/models"]),
        "b": host(
            "10.0.0.12",
            cluster_host_ip="10.0.0.12",
            cluster_api_routes=["/v1/models", "/v1/embeddings"],
            cluster_monitoring_cidrs=["10.0.5.0/24"],
            cluster_api_accept_routes=[],
        ),
        "c": host("10.0.0.13", cluster_host_ip="10.0.0.13", cluster_monitoring_cidrs=[]),
    }
    message = fails(hosts, "differs between cluster hosts")
    # named on the first host (by name) of those that set it to something else than the default
    assert "- host a, variable cluster_api_routes: differs between cluster hosts" in message
    assert "- host b, variable cluster_monitoring_cidrs: differs between cluster hosts" in message
    assert (
        "Fix: set it once for the whole cluster group (group_vars or the play), not in "
        "host_vars; hosts that leave it unset use the role default."
    ) in message
    # b sets it to the default, [], which is what a and c run with: nothing to disagree
    assert "cluster_api_accept_routes" not in message


def test_a_setting_in_one_hosts_host_vars_is_compared_with_the_others_default():
    """The head alone on dp_rpc 29551, the workers on the default 29550: refused."""
    hosts = {
        "node1": host("10.0.0.11", cluster_node_role="head", cluster_ports={"dp_rpc": 29551}),
        "node2": host("10.0.0.12", cluster_node_role="worker"),
        "node3": host("10.0.0.13", cluster_node_role="worker"),
    }
    message = fails(hosts, "differs between cluster hosts", **DP_SETTINGS)
    assert (
        '- host node1, variable cluster_ports: differs between cluster hosts (node1: {"dp_rpc": '
        "29551}; node2, node3: {} (unset: the role default))."
    ) in message
    assert "Fix: set it once for the whole cluster group (group_vars or the play), " in message


@pytest.mark.parametrize(
    "values",
    [
        ({"cluster_tensor_parallel_size": 2}, {}),
        ({"cluster_kv_extra_config": {"proxy_ip": "10.0.0.5"}}, {}),
        ({"cluster_allow_mixed_families": True}, {"cluster_allow_mixed_families": False}),
        ({}, {"cluster_api_routes": ["/v1/models"]}),
    ],
    ids=["tp_one_host", "kv_extra_config_one_host", "explicit_default_differs", "routes"],
)
def test_every_cluster_wide_setting_is_compared_on_every_host(values):
    hosts = {
        "a": host("10.0.0.11", cluster_host_ip="10.0.0.11", **values[0]),
        "b": host("10.0.0.12", cluster_host_ip="10.0.0.12", **values[1]),
    }
    fails(hosts, "differs between cluster hosts")


def test_a_value_equal_to_the_default_agrees_with_hosts_that_leave_it_unset():
    hosts = {
        "a": host("10.0.0.11", cluster_host_ip="10.0.0.11", cluster_ports={}),
        "b": host("10.0.0.12", cluster_host_ip="10.0.0.12", cluster_data_parallel_size=None),
        "c": host("10.0.0.13", cluster_host_ip="10.0.0.13", cluster_tensor_parallel_size=1),
    }
    assert sorted(plan(hosts)) == ["a", "b", "c"]


def test_every_problem_is_reported_at_once():
    hosts = {
        "a": host("10.0.0.11", cluster_host_ip="10.0.0.99"),
        "b": host("10.0.0.12", cluster_host_ip="127.0.0.1"),
    }
    message = fails(hosts, r"3 problem\(s\)", cluster_ports={"api": 0})
    assert "host a, variable cluster_host_ip" in message
    assert "host b, variable cluster_host_ip" in message
    assert "cluster_ports.api" in message


def test_filter_rejects_wrong_argument_types():
    with pytest.raises(AnsibleFilterError, match="group must be a list"):
        cluster_plan(DP2, "node1", {})
    with pytest.raises(AnsibleFilterError, match="settings must be a mapping"):
        cluster_plan(DP2, ["node1"], "x")
    with pytest.raises(AnsibleFilterError, match="input must be hostvars"):
        cluster_plan(["node1"], ["node1"], {})
    with pytest.raises(AnsibleFilterError, match="no host ghost in the inventory"):
        cluster_plan(DP2, ["ghost"], {})
    with pytest.raises(AnsibleFilterError, match="host other is not in the cluster group"):
        cluster_plan(DP2, ["node1", "node2"], DP_SETTINGS, "other")


# --- one schema: argument_specs, role defaults, role vars, filter docs, docs/plan.md --------

COLLECTION = Path(__file__).parents[4]
ROLE = COLLECTION / "roles" / "cluster"


def _yaml(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


SPEC = _yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def _docs_tables():
    """docs/plan.md's input tables: ``{variable: default cell}``, cluster-wide then per host."""
    tables, current = [], None
    for line in (COLLECTION / "docs" / "plan.md").read_text(encoding="utf-8").splitlines():
        row = re.fullmatch(r"\| `(cluster_\w+)` \| ([^|]*) \|.*", line)
        if row:
            if current is None:
                current = {}
                tables.append(current)
            current[row[1]] = row[2].strip()
        elif current is not None and not line.startswith("|"):
            current = None
    return tables[0], tables[1]


def _docs_default(cell):
    """A cell that is one `literal` is that YAML value; prose (`derived from ...`) is None."""
    literal = re.fullmatch(r"`([^`]*)`", cell)
    return yaml.safe_load(literal[1]) if literal else None


def test_the_plan_takes_its_setting_names_and_defaults_from_the_argument_specs():
    assert set(CLUSTER_WIDE) | set(HOST_VARS) | {"cluster_group"} == set(SPEC)
    assert {n: SPEC[n].get("default") for n in CLUSTER_WIDE} == SETTING_DEFAULTS
    assert {n: SPEC[n].get("default") for n in HOST_VARS} == HOST_DEFAULTS
    assert "cluster_kv_extra_config" in CLUSTER_WIDE
    assert SETTING_DEFAULTS["cluster_api_routes"] == list(_api_routes.DEFAULT_ALLOWED)


def test_role_defaults_hold_every_cluster_wide_setting_with_the_specs_default():
    defaults = _yaml(ROLE / "defaults" / "main.yml")
    assert defaults == {n: SPEC[n].get("default") for n in ("cluster_group", *CLUSTER_WIDE)}


def test_the_role_passes_every_cluster_wide_setting_to_the_filter_by_its_own_name():
    tasks = _yaml(ROLE / "tasks" / "main.yml")
    facts = [t.get("ansible.builtin.set_fact", {}) for t in tasks]
    (settings,) = [f["__cluster_settings_seen"] for f in facts if "__cluster_settings_seen" in f]
    assert settings == {n: "{{ " + n + " }}" for n in CLUSTER_WIDE}


def test_filter_docs_list_every_cluster_wide_setting_with_the_specs_type_and_default():
    docs = _yaml(COLLECTION / "plugins" / "filter" / "cluster_plan.yml")["DOCUMENTATION"]
    documented = docs["options"]["settings"]["suboptions"]
    assert list(documented) == list(CLUSTER_WIDE)
    for name, option in documented.items():
        assert option.get("default") == SPEC[name].get("default"), name
        assert option["type"] == SPEC[name]["type"], name
        assert option.get("elements") == SPEC[name].get("elements"), name


def test_docs_plan_md_lists_every_setting_in_its_scope_with_the_specs_default():
    cluster_wide, per_host = _docs_tables()
    assert list(cluster_wide) == ["cluster_group", *CLUSTER_WIDE]
    assert list(per_host) == list(HOST_VARS)
    for name, cell in {**cluster_wide, **per_host}.items():
        assert _docs_default(cell) == SPEC[name].get("default"), (name, cell)


# --- the plan contract: what every consumer may rely on ----------------------------------


def _every_topology():
    pairs = {
        "p": host("10.0.0.11", cluster_node_role="prefill"),
        "d": host("10.0.0.12", cluster_node_role="decode"),
    }
    multi = {
        "h": host("10.0.0.11", cluster_node_role="head"),
        "w": host("10.0.0.12", cluster_node_role="worker"),
    }
    net = {"cluster_network": ["10.0.0.0/24"]}
    yield plan({"s": host("10.0.0.11")}, cluster_topology="single", **net)
    yield plan(DP2, **DP_SETTINGS)
    yield plan(multi, cluster_topology="multi_node", cluster_tensor_parallel_size=2, **net)
    yield plan(pairs, cluster_topology="disaggregated", **net)
    yield plan(
        pairs,
        cluster_topology="disaggregated",
        cluster_kv_connector="P2pNcclConnector",
        cluster_kv_extra_config={"proxy_ip": "10.0.0.5", "proxy_port": "30001"},
        **net,
    )


def test_every_option_and_variable_the_plan_gives_vllm_is_in_the_contract():
    """vllm_service refuses PLAN_OPTIONS/PLAN_ENV in user input: they must cover the plan's."""
    from ansible_collections.hardened.vllm.plugins.module_utils import _plan_contract as contract

    seen_options, seen_env = set(), set()
    for plans in _every_topology():
        for name, one in plans.items():
            assert contract.check_plan(one, ("vllm", "exposure", "peers")) == name
            seen_options |= {a for a in one["vllm"]["args"] if a.startswith("-")}
            seen_env |= set(one["vllm"]["env"])
    assert seen_options <= contract.PLAN_OPTIONS, seen_options - contract.PLAN_OPTIONS
    assert seen_env <= contract.PLAN_ENV, seen_env - contract.PLAN_ENV
    # every topology was really rendered
    assert {"--uds", "--data-parallel-address", "--master-addr", "--kv-transfer-config"} <= (
        seen_options
    )
