# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Would nftables accept a NEW inbound packet? An evaluator of ``nft -j list ruleset``.

The packet is fixed except for its source address: family (ipv4/ipv6), protocol (tcp/udp),
destination port, input interface and, when known, destination address. The source address is
evaluated symbolically: ``Ruleset.reachable`` returns every source address that may be accepted
as an interval set, so "can anyone outside the plan reach this port?" is answered exactly for
all sources at once; ``Ruleset.evaluate`` answers for one source and names the deciding rule.

Semantics (netfilter's): every base chain of type filter on the prerouting and input hooks of
the tables that see the packet (inet, and ip or ip6) runs; a drop in any of them is final, an
accept ends only its own chain. So a packet is accepted when every such chain accepts it (by a
rule or by its policy); with no such chain it is accepted. jump/goto/return and verdict maps
are followed. Matches this module cannot evaluate are treated conservatively: the rule *may*
match, so an accept behind it counts as possible and a drop behind it does not count as sure.
The evaluator can therefore over-report reachability, never hide it. Netdev/inet ingress
chains and DNAT (port forwarding) are not evaluated: both can only make less reachable.

Python standard library only.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

BITS = {"ipv4": 32, "ipv6": 128}
HOOKS = ("prerouting", "input")
TABLE_FAMILIES = {"ipv4": ("inet", "ip"), "ipv6": ("inet", "ip6")}
L3 = {"ipv4": "ip", "ipv6": "ip6"}
L4_NUMBERS = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "ipv6-icmp": 58,
    "icmpv6": 58,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "comp": 108,
    "sctp": 132,
    "udplite": 136,
}
# Header protocols whose matches can never hold for a tcp/udp packet of another protocol.
OTHER_L4 = {"icmp", "icmpv6", "igmp", "sctp", "dccp", "udplite", "esp", "ah", "comp", "gre"}
PRIORITY_NAMES = {
    "raw": -300,
    "mangle": -150,
    "dstnat": -100,
    "filter": 0,
    "security": 50,
    "srcnat": 100,
}
CONNTRACK_PRIORITY = -200  # before this, a packet has no conntrack entry: ct state is unknown
ACCEPTING = ("accept", "queue")
DROPPING = ("drop", "reject", "queue")  # queue: a userspace program decides
MAX_DEPTH = 16  # the kernel's jump stack
UNKNOWN = None  # a tri-state value that could not be decided


class NftJsonError(ValueError):
    """The input is not a ruleset in libnftables JSON or refers to things it lacks."""


# --- source address sets ------------------------------------------------------------------


class AddressSet:
    """An immutable set of integers (addresses of one family) as sorted inclusive spans."""

    __slots__ = ("spans",)

    def __init__(self, spans=()):
        merged = []
        for low, high in sorted(spans):
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        self.spans = tuple(merged)

    @classmethod
    def universe(cls, family):
        return cls([(0, (1 << BITS[family]) - 1)])

    def __or__(self, other):
        return AddressSet(self.spans + other.spans)

    def __and__(self, other):
        result, i, j = [], 0, 0
        while i < len(self.spans) and j < len(other.spans):
            low = max(self.spans[i][0], other.spans[j][0])
            high = min(self.spans[i][1], other.spans[j][1])
            if low <= high:
                result.append((low, high))
            if self.spans[i][1] < other.spans[j][1]:
                i += 1
            else:
                j += 1
        return AddressSet(result)

    def __sub__(self, other):
        result = []
        for low, high in self.spans:
            for o_low, o_high in other.spans:
                if o_high < low or o_low > high:
                    continue
                if o_low > low:
                    result.append((low, o_low - 1))
                low = o_high + 1
                if low > high:
                    break
            if low <= high:
                result.append((low, high))
        return AddressSet(result)

    def __bool__(self):
        return bool(self.spans)

    def __eq__(self, other):
        return isinstance(other, AddressSet) and self.spans == other.spans

    def __hash__(self):
        return hash(self.spans)

    def __contains__(self, value):
        return any(low <= value <= high for low, high in self.spans)

    def __repr__(self):
        return f"AddressSet({list(self.spans)})"

    def first(self):
        return self.spans[0][0] if self.spans else None


