# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render the firewall's nftables table from a cluster plan (stdlib only).

Used on the target by the nft_apply module and on the controller by the
nft_ruleset filter, so what is previewed, validated and applied is one text.
Every value that reaches the ruleset is checked here first: a plan that does
not fit raises PlanError naming the host, the plan key and the fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import (
    AUDIENCES,
    TABLE,
    PlanContractError,
    check_plan,
    problem,
)

LOG_PREFIX = "hardened-vllm drop: "
# The address the ruleset was rendered for, as a comment the firewall watchdog reads: a node
# whose address changed (DHCP, a restarted container) keeps only SSH from the admins open.
ADDRESS_COMMENT = "# hardened.vllm.firewall address: {address} on {iface}"
# plan key, nft match keyword, set type, set-name suffix, ipaddress version
FAMILIES = (("ipv4", "ip", "ipv4_addr", "v4", 4), ("ipv6", "ip6", "ipv6_addr", "v6", 6))
ICMP_ERRORS = "destination-unreachable, time-exceeded, parameter-problem"
# What IPv6 needs to work at all (RFC 4890): errors incl. packet-too-big for PMTU
# discovery, neighbour discovery, router advertisements (SLAAC), MLD queries.
ICMPV6_NEEDED = (
    "destination-unreachable, packet-too-big, time-exceeded, parameter-problem, "
    "nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query"
)
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_RATE = re.compile(r"^[1-9][0-9]{0,5}/(second|minute|hour|day)$")
_ELEMENTS_PER_LINE = 4
_NOBODY = {"ipv4": [], "ipv6": []}


class PlanError(ValueError):
    """The plan (or an option) cannot be rendered; the message says where and how to fix."""


def render(plan, admins=None, log_dropped=True, log_rate="10/minute", icmp_echo=True):
    """Return the nft script that atomically replaces the table for ``plan``.

    ``admins`` (CIDR strings) replaces the plan's admin sets; the module passes
    the controller's derived address here when the plan has none.
    """
    host = _host(plan)
    where = _Where(host)
    label = _comment(host)
    if not _RATE.match(str(log_rate)):
        raise where.fail(
            "firewall_log_rate",
            f"{log_rate!r} is not an nft rate",
            "write <number>/<second|minute|hour|day>, e.g. 10/minute",
        )
    iface = plan.get("cluster_iface")
    if not isinstance(iface, str) or not _IFNAME.match(iface):
        raise where.fail(
            "cluster_plan.cluster_iface",
            f"{iface!r} is not an interface name",
            "re-run hardened.vllm.cluster so the plan names the interface that holds host_ip",
        )
    sets = {
        "admins": (
            _families(admins, where, "firewall admins (derived)")
            if admins is not None
            else _family_map(plan.get("admins"), where, "cluster_plan.admins")
        ),
        "clients": _family_map(plan.get("clients"), where, "cluster_plan.clients"),
        # Plans published before the gateway have no monitoring audience: nobody.
        "monitoring": _family_map(
            plan.get("monitoring", _NOBODY), where, "cluster_plan.monitoring"
        ),
        "peers": _family_map(plan.get("peers"), where, "cluster_plan.peers"),
    }
    openings = []  # (exposure entry, name of the sets it admits)
    for index, entry in enumerate(_exposure(plan, where)):
        if entry["audience"] == "custom":
            name = f"custom{index}"
            sets[name] = _family_map(entry["from"], where, f"cluster_plan.exposure[{index}].from")
            openings.append((entry, name))
        elif entry["audience"] != "peers":  # peers reach every port on the cluster interface
            openings.append((entry, entry["audience"]))

    lines = [
        f"# hardened.vllm.firewall: the nftables table of {label}, rendered from its",
        "# cluster_plan. Loaded by hardened-vllm-firewall.service; local edits are overwritten.",
        *_address_comment(plan, iface),
        f"table {TABLE}",
        f"delete table {TABLE}",
        f"table {TABLE} {{",
        f'\tcomment "hardened.vllm.firewall: default-deny input of {label}"',
    ]
    for name, by_family in sets.items():
        for family, _match, set_type, suffix, _version in FAMILIES:
            lines += _set(f"{name}_{suffix}", set_type, by_family[family])
    lines += [
        "",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        "\t\tct state established,related accept",
        "\t\tct state invalid drop",
        '\t\tiif "lo" accept',
        f"\t\ticmp type {{ {ICMP_ERRORS} }} accept",
        f"\t\ticmpv6 type {{ {ICMPV6_NEEDED} }} accept",
        '\t\tip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 replies"',
    ]
    if icmp_echo:
        lines += [
            "\t\ticmp type echo-request limit rate 10/second accept",
            "\t\ticmpv6 type echo-request limit rate 10/second accept",
        ]
    for entry, set_name in openings:
        comment = _comment(f"{entry['name']} from {entry['audience']}")
        for _family, match, _set_type, suffix, _version in FAMILIES:
            lines.append(
                f"\t\t{entry['proto']} dport {entry['port']} {match} saddr "
                f'@{set_name}_{suffix} accept comment "{comment}"'
            )
    for _family, match, _set_type, suffix, _version in FAMILIES:
        lines.append(
            f'\t\tiifname "{iface}" {match} saddr @peers_{suffix} accept '
            'comment "cluster peers: every port"'
        )
    if log_dropped:
        lines.append(f'\t\tlimit rate {log_rate} log prefix "{LOG_PREFIX}" level info')
    lines += ['\t\tcounter drop comment "default deny"', "\t}", "}", ""]
    return "\n".join(lines)


