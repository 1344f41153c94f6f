# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Address parsing shared by the controller-side plugins.

Problems go into a ``_plan_contract.Problems`` given by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping

try:
    import netaddr
except ImportError:  # pragma: no cover - reported by the filter with a clear message
    netaddr = None


def parse_address(value, variable, host, problems):
    """One IP address (no prefix), or None after recording a problem."""
    try:
        return netaddr.IPAddress(str(value).strip())
    except (netaddr.AddrFormatError, ValueError, TypeError):
        problems.add(
            host,
            variable,
            f"{value!r} is not an IP address",
            "write a plain IPv4 or IPv6 address such as 10.0.0.11",
        )
        return None


def parse_cidrs(values, variable, host, problems):
    """A list of networks; a bare address counts as a host network (/32, /128)."""
    return [net for _index, net in indexed_cidrs(values, variable, host, problems)]


def indexed_cidrs(values, variable, host, problems):
    """Like parse_cidrs, as ``(index in the list, network)`` pairs for messages per entry."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        problems.add(
            host,
            variable,
            f"must be a list of CIDRs, got {values!r}",
            "write a YAML list such as [10.0.0.0/24]",
        )
        return []
    result = []
    for index, value in enumerate(values):
        try:
            net = netaddr.IPNetwork(str(value).strip())
        except (netaddr.AddrFormatError, ValueError, TypeError):
            problems.add(
                host,
                f"{variable}[{index}]",
                f"{value!r} is not an IP network",
                "write a CIDR such as 10.0.0.0/24 or fd00::/64",
            )
            continue
        if net.ip != net.network:
            problems.add(
                host,
                f"{variable}[{index}]",
                f"{value} has host bits set",
                f"write the network address, {net.cidr}",
            )
            continue
        result.append((index, net))
    return result


# The widest network that may stand for one audience without an acknowledgement: an IPv4 /8 is
# the largest private block (10.0.0.0/8); an IPv6 /16 is wider than any single site or provider
# allocation (a site's ULA prefix is a /48; fd00::/8 is every site's ULA).
WIDEST_PREFIX = {4: 8, 6: 16}


def too_wide(net):
    """Whether a network is wider than WIDEST_PREFIX for its family (every /0 is)."""
    return net.prefixlen < WIDEST_PREFIX[net.version]


def width(net):
    """'every IPv4 address' for a /0, else 'wider than /8': the words for a too-wide network."""
    if net.prefixlen == 0:
        return f"every IPv{net.version} address"
    return f"wider than /{WIDEST_PREFIX[net.version]}"


def covered_families(networks):
    """The families (4, 6) whose every address the networks cover together."""
    merged = netaddr.IPSet(networks)
    return [v for v, world in ((4, "0.0.0.0/0"), (6, "::/0")) if netaddr.IPNetwork(world) in merged]


def host_network(ip):
    """The single-address network of an address."""
    return netaddr.IPNetwork(f"{ip}/{32 if ip.version == 4 else 128}")


def split_families(networks):
    """``{"ipv4": [...], "ipv6": [...]}`` of CIDR strings, merged and sorted."""
    merged = netaddr.IPSet(networks).iter_cidrs() if networks else []
    return {
        "ipv4": [str(n) for n in merged if n.version == 4],
        "ipv6": [str(n) for n in merged if n.version == 6],
    }


def host_addresses(facts):
    """Every address configured on a host, from Ansible's network facts."""
    result = []
    for name in facts.get("interfaces") or []:
        data = _interface_facts(facts, name)
        if not isinstance(data, Mapping):
            continue
        iface = data.get("device") or name
        v4 = [data.get("ipv4")] if data.get("ipv4") else []
        entries = v4 + list(data.get("ipv4_secondaries") or []) + list(data.get("ipv6") or [])
        for entry in entries:
            try:
                ip = netaddr.IPAddress(str(entry["address"]).split("%", maxsplit=1)[0])
            except (KeyError, TypeError, netaddr.AddrFormatError, ValueError):
                continue
            result.append({"iface": iface, "ip": ip})
    return result


def interface_fact_keys(name):
    """Where Ansible may store an interface's facts (it rewrites - and . to _)."""
    return [name, name.replace("-", "_"), name.replace("-", "_").replace(".", "_")]


def _interface_facts(facts, name):
    for key in interface_fact_keys(name):
        if key in facts:
            return facts[key]
    return None