@dataclass(frozen=True)
class Cond:
    """A match over the source addresses: ``sure`` certainly match, ``maybe`` may match."""

    sure: AddressSet
    maybe: AddressSet


# --- the packet and the answers ------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """A NEW inbound packet; ``saddr`` only for ``evaluate``, ``daddr``/``iifname`` optional."""

    family: str
    protocol: str
    dport: int
    iifname: str | None = None
    daddr: str | None = None
    saddr: str | None = None

    def __post_init__(self):
        if self.family not in BITS:
            raise NftJsonError(f"packet family {self.family!r} is not ipv4 or ipv6")
        if self.protocol not in ("tcp", "udp"):
            raise NftJsonError(f"packet protocol {self.protocol!r} is not tcp or udp")
        if (
            isinstance(self.dport, bool)
            or not isinstance(self.dport, int)
            or not 0 <= self.dport <= 65535
        ):
            raise NftJsonError(f"packet port {self.dport!r} is not a port number")
        for name in ("daddr", "saddr"):
            if getattr(self, name) is not None:
                address_int(getattr(self, name), self.family)


@dataclass(frozen=True)
class Decision:
    """What one base chain did with a packet, and which rule (or the policy) decided."""

    family: str
    table: str
    chain: str
    base_chain: str
    handle: int | None  # None: the base chain's policy
    verdict: str  # accept or drop
    text: str  # the rule, shortly, or "policy accept"
    assumed: bool = False  # only if a match this module cannot evaluate holds

    def describe(self):
        where = f"{self.family} {self.table} {self.chain}"
        what = f"handle {self.handle} [{self.text}]" if self.handle is not None else self.text
        guess = " (assuming a match this audit cannot evaluate holds)" if self.assumed else ""
        return f"{where} {what}{guess}"

    def as_dict(self):
        return {
            "family": self.family,
            "table": self.table,
            "chain": self.chain,
            "base_chain": self.base_chain,
            "handle": self.handle,
            "verdict": self.verdict,
            "rule": self.text,
            "assumed": self.assumed,
            "text": self.describe(),
        }


@dataclass(frozen=True)
class Reach:
    """Sources that may be accepted (``maybe``) and that surely are (``sure``)."""

    maybe: AddressSet
    sure: AddressSet
    chains: int  # how many base chains filtered the packet


@dataclass
class Verdict:
    """The answer for one source address."""

    accepted: bool  # may be accepted (the conservative answer)
    certain: bool  # no match this module cannot evaluate changed the answer
    decided_by: Decision | None  # None: no base chain filters the packet
    decisions: list = field(default_factory=list)  # one per base chain that ran

    def describe(self):
        if self.decided_by is None:
            return "accepted: no base chain on the prerouting or input hook filters it"
        word = "accepted" if self.accepted else "dropped"
        return f"{word} by {self.decided_by.describe()}"


def address_int(text, family):
    """An address of ``family`` as an integer; NftJsonError when it is not one."""
    try:
        ip = ipaddress.ip_address(str(text))
    except ValueError:
        raise NftJsonError(f"{text!r} is not an IP address") from None
    if BITS[family] != ip.max_prefixlen:
        raise NftJsonError(f"{text} is not an {family} address")
    return int(ip)


# --- the ruleset ---------------------------------------------------------------------------


@dataclass
class _Chain:
    family: str
    table: str
    name: str
    rules: list
    hook: str | None = None
    type: str | None = None
    priority: int = 0
    policy: str = "accept"


