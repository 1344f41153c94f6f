# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exposure_verdict and exposure_matrix end to end.

Plans come from the real cluster_plan filter over recorded facts, listener records from the
listening_sockets module's own record shaping, rulesets from `nft -j list ruleset` recordings
(tests/unit/fixtures/nft_json/*.nft say what each holds). A last test loads the firewall role's
real rendering into a scratch network namespace when this runs as root with nft available.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter.cluster_plan import (
    FilterModule as PlanFilters,
)
from ansible_collections.hardened.vllm.plugins.filter.exposure import FilterModule
from ansible_collections.hardened.vllm.plugins.module_utils._sockets import describe_socket
from ansible_collections.hardened.vllm.plugins.plugin_utils import _addresses

FIXTURES = Path(__file__).parents[2] / "fixtures"
FACTS = json.loads((FIXTURES / "facts" / "debian12_vm_network.json").read_text())
FILTERS = FilterModule().filters()
exposure_verdict = FILTERS["exposure_verdict"]
exposure_matrix = FILTERS["exposure_matrix"]


def ruleset(name):
    return json.loads((FIXTURES / "nft_json" / f"{name}.json").read_text())


def facts(ipv4):
    data = copy.deepcopy(FACTS)
    data["eth0"]["ipv4"]["address"] = ipv4
    data["eth0"]["ipv6"] = [a for a in data["eth0"]["ipv6"] if a["scope"] == "link"]
    return data


# The cluster the fixtures' firewall tables were written for (see firewall.nft).
SETTINGS = {
    "cluster_topology": "data_parallel",
    "cluster_network": ["10.0.0.0/24"],
    "cluster_client_cidrs": ["192.0.2.0/24", "2001:db8:c::/48"],
    "cluster_admin_cidrs": ["198.51.100.7/32", "2001:db8:a::7/128"],
    "cluster_extra_peer_cidrs": ["10.0.9.0/28", "fd00:10::/64"],
    "cluster_extra_allowances": [
        {"name": "metrics", "port": 9400, "proto": "tcp", "from": ["203.0.113.0/24"]}
    ],
}


def plans(**overrides):
    """Plans for a head and a worker, with the given cluster settings."""
    hosts = {
        "node1": {"ansible_facts": facts("10.0.0.11"), "cluster_node_role": "head"},
        "node2": {"ansible_facts": facts("10.0.0.12"), "cluster_node_role": "worker"},
    }
    return PlanFilters().filters()["cluster_plan"](hosts, list(hosts), {**SETTINGS, **overrides})


PLAN = plans()["node1"]


def sock(protocol, address, port, process="python3", pid=4242, v6only=False, **extra):
    """A record as hardened.vllm.listening_sockets returns it (sock_diag source)."""
    family = "ipv6" if ":" in address else "ipv4"
    raw = {
        "protocol": protocol,
        "family": family,
        "address": address,
        "port": port,
        "uid": 0,
        "inode": 1000 + port,
        "v6only": v6only if family == "ipv6" else None,
        "ifindex": 0,
        "source": "sock_diag",
    }
    record = describe_socket(raw, bindv6only=0)
    del record["ifindex"]
    record.update(
        interface=None,
        netns=4026531840,
        netns_is_host=True,
        netns_names=[],
        user="root",
        pid=pid,
        pids=[pid],
        process=process,
        cmdline=[process],
    )
    record.update(extra)
    return record


SSH4 = sock("tcp", "0.0.0.0", 22, "sshd", 600)
SSH6 = sock("tcp", "::", 22, "sshd", 600, v6only=True)
API = sock("tcp", "10.0.0.11", 8000)
API6 = sock("tcp", "::", 8000, v6only=True)
DP_RPC = sock("tcp", "::", 29550)  # dual-stack wildcard, as vLLM's TCPStore
DP_RPC_UDP = sock("udp", "0.0.0.0", 29550)
LOCAL = sock("tcp", "127.0.0.1", 8001)
METRICS = sock("tcp", "::", 9400, "node_exporter", 700)
MDNS = sock("udp", "0.0.0.0", 5353, "avahi-daemon", 500)
LISTENERS = (SSH4, SSH6, API, DP_RPC, DP_RPC_UDP, LOCAL, METRICS, MDNS)


def judge(name, listeners=LISTENERS, plan=PLAN, interfaces=("eth0", "lo"), **kwargs):
    return exposure_verdict(listeners, plan, ruleset(name), list(interfaces), **kwargs)


def entry(verdict, port, address=None, protocol="tcp"):
    found = [
        e
        for e in verdict["listeners"]
        if e["port"] == port
        and e["protocol"] == protocol
        and (address is None or e["address"] == address)
    ]
    assert len(found) == 1, found
    return found[0]


# --- (a) the firewall role's shape ---------------------------------------------------------


def test_firewall_table_covers_everything():
    verdict = judge("firewall")
    assert verdict["ok"] and verdict["violations"] == [] and verdict["firewall_table"]
    assert verdict["host"] == "node1" and verdict["interfaces"] == ["eth0"]
    assert {e["verdict"] for e in verdict["listeners"]} == {"ok"}
    api = entry(verdict, 8000)
    assert api["families"] == ["ipv4"] and api["audience"] == ["clients"]
    assert api["reach"] == {
        "ipv4": {
            "peers": True,
            "clients": True,
            "monitoring": None,  # the plan has no monitoring audience
            "admins": False,
            "custom": False,
            "others": False,
        }
    }
    dp = entry(verdict, 29550)
    assert dp["families"] == ["ipv6", "ipv4"]  # dual-stack: judged for both families
    assert dp["reach"]["ipv6"] == {
        "peers": True,
        "clients": False,
        "monitoring": None,
        "admins": False,
        "custom": None,
        "others": False,
    }
    assert entry(verdict, 22, "::")["families"] == ["ipv6"]  # v6only
    assert entry(verdict, 22, "0.0.0.0")["reach"]["ipv4"]["admins"] is True
    assert entry(verdict, 9400)["reach"]["ipv4"]["custom"] is True
    assert entry(verdict, 5353, protocol="udp")["reach"]["ipv4"]["peers"] is True
    local = entry(verdict, 8001)
    assert local["reason"].startswith("bound to loopback") and local["families"] == []


def test_a_listener_on_the_stage_port_after_the_install_is_a_violation():
    # The install's stage server binds the cluster address, which only peers may reach: fine
    # for any other port, but on the stage port it must be gone once the install is over.
    assert PLAN["ports"]["stage"] == 29590
    verdict = judge("firewall", [*LISTENERS, sock("tcp", "10.0.0.11", 29590)])
    assert not verdict["ok"] and len(verdict["violations"]) == 1
    stage = entry(verdict, 29590)
    assert stage["verdict"] == "violation" and "stage port 29590" in stage["reason"]
    assert "systemctl stop hardened-vllm-stage.service" in verdict["violations"][0]
    # Plans from before the stage port, and UDP on that number, are judged as before.
    old = {**PLAN, "ports": {k: v for k, v in PLAN["ports"].items() if k != "stage"}}
    assert judge("firewall", [sock("tcp", "10.0.0.11", 29590)], old)["ok"]
    assert judge("firewall", [sock("udp", "10.0.0.11", 29590)])["ok"]


def test_the_router_port_is_loopback_only_where_the_plan_has_a_router():
    # disaggregated: the router takes requests without a key, behind the gateway; any listener
    # on its port beyond loopback is a violation, even one only peers could reach.
    hosts = {
        "p": {"ansible_facts": facts("10.0.0.11"), "cluster_node_role": "prefill"},
        "d": {"ansible_facts": facts("10.0.0.12"), "cluster_node_role": "decode"},
    }
    plan = PlanFilters().filters()["cluster_plan"](
        hosts, list(hosts), {**SETTINGS, "cluster_topology": "disaggregated"}
    )["p"]
    assert plan["api"]["router"]["address"] == "127.0.0.1" and plan["ports"]["router"] == 8100
    assert judge("firewall", [sock("tcp", "127.0.0.1", 8100)], plan)["ok"]
    for address in ("10.0.0.11", "0.0.0.0", "::"):
        verdict = judge("firewall", [sock("tcp", address, 8100)], plan)
        assert not verdict["ok"] and len(verdict["violations"]) == 1, address
        assert "router port 8100" in entry(verdict, 8100)["reason"]
    # UDP on that number, and plans without a router (every other topology), as before.
    assert judge("firewall", [sock("udp", "10.0.0.11", 8100)], plan)["ok"]
    assert PLAN["api"].get("router") is None and PLAN["ports"]["router"] == 8100
    assert judge("firewall", [sock("tcp", "10.0.0.11", 8100)])["ok"]


def test_plan_stricter_than_the_ruleset_is_a_violation():
    # The firewall admits 192.0.2.0/24 to the API; a plan with one client makes the rest others.
    plan = plans(cluster_client_cidrs=["192.0.2.66/32"])["node1"]
    verdict = judge("firewall", [API], plan)
    assert not verdict["ok"]
    exposed = entry(verdict, 8000)["exposed"][0]
    assert exposed["who"] == ["others"]
    assert exposed["source"].startswith("192.0.2.")
    assert "api from clients" in verdict["violations"][0]


def test_controller_as_derived_admin():
    # No cluster_admin_cidrs: the firewall role admits the controller; say so with admins=.
    plan = plans(cluster_admin_cidrs=[])["node1"]
    strict = judge("firewall", [SSH4], plan)
    assert not strict["ok"] and "reachable from others" in strict["violations"][0]
    assert "198.51.100.7" in strict["violations"][0]
    assert judge("firewall", [SSH4], plan, admins=["198.51.100.7/32"])["ok"]


def test_admins_derived_by_the_firewall_role_are_read_back_from_the_ruleset():
    # The role's real rendering for a plan without admins: the controller's address sits in the
    # admins_v4 set, and the verdict takes it from there instead of calling SSH exposed.
    plan = plans(cluster_admin_cidrs=[])["node1"]
    verdict = judge("role_derived_admins", [SSH4, SSH6, DP_RPC], plan)
    assert verdict["ok"], verdict["violations"]
    assert entry(verdict, 22, "0.0.0.0")["reach"]["ipv4"]["admins"] is True
    assert entry(verdict, 22, "0.0.0.0")["reach"]["ipv4"]["others"] is False
    assert verdict["admins"] == {"ipv4": ["198.51.100.7/32"], "ipv6": []}
    # An explicit admins= still wins over the ruleset.
    overridden = judge("role_derived_admins", [SSH4], plan, admins=["203.0.113.1/32"])
    assert not overridden["ok"] and "198.51.100.7" in overridden["violations"][0]


# --- (a') the gateway's monitoring audience ----------------------------------------------

MONITORING = ["10.0.5.0/24", "2001:db8:5::/64"]
GATEWAY_PLAN = plans(cluster_monitoring_cidrs=MONITORING)["node1"]


def test_monitoring_reaches_the_api_port_and_nothing_else():
    # gateway_monitoring: the firewall role's rendering of GATEWAY_PLAN, recorded with nft -j.
    verdict = judge("gateway_monitoring", [SSH4, API, API6, DP_RPC, METRICS], GATEWAY_PLAN)
    assert verdict["ok"], verdict["violations"]
    api = entry(verdict, 8000, "10.0.0.11")
    assert api["audience"] == ["clients", "monitoring"]
    assert api["reach"]["ipv4"]["monitoring"] is True and api["reach"]["ipv4"]["clients"] is True
    assert (
        api["reason"]
        == "only clients and monitoring and peers on the cluster interface can reach it"
    )
    assert entry(verdict, 8000, "::")["reach"]["ipv6"]["monitoring"] is True
    dp = entry(verdict, 29550)
    assert dp["reach"]["ipv4"]["monitoring"] is False and dp["reach"]["ipv6"]["monitoring"] is False
    assert entry(verdict, 22)["reach"]["ipv4"]["monitoring"] is False
    assert entry(verdict, 9400)["reach"]["ipv4"]["monitoring"] is False
    rows = exposure_matrix(verdict).splitlines()
    api_row = next(r.split() for r in rows if "10.0.0.11:8000" in r)
    assert api_row[4:] == ["clients,monitoring", "yes", "yes", "yes", "-", "-", "-", "ok"]


def test_monitoring_in_the_plan_but_not_in_the_ruleset_is_no_violation():
    verdict = judge("firewall", [API], GATEWAY_PLAN)
    assert verdict["ok"]  # less reach than allowed
    assert entry(verdict, 8000)["reach"]["ipv4"]["monitoring"] is False


def test_monitoring_opened_without_the_plan_saying_so_is_a_violation():
    verdict = judge("gateway_monitoring", [API], PLAN)
    assert not verdict["ok"]
    exposed = entry(verdict, 8000)["exposed"][0]
    assert exposed["who"] == ["others"] and exposed["source"].startswith("10.0.5.")
    assert "api-monitoring from monitoring" in verdict["violations"][0]
    assert (
        "but only clients and peers on the cluster interface may reach it"
        in (verdict["violations"][0])
    )


def test_monitoring_reaching_an_internal_port_is_a_violation_naming_monitoring():
    document = ruleset("gateway_monitoring")
    for item in document["nftables"]:
        rule = item.get("rule") or {}
        if rule.get("comment") == "api-monitoring from monitoring":
            rule["expr"][0]["match"]["right"] = 29550
    verdict = exposure_verdict([DP_RPC], GATEWAY_PLAN, document, ["eth0"])
    assert not verdict["ok"]
    dp = entry(verdict, 29550)
    assert {e["family"] for e in dp["exposed"]} == {"ipv4", "ipv6"}
    assert all(e["who"] == ["monitoring"] for e in dp["exposed"])
    message = verdict["violations"][0]  # IPv6 first: a dual-stack socket
    assert "reachable from monitoring (e.g. 2001:db8:5:: on eth0, IPv6)" in message
    assert "tcp dport 29550 ip6 saddr @monitoring_v6 accept" in message
    ipv4 = next(e for e in dp["exposed"] if e["family"] == "ipv4")
    assert ipv4["source"].startswith("10.0.5.")


def test_plan_published_before_the_gateway_has_no_monitoring_audience():
    old = {k: v for k, v in PLAN.items() if k != "monitoring"}
    assert judge("firewall", plan=old) == judge("firewall")
    assert entry(judge("firewall", [API], old), 8000)["reach"]["ipv4"]["monitoring"] is None


# --- (b) a hole ----------------------------------------------------------------------------


def test_hole_for_everyone_is_a_violation_naming_everything():
    verdict = judge("firewall_hole")
    assert not verdict["ok"]
    assert len(verdict["violations"]) == 1, verdict["violations"]
    message = verdict["violations"][0]
    for part in (
        "node1",
        "tcp [::]:29550",
        "python3, pid 4242",
        "reachable from others",
        "only peers on the cluster interface",
        "inet hardened_vllm input handle",
        "tcp dport 29550 accept",
    ):
        assert part in message, (part, message)
    dp = entry(verdict, 29550)
    assert dp["verdict"] == "violation" and dp["certain"]
    assert dp["reach"]["ipv4"]["others"] and dp["reach"]["ipv6"]["clients"]
    assert {e["family"] for e in dp["exposed"]} == {"ipv4", "ipv6"}
    assert dp["exposed"][0]["rule"]["verdict"] == "accept"
    # the same port over UDP is not opened by a tcp rule; loopback stays fine
    assert entry(verdict, 29550, protocol="udp")["verdict"] == "ok"
    assert exposure_verdict([sock("tcp", "127.0.0.1", 29550)], PLAN, ruleset("firewall_hole"))["ok"]


def test_example_source_prefers_the_cluster_network():
    dp = entry(judge("firewall_hole", [DP_RPC]), 29550)
    ipv4 = next(e for e in dp["exposed"] if e["family"] == "ipv4")
    assert ipv4["source"].startswith("10.0.0.")


# --- (c) IPv4-only filtering ---------------------------------------------------------------


def test_ipv4_only_ruleset_leaves_ipv6_open():
    verdict = judge("ipv4_only")
    assert not verdict["ok"] and not verdict["firewall_table"]
    bad = {(e["address"], e["port"]) for e in verdict["listeners"] if e["verdict"] != "ok"}
    assert bad == {("::", 22), ("::", 29550), ("::", 9400)}
    dp = entry(verdict, 29550, "::")
    assert {e["family"] for e in dp["exposed"]} == {"ipv6"}  # IPv4 is filtered
    assert dp["reach"]["ipv4"]["others"] is False
    assert all("firewall table inet hardened_vllm is missing" in v for v in verdict["violations"])
    assert entry(verdict, 22, "0.0.0.0")["verdict"] == "ok"


# --- (d) foreign tables that do not touch input --------------------------------------------


def test_docker_like_tables_change_nothing():
    assert judge("docker") == judge("firewall")


# --- (e) a foreign input chain that drops --------------------------------------------------


def test_drop_in_a_foreign_table_is_final():
    verdict = judge("foreign_drop", [API, API6])
    assert verdict["ok"]  # less reach than allowed is no violation
    assert entry(verdict, 8000, "10.0.0.11")["reach"]["ipv4"]["clients"] is True
    assert entry(verdict, 8000, "::")["reach"]["ipv6"]["clients"] is False
    plan = plans(cluster_client_cidrs=["192.0.2.66/32"])["node1"]
    assert judge("firewall", [API], plan)["listeners"][0]["reach"]["ipv4"]["clients"] is True
    dropped = judge("foreign_drop", [API], plan)["listeners"][0]
    assert dropped["reach"]["ipv4"]["clients"] is False


# --- interfaces, namespaces, special binds --------------------------------------------------


def test_peers_on_another_interface_are_not_trusted():
    verdict = judge("ipv4_only", [DP_RPC], interfaces=["eth0", "eth1", "lo"])
    assert verdict["interfaces"] == ["eth0", "eth1"]
    dp = entry(verdict, 29550)
    ways = {(e["family"], e["interface"]): e for e in dp["exposed"]}
    assert set(ways) == {("ipv6", "eth0"), ("ipv6", "eth1")}  # IPv4 peers only on eth0
    assert "peers" in ways[("ipv6", "eth1")]["who"]
    assert "peers" not in ways[("ipv6", "eth0")]["who"]
    assert judge("firewall", [DP_RPC], interfaces=["eth0", "eth1"])["ok"]


def test_socket_bound_to_a_device_is_judged_on_that_device_only():
    bound = sock("tcp", "::", 29550, interface="eth1")
    verdict = judge("firewall", [bound], interfaces=["eth0", "eth1"])
    assert entry(verdict, 29550)["interfaces"] == ["eth1"]
    assert entry(verdict, 29550)["reach"]["ipv4"]["peers"] is False  # peers only via eth0
    assert judge("firewall_hole", [sock("tcp", "::", 29550, interface="lo")])["ok"]


def test_ipv4_mapped_bind_is_ipv4_only():
    mapped = sock("tcp", "::ffff:10.0.0.11", 8000)
    assert entry(judge("firewall", [mapped]), 8000)["families"] == ["ipv4"]


def test_other_network_namespace_is_unchecked():
    inner = sock(
        "tcp", "0.0.0.0", 29550, netns=4026532000, netns_is_host=False, netns_names=["ex-box"]
    )
    verdict = judge("firewall_hole", [inner])
    assert verdict["ok"] and entry(verdict, 29550)["verdict"] == "unchecked"
    assert "ex-box" in verdict["warnings"][0]


def test_minimal_records_are_completed():
    verdict = exposure_verdict(
        [{"protocol": "tcp", "family": "ipv6", "address": "::", "port": 29550}],
        PLAN,
        ruleset("ipv4_only"),
    )
    assert entry(verdict, 29550)["families"] == ["ipv6", "ipv4"]  # v6only unknown: both
    assert not verdict["ok"]


def test_unknown_match_makes_an_uncertain_violation():
    document = ruleset("firewall")
    items = document["nftables"]
    first = next(i for i, item in enumerate(items) if "rule" in item)
    rule = copy.deepcopy(items[first])
    rule["rule"].update(
        handle=999,
        expr=[
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                    "right": 29550,
                }
            },
            {"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 7}},
            {"accept": None},
        ],
    )
    items.insert(first, rule)
    dp = entry(exposure_verdict([DP_RPC], PLAN, document), 29550)
    assert dp["verdict"] == "violation" and not dp["certain"]
    assert "assuming a match this audit cannot evaluate holds" in dp["reason"]


def test_ruleset_as_text():
    text = (FIXTURES / "nft_json" / "firewall_hole.json").read_text()
    assert not exposure_verdict([DP_RPC], PLAN, text)["ok"]


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("not a list", PLAN, {"nftables": []}), "listeners must be a list"),
        (([{"protocol": "tcp"}], PLAN, {"nftables": []}), r"listeners\[0\] lacks family"),
        (([dict(API, family="ipx")], PLAN, {"nftables": []}), "not tcp/udp and ipv4/ipv6"),
        (([dict(API, port=70000)], PLAN, {"nftables": []}), "port 70000"),
        (([dict(API, address="10.0.0")], PLAN, {"nftables": []}), "not an IP address"),
        (([dict(API, address="::1")], PLAN, {"nftables": []}), "not an ipv4 address"),
        (([API], {"host": "x"}, {"nftables": []}), "is not a version 1 plan"),
        (
            (
                [API],
                dict(PLAN, schema_version=1, exposure=None) | {"cluster_iface": "eth0"},
                {"nftables": []},
            ),
            "exposure",
        ),
        (([API], PLAN, {"rules": []}), "ruleset: not an 'nft -j list ruleset' document"),
        (([API], PLAN, "{"), "ruleset: not JSON"),
        (([API], PLAN, {"nftables": []}, "eth0"), "interfaces must be a list"),
        (([API], PLAN, {"nftables": []}, [""]), "not an interface name"),
        (([API], PLAN, {"nftables": []}, None, "10.0.0.1/32"), "admins must be a list"),
        (([API], PLAN, {"nftables": []}, None, ["10.0.0.300/32"]), "not a CIDR"),
    ],
)
def test_bad_input_names_the_filter_and_the_value(args, message):
    with pytest.raises(AnsibleFilterError, match=message) as err:
        exposure_verdict(*args)
    assert str(err.value).startswith("hardened.vllm.exposure_verdict: ")


def test_plan_without_exposure_key():
    plan = {k: v for k, v in PLAN.items() if k != "exposure"}
    with pytest.raises(AnsibleFilterError, match="lacks exposure"):
        exposure_verdict([API], plan, {"nftables": []})


def test_missing_netaddr(monkeypatch):
    monkeypatch.setattr(_addresses, "netaddr", None)
    with pytest.raises(AnsibleFilterError, match=r"exposure_verdict: .*netaddr"):
        exposure_verdict([API], PLAN, {"nftables": []})


# --- the matrix ----------------------------------------------------------------------------


def test_matrix_marks_who_can_reach_and_violations():
    good = judge("firewall")
    bad = judge("firewall_hole", [DP_RPC], plans()["node2"])
    text = exposure_matrix([good, bad])
    lines = text.splitlines()
    assert lines[0].split() == [
        "node",
        "proto",
        "address:port",
        "process",
        "may",
        "reach",
        "peers",
        "clients",
        "monitoring",
        "admins",
        "custom",
        "others",
        "verdict",
    ]
    rows = {tuple(line.split()[:3]): line.split()[3:] for line in lines[2:] if line}
    assert rows[("node1", "tcp", "10.0.0.11:8000")] == [
        "python3",
        "clients",
        "yes",
        "yes",
        ".",  # no monitoring audience in the plan
        "-",
        "-",
        "-",
        "ok",
    ]
    assert rows[("node2", "tcp", "[::]:29550")] == [
        "python3",
        "peers",
        "yes",
        "yes!",
        ".",
        "yes!",
        "yes!",
        "yes!",
        "VIOLATION",
    ]
    assert rows[("node1", "tcp", "[::]:22")][6] == "."  # no IPv6 custom sources in the plan
    assert rows[("node1", "tcp", "127.0.0.1:8001")][2:8] == ["-"] * 6
    assert text.endswith("! = the plan does not allow it\n")
    assert exposure_matrix(good) == exposure_matrix([good])


def test_matrix_rejects_other_input():
    with pytest.raises(AnsibleFilterError, match=r"hardened\.vllm\.exposure_matrix: item 0"):
        exposure_matrix([{"host": "x"}])
    with pytest.raises(AnsibleFilterError, match="list of exposure verdicts"):
        exposure_matrix("text")


# --- live: the firewall role's own rendering, loaded into a scratch namespace --------------


def _can_load_rulesets():
    return os.geteuid() == 0 and shutil.which("nft") and shutil.which("ip")


@pytest.mark.skipif(not _can_load_rulesets(), reason="needs root, nft and ip (iproute2)")
def test_firewall_role_rendering_passes_and_a_hole_fails(tmp_path):
    from ansible_collections.hardened.vllm.plugins.module_utils._nft_ruleset import render

    script = render(PLAN)
    hole = script.replace(
        "\t\tct state invalid drop\n", "\t\tct state invalid drop\n\t\ttcp dport 29550 accept\n"
    )
    assert hole != script
    live = {}
    namespace = f"ex-test-{os.getpid()}"
    for name, text in (("rendered", script), ("hole", hole)):
        subprocess.run(["ip", "netns", "add", namespace], check=True)
        try:
            (tmp_path / f"{name}.nft").write_text(text)
            subprocess.run(
                ["ip", "netns", "exec", namespace, "nft", "-f", str(tmp_path / f"{name}.nft")],
                check=True,
            )
            live[name] = subprocess.run(
                ["ip", "netns", "exec", namespace, "nft", "-j", "list", "ruleset"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        finally:
            subprocess.run(["ip", "netns", "del", namespace], check=True)
    good = exposure_verdict(LISTENERS, PLAN, live["rendered"], ["eth0"])
    assert good["ok"], good["violations"]
    assert good["firewall_table"]
    assert entry(good, 8000)["reach"]["ipv4"]["clients"] is True
    bad = exposure_verdict(LISTENERS, PLAN, live["hole"], ["eth0"])
    assert [e["port"] for e in bad["listeners"] if e["verdict"] == "violation"] == [29550]
