# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""service_state on recorded `systemctl show` output (tests/unit/fixtures/systemd), with the
node's clocks pinned so that the running process started at a known time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.modules import service_state

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "systemd"
# show-running.txt: ExecMainStartTimestampMonotonic=14545808747 (µs). Pin the clocks 100 s
# later, so that the process started at STARTED (epoch seconds).
STARTED = 1_795_855_181.0
RUNNING_MONO = 14545808747 / 1e6


@pytest.fixture
def systemctl(monkeypatch):
    """Answer `systemctl show` with a fixture; record the argv."""
    seen = {}

    def use(fixture, rc=0, err=""):
        def run_command(self, argv, **kwargs):
            seen["argv"] = argv
            return rc, (FIXTURES / fixture).read_text(), err

        monkeypatch.setattr(AnsibleModule, "run_command", run_command)
        monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, **kw: "/bin/" + name)
        monkeypatch.setattr(service_state.time, "time", lambda: STARTED + 100)
        monkeypatch.setattr(service_state.time, "clock_gettime", lambda clock: RUNNING_MONO + 100)
        return seen

    return use


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as leaving:
        service_state.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


def touch(path, when):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("x")
    os.utime(path, (when, when), follow_symlinks=False)
    return str(path)


def test_inputs_newer_than_the_running_process_are_listed(tmp_path, systemctl, capsys):
    seen = systemctl("show-running.txt")
    env = touch(tmp_path / "vllm.env", STARTED - 5)
    unit = touch(tmp_path / "hardened-vllm.service", STARTED + 10)
    model = tmp_path / "model"
    touch(model / "config.json", STARTED - 60)
    touch(model / "model.safetensors", STARTED + 1)  # weights replaced in place
    os.utime(model, (STARTED - 60, STARTED - 60))
    venv = tmp_path / "venvs" / "new"
    touch(venv / "marker", STARTED - 30)
    os.utime(venv, (STARTED - 30, STARTED - 30))
    current = tmp_path / "current"
    current.symlink_to(venv)
    touch(current, STARTED + 20)  # the link moved after the start
    missing = str(tmp_path / "nothing-here")

    rc, out = run(
        capsys,
        name="hardened-vllm.service",
        paths=[env, unit, str(model), str(current), missing],
    )
    assert rc == 0 and out["changed"] is False
    assert seen["argv"][:3] == ["/bin/systemctl", "show", "hardened-vllm.service"]
    assert "--property=ExecMainStartTimestampMonotonic" in seen["argv"]
    assert (out["exists"], out["load_state"]) == (True, "loaded")
    assert (out["active_state"], out["sub_state"], out["main_pid"]) == ("active", "running", 796)
    assert out["n_restarts"] == 0
    assert out["started"] == pytest.approx(STARTED, abs=1e-3)
    assert out["changed_since_start"] == [unit, str(model), str(current)]


def test_nothing_is_newer_when_inputs_predate_the_process(tmp_path, systemctl, capsys):
    systemctl("show-running.txt")
    env = touch(tmp_path / "vllm.env", STARTED - 1)
    rc, out = run(capsys, name="hardened-vllm.service", paths=[env])
    assert rc == 0 and out["changed_since_start"] == []


def test_a_service_that_exited_has_no_start_and_no_stale_inputs(tmp_path, systemctl, capsys):
    systemctl("show-exited.txt")
    env = touch(tmp_path / "vllm.env", STARTED + 50)
    rc, out = run(capsys, name="hardened-vllm.service", paths=[env])
    assert rc == 0
    assert (out["exists"], out["active_state"], out["sub_state"]) == (True, "inactive", "dead")
    assert out["main_pid"] == 0 and out["started"] is None and out["changed_since_start"] == []


def test_a_unit_that_is_not_installed(systemctl, capsys):
    systemctl("show-not-found.txt")
    rc, out = run(capsys, name="nosuch.service")
    assert rc == 0 and out["exists"] is False and out["active_state"] == "inactive"
    assert out["load_state"] == "not-found"