class Ruleset:
    """An ``nft -j list ruleset`` document (a dict, or its JSON text), indexed for evaluation."""

    def __init__(self, document):
        if isinstance(document, (str, bytes)):
            try:
                document = json.loads(document)
            except ValueError as exc:
                raise NftJsonError(f"not JSON: {exc}") from None
        if not isinstance(document, Mapping) or not isinstance(document.get("nftables"), list):
            raise NftJsonError(
                "not an 'nft -j list ruleset' document: expected {\"nftables\": [...]}"
            )
        self.tables, self.chains, self.sets = set(), {}, {}
        rules = []
        for item in document["nftables"]:
            if not isinstance(item, Mapping) or len(item) != 1:
                raise NftJsonError(f"unexpected item {item!r}")
            kind, body = next(iter(item.items()))
            if kind == "metainfo":
                continue
            if not isinstance(body, Mapping):
                raise NftJsonError(f"{kind} is not an object: {body!r}")
            if kind == "table":
                self.tables.add((_text(body, "family"), _text(body, "name")))
            elif kind == "chain":
                self._add_chain(body)
            elif kind in ("set", "map"):
                key = (_text(body, "family"), _text(body, "table"), _text(body, "name"))
                self.sets[key] = list(body.get("elem") or [])
            elif kind == "rule":
                rules.append(body)
        for rule in rules:
            key = (_text(rule, "family"), _text(rule, "table"), _text(rule, "chain"))
            if key not in self.chains:
                raise NftJsonError(
                    f"rule {rule.get('handle')} refers to chain {' '.join(key)}, "
                    "which the ruleset lacks"
                )
            if not isinstance(rule.get("expr"), list):
                raise NftJsonError(f"rule {rule.get('handle')} in {' '.join(key)} has no expr list")
            self.chains[key].rules.append(rule)

    def _add_chain(self, body):
        key = (_text(body, "family"), _text(body, "table"), _text(body, "name"))
        prio = body.get("prio", 0)
        if isinstance(prio, str):
            prio = PRIORITY_NAMES.get(prio, 0)
        policy = body.get("policy", "accept")
        if policy not in ("accept", "drop"):
            raise NftJsonError(f"chain {' '.join(key)}: unknown policy {policy!r}")
        self.chains[key] = _Chain(
            *key,
            rules=[],
            hook=body.get("hook"),
            type=body.get("type"),
            priority=prio if isinstance(prio, int) else 0,
            policy=policy,
        )

    def set_cidrs(self, family, table, name, address_family):
        """A named address set's elements as CIDR strings; None if absent or not addresses."""
        elements = self.sets.get((family, table, name))
        spans = None if elements is None else _address_spans(elements, address_family)
        if spans is None:
            return None
        make = ipaddress.IPv4Address if address_family == "ipv4" else ipaddress.IPv6Address
        return [
            str(net)
            for low, high in spans
            for net in ipaddress.summarize_address_range(make(low), make(high))
        ]

    def has_table(self, family, name):
        return (family, name) in self.tables

    def base_chains(self, family):
        """The filter chains on the prerouting and input hooks that see ``family`` packets."""
        found = [
            c
            for c in self.chains.values()
            if c.family in TABLE_FAMILIES[family] and c.hook in HOOKS and c.type == "filter"
        ]
        return sorted(
            found, key=lambda c: (HOOKS.index(c.hook), c.priority, c.family, c.table, c.name)
        )

    def reachable(self, packet, sources=None):
        """Which source addresses of ``sources`` (default: all) may pass every base chain."""
        universe = AddressSet.universe(packet.family)
        sources = universe if sources is None else sources
        maybe = sure = sources
        chains = self.base_chains(packet.family)
        for chain in chains:
            run = _Run(self, packet, chain, universe)
            accepted, dropped = run.base(sources)
            maybe &= accepted
            sure &= accepted - dropped
        return Reach(maybe, sure, len(chains))

    def evaluate(self, packet):
        """The verdict for the packet's ``saddr``, with the rule that decided it."""
        if packet.saddr is None:
            raise NftJsonError("evaluate() needs the packet's source address (saddr)")
        source = address_int(packet.saddr, packet.family)
        only = AddressSet([(source, source)])
        universe = AddressSet.universe(packet.family)
        decisions, certain = [], True
        for chain in self.base_chains(packet.family):
            run = _Run(self, packet, chain, universe)
            may_accept, may_drop = run.base(only)
            decision = run.decision(source, accept=bool(may_accept))
            decisions.append(decision)
            if not may_accept:  # surely dropped here: final, whatever came before
                return Verdict(False, True, decision, decisions)
            certain = certain and not may_drop
        deciding = next(
            (
                d
                for d in decisions
                if d.handle is not None
                and self.chains[(d.family, d.table, d.base_chain)].policy == "drop"
            ),
            decisions[0] if decisions else None,
        )
        return Verdict(True, certain, deciding, decisions)


