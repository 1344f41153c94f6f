# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nftables evaluator against rulesets recorded with `nft -j list ruleset` (nft 1.0.6).

The *.nft sources beside the recordings say what each port tests; record.sh re-records them.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from ansible_collections.hardened.vllm.plugins.plugin_utils._nft_eval import (
    AddressSet,
    NftJsonError,
    Packet,
    Ruleset,
    rule_text,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "nft_json"


def load(name):
    return Ruleset(json.loads((FIXTURES / f"{name}.json").read_text()))


FEATURES = load("features")


def verdict(family, port, source, proto="tcp", iif="eth0", daddr=None, ruleset=FEATURES):
    return ruleset.evaluate(Packet(family, proto, port, iif, daddr, source))


def spans(*cidrs):
    nets = [ipaddress.ip_network(c) for c in cidrs]
    return AddressSet((int(n.network_address), int(n.broadcast_address)) for n in nets)


# --- one port per feature: (family, port, source, extra, accepted, certain, deciding text) --
CASES = [
    # named interval set with a prefix and a range; drop in the first rules
    ("ipv4", 7000, "10.1.2.3", {}, True, True, "tcp dport @svc ip saddr 10.1.0.0/16 accept"),
    ("ipv4", 7000, "10.66.2.3", {}, False, True, "ip saddr @blocked4 drop"),
    ("ipv4", 7000, "10.77.0.9", {}, False, True, "ip saddr @blocked4 drop"),
    ("ipv4", 7000, "10.77.0.10", {}, False, True, "policy drop"),
    ("ipv4", 7000, "10.88.0.1", {}, False, True, "ip saddr @timed drop"),  # elem wrappers
    ("ipv4", 7150, "10.1.0.1", {}, True, True, "@svc"),  # port range in a set
    ("ipv4", 7150, "10.2.0.1", {}, False, True, "policy drop"),
    # != against a prefix; ip6 matches do not touch IPv4 packets
    ("ipv6", 7000, "2001:db9::5", {}, False, True, "ip6 saddr != 2001:db8::/32"),
    ("ipv6", 7000, "2001:db8:1::5", {}, True, True, "ip6 saddr 2001:db8:1::/48 accept"),
    # concatenation set: address . port
    ("ipv4", 7300, "10.50.0.9", {}, True, True, "ip saddr . tcp dport @pairs accept"),
    ("ipv4", 7305, "10.51.0.1", {}, True, True, "@pairs"),
    ("ipv4", 7311, "10.51.0.1", {}, False, True, "policy drop"),
    # named verdict map: accept, jump to an accepting chain, drop range, goto + return
    ("ipv4", 7400, "10.20.0.1", {}, True, True, "tcp dport vmap @portmap"),
    ("ipv4", 7401, "10.20.0.1", {}, True, True, "accept"),
    ("ipv4", 7405, "10.20.0.1", {}, False, True, "tcp dport vmap @portmap"),
    ("ipv4", 7410, "10.20.0.1", {}, False, True, "policy drop"),  # goto, return -> policy
    # jump: return continues in the caller, accept in the callee ends the base chain
    ("ipv4", 7605, "10.3.0.1", {"proto": "udp"}, False, True, "policy drop"),
    ("ipv4", 7605, "10.5.0.1", {"proto": "udp"}, True, True, "accept"),
    ("ipv6", 7500, "2001:db8:3::1", {"proto": "udp"}, False, True, "policy drop"),
    ("ipv6", 7500, "2001:db8:4::1", {"proto": "udp"}, True, True, "accept"),
    ("ipv4", 7605, "10.5.0.1", {}, False, True, "policy drop"),  # udp rule, tcp packet
    # goto: the callee's return ends the caller too
    ("ipv4", 7700, "10.2.0.1", {}, False, True, "policy drop"),
    ("ipv4", 7700, "10.5.0.1", {}, True, True, "accept"),
    # unknown match (meta mark): assumed for accept, not for drop
    ("ipv4", 7800, "10.5.0.1", {}, True, False, "tcp dport 7800 meta mark 1 accept"),
    ("ipv4", 7900, "10.5.0.1", {}, True, False, "tcp dport 7900 accept"),
    # interface names: wildcard and !=
    ("ipv4", 8100, "10.5.0.1", {"iif": "eth1"}, True, True, 'iifname "eth*"'),
    ("ipv4", 8100, "10.5.0.1", {"iif": "wlan0"}, False, True, "policy drop"),
    ("ipv4", 8200, "10.5.0.1", {"iif": "eth0"}, False, True, "policy drop"),
    ("ipv4", 8200, "10.5.0.1", {"iif": "eth1"}, True, True, "iifname != eth0"),
    # th dport with meta l4proto; comparison operators
    ("ipv4", 8300, "10.5.0.1", {"proto": "udp"}, True, True, "udp dport 8300 accept"),
    ("ipv4", 8300, "10.5.0.1", {}, False, True, "policy drop"),
    ("ipv4", 80, "10.5.0.1", {}, True, True, "tcp dport < 1024 tcp dport != 22 accept"),
    ("ipv4", 22, "10.5.0.1", {}, False, True, "policy drop"),
    # destination address: known for a socket bound to one address, else unknown (assumed)
    ("ipv4", 8400, "10.5.0.1", {"daddr": "10.0.0.11"}, True, True, "ip daddr 10.0.0.11"),
    ("ipv4", 8400, "10.5.0.1", {"daddr": "10.0.0.12"}, False, True, "policy drop"),
    ("ipv4", 8400, "10.5.0.1", {}, True, False, "ip daddr 10.0.0.11"),
    # a drop in a jumped-to chain is final
    ("ipv4", 8500, "10.4.0.1", {}, False, True, "ip saddr 10.4.0.0/16 drop"),
    ("ipv4", 8500, "10.5.0.1", {}, True, True, "tcp dport 8500 accept"),
    # ct state: the packet is new
    ("ipv4", 8600, "10.5.0.1", {}, True, True, "ct state new accept"),
    ("ipv4", 8650, "10.5.0.1", {}, False, True, "policy drop"),
    ("ipv4", 9500, "10.5.0.1", {}, True, True, "tcp dport 9500 accept"),  # ct state vmap
    # fib daddr type local holds for input; limit is an unknown match
    ("ipv4", 8700, "10.5.0.1", {}, True, True, "fib daddr type"),
    ("ipv4", 8800, "10.5.0.1", {}, True, False, "limit"),
    # sets of protocols; nfproto
    ("ipv4", 8900, "10.5.0.1", {"proto": "udp"}, False, True, "policy drop"),
    ("ipv6", 8900, "2001::1", {"proto": "udp"}, True, True, "meta nfproto ipv6 accept"),
    # other tables: a drop in the prerouting chain is final; ct state unknown before conntrack
    ("ipv4", 9000, "10.5.0.1", {}, False, True, "ip rawish pre handle"),
    ("ipv4", 9100, "10.5.0.1", {}, True, False, "{ 9000, 9100, 9200 }"),
    ("ipv4", 9200, "10.5.0.1", {}, True, True, "{ 9000, 9100, 9200 }"),
    ("ipv6", 9200, "2001::1", {}, False, True, "ip6 sixonly input"),  # ip6 table: IPv6 only
    # anonymous address sets and address ranges
    ("ipv4", 9300, "10.10.0.1", {}, True, True, "{ 10.9.0.0/16, 10.10.0.1 }"),
    ("ipv4", 9300, "10.9.255.255", {}, True, True, "10.9.0.0/16"),
    ("ipv4", 9300, "10.10.0.2", {}, False, True, "policy drop"),
    ("ipv6", 9300, "2001:db8:9::1", {}, True, True, "2001:db8:9::/48"),
    ("ipv4", 9400, "10.11.0.200", {}, True, True, "10.11.0.0-10.11.0.255"),
    # nft lists "meta nfproto X ... reject" without the nfproto match
    ("ipv4", 9600, "10.5.0.1", {}, True, False, "{ 9600, 9700, 9800 }"),  # tcp reset: lost
    ("ipv6", 9600, "2001::1", {}, True, False, "{ 9600, 9700, 9800 }"),
    ("ipv4", 9700, "10.5.0.1", {}, True, True, "{ 9600, 9700, 9800 }"),  # icmpv6: ipv6 only
    ("ipv6", 9700, "2001::1", {}, False, True, "reject with icmpv6 port-unreachable"),
    ("ipv4", 9800, "10.5.0.1", {}, False, True, "reject with icmp admin-prohibited"),
    ("ipv6", 9800, "2001::1", {}, True, True, "{ 9600, 9700, 9800 }"),
    ("ipv4", 9999, "10.5.0.1", {}, False, True, "policy drop"),
]


@pytest.mark.parametrize(
    ("family", "port", "source", "extra", "accepted", "certain", "text"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}-{i}" for i, c in enumerate(CASES)],
)
def test_features(family, port, source, extra, accepted, certain, text):
    result = verdict(family, port, source, **extra)
    assert result.accepted is accepted, result.describe()
    assert result.certain is certain, result.describe()
    assert text in result.describe()


def test_reachable_is_exact_over_all_sources():
    reach = FEATURES.reachable(Packet("ipv4", "tcp", 9300, "eth0"))
    assert reach.maybe == spans("10.9.0.0/16", "10.10.0.1/32")
    assert reach.sure == reach.maybe
    assert reach.chains == 2  # inet feat input and ip rawish pre; not the ip6 table


def test_reachable_excludes_returned_and_blocked_sources():
    reach = FEATURES.reachable(Packet("ipv4", "tcp", 7700, "eth0"))
    everything = AddressSet.universe("ipv4")
    blocked = spans("10.2.0.0/16", "10.66.0.0/16", "10.88.0.1/32") | AddressSet(
        [(int(ipaddress.ip_address("10.77.0.1")), int(ipaddress.ip_address("10.77.0.9")))]
    )
    assert reach.maybe == everything - blocked


def test_unknown_accept_is_possible_but_not_sure():
    reach = FEATURES.reachable(Packet("ipv4", "tcp", 7800, "eth0"))
    assert reach.maybe and not reach.sure


def test_no_base_chain_accepts_everything():
    empty = Ruleset({"nftables": [{"metainfo": {"json_schema_version": 1}}]})
    result = empty.evaluate(Packet("ipv6", "tcp", 22, "eth0", None, "2001:db8::1"))
    assert result.accepted and result.certain and result.decided_by is None
    assert "no base chain" in result.describe()
    assert empty.reachable(Packet("ipv4", "udp", 53)).maybe == AddressSet.universe("ipv4")


def minimal(rules, policy="drop", family="inet", hook="input", chain_type="filter", extra=()):
    chain = {
        "family": family,
        "table": "t",
        "name": "c",
        "handle": 1,
        "type": chain_type,
        "hook": hook,
        "prio": 0,
        "policy": policy,
    }
    items = [{"table": {"family": family, "name": "t", "handle": 1}}, {"chain": chain}, *extra]
    for handle, expr in enumerate(rules, start=2):
        items.append(
            {"rule": {"family": family, "table": "t", "chain": "c", "handle": handle, "expr": expr}}
        )
    return Ruleset({"nftables": items})


ACCEPT = [{"accept": None}]
DPORT_22 = {
    "match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}
}


def test_policy_decides_when_no_rule_matches():
    assert (
        not minimal([[DPORT_22, *ACCEPT]])
        .evaluate(Packet("ipv4", "tcp", 23, None, None, "192.0.2.1"))
        .accepted
    )
    result = minimal([[DPORT_22, {"drop": None}]], policy="accept").evaluate(
        Packet("ipv4", "tcp", 23, None, None, "192.0.2.1")
    )
    assert result.accepted and result.decided_by.text == "policy accept"


def test_chains_on_other_hooks_and_types_do_not_filter_input():
    for hook, chain_type in (("forward", "filter"), ("output", "filter"), ("prerouting", "nat")):
        ruleset = minimal([[{"drop": None}]], hook=hook, chain_type=chain_type)
        assert ruleset.evaluate(Packet("ipv4", "tcp", 22, None, None, "192.0.2.1")).accepted


def test_tables_of_other_families_are_ignored():
    for family in ("ip6", "arp", "bridge", "netdev"):
        ruleset = minimal([[{"drop": None}]], family=family)
        assert ruleset.evaluate(Packet("ipv4", "tcp", 22, None, None, "192.0.2.1")).accepted


def test_unknown_interface_is_an_unknown_match():
    iif = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}
    ruleset = minimal([[iif, *ACCEPT]])
    result = ruleset.evaluate(Packet("ipv4", "tcp", 22, None, None, "192.0.2.1"))
    assert result.accepted and not result.certain and result.decided_by.assumed


