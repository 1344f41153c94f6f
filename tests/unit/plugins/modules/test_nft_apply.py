# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nft_apply: apply, confirm, rollback and drift against a real kernel table.

Each test gets its own network namespace (``ip netns add fw-unit-...``): nft really loads,
lists and restores tables there. systemd-run and systemctl are stand-ins that log their
arguments; the rollback is fired by running the script the timer would run.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.module_utils import _nft_txn
from ansible_collections.hardened.vllm.plugins.modules import nft_apply

FIXTURES = Path(__file__).parents[2] / "fixtures" / "nft"
PLAN = json.loads((FIXTURES / "plan_node1.json").read_text())
# Tables shaped like Docker's, which must come through every step byte for byte.
FOREIGN = FIXTURES / "foreign.nft"
pytestmark = pytest.mark.skipif(
    not (shutil.which("nft") and shutil.which("ip") and os.geteuid() == 0),
    reason="needs root, nft and ip (network namespaces)",
)
_names = itertools.count()


def sh(*argv):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


class Host:
    """One fake host: a network namespace, a state directory and stand-in systemd tools."""

    def __init__(self, tmp_path, netns):
        self.netns, self.root = netns, tmp_path
        self.log = tmp_path / "systemd.log"
        self.fail_flag = tmp_path / "systemd-run.fails"
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for tool in ("systemd-run", "systemctl"):
            script = self.bin / tool
            script.write_text(
                f'#!/bin/sh\necho "{tool} $*" >>{self.log}\n'
                f'[ "{tool}" = systemd-run ] && [ -e {self.fail_flag} ] && '
                "{ echo 'Failed to start transient timer unit' >&2; exit 1; }\nexit 0\n"
            )
            script.chmod(0o755)
        self.boot_file = tmp_path / "etc" / "firewall.nft"
        self.run_dir = tmp_path / "run"
        self.record = tmp_path / "var" / "firewall.applied"

    def firewall(self, run, nft, path):
        def in_netns(argv):
            return run(["ip", "netns", "exec", self.netns, *argv] if argv[0] == nft else argv)

        return _nft_txn.Firewall(
            in_netns,
            nft,
            path,
            run_dir=str(self.run_dir),
            record_path=str(self.record),
            systemctl=str(self.bin / "systemctl"),
            systemd_run=str(self.bin / "systemd-run"),
        )

    def nft(self, *args):
        return sh("ip", "netns", "exec", self.netns, "nft", *args)

    def table(self):
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                "nft",
                "-s",
                "list",
                "table",
                "inet",
                "hardened_vllm",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout if done.returncode == 0 else None

    def fire_rollback(self):
        """What the transient timer runs when nobody confirmed in time."""
        return sh("ip", "netns", "exec", self.netns, "sh", str(self.run_dir / "rollback.sh"))

    def module(self, capsys, phase="apply", check=False, plan=None, **args):
        args = {"plan": plan or PLAN, "path": str(self.boot_file), "_phase": phase, **args}
        with patch_module_args({**args, "_ansible_check_mode": check}), pytest.raises(SystemExit):
            nft_apply.main()
        return json.loads(capsys.readouterr().out)

    def deploy(self, capsys, **args):
        applied = self.module(capsys, **args)
        assert "failed" not in applied, applied.get("msg")
        confirmed = self.module(capsys, phase="confirm", **args)
        assert confirmed["confirmed"] is True, confirmed
        return applied


@pytest.fixture
def host(tmp_path, monkeypatch):
    name = f"fw-unit-{os.getpid()}-{next(_names)}"
    sh("ip", "netns", "add", name)
    try:
        fake = Host(tmp_path, name)
        fake.nft("-f", str(FOREIGN))
        fake.foreign = (
            fake.nft("list", "tables"),
            fake.nft("list", "table", "ip", "nat"),
            fake.nft("list", "table", "ip", "filter"),
        )
        monkeypatch.setattr(nft_apply, "Firewall", fake.firewall)
        yield fake
        # Whatever happened, the Docker-shaped tables are exactly as they were.
        assert fake.nft("list", "table", "ip", "nat") == fake.foreign[1]
        assert fake.nft("list", "table", "ip", "filter") == fake.foreign[2]
    finally:
        sh("ip", "netns", "delete", name)


