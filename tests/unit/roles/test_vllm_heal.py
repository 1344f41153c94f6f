# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/vllm/files/vllm_heal.py: the parsers on recorded /proc input, the watchdog's decisions
and the role's health wait, on a scripted node (no systemd, no sockets, no real clock)."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "vllm" / "files" / "vllm_heal.py"
spec = importlib.util.spec_from_file_location("vllm_heal", SCRIPT)
heal = importlib.util.module_from_spec(spec)
spec.loader.exec_module(heal)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "heal"
HEAD, WORKER = "10.86.70.11", "10.86.70.12"
HEAD_PORTS = [39813, 40869, 41799, 43569]


def config(tmp_path, head_node):
    return {
        "unit": "hardened-vllm.service",
        "socket": "/run/hardened-vllm/api.sock" if head_node else None,
        "user": "vllm",
        "address": HEAD if head_node else WORKER,
        "head": HEAD,
        "peers": [WORKER] if head_node else [HEAD],
        "rpc_port": 29550,
        "record": str(tmp_path / "healthy.json"),
        "state": str(tmp_path / "state.json"),
        "interval": 5,
        "misses": 3,
        "max_tries": 3,
        "backoff": 30,
        "heal_timeout": 900,
    }


class FakeNode:
    """A node the test sets (unit, socket, connections, counters); sleep moves its clock."""

    def __init__(self):
        self.clock = 1000.0
        self.props = self.running("inv-1")
        self.healthy = True
        self.ports = list(HEAD_PORTS)
        self.listening = True
        self.resets = 7
        self.restarts = 0
        self.slept = []
        self.lines = []
        self.journal = ["INFO: loading weights"]

    @staticmethod
    def running(invocation, n_restarts=0):
        return {
            "ActiveState": "active",
            "SubState": "running",
            "MainPID": "4242",
            "NRestarts": str(n_restarts),
            "InvocationID": invocation,
        }

    def show(self):
        return dict(self.props)

    def health(self):
        return self.healthy

    def tcp_rows(self):
        head = ipaddress.ip_address(HEAD)
        local = ipaddress.ip_address(WORKER)
        return [(local, 50000 + p, head, p, "01", 999) for p in self.ports]

    def resets_sent(self):
        return self.resets

    def connect(self, address, port):
        return self.listening

    def restart(self):
        self.restarts += 1
        return 0

    def journal_lines(self, seconds):
        return self.journal

    def now(self):
        return self.clock

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.clock += seconds

    def log(self, message):
        self.lines.append(message)


def ticks(dog, node, count):
    for _tick in range(count):
        dog.tick()
        node.sleep(5)


# --- parsers on recorded input ----------------------------------------------------------


def test_the_workers_connections_to_the_head_from_proc_net_tcp():
    rows = heal.parse_proc_tcp((FIXTURES / "worker-tcp.txt").read_text())
    rows += heal.parse_proc_tcp((FIXTURES / "worker-tcp6.txt").read_text(), v6=True)
    assert heal.connections_to(rows, HEAD, 999) == HEAD_PORTS
    assert heal.connections_to(rows, HEAD, 0) == []  # root's (none) are not the service's
    listening = {(str(r[0]), r[1]) for r in rows if r[4] == "0A"}
    assert ("0.0.0.0", 22) in listening and ("::", 22) in listening


def test_v4_mapped_addresses_in_tcp6_count_as_ipv4():
    line = (
        "  0: 0000000000000000FFFF00000C46560A:C350 0000000000000000FFFF00000B46560A:9B85 01 "
        "00000000:00000000 00:00000000 00000000   999        0 1 1 0\n"
    )
    rows = heal.parse_proc_tcp("header\n" + line, v6=True)
    assert heal.connections_to(rows, HEAD, 999) == [0x9B85]


def test_the_resets_a_node_sent_from_proc_net_snmp():
    counters = heal.parse_snmp_tcp((FIXTURES / "head-snmp.txt").read_text())
    assert counters["OutRsts"] == 7 and counters["MaxConn"] == -1
    assert heal.parse_snmp_tcp("Ip: 1 2\n") == {}


# --- the worker -------------------------------------------------------------------------


def test_a_joined_worker_records_its_invocation_once(tmp_path):
    node = FakeNode()
    dog = heal.Watchdog(config(tmp_path, False), node, 999)
    ticks(dog, node, 3)
    record = json.loads((tmp_path / "healthy.json").read_text())
    assert record == {"invocation": "inv-1", "n_restarts": 0}
    assert (tmp_path / "healthy.json").read_text() == json.dumps(record, sort_keys=True) + "\n"
    assert dog.state == "healthy" and node.restarts == 0
    assert node.lines[-1].startswith("whole: hardened-vllm.service (invocation inv-1)")


