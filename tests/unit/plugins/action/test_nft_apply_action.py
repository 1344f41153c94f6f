# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nft_apply action: apply, fresh reconnect, confirm; and what it says after a lockout.

The host is simulated: _execute_module answers from a script of responses and a fake
clock moves with time.sleep, so the rollback window costs no real time.
"""

from __future__ import annotations

import re
from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure

from ansible_collections.hardened.vllm.plugins.action import nft_apply

APPLIED = {"changed": True, "reasons": ["x"], "rollback": {"unit": "u.timer", "timeout": 60}}
ROLLED_BACK = {
    "failed": True,
    "rolled_back": "at 2026-01-01T00:01:01Z: restored",
    "msg": "host node1: the automatic rollback of the unconfirmed ruleset already ran",
}


class FakeHost:
    """Answers module calls; unreachable from fresh connections until ``reachable_at``."""

    def __init__(self, monkeypatch, apply=None, confirm=None, reachable_at=0.0, rollback_at=None):
        self.now, self.calls = 0.0, []
        self.apply, self.confirm = apply or APPLIED, confirm
        self.reachable_at, self.rollback_at = reachable_at, rollback_at
        monkeypatch.setattr(nft_apply.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(nft_apply.time, "sleep", self.sleep)

    def sleep(self, seconds):
        self.now += seconds

    def shell(self, cmd, sudoable=True, **_):
        self.calls.append(f"shell sudoable={sudoable}")
        return {"rc": 0, "stdout": "192.0.2.7 50022 22\r\n", "stderr": ""}

    def execute(self, module_name=None, module_args=None, task_vars=None, **_):
        self.now += 1  # every module run takes a second
        if module_name == "ansible.legacy.ping":
            self.calls.append("ping")
            if self.now < self.reachable_at:
                self.now += 9  # an SSH connect timing out
                raise AnsibleConnectionFailure("Failed to connect to the host via ssh: timed out")
            return {"ping": "pong"}
        phase = module_args["_phase"]
        self.calls.append(phase)
        self.args = module_args
        if phase == "apply":
            return dict(self.apply)
        if self.confirm is not None:
            return dict(self.confirm)
        if self.rollback_at is not None and self.now >= self.rollback_at:
            return dict(ROLLED_BACK)
        return {"changed": True, "confirmed": True}


PLAN = {"host": "node1", "admins": {"ipv4": ["198.51.100.0/24"], "ipv6": []}}


def action(fake, check_mode=False, plan=None, connection_options=None, **args):
    task = MagicMock(async_val=0, check_mode=check_mode, action="hardened.vllm.nft_apply")
    task.args = {"plan": plan or PLAN, **args}
    connection = MagicMock()
    # ssh's defaults: one try of at most 10 s
    options = {"timeout": 10, "reconnection_retries": 0, **(connection_options or {})}
    connection.get_option.side_effect = options.__getitem__
    connection._shell.tmpdir = None
    plugin = nft_apply.ActionModule(task, connection, MagicMock(), MagicMock(), MagicMock(), None)
    plugin._execute_module = fake.execute
    plugin._low_level_execute_command = fake.shell
    return plugin, connection


def run(plugin):
    return plugin.run(task_vars={"inventory_hostname": "node1"})


def test_apply_reconnects_afresh_then_confirms(monkeypatch):
    fake = FakeHost(monkeypatch)
    plugin, connection = action(fake)
    result = run(plugin)
    assert fake.calls == ["apply", "ping", "confirm"]
    assert connection.reset.called, "the reconnect must not reuse the persistent connection"
    assert result["changed"] is True and result["confirmed"] is True
    assert "failed" not in result


def test_without_admins_ssh_client_is_read_before_become(monkeypatch):
    fake = FakeHost(monkeypatch)
    plugin, _connection = action(fake, plan={"host": "node1", "admins": {"ipv4": [], "ipv6": []}})
    run(plugin)
    assert fake.calls[:2] == ["shell sudoable=False", "apply"]
    assert fake.args["_ssh_client"] == "192.0.2.7 50022 22"


def test_nothing_to_apply_means_no_reconnect(monkeypatch):
    fake = FakeHost(monkeypatch, apply={"changed": False, "reasons": []})
    plugin, connection = action(fake)
    result = run(plugin)
    assert fake.calls == ["apply"]
    assert not connection.reset.called
    assert result["changed"] is False


def test_check_mode_only_reports(monkeypatch):
    fake = FakeHost(monkeypatch, apply={"changed": True, "reasons": ["x"], "diff": [{}]})
    plugin, _connection = action(fake, check_mode=True)
    assert run(plugin)["changed"] is True
    assert fake.calls == ["apply"]


def test_slow_reconnect_within_the_window_still_confirms(monkeypatch):
    fake = FakeHost(monkeypatch, reachable_at=15)
    plugin, _connection = action(fake)
    result = run(plugin)
    assert fake.calls[-1] == "confirm" and "failed" not in result
    assert fake.calls.count("ping") > 1  # dropped attempts were retried


def test_lockout_waits_for_the_rollback_and_says_what_happened(monkeypatch):
    # Fresh connections are dropped until the rollback at t=61 puts the old table back.
    fake = FakeHost(monkeypatch, reachable_at=61, rollback_at=61)
    plugin, _connection = action(fake, rollback_timeout=60, reconnect_timeout=10)
    result = run(plugin)
    assert result["failed"] is True
    assert fake.calls[0] == "apply" and fake.calls[-1] == "confirm"
    assert fake.now >= 60 + nft_apply.ROLLBACK_GRACE
    msg = result["msg"]
    assert msg.startswith("host node1: after applying the new firewall table, no fresh connection")
    assert "within 10 s (last error: Failed to connect to the host via ssh: timed out)" in msg
    assert "check cluster_admin_cidrs" in msg
    assert "The automatic rollback ran at 2026-01-01T00:01:01Z: restored: the previous table" in msg
    assert "the host is reachable again" in msg


def test_lockout_without_recovery_points_to_the_console(monkeypatch):
    fake = FakeHost(monkeypatch, reachable_at=10_000)
    plugin, _connection = action(fake, rollback_timeout=25, reconnect_timeout=10)
    result = run(plugin)
    assert result["failed"] is True
    assert "but the host is still unreachable" in result["msg"]
    assert "confirm" not in fake.calls


def test_a_rollback_that_failed_is_not_reported_as_a_restore(monkeypatch):
    failed = {**ROLLED_BACK, "rolled_back": "at 2026-01-01T00:01:01Z: FAILED (nft exit 1)"}
    fake = FakeHost(monkeypatch, reachable_at=61, confirm=failed)
    plugin, _connection = action(fake, rollback_timeout=60, reconnect_timeout=10)
    msg = run(plugin)["msg"]
    assert "The automatic rollback ran at 2026-01-01T00:01:01Z: FAILED (nft exit 1)" in msg
    assert "its table may not be the previous one" in msg
    assert "reachable again" not in msg


def test_confirmation_too_late_fails(monkeypatch):
    fake = FakeHost(monkeypatch, confirm=ROLLED_BACK)
    plugin, _connection = action(fake)
    result = run(plugin)
    assert result["failed"] is True and result["rolled_back"].endswith(": restored")
    assert "raise firewall_rollback_timeout if the host is slow" in result["msg"]


def test_a_lockout_whose_last_attempt_outlived_the_rollback_is_called_a_lockout(monkeypatch):
    # Issue 12: attempts are dropped; the last one starts just before the reconnect deadline
    # and gets through only because the rollback put the old table back meanwhile.
    fake = FakeHost(monkeypatch, reachable_at=13, confirm=ROLLED_BACK)
    plugin, _connection = action(fake, rollback_timeout=27, reconnect_timeout=12)
    result = run(plugin)
    assert result["failed"] is True and result["rolled_back"].endswith(": restored")
    msg = result["msg"]
    assert "fresh connection attempt(s) failed" in msg
    assert "(a lock-out): check cluster_admin_cidrs" in msg
    assert "the boot unit and the watchdog were not changed" in msg
    assert "slow" not in msg


def test_the_lockout_message_says_the_boot_unit_and_watchdog_were_not_touched(monkeypatch):
    fake = FakeHost(monkeypatch, reachable_at=61, rollback_at=61)
    plugin, _connection = action(fake, rollback_timeout=60, reconnect_timeout=10)
    msg = run(plugin)["msg"]
    assert "nothing else changed (the boot file, the boot unit and the watchdog" in msg


@pytest.mark.parametrize(
    ("options", "needed", "how"),
    [
        ({}, 45, "connection timeout 10 s x 1 tries"),
        ({"reconnection_retries": 2}, 66, "connection timeout 10 s x 3 tries + 1 s of pauses"),
        ({"timeout": 30}, 65, "connection timeout 30 s x 1 tries"),
    ],
)
def test_the_rollback_margin_comes_from_the_real_connection_timeout(
    monkeypatch, options, needed, how
):
    fake = FakeHost(monkeypatch)
    plugin, _connection = action(
        fake, connection_options=options, rollback_timeout=needed - 1, reconnect_timeout=30
    )
    with pytest.raises(AnsibleActionFail) as failure:
        run(plugin)
    assert f"set firewall_rollback_timeout to {needed} or more" in str(failure.value)
    assert how in str(failure.value)
    assert fake.calls == []
    fake = FakeHost(monkeypatch)
    plugin, _connection = action(
        fake, connection_options=options, rollback_timeout=needed, reconnect_timeout=30
    )
    assert run(plugin)["confirmed"] is True


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            {"rollback_timeout": 20, "reconnect_timeout": 18},
            "variable firewall_rollback_timeout: 20 s is too short",
        ),
        (
            {"rollback_timeout": "soon"},
            "variable firewall_rollback_timeout) must be a whole number of seconds",
        ),
        ({"reconnect_timeout": 0}, "variable firewall_reconnect_timeout) must be a whole number"),
    ],
)
def test_bad_timeouts_fail_before_the_host_is_touched(monkeypatch, args, expected):
    fake = FakeHost(monkeypatch)
    plugin, _connection = action(fake, **args)
    with pytest.raises(AnsibleActionFail, match=re.escape(expected)):
        run(plugin)
    assert fake.calls == []