def other_plan():
    plan = copy.deepcopy(PLAN)
    plan["clients"]["ipv4"].append("100.64.0.0/10")
    return plan


def test_check_mode_shows_the_diff_and_changes_nothing(host, capsys):
    result = host.module(capsys, check=True)
    assert result["changed"] is True
    assert result["diff"][0]["after"].startswith("# hardened.vllm.firewall")
    assert result["diff"][0]["before"] == ""
    assert host.table() is None
    assert not host.run_dir.exists() and not host.boot_file.exists()
    assert not host.log.exists()


def test_check_mode_before_nftables_is_installed_still_shows_the_ruleset(host, capsys, monkeypatch):
    monkeypatch.setattr(nft_apply.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)
    result = host.module(capsys, check=True)
    assert result["changed"] is True and "failed" not in result
    assert result["diff"][0]["after"] == nft_apply.render(PLAN)
    assert host.module(capsys)["msg"].startswith("host node1: nft is not installed; install the")


def test_apply_arms_then_confirm_persists_and_second_run_is_a_no_op(host, capsys):
    applied = host.module(capsys)
    assert applied["changed"] is True
    assert applied["rollback"] == {"unit": "hardened-vllm-firewall-rollback.timer", "timeout": 60}
    assert "--on-active=60s" in host.log.read_text()
    live = host.table()
    assert "elements = { 10.89.0.3 }" in live
    assert not host.boot_file.exists(), "the boot file must wait for the confirmation"

    confirmed = host.module(capsys, phase="confirm")
    assert confirmed["changed"] is True
    assert host.boot_file.read_text() == nft_apply.render(PLAN)
    assert host.record.read_text() == live
    assert (
        "systemctl stop hardened-vllm-firewall-rollback.timer"
        in host.log.read_text().splitlines()[-2]
    )

    calls = host.log.read_text()
    again = host.module(capsys)
    assert (again["changed"], again["reasons"]) == (False, [])
    assert host.log.read_text() == calls, "an unchanged plan must not arm anything"
    assert host.module(capsys, phase="confirm")["changed"] is False


def test_drift_in_the_live_table_is_reported_and_repaired(host, capsys):
    host.deploy(capsys)
    host.nft("add", "element", "inet", "hardened_vllm", "admins_v4", "{ 192.0.2.99 }")
    drifted = host.module(capsys, check=True)
    assert drifted["changed"] is True
    assert len(drifted["reasons"]) == 1  # the boot file still matches the plan
    assert "differs from the one applied last" in drifted["reasons"][0]
    assert "192.0.2.99" in drifted["diff"][0]["before"]
    host.deploy(capsys)
    assert "192.0.2.99" not in host.table()


def test_a_table_removed_by_another_tool_is_put_back(host, capsys):
    host.deploy(capsys)
    before = host.table()
    host.nft("delete", "table", "inet", "hardened_vllm")
    result = host.deploy(capsys)
    assert any("differs from the one applied last" in r for r in result["reasons"])
    assert host.table() == before


def test_rollback_restores_the_confirmed_table_and_confirm_then_fails(host, capsys):
    host.deploy(capsys)
    confirmed_table, boot_file = host.table(), host.boot_file.read_text()
    assert host.module(capsys, plan=other_plan())["changed"] is True
    assert "100.64.0.0/10" in host.table()

    assert "rolled back: restored" in host.fire_rollback()
    assert host.table() == confirmed_table
    late = host.module(capsys, phase="confirm", plan=other_plan())
    assert late["failed"] is True and late["rolled_back"].endswith(": restored")
    assert "the automatic rollback of the unconfirmed ruleset already ran" in late["msg"]
    assert host.boot_file.read_text() == boot_file
    # The next run sees the plan still differs and tries again.
    assert host.module(capsys, check=True, plan=other_plan())["changed"] is True


def test_unconfirmed_applies_roll_back_to_the_last_confirmed_state(host, capsys):
    host.deploy(capsys)
    confirmed_table = host.table()
    host.module(capsys, plan=other_plan())
    third = copy.deepcopy(PLAN)
    third["peers"]["ipv4"].append("10.89.0.4/32")
    again = host.module(capsys, plan=third)
    assert "an earlier apply was never confirmed" in again["reasons"]
    host.fire_rollback()
    assert host.table() == confirmed_table


