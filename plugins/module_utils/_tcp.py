# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TCP connections from a probing host, shared by tcp_probe and http_probe (stdlib only).

One place for what both probes do before they differ: check the targets, connect (optionally
from a given local address), name the outcome of a failed connection, and find the local
address the kernel picks for a target.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

# errno values that mean no route to the target: the probe never reached a firewall or a port.
UNREACHABLE = frozenset((errno.EHOSTUNREACH, errno.ENETUNREACH))


def family(address):
    """The socket family of an IP address in text form."""
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def connect(address, port, timeout, source=None):
    """A TCP socket connected to ``address:port`` (from ``source`` if given); closed on failure."""
    sock = socket.socket(family(address), socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def source_address(address, port, source=None):
    """The local address the kernel picks to reach ``address`` (no packet is sent), or None."""
    with socket.socket(family(address), socket.SOCK_DGRAM) as sock:
        try:
            if source:
                sock.bind((source, 0))
            sock.connect((address, port))
        except OSError:
            return None
        return sock.getsockname()[0]


def failure(exc):
    """``(state, error)`` of a failed connection: timeout (dropped), refused, unreachable, error."""
    if isinstance(exc, socket.timeout):  # TimeoutError only from Python 3.10 on
        return "timeout", "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused"
    state = "unreachable" if exc.errno in UNREACHABLE else "error"
    return state, exc.strerror or str(exc)


def targets_problem(targets):
    """The first problem with ``targets`` (``address``, ``port``), or None."""
    for index, target in enumerate(targets):
        try:
            ipaddress.ip_address(target["address"])
        except ValueError:
            return f"targets[{index}].address: {target['address']!r} is not an IP address"
        if not 1 <= int(target["port"]) <= 65535:
            return f"targets[{index}].port: {target['port']} is not a port number"
    return None
