# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decode what the Linux kernel says about listening sockets.

Pure functions only: they take bytes or text that the kernel produced (``/proc/net/{tcp,tcp6,
udp,udp6}`` or a ``NETLINK_SOCK_DIAG`` dump) and return plain records. The I/O that produces
that input lives in ``_socket_sources.py``. Python 3.8+ and the standard library only: this
runs on the managed host.

A raw record is a dict with the keys ``protocol`` (tcp/udp), ``family`` (ipv4/ipv6),
``address`` (``inet_ntop`` text form, as ``ss`` prints it), ``port``, ``uid``, ``inode``,
``v6only`` (bool, or None when the source cannot tell), ``ifindex`` (bound device, 0 for none,
None when the source cannot tell) and ``source`` (sock_diag/proc).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
import sys

# Kernel socket states (include/net/tcp_states.h). A listening TCP socket is LISTEN; a bound,
# unconnected UDP socket is CLOSE, which ss shows as UNCONN.
TCP_LISTEN = 10
TCP_CLOSE = 7
LISTEN_STATES = {"tcp": TCP_LISTEN, "udp": TCP_CLOSE}

FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
PROC_NET_FILES = {
    ("tcp", "ipv4"): "tcp",
    ("tcp", "ipv6"): "tcp6",
    ("udp", "ipv4"): "udp",
    ("udp", "ipv6"): "udp6",
}

# Netlink (include/uapi/linux/netlink.h, sock_diag.h, inet_diag.h).
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x01
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
INET_DIAG_SKV6ONLY = 11

_NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_DIAG_REQ_V2 = struct.Struct("=BBBBI48s")  # family, protocol, ext, pad, states, sockid
_DIAG_MSG_LEN = 72  # sizeof(struct inet_diag_msg)
_DIAG_HEAD = struct.Struct("=BB")  # idiag_family, idiag_state
_DIAG_PORTS = struct.Struct(">HH")  # id.idiag_sport, id.idiag_dport (network order)
_DIAG_TAIL = struct.Struct("=I8xIIIII")  # id.idiag_if, cookie, expires, rqueue, wqueue, uid, inode
_RTATTR = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")
_FAMILY_NAMES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}


class SocketError(Exception):
    """Input that cannot be read or decoded; the message names the source and the cause."""


class NetlinkError(SocketError):
    """The kernel answered a sock_diag request with an error."""

    def __init__(self, errno_value, message):
        super().__init__(message)
        self.errno = errno_value


class DumpInterrupted(SocketError):
    """The socket tables changed during a dump (NLM_F_DUMP_INTR): the dump must be repeated."""


def decode_proc_address(text, byteorder=sys.byteorder):
    """Turn ``0100007F:1F90`` from /proc/net/* into ``("127.0.0.1", 8080)``.

    The kernel prints the address as 32-bit words in host byte order, so the decoding depends
    on the byte order of the host that wrote the file (``byteorder``).
    """
    try:
        hex_address, hex_port = text.split(":")
        raw = bytes.fromhex(hex_address)
        port = int(hex_port, 16)
    except ValueError as exc:
        raise SocketError(f"cannot decode address {text!r}: {exc}") from None
    if len(raw) not in (4, 16):
        raise SocketError(f"cannot decode address {text!r}: {len(raw)} bytes, expected 4 or 16")
    if byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw), port