def _text(body, key):
    value = body.get(key)
    if not isinstance(value, str):
        raise NftJsonError(f"object {dict(body)!r} has no {key}")
    return value


# --- running one base chain ----------------------------------------------------------------


@dataclass
class _Event:
    chain: _Chain
    rule: Mapping | None  # None: the policy
    verdict: str
    sure: AddressSet
    maybe: AddressSet


class _Run:
    """Evaluation of one base chain (and the chains it jumps to) for a set of sources."""

    def __init__(self, ruleset, packet, base, universe):
        self.ruleset, self.packet, self.base_chain, self.universe = ruleset, packet, base, universe
        self.events = []
        self.ct_known = base.hook == "input" or base.priority > CONNTRACK_PRIORITY
        self.daddr = address_int(packet.daddr, packet.family) if packet.daddr else None

    def base(self, sources):
        """``(may be accepted, may be dropped)`` among ``sources``."""
        accepted, dropped, returned = self.chain(self.base_chain, sources, 0)
        self.events.append(
            _Event(self.base_chain, None, self.base_chain.policy, returned, returned)
        )
        if self.base_chain.policy == "accept":
            return accepted | returned, dropped
        return accepted, dropped | returned

    def decision(self, source, accept):
        """The first event that decided ``source`` the way the chain decided it."""
        wanted = ACCEPTING if accept else DROPPING
        events = [e for e in self.events if e.verdict in wanted and source in e.maybe]
        if not accept:  # the rule that surely dropped it, if any
            events = [e for e in events if source in e.sure] + events
        event = events[0] if events else self.events[-1]
        chain = event.chain
        if event.rule is None:
            return Decision(
                chain.family,
                chain.table,
                chain.name,
                self.base_chain.name,
                None,
                event.verdict,
                f"policy {event.verdict}",
            )
        return Decision(
            chain.family,
            chain.table,
            chain.name,
            self.base_chain.name,
            event.rule.get("handle"),
            "accept" if accept else "drop",
            rule_text(event.rule),
            assumed=source not in event.sure,
        )

    def chain(self, chain, flow, depth):
        """Run ``chain`` for ``flow``: ``(may accept, may drop, may return)`` sets."""
        if depth > MAX_DEPTH:
            raise NftJsonError(
                f"chain {chain.family} {chain.table} {chain.name}: jumps nest "
                f"deeper than {MAX_DEPTH} (a loop?)"
            )
        accepted, dropped, returned = AddressSet(), AddressSet(), AddressSet()
        for rule in chain.rules:
            if not flow:
                break
            outcome = self.rule(chain, rule, flow, depth)
            accepted |= outcome[0]
            dropped |= outcome[1]
            returned |= outcome[2]
            flow = outcome[3]
        return accepted, dropped, returned | flow

    def rule(self, chain, rule, flow, depth):
        """One rule: ``(may accept, may drop, may return, continuing flow)``."""
        cond = Cond(self.universe, self.universe)
        for expr in rule["expr"]:
            if not isinstance(expr, Mapping) or len(expr) != 1:
                raise NftJsonError(f"rule {rule.get('handle')}: unexpected expression {expr!r}")
            kind, body = next(iter(expr.items()))
            if kind == "match":
                cond = _and(cond, self.match(chain, body))
            elif kind in ("limit", "quota", "ct count", "xt", "connlimit"):
                # limit/quota/count hold only sometimes; an xt extension may be any match.
                cond = _and(cond, Cond(AddressSet(), self.universe))
            elif kind == "vmap":
                return self.vmap(chain, rule, body, flow, cond, depth)
            elif kind in _VERDICTS:
                if kind == "reject":
                    cond = _and(cond, self.reject_family(chain, body))
                sure, maybe = flow & cond.sure, flow & cond.maybe
                return self.verdict(chain, rule, kind, body, sure, maybe, flow, depth)
            if not cond.maybe:
                break
        return AddressSet(), AddressSet(), AddressSet(), flow

    def verdict(self, chain, rule, kind, body, sure, maybe, flow, depth):
        none = AddressSet()
        if kind == "continue" or not maybe:
            return none, none, none, flow
        if kind in ("accept", "drop", "reject", "queue", "return"):
            self.events.append(_Event(chain, rule, kind, sure, maybe))
            accept = maybe if kind in ACCEPTING else none
            drop = maybe if kind in DROPPING else none
            ret = maybe if kind == "return" else none
            return accept, drop, ret, flow - sure
        target = body.get("target") if isinstance(body, Mapping) else None
        key = (chain.family, chain.table, target)
        if key not in self.ruleset.chains:
            raise NftJsonError(
                f"rule {rule.get('handle')} in {chain.family} {chain.table} "
                f"{chain.name}: {kind} to unknown chain {target!r}"
            )
        start = len(self.events)
        accepted, dropped, returned = self.chain(self.ruleset.chains[key], maybe, depth + 1)
        for event in self.events[start:]:  # sure only where the jump itself was sure
            event.sure = event.sure & sure
        if kind == "jump":
            return accepted, dropped, none, (flow - sure) | (returned & sure)
        return accepted, dropped, returned, flow - sure  # goto: its return is ours

    def vmap(self, chain, rule, body, flow, cond, depth):
        """A verdict map: each element's verdict for the sources that select it.

        Elements of a map never overlap, so a source surely selects at most one of them.
        """
        if not isinstance(body, Mapping):
            raise NftJsonError(f"rule {rule.get('handle')}: vmap is not an object")
        elements = self.elements(chain, body.get("data"))
        accepted, dropped, returned = AddressSet(), AddressSet(), AddressSet()
        for element in elements:
            if (
                not isinstance(element, list)
                or len(element) != 2
                or not isinstance(element[1], Mapping)
                or len(element[1]) != 1
            ):
                raise NftJsonError(f"rule {rule.get('handle')}: vmap element {element!r}")
            hit = self.compare(chain, body.get("key"), "==", {"set": [element[0]]})
            kind, verdict_body = next(iter(element[1].items()))
            outcome = self.verdict(
                chain,
                rule,
                kind,
                verdict_body,
                flow & cond.sure & hit.sure,
                flow & cond.maybe & hit.maybe,
                flow,
                depth,
            )
            accepted, dropped, returned = (
                accepted | outcome[0],
                dropped | outcome[1],
                returned | outcome[2],
            )
            flow = outcome[3]
        return accepted, dropped, returned, flow

    def reject_family(self, chain, body):
        """The family match that nft's listing leaves out of a rule ending in ``reject``.

        nft (1.0.6 at least) lists ``meta nfproto ipv6 tcp dport 1 reject`` without the nfproto
        match: it counts it as a dependency of the reject type. ``icmp``/``icmpv6`` rejects
        imply the family again; after ``tcp reset`` the family is lost, so in a table that
        sees both families the rule may or may not apply to this packet.
        """
        kind = body.get("type") if isinstance(body, Mapping) else None
        if kind in ("icmp", "icmpv6"):
            return self.const((kind == "icmp") == (self.packet.family == "ipv4"))
        if kind == "tcp reset" and chain.family not in ("ip", "ip6"):
            return self.unknown()
        return self.const(True)

    # --- matches --------------------------------------------------------------------------

    def match(self, chain, body):
        if not isinstance(body, Mapping) or "left" not in body or "right" not in body:
            raise NftJsonError(f"match {body!r} lacks left or right")
        return self.compare(chain, body["left"], body.get("op", "=="), body["right"])

    def compare(self, chain, left, op, right):
        """``left op right`` as a condition over the source addresses."""
        if isinstance(left, Mapping) and isinstance(left.get("concat"), list):
            return self.concat(chain, left["concat"], op, right)
        value = self.value(left)
        if value is _SADDR:
            return self.source_match(chain, op, right)
        if value is UNKNOWN:
            return self.unknown()
        if value is False:  # the packet lacks this header: no match, whatever the operator
            return self.const(False)
        kind, data = value
        return self.const(_compare_value(kind, data, op, self.elements(chain, right), right))

    def concat(self, chain, parts, op, right):
        if op not in ("==", "!=", "in"):
            return self.unknown()
        elements = self.elements(chain, right)
        if elements is None:
            return self.unknown()
        result = self.const(False)
        for element in elements:
            element = _unwrap(element)
            items = element.get("concat") if isinstance(element, Mapping) else None
            if not isinstance(items, list) or len(items) != len(parts):
                return self.unknown()
            hit = self.const(True)
            for part, item in zip(parts, items, strict=True):
                hit = _and(hit, self.compare(chain, part, "==", item))
            result = Cond(result.sure | hit.sure, result.maybe | hit.maybe)
        return _negate(result, self.universe) if op == "!=" else result

    def source_match(self, chain, op, right):
        if op not in ("==", "!=", "in"):
            return self.unknown()
        elements = self.elements(chain, right)
        spans = _address_spans(elements, self.packet.family) if elements is not None else None
        if spans is None:
            return self.unknown()
        matched = AddressSet(spans)
        cond = Cond(matched, matched)
        return _negate(cond, self.universe) if op == "!=" else cond

    def value(self, left):
        """The packet's value for an expression: ``(kind, value)``, _SADDR, False or UNKNOWN."""
        if not isinstance(left, Mapping) or len(left) != 1:
            return UNKNOWN
        kind, body = next(iter(left.items()))
        if not isinstance(body, Mapping):
            return UNKNOWN
        packet = self.packet
        if kind == "payload":
            proto, name = body.get("protocol"), body.get("field")
            if proto in ("ip", "ip6"):
                if proto != L3[packet.family]:
                    return False
                if name == "saddr":
                    return _SADDR
                if name == "daddr":
                    return (
                        ("address", (packet.family, self.daddr))
                        if self.daddr is not None
                        else UNKNOWN
                    )
                if name in ("protocol", "nexthdr"):
                    return ("l4proto", L4_NUMBERS[packet.protocol])
                if name == "version":
                    return ("number", 4 if packet.family == "ipv4" else 6)
                return UNKNOWN
            if proto in ("tcp", "udp", "th"):
                if proto != "th" and proto != packet.protocol:
                    return False
                return ("number", packet.dport) if name == "dport" else UNKNOWN
            return False if proto in OTHER_L4 else UNKNOWN
        if kind == "meta":
            return self.meta(body.get("key"))
        if kind == "ct":
            if body.get("key") == "state" and self.ct_known and "dir" not in body:
                return ("flags", "new")
            return UNKNOWN
        if kind == "fib":
            if body.get("result") == "type" and body.get("flags") == ["daddr"]:
                return ("name", "local")
            return UNKNOWN
        return UNKNOWN

    def meta(self, key):
        packet = self.packet
        if key == "l4proto":
            return ("l4proto", L4_NUMBERS[packet.protocol])
        if key == "nfproto":
            return ("name", packet.family)
        if key == "protocol":
            return ("name", L3[packet.family])
        if key in ("iifname", "iif"):
            return ("ifname", packet.iifname) if packet.iifname is not None else UNKNOWN
        if key == "pkttype":
            return ("name", "host")
        return UNKNOWN

    def elements(self, chain, right):
        """The elements a right-hand side stands for (a named set's, a set's or itself)."""
        right = _unwrap(right)
        if isinstance(right, str) and right.startswith("@"):
            key = (chain.family, chain.table, right[1:])
            if key not in self.ruleset.sets:
                raise NftJsonError(
                    f"{chain.family} {chain.table} {chain.name} refers to set "
                    f"{right}, which the ruleset lacks"
                )
            return self.ruleset.sets[key]
        if isinstance(right, Mapping) and "set" in right:
            return right["set"] if isinstance(right["set"], list) else [right["set"]]
        if isinstance(right, list):
            return right
        return [right]

    def const(self, value):
        if value is UNKNOWN:
            return self.unknown()
        return Cond(self.universe, self.universe) if value else Cond(AddressSet(), AddressSet())

    def unknown(self):
        return Cond(AddressSet(), self.universe)