def _address_comment(plan, iface):
    """The host address line for the watchdog; none for a plan without a valid host_ip."""
    try:
        address = ipaddress.ip_address(str(plan.get("host_ip")))
    except ValueError:
        return []
    return [ADDRESS_COMMENT.format(address=address, iface=iface)]


class _Where:
    """Builds errors that name the host, the variable and the fix."""

    def __init__(self, host):
        self.host = host

    def fail(self, variable, message, fix):
        return PlanError(problem(self.host, variable, message, fix))


def _host(plan):
    try:
        return check_plan(plan)
    except PlanContractError as exc:
        raise PlanError(str(exc)) from None


def _exposure(plan, where):
    entries = plan.get("exposure")
    if not isinstance(entries, list):
        raise where.fail(
            "cluster_plan.exposure",
            f"must be a list, got {entries!r}",
            "re-run hardened.vllm.cluster",
        )
    for index, entry in enumerate(entries):
        var = f"cluster_plan.exposure[{index}]"
        if not isinstance(entry, Mapping) or entry.get("audience") not in AUDIENCES:
            raise where.fail(
                var, f"{entry!r} has no audience of {AUDIENCES}", "re-run hardened.vllm.cluster"
            )
        port = entry.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise where.fail(
                f"{var}.port",
                f"{port!r} is not a port number",
                "use a whole number from 1 to 65535 (for custom "
                "openings: in cluster_extra_allowances)",
            )
        if entry.get("proto") not in ("tcp", "udp"):
            raise where.fail(
                f"{var}.proto", f"{entry.get('proto')!r} is not tcp or udp", "use tcp or udp"
            )
        if entry["audience"] == "custom" and not isinstance(entry.get("from"), Mapping):
            raise where.fail(
                f"{var}.from",
                "a custom opening needs from: {ipv4: [...], ipv6: [...]}",
                "set from in cluster_extra_allowances and re-run the cluster role",
            )
    return entries


def _family_map(value, where, variable):
    """A plan address map {ipv4: [CIDR...], ipv6: [...]} -> collapsed networks per family."""
    if not isinstance(value, Mapping) or set(value) - {"ipv4", "ipv6"}:
        raise where.fail(
            variable,
            f"must be {{ipv4: [...], ipv6: [...]}}, got {value!r}",
            "re-run hardened.vllm.cluster",
        )
    result = {}
    for family, _match, _set_type, _suffix, version in FAMILIES:
        items = value.get(family) or []
        if isinstance(items, (str, bytes)) or not isinstance(items, list):
            raise where.fail(
                f"{variable}.{family}",
                f"must be a list, got {items!r}",
                "re-run hardened.vllm.cluster",
            )
        nets = [
            _network(item, version, where, f"{variable}.{family}[{i}]")
            for i, item in enumerate(items)
        ]
        result[family] = list(ipaddress.collapse_addresses(nets))
    return result


def _families(cidrs, where, variable):
    """A flat CIDR list of either family -> the same shape as _family_map."""
    if isinstance(cidrs, (str, bytes)) or not isinstance(cidrs, (list, tuple)):
        raise where.fail(
            variable, f"must be a list of CIDRs, got {cidrs!r}", "set cluster_admin_cidrs"
        )
    nets = [_network(item, None, where, f"{variable}[{i}]") for i, item in enumerate(cidrs)]
    return {
        family: list(ipaddress.collapse_addresses(n for n in nets if n.version == version))
        for family, _match, _set_type, _suffix, version in FAMILIES
    }


def _network(value, version, where, variable):
    """Parse one CIDR (a bare address is a host network); ``version`` None takes either."""
    try:
        net = ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise where.fail(
            variable,
            f"{value!r} is not an IP network",
            "write a CIDR such as 10.0.0.0/24 or fd00::/64",
        ) from None
    if version is not None and net.version != version:
        raise where.fail(
            variable,
            f"{value} is not an IPv{version} network",
            "put it in the list of its own address family",
        )
    return net


def _set(name, set_type, networks):
    lines = ["", f"\tset {name} {{", f"\t\ttype {set_type}", "\t\tflags interval"]
    if networks:
        texts = [_element(n) for n in networks]
        chunks = [
            ", ".join(texts[i : i + _ELEMENTS_PER_LINE])
            for i in range(0, len(texts), _ELEMENTS_PER_LINE)
        ]
        lines.append("\t\telements = { " + ",\n\t\t\t     ".join(chunks) + " }")
    lines.append("\t}")
    return lines


def _element(net):
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _comment(text):
    """Comments come from user-chosen names: keep them to a safe character set."""
    return re.sub(r"[^A-Za-z0-9 _.:/@+-]", "_", str(text))[:120]