def test_restarts_systemd_did_on_its_own(systemctl, capsys):
    systemctl("show-auto-restart.txt")
    rc, out = run(capsys, name="hv-nrtest.service")
    assert rc == 0
    assert (out["active_state"], out["sub_state"], out["started"]) == (
        "activating",
        "auto-restart",
        None,
    )
    systemctl("show-restarted-by-systemd.txt")
    rc, out = run(capsys, name="hv-nrtest.service")
    assert rc == 0 and out["n_restarts"] == 1 and out["main_pid"] == 2667


def test_systemctl_failing_is_reported(systemctl, capsys):
    systemctl("show-not-found.txt", rc=1, err="Failed to connect to bus")
    rc, out = run(capsys, name="hardened-vllm.service")
    assert rc == 1 and "Failed to connect to bus" in out["msg"]


def test_parse_show_keeps_values_with_equal_signs():
    props = service_state.parse_show("Environment=A=1 B=2\nMainPID=7\n\n")
    assert props == {"Environment": "A=1 B=2", "MainPID": "7"}


def record(tmp_path, invocation, n_restarts):
    path = tmp_path / "healthy.json"
    path.write_text(json.dumps({"invocation": invocation, "n_restarts": n_restarts}) + "\n")
    return str(path)


def test_the_invocation_recorded_healthy_has_no_restarts_since(tmp_path, systemctl, capsys):
    # Two restarts during start-up (a DP group under load), then healthy and recorded.
    systemctl("show-invocation-restarted.txt")
    healthy = record(tmp_path, "8bc1140618f04d028ce252b60b025f11", 2)
    rc, out = run(capsys, name="hv-nrtest.service", healthy_record=healthy)
    assert rc == 0 and out["n_restarts"] == 2
    assert out["invocation_id"] == "8bc1140618f04d028ce252b60b025f11"
    assert out["restarts_since_healthy"] == 0
    assert out["healthy_record"] == {
        "invocation": "8bc1140618f04d028ce252b60b025f11",
        "n_restarts": 2,
    }


def test_restarts_of_its_own_after_the_healthy_record_count(tmp_path, systemctl, capsys):
    systemctl("show-invocation-restarted.txt")
    healthy = record(tmp_path, "bd73482cbc604f3db3bf1bb6d60e55ac", 0)  # show-invocation-first
    rc, out = run(capsys, name="hv-nrtest.service", healthy_record=healthy)
    assert rc == 0 and out["restarts_since_healthy"] == 2


def test_a_start_by_hand_or_a_reboot_after_the_record_counts_once(tmp_path, systemctl, capsys):
    # NRestarts went back to 0, but another invocation runs than the one recorded healthy.
    systemctl("show-invocation-started-by-hand.txt")
    healthy = record(tmp_path, "8bc1140618f04d028ce252b60b025f11", 2)
    rc, out = run(capsys, name="hv-nrtest.service", healthy_record=healthy)
    assert rc == 0 and out["n_restarts"] == 0 and out["restarts_since_healthy"] == 1


def test_a_stopped_unit_counts_no_restart(tmp_path, systemctl, capsys):
    systemctl("show-invocation-stopped.txt")
    healthy = record(tmp_path, "8bc1140618f04d028ce252b60b025f11", 2)
    rc, out = run(capsys, name="hv-nrtest.service", healthy_record=healthy)
    assert rc == 0 and out["invocation_id"] == "" and out["restarts_since_healthy"] == 0
    assert out["active_state"] == "inactive"


@pytest.mark.parametrize("content", [None, "", "not json", "[]", '{"n_restarts": 1}'])
def test_without_a_usable_record_every_restart_counts(tmp_path, systemctl, capsys, content):
    systemctl("show-invocation-restarted.txt")
    path = tmp_path / "healthy.json"
    if content is not None:
        path.write_text(content)
    rc, out = run(capsys, name="hv-nrtest.service", healthy_record=str(path))
    assert rc == 0 and out["healthy_record"] is None and out["restarts_since_healthy"] == 2