_SADDR = object()
_VERDICTS = ("accept", "drop", "reject", "queue", "continue", "return", "jump", "goto")


def _and(left, right):
    return Cond(left.sure & right.sure, left.maybe & right.maybe)


def _negate(cond, universe):
    return Cond(universe - cond.maybe, universe - cond.sure)


def _unwrap(element):
    """``{"elem": {"val": X, "timeout": ...}}`` -> X."""
    if isinstance(element, Mapping) and isinstance(element.get("elem"), Mapping):
        return element["elem"].get("val")
    return element


def _address_spans(elements, family):
    """Address elements (addresses, prefixes, ranges) as integer spans; None if not all are."""
    spans = []
    for element in elements:
        element = _unwrap(element)
        try:
            if isinstance(element, str):
                value = address_int(element, family)
                spans.append((value, value))
            elif isinstance(element, Mapping) and isinstance(element.get("prefix"), Mapping):
                prefix = element["prefix"]
                net = ipaddress.ip_network(
                    f"{prefix.get('addr')}/{prefix.get('len')}", strict=False
                )
                if net.max_prefixlen != BITS[family]:
                    return None
                spans.append((int(net.network_address), int(net.broadcast_address)))
            elif (
                isinstance(element, Mapping)
                and isinstance(element.get("range"), list)
                and len(element["range"]) == 2
            ):
                low, high = (address_int(v, family) for v in element["range"])
                spans.append((low, high))
            else:
                return None
        except (NftJsonError, ValueError, TypeError):
            return None
    return spans


