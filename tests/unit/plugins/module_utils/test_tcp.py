# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_tcp: the connection code both probes share, against real loopback sockets."""

from __future__ import annotations

import errno
import socket

import pytest

from ansible_collections.hardened.vllm.plugins.module_utils import _tcp


def closed_port(family, address):
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "family, address", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["v4", "v6"]
)
def test_connect_reaches_a_listener_from_the_given_source(family, address):
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind((address, 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert _tcp.family(address) == family
        with _tcp.connect(address, port, 2.0, source=address) as sock:
            assert sock.getpeername()[1] == port and sock.getsockname()[0] == address
        assert _tcp.source_address(address, port) == address


def test_a_failed_connect_closes_its_socket_and_names_the_outcome(monkeypatch):
    opened = []

    class Recording(socket.socket):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(socket, "socket", Recording)
    with pytest.raises(ConnectionRefusedError) as err:
        _tcp.connect("127.0.0.1", closed_port(socket.AF_INET, "127.0.0.1"), 2.0)
    assert opened and all(s.fileno() == -1 for s in opened)
    assert _tcp.failure(err.value) == ("refused", "connection refused")


@pytest.mark.parametrize(
    "exc, expected",
    [
        (TimeoutError("timed out"), ("timeout", "timed out")),
        (OSError(errno.EHOSTUNREACH, "No route to host"), ("unreachable", "No route to host")),
        (
            OSError(errno.ENETUNREACH, "Network is unreachable"),
            ("unreachable", "Network is unreachable"),
        ),
        (
            OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
            ("error", "Cannot assign requested address"),
        ),
        (OSError("odd"), ("error", "odd")),
    ],
)
def test_failure_states(exc, expected):
    assert _tcp.failure(exc) == expected


def test_no_route_means_no_source_address():
    # a source address that is not on this host cannot be bound: no answer, no exception
    assert _tcp.source_address("127.0.0.1", 9, source="192.0.2.1") is None


def test_targets_problem_names_the_bad_target():
    assert _tcp.targets_problem([{"address": "10.0.0.1", "port": 80}]) is None
    assert "targets[1].address: 'node1' is not an IP address" in _tcp.targets_problem(
        [{"address": "10.0.0.1", "port": 80}, {"address": "node1", "port": 80}]
    )
    assert "targets[0].port: 0 is not a port number" in _tcp.targets_problem(
        [{"address": "10.0.0.1", "port": 0}]
    )
