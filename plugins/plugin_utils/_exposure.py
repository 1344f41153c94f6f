# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exposure verdict: who can reach each listening socket, judged against the plan.

For every listener of a host (``hardened.vllm.listening_sockets`` records) this asks the
ruleset evaluator which source addresses may open a connection to it, per address family the
socket accepts and per input interface that matters, and compares them with the plan: a port
in ``plan.exposure`` may be reached by its audience (and by peers on the cluster interface),
any other port by peers on the cluster interface only. Sources are classed as peers, clients,
monitoring, admins, custom (any custom allowance's ``from``) or others (every other unicast
address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import (
    ADDRESS_AUDIENCES as PLAN_ADDRESS_AUDIENCES,
)
from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import (
    AUDIENCES,
    TABLE,
    PlanContractError,
    bracket,
    check_plan,
    port_exposure,
)
from ansible_collections.hardened.vllm.plugins.module_utils._sockets import classify_address
from ansible_collections.hardened.vllm.plugins.plugin_utils._addresses import netaddr
from ansible_collections.hardened.vllm.plugins.plugin_utils._nft_eval import (
    AddressSet,
    NftJsonError,
    Packet,
    Ruleset,
)
from ansible_collections.hardened.vllm.plugins.plugin_utils._report import table

FIREWALL_TABLE = tuple(TABLE.split())  # ("inet", "hardened_vllm"), as the firewall renders it
CLASSES = ("peers", "clients", "monitoring", "admins", "custom", "others")
# Never a packet's source on the wire: unspecified, loopback, multicast, reserved, mapped.
NOT_A_SOURCE = ["0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "::/8", "ff00::/8"]
FAMILIES = ("ipv4", "ipv6")
# Audiences that are a set of addresses in the plan, beside peers (custom carries its own ``from``).
ADDRESS_AUDIENCES = tuple(a for a in PLAN_ADDRESS_AUDIENCES if a != "peers")
# A plan published before the gateway has no monitoring audience: nobody.
_NOBODY = {"ipv4": [], "ipv6": []}
# Where an example source is looked for first (after the cluster network): private, then global.
LIKELY = {
    "ipv4": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
    "ipv6": ["fc00::/7", "2000::/3"],
}


class ExposureError(ValueError):
    """Input the verdict cannot be computed from; the message names the value."""


def exposure_verdict(listeners, plan, ruleset, interfaces=None, admins=None):
    """The verdict for one host; see plugins/filter/exposure_verdict.yml for the shape."""
    _check_plan(plan)
    if isinstance(listeners, (str, bytes)) or not isinstance(listeners, (list, tuple)):
        raise ExposureError(
            f"listeners must be a list of listening_sockets records, got {type(listeners).__name__}"
        )
    try:
        rules = ruleset if isinstance(ruleset, Ruleset) else Ruleset(ruleset)
    except NftJsonError as exc:
        raise ExposureError(f"ruleset: {exc}") from None
    if admins is None and not any(plan["admins"].get(f) for f in FAMILIES):
        admins = _derived_admins(rules)
    admin_map = _admin_map(plan, admins)
    judge = _Judge(plan, rules, _interfaces(plan, interfaces), _classes(plan, admin_map))
    entries = [judge.listener(_listener(item, index)) for index, item in enumerate(listeners)]
    violations = [v for e in entries for v in e.pop("_violations")]
    warnings = [w for e in entries for w in e.pop("_warnings")]
    return {
        "host": plan["host"],
        "ok": not violations,
        "firewall_table": judge.has_table,
        "admins": {f: list(admin_map.get(f) or []) for f in FAMILIES},
        "interfaces": judge.interfaces,
        "listeners": entries,
        "violations": violations,
        "warnings": warnings,
    }


# --- input ---------------------------------------------------------------------------------


def _check_plan(plan):
    try:
        check_plan(plan, ("cluster_iface", "peers", "clients", "admins", "exposure"))
    except PlanContractError as exc:
        raise ExposureError(str(exc)) from None
    if not isinstance(plan["cluster_iface"], str) or not plan["cluster_iface"]:
        raise ExposureError(
            f"plan.cluster_iface of {plan['host']} is {plan['cluster_iface']!r}, "
            "not an interface name; re-run the hardened.vllm.cluster role"
        )
    exposure = plan["exposure"]
    if not isinstance(exposure, list) or not all(
        isinstance(e, Mapping) and e.get("audience") in AUDIENCES and "port" in e and "proto" in e
        for e in exposure
    ):
        raise ExposureError(
            f"plan.exposure of {plan['host']} must be a list of {{name, proto, "
            f"port, audience}}, got {exposure!r:.200}; re-run the "
            "hardened.vllm.cluster role"
        )


def _listener(item, index):
    """A listener record with the fields the verdict uses, checked and completed."""
    where = f"listeners[{index}]"
    if not isinstance(item, Mapping):
        raise ExposureError(f"{where} must be a listening_sockets record, got {item!r}")
    missing = [k for k in ("protocol", "family", "address", "port") if k not in item]
    if missing:
        raise ExposureError(f"{where} lacks {', '.join(missing)}: {dict(item)!r}")
    if item["protocol"] not in ("tcp", "udp") or item["family"] not in FAMILIES:
        raise ExposureError(
            f"{where}: protocol {item['protocol']!r} / family "
            f"{item['family']!r} is not tcp/udp and ipv4/ipv6"
        )
    port = item["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ExposureError(f"{where}: port {port!r} is not a port number")
    try:
        ip = ipaddress.ip_address(str(item["address"]))
    except ValueError:
        raise ExposureError(f"{where}: address {item['address']!r} is not an IP address") from None
    if ip.max_prefixlen != (32 if item["family"] == "ipv4" else 128):
        raise ExposureError(f"{where}: address {ip} is not an {item['family']} address")
    record = dict(item)
    classes = classify_address(str(ip))
    for key in ("mapped_ipv4", "wildcard", "loopback"):
        record.setdefault(key, classes[key])
    if "dual_stack" not in record:  # unknown v6only: assume the socket also takes IPv4
        record["dual_stack"] = (
            item["family"] == "ipv6" and ip.is_unspecified and not record.get("v6only")
        )
    return record


def _interfaces(plan, interfaces):
    """The cluster interface first, then every other non-loopback interface given."""
    if interfaces is None:
        interfaces = []
    if isinstance(interfaces, (str, bytes)) or not isinstance(interfaces, (list, tuple)):
        raise ExposureError(f"interfaces must be a list of interface names, got {interfaces!r}")
    result = [plan["cluster_iface"]]
    for name in interfaces:
        if not isinstance(name, str) or not name:
            raise ExposureError(f"interfaces: {name!r} is not an interface name")
        if name != "lo" and name not in result:
            result.append(name)
    return result


def _derived_admins(rules):
    """The admin sets the firewall role derived (plan without admins: the controller's address).

    None when the table or its sets are missing, which leaves the plan's (empty) admins.
    """
    found = [rules.set_cidrs(*FIREWALL_TABLE, f"admins_v{f[-1]}", f) for f in FAMILIES]
    if all(cidrs is None for cidrs in found):
        return None
    return [c for cidrs in found for c in cidrs or []]


def _admin_map(plan, admins):
    """Per family, the admin CIDRs in effect: ``admins`` when given, else the plan's."""
    if admins is None:
        return plan["admins"]
    if isinstance(admins, (str, bytes)) or not isinstance(admins, (list, tuple)):
        raise ExposureError(f"admins must be a list of CIDRs, got {admins!r}")
    return {f: [c for c in admins if _version(c, "admins") == int(f[-1])] for f in FAMILIES}


def _classes(plan, admin_map):
    """Per family, the address set of each source class (None: the class is empty)."""
    if netaddr is None:  # pragma: no cover - the filter checks first
        raise ExposureError("the netaddr Python library is required")
    custom = {
        f: [
            c
            for e in plan["exposure"]
            if e.get("audience") == "custom"
            for c in (e.get("from") or {}).get(f) or []
        ]
        for f in FAMILIES
    }
    result = {}
    for family in FAMILIES:
        version = int(family[-1])
        sets = {
            "peers": _ipset(plan["peers"], family, "plan.peers"),
            "clients": _ipset(plan["clients"], family, "plan.clients"),
            "monitoring": _ipset(plan.get("monitoring", _NOBODY), family, "plan.monitoring"),
            "admins": _ipset(admin_map, family, "admins"),
            "custom": _ipset(custom, family, "plan.exposure[].from"),
        }
        universe = netaddr.IPSet([netaddr.IPNetwork("0.0.0.0/0" if version == 4 else "::/0")])
        valid = universe - netaddr.IPSet(NOT_A_SOURCE)
        others = valid.copy()
        for ipset in sets.values():
            others -= ipset
        sets["others"] = others
        result[family] = {
            "valid": _spans(valid),
            **{name: _spans(s) if s else None for name, s in sets.items()},
        }
    return result


def _version(cidr, variable):
    try:
        return netaddr.IPNetwork(str(cidr)).version
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ExposureError(f"{variable}: {cidr!r} is not a CIDR") from None


def _ipset(by_family, family, variable):
    if not isinstance(by_family, Mapping):
        raise ExposureError(f"{variable} must be {{ipv4: [...], ipv6: [...]}}, got {by_family!r}")
    cidrs = by_family.get(family) or []
    try:
        nets = [netaddr.IPNetwork(str(c)) for c in cidrs]
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ExposureError(
            f"{variable}.{family}: {cidrs!r} holds a value that is not a CIDR"
        ) from None
    if any(n.version != int(family[-1]) for n in nets):
        raise ExposureError(f"{variable}.{family}: {cidrs!r} holds a network of the other family")
    return netaddr.IPSet(nets)


def _spans(ipset):
    return AddressSet((int(r.first), int(r.last)) for r in ipset.iter_ipranges())


# --- judging -------------------------------------------------------------------------------


class _Judge:
    def __init__(self, plan, ruleset, interfaces, classes):
        self.plan, self.ruleset, self.interfaces, self.classes = plan, ruleset, interfaces, classes
        self.has_table = ruleset.has_table(*FIREWALL_TABLE)
        self.networks = {f: AddressSet() for f in FAMILIES}
        for cidr in plan.get("cluster_networks") or []:
            net = ipaddress.ip_network(cidr)
            family = f"ipv{net.version}"
            self.networks[family] |= AddressSet(
                [(int(net.network_address), int(net.broadcast_address))]
            )
        self._reach = {}

    def listener(self, sock):
        exposure, audience = port_exposure(self.plan, sock["protocol"], sock["port"])
        entry = {
            "protocol": sock["protocol"],
            "family": sock["family"],
            "address": sock["address"],
            "port": sock["port"],
            "pid": sock.get("pid"),
            "process": sock.get("process"),
            "interface": sock.get("interface"),
            "audience": audience,
            "families": [],
            "interfaces": [],
            "reach": {},
            "exposed": [],
            "certain": True,
            "_violations": [],
            "_warnings": [],
        }
        if sock.get("netns_is_host") is False:
            names = ", ".join(sock.get("netns_names") or []) or sock.get("netns")
            entry.update(
                verdict="unchecked",
                reason=f"in network namespace {names}, which this host's ruleset does not filter",
            )
            entry["_warnings"].append(f"{self._name(sock)}: {entry['reason']}; not judged")
            return entry
        stage = (self.plan.get("ports") or {}).get("stage")
        if sock["protocol"] == "tcp" and stage is not None and sock["port"] == stage:
            entry.update(
                verdict="violation",
                reason=f"listens on the plan's stage port {stage}, where only the vllm role's "
                "stage server may listen, and only while the peers fetch the wheelhouse or "
                "the model",
            )
            entry["_violations"].append(
                f"{self._name(sock)}: {entry['reason']}; stop it (systemctl stop "
                "hardened-vllm-stage.service) or move it off cluster_ports.stage"
            )
            return entry
        router = ((self.plan.get("api") or {}).get("router") or {}).get("port")
        if (
            sock["protocol"] == "tcp"
            and router is not None
            and sock["port"] == router
            and not sock["loopback"]
        ):
            entry.update(
                verdict="violation",
                reason=f"listens beyond loopback on the plan's router port {router}, where only "
                "the disaggregated router may listen, on 127.0.0.1 behind the gateway (it "
                "takes requests without a key)",
            )
            entry["_violations"].append(
                f"{self._name(sock)}: {entry['reason']}; stop whatever listens there, or "
                "move it off cluster_ports.router"
            )
            return entry
        if sock["loopback"] or sock.get("interface") == "lo":
            entry.update(verdict="ok", reason="bound to loopback: not reachable from the network")
            return entry
        families = self._families(sock)
        interfaces = [sock["interface"]] if sock.get("interface") else self.interfaces
        daddr = sock["mapped_ipv4"] or (None if sock["wildcard"] else sock["address"])
        entry.update(families=families, interfaces=interfaces)
        for family in families:
            entry["reach"][family] = self._family(entry, sock, family, interfaces, daddr, exposure)
        if entry["exposed"]:
            first = entry["exposed"][0]
            entry["verdict"] = "violation"
            entry["reason"] = first["text"]
            more = len(entry["exposed"]) - 1
            entry["_violations"].append(
                f"{self._name(sock)}: {first['text']}"
                + (f" (and {more} more way(s) in)" if more else "")
            )
        else:
            entry["verdict"] = "ok"
            entry["reason"] = f"only {_allowed_words(audience)} can reach it" + (
                ""
                if entry["certain"]
                else " (matches this audit cannot evaluate were counted as letting packets in)"
            )
        return entry

    def _families(self, sock):
        if sock["family"] == "ipv4" or sock["mapped_ipv4"]:
            return ["ipv4"]
        return ["ipv6", "ipv4"] if sock["wildcard"] and sock["dual_stack"] else ["ipv6"]

    def _family(self, entry, sock, family, interfaces, daddr, exposure):
        """Reach per class for one family over all interfaces; records exposures."""
        classes = self.classes[family]
        reach = {name: (False if classes[name] is not None else None) for name in CLASSES}
        for iface in interfaces:
            result = self._reachable(family, sock, iface, daddr)
            entry["certain"] = entry["certain"] and result.maybe == result.sure
            for name in CLASSES:
                if classes[name] is not None and result.maybe & classes[name]:
                    reach[name] = True
            allowed = self._allowed(family, iface, exposure)
            exposed = result.maybe & (classes["valid"] - allowed)
            if exposed:
                entry["exposed"].append(
                    self._exposed(sock, family, iface, daddr, exposed, entry["audience"])
                )
        return reach

    def _reachable(self, family, sock, iface, daddr):
        key = (family, sock["protocol"], sock["port"], iface, daddr)
        if key not in self._reach:
            packet = Packet(family, sock["protocol"], sock["port"], iface, daddr)
            self._reach[key] = self.ruleset.reachable(packet)
        return self._reach[key]

    def _allowed(self, family, iface, exposure):
        classes = self.classes[family]
        allowed = AddressSet()
        if iface == self.plan["cluster_iface"] and classes["peers"] is not None:
            allowed |= classes["peers"]
        for item in exposure:
            if item["audience"] in ADDRESS_AUDIENCES and classes[item["audience"]]:
                allowed |= classes[item["audience"]]
            elif item["audience"] == "custom":
                cidrs = (item.get("from") or {}).get(family) or []
                allowed |= _spans(netaddr.IPSet(netaddr.IPNetwork(c) for c in cidrs))
        return allowed

    def _exposed(self, sock, family, iface, daddr, exposed, audience):
        """Describe one way in: who, an example source, and the rule that lets it through."""
        classes = self.classes[family]
        who = [
            n
            for n in ("others", "clients", "monitoring", "admins", "custom", "peers")
            if classes[n] is not None and exposed & classes[n]
        ]
        pick = exposed & classes[who[0]]
        likely = [self.networks[family], *(_spans(netaddr.IPSet([c])) for c in LIKELY[family])]
        source = next(
            (s for s in ((pick & near).first() for near in likely) if s is not None), pick.first()
        )
        address = str(
            ipaddress.IPv6Address(source) if family == "ipv6" else ipaddress.IPv4Address(source)
        )
        verdict = self.ruleset.evaluate(
            Packet(family, sock["protocol"], sock["port"], iface, daddr, address)
        )
        via = (
            ""
            if iface == self.plan["cluster_iface"] or who[0] != "peers"
            else ", not the cluster interface"
        )
        why = verdict.describe()
        if not self.has_table:
            why = (
                f"the firewall table {' '.join(FIREWALL_TABLE)} is missing, so nothing of "
                f"this collection filters it ({why})"
            )
        text = (
            f"reachable from {' and '.join(who)} (e.g. {address} on {iface}{via}, "
            f"{_family_word(family)}) but only {_allowed_words(audience)} may reach it: "
            f"{why}"
        )
        return {
            "family": family,
            "interface": iface,
            "who": who,
            "source": address,
            "rule": verdict.decided_by.as_dict() if verdict.decided_by else None,
            "certain": verdict.certain,
            "text": text,
        }

    def _name(self, sock):
        address = sock["address"]
        shown = bracket(address)
        owner = f"{sock.get('process') or 'no process'}, pid {sock.get('pid')}"
        return f"{self.plan['host']}: {sock['protocol']} {shown}:{sock['port']} ({owner})"


def _allowed_words(audience):
    words = [a for a in audience if a != "peers"]
    return " and ".join([*words, "peers on the cluster interface"])


def _family_word(family):
    return "IPv4" if family == "ipv4" else "IPv6"


# --- the matrix ----------------------------------------------------------------------------


def exposure_matrix(verdicts):
    """A plain-text table: one line per node socket, one column per source class."""
    if isinstance(verdicts, Mapping):
        verdicts = [verdicts]
    if isinstance(verdicts, (str, bytes)) or not isinstance(verdicts, (list, tuple)):
        raise ExposureError(f"input must be a list of exposure verdicts, got {verdicts!r:.200}")
    rows = []
    for index, verdict in enumerate(verdicts):
        if not isinstance(verdict, Mapping) or not isinstance(verdict.get("listeners"), list):
            raise ExposureError(f"item {index} is not an exposure_verdict result: {verdict!r:.200}")
        for entry in verdict["listeners"]:
            rows.append(_matrix_row(verdict.get("host"), entry))
    rows.sort(key=lambda r: (r[0], r[1], r[-1], r[2]))
    header = ["node", "proto", "address:port", "process", "may reach", *CLASSES, "verdict"]
    text = table([header] + [r[:-1] for r in rows])
    text += [
        "",
        "yes = can open a connection, - = cannot, . = no such source in the plan, "
        "! = the plan does not allow it",
    ]
    return "\n".join(text) + "\n"


def _matrix_row(host, entry):
    address = str(entry.get("address"))
    shown = bracket(address)
    exposed = {w for e in entry.get("exposed") or [] for w in e.get("who") or []}
    cells = []
    for name in CLASSES:
        values = [r.get(name) for r in (entry.get("reach") or {}).values()]
        if entry.get("verdict") == "unchecked":
            cells.append("?")
        elif any(values):
            cells.append("yes" + ("!" if name in exposed else ""))
        elif values and all(v is None for v in values):
            cells.append(".")
        else:
            cells.append("-")
    return [
        str(host),
        entry.get("protocol"),
        f"{shown}:{entry.get('port')}",
        entry.get("process") or "?",
        ",".join(entry.get("audience") or []),
        *cells,
        {"violation": "VIOLATION"}.get(entry.get("verdict"), entry.get("verdict")),
        entry.get("port"),
    ]
