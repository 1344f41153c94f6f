# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""listening_sockets: the module run end to end against sockets this test opens."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.modules import listening_sockets

MODULE = Path(os.path.abspath(listening_sockets.__file__))
COLLECTIONS = MODULE.parents[5]  # the directory holding ansible_collections/


def run_module_file(tmp_path, **args):
    """Run the module file as Ansible does without AnsiballZ: a JSON args file on argv."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(COLLECTIONS), *sys.path]))
    done = subprocess.run(
        [sys.executable, str(MODULE), str(args_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return json.loads(done.stdout)


def run_in_process(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as leaving:
        listening_sockets.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def listeners():
    """Loopback TCP (IPv4, IPv6 dual-stack on '::') and UDP sockets; closed afterwards."""
    opened = []

    def make(family, kind, address, v6only=None):
        sock = socket.socket(family, kind)
        if v6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        sock.bind((address, 0))
        if kind == socket.SOCK_STREAM:
            sock.listen()
        opened.append(sock)
        return sock.getsockname()[1]

    ports = {
        "tcp4": make(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1"),
        "udp4": make(socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1"),
    }
    if socket.has_ipv6 and os.path.exists("/proc/net/tcp6"):
        ports["tcp6_dual"] = make(socket.AF_INET6, socket.SOCK_STREAM, "::", v6only=0)
    yield ports, opened
    for sock in opened:
        sock.close()


def test_module_file_end_to_end(tmp_path, listeners):
    ports, opened = listeners
    result = run_module_file(tmp_path)
    assert result["changed"] is False
    assert "failed" not in result, result.get("msg")
    facts = result["ansible_facts"]
    found = {(e["protocol"], e["port"]): e for e in facts["listening_sockets"]}
    tcp4 = found[("tcp", ports["tcp4"])]
    assert set(tcp4) == documented_keys("listening_sockets")
    assert set(facts["listening_sockets_summary"]) == documented_keys("listening_sockets_summary")
    assert (tcp4["family"], tcp4["address"], tcp4["loopback"]) == ("ipv4", "127.0.0.1", True)
    assert tcp4["pid"] == os.getpid()  # the module (a child) found the fd this test holds
    with open("/proc/self/cmdline", "rb") as handle:
        assert tcp4["cmdline"] == [a.decode() for a in handle.read().split(b"\0")[:-1]]
    udp4 = found[("udp", ports["udp4"])]
    assert (udp4["family"], udp4["wildcard"], udp4["pid"]) == ("ipv4", False, os.getpid())
    if "tcp6_dual" in ports:
        dual = found[("tcp", ports["tcp6_dual"])]
        assert (dual["address"], dual["wildcard"], dual["dual_stack"], dual["v6only"]) == (
            "::",
            True,
            True,
            False,
        )
    summary = facts["listening_sockets_summary"]
    assert summary["total"] == len(facts["listening_sockets"])
    assert summary["namespaces"][0]["id"] == os.stat("/proc/self/ns/net").st_ino

    for sock in opened:
        sock.close()
    after = run_module_file(tmp_path)["ansible_facts"]["listening_sockets"]
    assert [e for e in after if e["pid"] == os.getpid()] == []


def test_check_mode_reports_the_same_and_changes_nothing(capsys, listeners):
    ports, _opened = listeners
    code, result = run_in_process(capsys, _ansible_check_mode=True, protocols=["tcp"])
    assert code == 0
    assert result["changed"] is False
    sockets = result["ansible_facts"]["listening_sockets"]
    assert ports["tcp4"] in {e["port"] for e in sockets}
    assert {e["protocol"] for e in sockets} == {"tcp"}


def test_unknown_namespace_fails_naming_the_item_and_the_file(capsys):
    code, result = run_in_process(capsys, namespaces=["ls-does-not-exist"])
    assert code == 1
    assert result["failed"] is True
    assert result["msg"] == (
        "listening_sockets: namespaces: 'ls-does-not-exist': "
        "cannot open /run/netns/ls-does-not-exist: No such file or directory"
    )


def test_bad_choice_is_refused_before_reading_anything(capsys):
    code, result = run_in_process(capsys, protocols=["sctp"])
    assert code == 1
    assert "protocols" in result["msg"]
    assert "sctp" in result["msg"]


def documented_keys(fact):
    return set(
        yaml.safe_load(listening_sockets.RETURN)["ansible_facts"]["contains"][fact]["contains"]
    )


def test_documented_options_match_the_argument_spec():
    documented = yaml.safe_load(listening_sockets.DOCUMENTATION)["options"]
    assert set(documented) == set(listening_sockets.ARGUMENT_SPEC)
    for name, spec in listening_sockets.ARGUMENT_SPEC.items():
        for key in ("type", "elements", "choices", "default"):
            assert documented[name].get(key) == spec.get(key), f"{name}.{key}"