def _compare_value(kind, value, op, elements, right):
    """True/False/UNKNOWN for a known packet value against the right-hand side."""
    if op in ("<", ">", "<=", ">="):
        bound = _normal(kind, _unwrap(right))
        if not isinstance(value, int) or not isinstance(bound, int):
            return UNKNOWN
        return {"<": value < bound, ">": value > bound, "<=": value <= bound, ">=": value >= bound}[
            op
        ]
    if op not in ("==", "!=", "in") or elements is None:
        return UNKNOWN
    found = False
    for element in elements:
        hit = _element_holds(kind, value, _unwrap(element))
        if hit is UNKNOWN:
            return UNKNOWN
        found = found or hit
    return (not found) if op == "!=" else found


def _element_holds(kind, value, element):
    if (
        isinstance(element, Mapping)
        and isinstance(element.get("range"), list)
        and len(element["range"]) == 2
    ):
        low, high = (_normal(kind, v) for v in element["range"])
        if not all(isinstance(v, int) for v in (value, low, high)):
            return UNKNOWN
        return low <= value <= high
    if kind == "address":
        family, number = value
        spans = _address_spans([element], family)
        return UNKNOWN if spans is None else spans[0][0] <= number <= spans[0][1]
    if kind == "ifname" and isinstance(element, str):
        if element.endswith("*") and not element.endswith("\\*"):
            return value.startswith(element[:-1])
        return value == element.replace("\\*", "*")
    normal = _normal(kind, element)
    if normal is UNKNOWN:
        return UNKNOWN
    return normal == value