def test_a_worker_whose_head_restarted_restarts_itself_after_three_bad_checks(tmp_path):
    node = FakeNode()
    dog = heal.Watchdog(config(tmp_path, False), node, 999)
    ticks(dog, node, 1)
    node.listening = False  # the head rebooted: its old ports are closed, the connections stale
    ticks(dog, node, 2)
    assert node.restarts == 0
    ticks(dog, node, 1)
    assert node.restarts == 1 and dog.state == "healing"
    assert "heal 1 of 3" in node.lines[-1] and "no longer listens on port 39813" in node.lines[-1]
    # The new invocation joins the new head: whole again, the count starts over.
    node.props, node.listening = node.running("inv-2"), True
    ticks(dog, node, 1)
    assert dog.state == "healthy" and dog.tries == 0
    assert "again after 1 heal(s)" in node.lines[-1]
    assert json.loads((tmp_path / "healthy.json").read_text())["invocation"] == "inv-2"


def test_a_worker_whose_connections_are_gone_heals_and_never_probes_the_rpc_port(tmp_path):
    node = FakeNode()
    dog = heal.Watchdog(config(tmp_path, False), node, 999)
    ticks(dog, node, 1)
    node.ports = [29550]  # only a handshake connection: not a sign of a joined group
    ticks(dog, node, 3)
    assert node.restarts == 1 and "connections to the head 10.86.70.11 are gone" in dog.reason


def test_a_starting_or_stopped_worker_is_left_to_systemd_and_the_role(tmp_path):
    node = FakeNode()
    node.ports = []  # starting: not joined yet
    dog = heal.Watchdog(config(tmp_path, False), node, 999)
    ticks(dog, node, 10)
    assert node.restarts == 0 and not (tmp_path / "healthy.json").exists()
    node.ports = list(HEAD_PORTS)
    ticks(dog, node, 1)
    node.props = {**node.props, "ActiveState": "inactive", "MainPID": "0"}  # stopped by a run
    ticks(dog, node, 10)
    assert node.restarts == 0


def test_heals_back_off_and_give_up_after_max_tries(tmp_path):
    node = FakeNode()
    dog = heal.Watchdog(config(tmp_path, False), node, 999)
    ticks(dog, node, 1)
    node.listening = False
    ticks(dog, node, 3)
    assert node.restarts == 1
    # The restarted worker never joins: after heal_timeout the next heal, after a backoff.
    node.props, node.ports = node.running("inv-2"), []
    node.sleep(900)
    ticks(dog, node, 1)
    assert node.restarts == 2 and 30 in node.slept
    node.sleep(900)
    ticks(dog, node, 1)
    assert node.restarts == 3 and 60 in node.slept
    node.sleep(900)
    with pytest.raises(heal.GiveUp, match="gave up after 3 heal"):
        dog.tick()
    assert dog.state == "failed" and node.restarts == 3


def test_watch_gives_up_with_a_failed_state_and_exit_code(tmp_path, monkeypatch):
    node = FakeNode()
    cfg = {**config(tmp_path, False), "max_tries": 0}
    monkeypatch.setattr(heal.pwd, "getpwnam", lambda name: type("P", (), {"pw_uid": 999}))
    node.listening = True
    calls = {"n": 0}

    def tick_then_break():
        calls["n"] += 1
        node.listening = calls["n"] < 2

    original = node.sleep
    node.sleep = lambda s: (tick_then_break(), original(s))
    assert heal.watch(cfg, node) == 1
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["state"] == "failed" and "no longer listens" in state["reason"]
    assert node.lines[-1].startswith("failed: gave up after 0 heal(s)")


# --- the head ---------------------------------------------------------------------------


def test_a_head_whose_engines_are_gone_restarts_itself(tmp_path):
    node = FakeNode()
    dog = heal.Watchdog(config(tmp_path, True), node, 999)
    ticks(dog, node, 2)
    node.healthy = False
    ticks(dog, node, 3)
    assert node.restarts == 1 and "no longer answers /health" in dog.reason


def test_a_starting_head_is_not_restarted(tmp_path):
    node = FakeNode()
    node.healthy = False
    dog = heal.Watchdog(config(tmp_path, True), node, 999)
    ticks(dog, node, 50)
    assert node.restarts == 0


def test_a_head_that_keeps_refusing_connections_restarts_to_let_a_worker_join(tmp_path):
    node = FakeNode()
    dog = heal.Watchdog(config(tmp_path, True), node, 999)
    ticks(dog, node, 3)
    node.resets += 40  # one burst (a probe of closed ports): not sustained
    ticks(dog, node, 1)
    ticks(dog, node, 3)
    assert node.restarts == 0
    for _check in range(3):  # a rebooted worker's vLLM retries its handshake several times a second
        node.resets += 50
        dog.tick()
        node.sleep(5)
    assert node.restarts == 1 and "refusing TCP connections (10/s)" in dog.reason