def test_unknown_expression_kinds_never_hide_an_accept():
    odd = {"match": {"op": "==", "left": {"socket": {"key": "transparent"}}, "right": 1}}
    xt = {"xt": {"type": "match", "name": "conntrack"}}
    for cond in (odd, xt):
        assert minimal([[cond, *ACCEPT]]).reachable(Packet("ipv4", "tcp", 1)).maybe
        assert minimal([[cond, {"drop": None}]], policy="accept").reachable(
            Packet("ipv4", "tcp", 1)
        ).maybe == AddressSet.universe("ipv4")


@pytest.mark.parametrize(("verb", "accepted"), [("goto", True), ("jump", False)])
def test_return_from_goto_leaves_the_caller_too(verb, accepted):
    sub = [
        {"chain": {"family": "inet", "table": "t", "name": "sub", "handle": 5}},
        {
            "rule": {
                "family": "inet",
                "table": "t",
                "chain": "sub",
                "handle": 6,
                "expr": [{"return": None}],
            }
        },
    ]
    ruleset = minimal([[{verb: {"target": "sub"}}], [{"drop": None}]], policy="accept", extra=sub)
    result = ruleset.evaluate(Packet("ipv4", "tcp", 22, None, None, "192.0.2.1"))
    assert result.accepted is accepted and result.certain