def test_rollback_of_a_first_apply_removes_the_table(host, capsys):
    host.module(capsys)
    assert host.table() is not None
    host.fire_rollback()
    assert host.table() is None


def test_a_confirmed_apply_is_not_rolled_back_by_a_late_timer(host, capsys):
    host.module(capsys)
    script = (host.run_dir / "rollback.sh").read_text()
    host.module(capsys, phase="confirm")
    (host.run_dir / "rollback.sh").write_text(script)
    live = host.table()
    host.fire_rollback()
    assert host.table() == live


def test_failing_to_arm_changes_nothing(host, capsys):
    host.deploy(capsys)
    confirmed_table = host.table()
    host.fail_flag.touch()
    failed = host.module(capsys, plan=other_plan())
    assert failed["failed"] is True
    assert "systemd-run could not arm the rollback timer" in failed["msg"]
    assert "the table is as it was before" in failed["msg"]
    assert host.table() == confirmed_table
    assert not (host.run_dir / "armed").exists()


def test_a_ruleset_nft_refuses_is_not_applied(host, capsys, monkeypatch):
    monkeypatch.setattr(
        nft_apply,
        "render",
        lambda *a, **k: "table inet hardened_vllm { chain input { nonsense } }\n",
    )
    failed = host.module(capsys)
    assert failed["failed"] is True
    assert "rejects the ruleset" in failed["msg"]
    assert host.table() is None and not host.log.exists()


def test_empty_admins_come_from_ssh_client(host, capsys, monkeypatch):
    plan = copy.deepcopy(PLAN)
    plan["admins"] = {"ipv4": [], "ipv6": []}
    monkeypatch.setenv("SSH_CLIENT", "192.0.2.7 50022 22")  # connected as root: no sudo
    warnings = []  # where module warnings go depends on what else this process imported
    monkeypatch.setattr(nft_apply.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    result = host.module(capsys, plan=plan)
    assert result["admins"] == {
        "cidrs": ["192.0.2.7/32"],
        "source": "SSH_CLIENT in the module's environment",
    }
    assert "SSH to node1 is admitted only from 192.0.2.7/32" in warnings[0]
    assert "elements = { 192.0.2.7 }" in host.table()


def test_under_become_the_login_sessions_ssh_client_is_used(host, capsys, monkeypatch):
    plan = copy.deepcopy(PLAN)
    plan["admins"] = {"ipv4": [], "ipv6": []}
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    result = host.module(capsys, plan=plan, _ssh_client="2001:db8::8 50022 22")
    assert result["admins"]["cidrs"] == ["2001:db8::8/128"]
    assert "elements = { 2001:db8::8 }" in host.table()


def test_empty_admins_without_ssh_fail_before_any_change(host, capsys, monkeypatch):
    plan = copy.deepcopy(PLAN)
    plan["admins"] = {"ipv4": [], "ipv6": []}
    for name in ("SSH_CLIENT", "SSH_CONNECTION"):
        monkeypatch.delenv(name, raising=False)
    failed = host.module(capsys, plan=plan)
    assert failed["failed"] is True
    assert failed["msg"].startswith("host node1, variable cluster_admin_cidrs: is empty")
    assert "Fix: set cluster_admin_cidrs" in failed["msg"]
    assert host.table() is None and not host.log.exists()


def test_controller_address_prefers_the_login_session_and_unwraps_mapped_ipv4():
    environ = {"SSH_CLIENT": "198.51.100.1 1 22"}
    assert nft_apply.controller_address("2001:db8::9 40000 22", environ) == (
        "2001:db8::9/128",
        "the login session of this connection",
    )
    assert nft_apply.controller_address(
        None, {"SSH_CONNECTION": "::ffff:10.0.0.5 1 10.0.0.1 22"}
    ) == (
        "10.0.0.5/32",
        "SSH_CONNECTION in the module's environment",
    )
    assert nft_apply.controller_address("garbage", {}) == (None, None)
