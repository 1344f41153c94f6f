# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exposure_facts: the real sockets of this process, `nft -j list ruleset` answered with a
recorded ruleset (tests/unit/fixtures/exposure) and real files."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.modules import exposure_facts, listening_sockets

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "exposure"
RULESET = (FIXTURES / "nft-ruleset.json").read_text()


@pytest.fixture
def nft(monkeypatch):
    """Answer `nft -j list ruleset`; record each argv."""
    seen = []

    def use(rc=0, out=RULESET, err="", installed=True):
        def run_command(self, argv, **kwargs):
            seen.append(argv)
            return rc, out, err

        monkeypatch.setattr(AnsibleModule, "run_command", run_command)
        monkeypatch.setattr(
            AnsibleModule,
            "get_bin_path",
            lambda self, name, **kw: "/usr/sbin/nft" if installed and name == "nft" else None,
        )
        return seen

    return use


def run(module, capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as leaving:
        module.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


def test_sockets_ruleset_and_files_in_one_call(tmp_path, nft, capsys):
    seen = nft()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    state = tmp_path / "firewall.json"
    state.write_text((FIXTURES / "watchdog-firewall.json").read_text())
    try:
        code, out = run(exposure_facts, capsys, files=[str(state), str(tmp_path / "missing.pem")])
    finally:
        listener.close()
    assert code == 0 and out["changed"] is False
    assert seen == [["/usr/sbin/nft", "-j", "list", "ruleset"]]
    assert port in {s["port"] for s in out["ansible_facts"]["listening_sockets"]}
    tables = [e["table"]["name"] for e in out["ruleset"]["nftables"] if "table" in e]
    assert tables == ["hardened_vllm"] and out["ruleset_error"] is None
    assert json.loads(out["files"][str(state)]["content"])["state"] == "ok"
    assert out["files"][str(tmp_path / "missing.pem")] == {
        "content": None,
        "error": "No such file or directory",
    }


def test_the_sockets_are_those_listening_sockets_reports(nft, capsys):
    nft()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        _code, ours = run(exposure_facts, capsys, ruleset=False)
        _code, theirs = run(listening_sockets, capsys)
    finally:
        listener.close()

    # This process's sockets (others on the machine may come and go between the two calls).
    def mine(result):
        return [s for s in result["ansible_facts"]["listening_sockets"] if s["pid"] == os.getpid()]

    assert mine(ours) == mine(theirs) and len(mine(ours)) >= 1
    assert ours["ruleset"] == {} and ours["ruleset_error"] == "not asked for"


def test_without_nft_the_ruleset_is_empty_and_says_why(nft, capsys):
    seen = nft(installed=False)
    code, out = run(exposure_facts, capsys)
    assert code == 0 and seen == []
    assert out["ruleset"] == {} and out["ruleset_error"] == "nft is not installed"


def test_a_failing_nft_fails_the_task(nft, capsys):
    nft(rc=1, out="", err="netlink: Error: Operation not permitted\n")
    code, out = run(exposure_facts, capsys)
    assert code == 1
    assert out["msg"] == (
        "exposure_facts: nft -j list ruleset failed (rc 1): netlink: Error: Operation not permitted"
    )