def test_sure_drop_after_an_uncertain_chain_is_certain():
    mark = {"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}
    first = minimal([[mark, {"drop": None}]], policy="accept")
    second = {
        "chain": {
            "family": "inet",
            "table": "t",
            "name": "z",
            "handle": 8,
            "type": "filter",
            "hook": "input",
            "prio": 10,
            "policy": "drop",
        }
    }
    ruleset = Ruleset({"nftables": [*first_items(first), second]})
    result = ruleset.evaluate(Packet("ipv4", "tcp", 22, None, None, "192.0.2.1"))
    assert not result.accepted and result.certain
    assert result.decided_by.text == "policy drop" and result.decided_by.chain == "z"
    assert len(result.decisions) == 2


def first_items(ruleset):
    """A minimal() ruleset back as document items (its one table, chain and rules)."""
    chain = ruleset.chains[("inet", "t", "c")]
    items = [
        {"table": {"family": "inet", "name": "t"}},
        {
            "chain": {
                "family": "inet",
                "table": "t",
                "name": "c",
                "type": chain.type,
                "hook": chain.hook,
                "prio": chain.priority,
                "policy": chain.policy,
            }
        },
    ]
    return items + [{"rule": rule} for rule in chain.rules]


def test_queue_may_accept_and_may_drop():
    result = minimal([[{"queue": {"num": 1}}]]).evaluate(
        Packet("ipv4", "tcp", 22, None, None, "192.0.2.1")
    )
    assert result.accepted and not result.certain


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not JSON"),
        ({"rules": []}, "expected"),
        (
            {
                "nftables": [
                    {"rule": {"family": "inet", "table": "t", "chain": "missing", "expr": []}}
                ]
            },
            "which the ruleset lacks",
        ),
        (
            {
                "nftables": [
                    {"chain": {"family": "inet", "table": "t", "name": "c", "policy": "maybe"}}
                ]
            },
            "unknown policy",
        ),
        ({"nftables": ["rule"]}, "unexpected item"),
    ],
)
def test_malformed_rulesets(document, message):
    with pytest.raises(NftJsonError, match=message):
        Ruleset(document)