def parse_proc_net(text, protocol, family, source="/proc/net", byteorder=sys.byteorder):
    """Listening (TCP) or bound unconnected (UDP) sockets from one /proc/net/{tcp,udp}[6] file.

    ``source`` only names the file in error messages. /proc/net cannot tell whether an IPv6
    socket is v6only nor which device it is bound to: those keys are None.
    """
    wanted_state = LISTEN_STATES[protocol]
    records = []
    for number, line in enumerate(text.splitlines()[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        try:
            state = int(fields[3], 16)
            if state != wanted_state:
                continue
            address, port = decode_proc_address(fields[1], byteorder)
            uid = int(fields[7])
            inode = int(fields[9])
        except (IndexError, ValueError, SocketError) as exc:
            raise SocketError(
                f"{source}: line {number}: cannot parse {line.strip()!r}: {exc}"
            ) from None
        records.append(raw_record(protocol, family, address, port, uid, inode, source="proc"))
    return records


def raw_record(protocol, family, address, port, uid, inode, v6only=None, ifindex=None, **more):
    """The raw record of one socket (its keys: this module's docstring); ``more``: ``source``."""
    return {
        "protocol": protocol,
        "family": family,
        "address": address,
        "port": port,
        "uid": uid,
        "inode": inode,
        "v6only": v6only,
        "ifindex": ifindex,
        **more,
    }


def build_diag_request(family, protocol, seq):
    """A NETLINK_SOCK_DIAG dump request (inet_diag_req_v2) for ``protocol``'s listening state."""
    payload = _DIAG_REQ_V2.pack(
        FAMILIES[family], PROTOCOLS[protocol], 0, 0, 1 << LISTEN_STATES[protocol], b""
    )
    header = _NLMSG_HDR.pack(
        _NLMSG_HDR.size + len(payload), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
    )
    return header + payload


def parse_diag_message(data, start, end, protocol):
    """One inet_diag_msg (and its attributes) between ``start`` and ``end`` as a raw record."""
    if end - start < _DIAG_MSG_LEN:
        raise SocketError(
            f"sock_diag: message of {end - start} bytes, expected at least {_DIAG_MSG_LEN}"
        )
    family_code, state = _DIAG_HEAD.unpack_from(data, start)
    family = _FAMILY_NAMES.get(family_code)
    if family is None:
        raise SocketError(f"sock_diag: unexpected address family {family_code}")
    port, _dport = _DIAG_PORTS.unpack_from(data, start + 4)
    size = 4 if family == "ipv4" else 16
    address = socket.inet_ntop(family_code, bytes(data[start + 8 : start + 8 + size]))
    ifindex, _expires, _rqueue, _wqueue, uid, inode = _DIAG_TAIL.unpack_from(data, start + 40)
    v6only = None
    offset = start + _DIAG_MSG_LEN
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > end:
            raise SocketError(f"sock_diag: malformed attribute of length {length}")
        if kind == INET_DIAG_SKV6ONLY and length > _RTATTR.size:
            v6only = bool(data[offset + _RTATTR.size])
        offset += (length + 3) & ~3
    return raw_record(
        protocol,
        family,
        address,
        port,
        uid,
        inode,
        v6only,
        ifindex,
        source="sock_diag",
        state=state,
    )


def parse_diag_messages(data, protocol, seq):
    """Decode one or more netlink datagrams of a sock_diag dump.

    Returns ``(records, done)``: ``done`` is True once NLMSG_DONE was seen. Raises NetlinkError
    for a kernel error and DumpInterrupted when the kernel flags the dump as inconsistent.
    Records in another state than the requested listening state are dropped.
    """
    records = []
    offset = 0
    while offset + _NLMSG_HDR.size <= len(data):
        length, kind, flags, msg_seq, _pid = _NLMSG_HDR.unpack_from(data, offset)
        if length < _NLMSG_HDR.size or offset + length > len(data):
            raise SocketError(
                f"sock_diag: truncated netlink message ({length} bytes at offset {offset})"
            )
        body = offset + _NLMSG_HDR.size
        if msg_seq != seq:
            raise SocketError(f"sock_diag: answer for request {msg_seq}, expected {seq}")
        if flags & NLM_F_DUMP_INTR:
            raise DumpInterrupted("sock_diag: dump interrupted by concurrent socket changes")
        if kind in (NLMSG_DONE, NLMSG_ERROR) and length >= _NLMSG_HDR.size + _ERRNO.size:
            (error,) = _ERRNO.unpack_from(data, body)
            if error < 0:
                raise NetlinkError(
                    -error, f"sock_diag: kernel answered {protocol} dump with errno {-error}"
                )
        if kind == NLMSG_DONE:
            return records, True
        if kind == SOCK_DIAG_BY_FAMILY:
            record = parse_diag_message(data, body, offset + length, protocol)
            if record.pop("state") == LISTEN_STATES[protocol]:
                records.append(record)
        offset += (length + 3) & ~3
    return records, False


def dump_finished(data):
    """Whether a datagram holds the end of a dump (NLMSG_DONE or NLMSG_ERROR), read from the
    message headers alone: used to skip the rest of a dump that cannot be parsed."""
    offset = 0
    while offset + _NLMSG_HDR.size <= len(data):
        length, kind = _NLMSG_HDR.unpack_from(data, offset)[:2]
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return True
        if length < _NLMSG_HDR.size:
            return True  # garbage: nothing more can be read from this socket
        offset += (length + 3) & ~3
    return False


def classify_address(address):
    """``wildcard``, ``loopback`` and ``mapped_ipv4`` for an address in text form.

    An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is classified by its IPv4 address:
    a socket bound to it only ever accepts IPv4 traffic for that address.
    """
    wildcard, loopback, mapped = _classify(address)
    return {"wildcard": wildcard, "loopback": loopback, "mapped_ipv4": mapped}


@functools.lru_cache(maxsize=4096)
def _classify(address):
    # Hosts have few distinct listening addresses and many sockets: cache by address.
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise SocketError(f"cannot classify address {address!r}: {exc}") from None
    effective = unmapped(ip)
    mapped = None if effective is ip else str(effective)
    return effective.is_unspecified, effective.is_loopback, mapped


def unmapped(ip):
    """The IPv4 address of an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``), else ``ip``.

    Takes an ``ipaddress`` address; a mapped address stands for its IPv4 address everywhere
    (a socket bound to it, a client that connects from it).
    """
    return getattr(ip, "ipv4_mapped", None) or ip


def describe_socket(record, bindv6only):
    """Add the address classification and the dual-stack verdict to a raw record.

    ``bindv6only`` is the value of net.ipv6.bindv6only, used as each IPv6 socket's v6only flag
    when the source cannot tell (``v6only_source: sysctl``); sock_diag reports the socket's own
    IPV6_V6ONLY (``v6only_source: socket``).
    """
    entry = dict(record)
    entry.update(classify_address(record["address"]))
    if record["family"] == "ipv4":
        entry["v6only"] = None
        entry["v6only_source"] = None
    elif record["v6only"] is None:
        entry["v6only"] = bool(bindv6only)
        entry["v6only_source"] = "sysctl"
    else:
        entry["v6only_source"] = "socket"
    entry["dual_stack"] = bool(
        record["family"] == "ipv6"
        and entry["wildcard"]
        and not entry["mapped_ipv4"]
        and not entry["v6only"]
    )
    return entry


def sort_key(entry):
    """Stable order: namespace, protocol, port, family, address, inode."""
    return (
        entry.get("netns") or 0,
        entry["protocol"],
        entry["port"],
        entry["family"],
        entry["address"],
        entry["inode"],
    )