def _normal(kind, element):
    """A right-hand value in the packet value's terms (protocol names as numbers)."""
    if kind == "l4proto" and isinstance(element, str):
        return L4_NUMBERS.get(element, UNKNOWN)
    if kind in ("number", "l4proto"):
        return element if isinstance(element, int) and not isinstance(element, bool) else UNKNOWN
    if kind in ("name", "flags", "ifname"):
        return element if isinstance(element, str) else UNKNOWN
    return UNKNOWN


# --- rule text for messages ----------------------------------------------------------------


def rule_text(rule):
    """A rule in (approximately) nft syntax, for messages: ``tcp dport 29550 accept``."""
    words = [_expr_text(e) for e in rule.get("expr") or []]
    text = " ".join(w for w in words if w)
    if rule.get("comment"):
        text += f' comment "{rule["comment"]}"'
    return text


def _expr_text(expr):
    if not isinstance(expr, Mapping) or len(expr) != 1:
        return "?"
    kind, body = next(iter(expr.items()))
    if kind == "match" and isinstance(body, Mapping):
        op = body.get("op", "==")
        op = "" if op in ("==", "in") else f"{op} "
        return f"{_value_text(body.get('left'))} {op}{_value_text(body.get('right'))}"
    if kind in ("accept", "drop", "continue", "return", "queue"):
        return kind
    if kind == "reject":
        if isinstance(body, Mapping) and body.get("type"):
            return " ".join(["reject with", body["type"], str(body.get("expr") or "")]).strip()
        return "reject"
    if kind in ("jump", "goto") and isinstance(body, Mapping):
        return f"{kind} {body.get('target')}"
    if kind == "vmap" and isinstance(body, Mapping):
        return f"{_value_text(body.get('key'))} vmap {_value_text(body.get('data'))}"
    if kind == "counter":
        return ""
    return kind