def test_jump_to_a_missing_chain_and_a_missing_set():
    ruleset = minimal([[{"jump": {"target": "nowhere"}}]])
    with pytest.raises(NftJsonError, match="unknown chain 'nowhere'"):
        ruleset.reachable(Packet("ipv4", "tcp", 22))
    saddr = {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "ip", "field": "saddr"}},
            "right": "@absent",
        }
    }
    with pytest.raises(NftJsonError, match="@absent"):
        minimal([[saddr, *ACCEPT]]).reachable(Packet("ipv4", "tcp", 22))


def test_jump_loop_is_reported():
    loop = {
        "rule": {
            "family": "inet",
            "table": "t",
            "chain": "c",
            "handle": 9,
            "expr": [{"jump": {"target": "c"}}],
        }
    }
    ruleset = minimal([], extra=[loop])
    with pytest.raises(NftJsonError, match="deeper than 16"):
        ruleset.reachable(Packet("ipv4", "tcp", 22))


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (("ipx", "tcp", 1), "family"),
        (("ipv4", "sctp", 1), "protocol"),
        (("ipv4", "tcp", 70000), "port"),
        (("ipv4", "tcp", True), "port"),
    ],
)
def test_bad_packets(packet, message):
    with pytest.raises(NftJsonError, match=message):
        Packet(*packet)


def test_packet_address_of_the_wrong_family():
    with pytest.raises(NftJsonError, match="not an ipv4 address"):
        Packet("ipv4", "tcp", 22, saddr="2001:db8::1")


def test_address_set_operations():
    a = AddressSet([(10, 20), (30, 40)])
    b = AddressSet([(15, 35)])
    assert (a & b).spans == ((15, 20), (30, 35))
    assert (a - b).spans == ((10, 14), (36, 40))
    assert (a | b).spans == ((10, 40),)
    assert AddressSet([(1, 2), (3, 4)]).spans == ((1, 4),)  # adjacent spans merge
    assert 25 not in a and 30 in a and a.first() == 10
    assert not AddressSet() and AddressSet().first() is None


def test_rule_text_reads_like_nft():
    rule = {
        "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}},
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                    "right": "@peers4",
                }
            },
            {"counter": {"packets": 0, "bytes": 0}},
            {"accept": None},
        ],
        "comment": "cluster peers",
    }
    assert rule_text(rule) == 'iifname eth0 ip saddr @peers4 accept comment "cluster peers"'
