# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tcp_probe: real connections to loopback listeners, and the module's entry point."""

from __future__ import annotations

import json
import socket

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.modules import tcp_probe


@pytest.fixture
def listener(request):
    family, address = request.param
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.listen(8)
    yield address, sock.getsockname()[1]
    sock.close()


def closed_port(family, address):
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "listener",
    [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")],
    indirect=True,
    ids=["ipv4", "ipv6"],
)
def test_open_listener_is_reported_open_with_its_source(listener):
    address, port = listener
    result = tcp_probe.probe({"address": address, "port": port, "label": "x"}, 2.0)
    assert result["state"] == "open" and result["open"] is True
    assert result["source"] == address
    assert result["label"] == "x"


def test_closed_port_is_refused():
    port = closed_port(socket.AF_INET, "127.0.0.1")
    result = tcp_probe.probe({"address": "127.0.0.1", "port": port}, 2.0)
    assert result["state"] == "refused" and result["open"] is False
    assert result["source"] == "127.0.0.1"


def test_a_dropped_connection_counts_as_timeout(monkeypatch):
    class Dropping(socket.socket):
        def connect(self, address):
            raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "socket", Dropping)
    result = tcp_probe.probe({"address": "127.0.0.1", "port": 9}, 0.1)
    assert result["state"] == "timeout" and result["open"] is False


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        tcp_probe.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_main_probes_in_parallel_and_counts_open(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        code, out = run_main(
            {
                "targets": [
                    {"address": "127.0.0.1", "port": port, "label": "open"},
                    {"address": "127.0.0.1", "port": closed_port(socket.AF_INET, "127.0.0.1")},
                ],
                "timeout": 1,
            },
            capsys,
        )
    assert code == 0 and out["changed"] is False
    assert [r["state"] for r in out["results"]] == ["open", "refused"]
    assert out["open_count"] == 1


def test_main_fails_on_bad_target(capsys):
    code, out = run_main({"targets": [{"address": "nope", "port": 1}]}, capsys)
    assert code == 1 and "targets[0].address" in out["msg"]