def _value_text(value):
    if isinstance(value, Mapping) and len(value) == 1:
        kind, body = next(iter(value.items()))
        if kind == "payload" and isinstance(body, Mapping):
            return f"{body.get('protocol')} {body.get('field')}"
        if kind == "meta" and isinstance(body, Mapping):
            key = body.get("key")
            return key if key in ("iifname", "iif", "oifname", "oif") else f"meta {key}"
        if kind == "ct" and isinstance(body, Mapping):
            return f"ct {body.get('key')}"
        if kind == "fib" and isinstance(body, Mapping):
            return f"fib {' . '.join(body.get('flags') or [])} {body.get('result')}"
        if kind == "prefix" and isinstance(body, Mapping):
            return f"{body.get('addr')}/{body.get('len')}"
        if kind == "range" and isinstance(body, list):
            return "-".join(_value_text(v) for v in body)
        if kind == "set":
            items = body if isinstance(body, list) else [body]
            return "{ " + ", ".join(_value_text(v) for v in items) + " }"
        if kind == "concat" and isinstance(body, list):
            return " . ".join(_value_text(v) for v in body)
        if kind == "elem" and isinstance(body, Mapping):
            return _value_text(body.get("val"))
        return kind
    if isinstance(value, list):
        if len(value) == 2 and isinstance(value[1], Mapping):  # a verdict map element
            return f"{_value_text(value[0])} : {_expr_text(value[1])}"
        return ",".join(_value_text(v) for v in value)
    if (
        isinstance(value, str)
        and not value.startswith("@")
        and not value.replace(".", "").replace(":", "").replace("-", "").isalnum()
    ):
        return f'"{value}"'
    return str(value).lower() if isinstance(value, bool) else str(value)