# --- the role's health wait -------------------------------------------------------------


def test_wait_returns_once_the_head_answers(tmp_path):
    node = FakeNode()
    rc, message = heal.wait(config(tmp_path, True), node, 900)
    assert rc == 0 and message == "0.0"


def test_wait_for_a_worker_needs_its_unit_to_stay_active(tmp_path):
    node = FakeNode()
    rc, message = heal.wait(config(tmp_path, False), node, 900)
    assert rc == 0 and float(message) >= 15


def test_a_worker_that_has_served_for_minutes_is_healthy_at_once(tmp_path):
    """A run with nothing to change: the recorded unit became active long before the wait."""
    node = FakeNode()
    node.props = heal.parse_show((FIXTURES / "worker-show.txt").read_text())
    node.clock = 58828.53  # /proc/uptime right after the recording (README)
    assert heal.active_entered(node.props) == pytest.approx(57677.432088)
    rc, message = heal.wait(config(tmp_path, False), node, 900)
    assert rc == 0 and message == "0.0" and node.slept == []


def test_a_worker_started_moments_ago_waits_out_the_rest_of_the_settle_time(tmp_path):
    node = FakeNode()
    node.props = {**node.props, "ActiveEnterTimestampMonotonic": str(int((node.clock - 5) * 1e6))}
    rc, message = heal.wait(config(tmp_path, False), node, 900)
    assert rc == 0 and 10 <= float(message) < 15


def test_a_worker_restarted_during_the_wait_settles_again_from_its_new_start(tmp_path):
    class Restarted(FakeNode):
        """Active for 10 s when the wait starts; systemd starts it again 4 s later."""

        def show(self):
            entered = 990 if self.clock < 1004 else 1004
            return {**self.props, "ActiveEnterTimestampMonotonic": str(entered * 1_000_000)}

    rc, message = heal.wait(config(tmp_path, False), Restarted(), 900)
    assert rc == 0 and float(message) >= 19  # 15 s after the new start at 1004, not at 995


def test_an_unknown_or_unset_start_time_counts_from_the_first_active_sight(tmp_path):
    for value in ("0", "", "n/a"):
        node = FakeNode()
        node.props = {**node.props, "ActiveEnterTimestampMonotonic": value}
        assert heal.active_entered(node.props) is None
        rc, message = heal.wait(config(tmp_path, False), node, 900)
        assert rc == 0 and float(message) >= 15


def test_wait_ends_at_once_when_the_unit_failed(tmp_path):
    node = FakeNode()
    node.props = {**node.props, "ActiveState": "failed", "NRestarts": "5"}
    rc, message = heal.wait(config(tmp_path, True), node, 900)
    assert (
        rc == 1
        and message == "failed: hardened-vllm.service gave up (start limit) after 5 restarts"
    )


def test_wait_tells_still_starting_from_a_crash_loop(tmp_path):
    node = FakeNode()
    node.healthy = False
    rc, message = heal.wait(config(tmp_path, True), node, 60)
    assert rc == 3 and message.startswith("still starting: no /health within 60 s")
    assert "1 log line(s)" in message and "INFO: loading weights" in message

    class RestartedOnce(FakeNode):
        """The lab under load: the DP coordinator missed its 120 s, systemd started it again."""

        def show(self):
            if self.clock > 1030:
                self.props["NRestarts"] = "1"
            return dict(self.props)

    node = RestartedOnce()
    node.healthy = False
    rc, message = heal.wait(config(tmp_path, True), node, 60)
    assert rc == 3 and "the process runs, after 1 restart(s) by systemd during the wait" in message

    class Looping(FakeNode):
        def show(self):
            self.props["NRestarts"] = str(int(self.props["NRestarts"]) + 1)
            self.props.update(ActiveState="activating", SubState="auto-restart", MainPID="0")
            return dict(self.props)

    node = Looping()
    node.healthy = False
    rc, message = heal.wait(config(tmp_path, True), node, 60)
    assert rc == 1 and message.startswith("failed: ") and "crash loop" in message
    assert "activating/auto-restart" in message


def test_settings_numbers_written_as_text_are_read_as_numbers(tmp_path):
    raw = {**config(tmp_path, False), "misses": "3", "rpc_port": "29550", "knock_rate": "5"}
    fixed = heal.normalize(raw)
    assert (fixed["misses"], fixed["rpc_port"], fixed["knock_rate"]) == (3, 29550, 5.0)
    path = tmp_path / "heal.json"
    path.write_text("[]")
    assert "not a JSON object" in heal.main(["wait", "--config", str(path)])
    path.write_text(json.dumps({**raw, "misses": "three"}))
    assert "a number is not a number" in heal.main(["wait", "--config", str(path)])
