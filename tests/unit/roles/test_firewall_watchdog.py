# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/firewall/files/firewall_watchdog.py: what it finds and what it loads.

The pure parts run on recorded input (``ip -j addr show dev eth0`` of a firewall-scenario
node, the role's own rendering of a plan). The rounds run against a real kernel table in a
throwaway network namespace, with the lock and marker files the role's apply uses.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.hardened.vllm.plugins.module_utils._nft_ruleset import render

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles" / "firewall" / "files" / "firewall_watchdog.py"
FIXTURES = ROOT / "tests" / "unit" / "fixtures"
PLAN = json.loads((FIXTURES / "nft" / "plan_node1.json").read_text())
FOREIGN = FIXTURES / "nft" / "foreign.nft"
# Recorded with `podman exec fw-node1 ip -j addr show dev eth0` (molecule/firewall, bookworm).
IP_ADDR = (FIXTURES / "nft" / "ip-addr-eth0.json").read_text()

spec = importlib.util.spec_from_file_location("firewall_watchdog", SCRIPT)
wd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wd)

BOOT = render(PLAN)
_names = itertools.count()


# --- pure ---------------------------------------------------------------------------------


def test_the_rendered_ruleset_names_the_address_it_was_rendered_for():
    assert "# hardened.vllm.firewall address: 10.89.0.2 on eth0\n" in BOOT
    assert wd.expected_address(BOOT) == ("10.89.0.2", "eth0")


def test_a_ruleset_without_the_address_line_is_not_checked():
    assert wd.expected_address("table inet hardened_vllm {\n}\n") is None
    assert wd.expected_address("# hardened.vllm.firewall address: nonsense on eth0\n") is None


def test_the_addresses_of_a_recorded_interface():
    assert wd.interface_addresses(IP_ADDR) == [
        "10.231.7.11",
        "fd00:231:7::11",
        "fe80::aff:fee7:70b",
    ]
    assert wd.interface_addresses("") == []
    assert wd.interface_addresses("not json") == []


def test_the_closed_ruleset_keeps_only_the_admins_sets():
    many = dict(PLAN, peers={"ipv4": [f"10.89.{i}.1/32" for i in range(1, 10)], "ipv6": []})
    boot = render(many)
    closed = wd.closed_script(boot)
    assert "10.89.9.1" in boot and "10.89.9.1" not in closed  # a set over several lines
    assert "198.51.100.0/24" in closed  # the admins
    kept = [line for line in closed.splitlines() if "elements" in line]
    assert kept == ["\t\telements = { 198.51.100.0/24 }"]  # admins_v4 only
    assert all(name in closed for name in ("set peers_v4 {", "set clients_v6 {", "chain input {"))
    assert closed.count("\n") < boot.count("\n")


def test_findings():
    assert wd.finding(None, "x") == "missing"
    assert wd.finding("y", "x") == "changed"
    assert wd.finding("x", "x") is None


def test_the_state_as_a_textfile_for_node_exporter():
    text = wd.prom({"state": "closed", "restores": 3, "last_check": 5.5, "last_restore": None})
    assert 'hardened_vllm_firewall_watchdog_state{state="closed"} 1' in text
    assert 'hardened_vllm_firewall_watchdog_state{state="ok"} 0' in text
    assert "hardened_vllm_firewall_watchdog_restores_total 3\n" in text
    assert "hardened_vllm_firewall_watchdog_last_restore_timestamp_seconds 0\n" in text
    assert "# TYPE hardened_vllm_firewall_watchdog_restores_total counter" in text


# --- rounds against a real table -----------------------------------------------------------

needs_netns = pytest.mark.skipif(
    not (shutil.which("nft") and shutil.which("ip") and os.geteuid() == 0),
    reason="needs root, nft and ip (network namespaces)",
)


def sh(*argv, stdin=None):
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


class Node:
    """A network namespace with eth0 holding the plan's address, and the role's files."""

    def __init__(self, tmp_path, netns):
        self.netns, self.tmp = netns, tmp_path
        self.boot, self.record = tmp_path / "firewall.nft", tmp_path / "firewall.applied"
        self.run_dir, self.state_dir = tmp_path / "run", tmp_path / "state"
        self.ns("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
        self.ns("ip", "addr", "add", "10.89.0.2/24", "dev", "eth0")
        self.ns("nft", "-f", str(FOREIGN))
        self.boot.write_text(BOOT)
        self.ns("nft", "-f", str(self.boot))
        self.record.write_text(self.table())
        self.foreign = self.ns("nft", "list", "table", "ip", "nat")
        args = argparse.Namespace(
            interval=1.0,
            boot_file=str(self.boot),
            record=str(self.record),
            run_dir=str(self.run_dir),
            state_dir=str(self.state_dir),
            nft="nft",
            ip="ip",
            once=True,
        )
        self.watchdog = wd.Watchdog(args, run=self.run)

    def ns(self, *argv, stdin=None):
        return sh("ip", "netns", "exec", self.netns, *argv, stdin=stdin)

    def run(self, argv, stdin=None):
        done = subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr

    def table(self):
        rc, out, _err = self.run(["nft", "-s", "list", "table", "inet", "hardened_vllm"])
        return out if rc == 0 else None

    def state(self):
        return json.loads((self.state_dir / "firewall.json").read_text())


@pytest.fixture
def node(tmp_path):
    name = f"fw-wd-{os.getpid()}-{next(_names)}"
    sh("ip", "netns", "add", name)
    try:
        yield Node(tmp_path, name)
    finally:
        sh("ip", "netns", "delete", name)


@needs_netns
def test_the_confirmed_table_is_left_alone(node, capsys):
    node.watchdog.check()
    assert node.state()["state"] == "ok" and node.state()["restores"] == 0
    assert "ok: the table is the confirmed one" in capsys.readouterr().out


@needs_netns
def test_a_deleted_table_is_reloaded_and_foreign_tables_stay(node, capsys):
    node.ns("nft", "delete", "table", "inet", "hardened_vllm")
    node.watchdog.check()
    assert node.table() == node.record.read_text()
    assert node.ns("nft", "list", "table", "ip", "nat") == node.foreign
    state = node.state()
    assert (state["state"], state["restores"], state["last_event"]["found"]) == ("ok", 1, "missing")
    assert "<4>hardened-vllm-firewall-watchdog: ok: table inet hardened_vllm was missing" in (
        capsys.readouterr().out
    )
    assert "restores_total 1" in (node.state_dir / "firewall.prom").read_text()


@needs_netns
def test_a_rule_added_to_our_table_is_undone(node):
    node.ns("nft", "insert", "rule", "inet", "hardened_vllm", "input", "accept")
    node.watchdog.check()
    assert node.table() == node.record.read_text()
    assert node.state()["last_event"]["found"] == "changed"


@needs_netns
def test_nothing_is_touched_while_an_apply_waits_for_its_confirmation(node):
    node.run_dir.mkdir()
    (node.run_dir / "armed").write_text("0\n")
    node.ns("nft", "delete", "table", "inet", "hardened_vllm")
    node.watchdog.check()
    assert node.table() is None
    assert node.state()["state"] == "paused"


@needs_netns
def test_nothing_is_touched_while_apply_confirm_or_rollback_hold_the_lock(node):
    node.run_dir.mkdir()
    node.ns("nft", "delete", "table", "inet", "hardened_vllm")
    with open(node.run_dir / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        node.watchdog.check()
        assert node.table() is None
    node.watchdog.check()
    assert node.table() == node.record.read_text()


@needs_netns
def test_without_a_confirmed_ruleset_it_loads_nothing(node):
    node.record.unlink()
    node.ns("nft", "delete", "table", "inet", "hardened_vllm")
    node.watchdog.check()
    assert node.table() is None
    assert node.state()["state"] == "unconfigured"


@needs_netns
def test_a_node_without_its_address_stays_closed_until_it_comes_back(node, capsys):
    node.ns("ip", "addr", "del", "10.89.0.2/24", "dev", "eth0")
    node.ns("ip", "addr", "add", "10.89.0.9/24", "dev", "eth0")
    node.watchdog.check()
    state = node.state()
    assert state["state"] == "closed"
    assert "rendered for 10.89.0.2 on eth0, but eth0 has 10.89.0.9" in state["reason"]
    assert state["address"] == {
        "expected": "10.89.0.2",
        "interface": "eth0",
        "found": ["10.89.0.9"],
    }
    sets = json.loads(node.ns("nft", "-j", "list", "table", "inet", "hardened_vllm"))["nftables"]
    filled = sorted(s["set"]["name"] for s in sets if "set" in s and s["set"].get("elem"))
    assert filled == ["admins_v4"]
    assert "<3>hardened-vllm-firewall-watchdog: closed:" in capsys.readouterr().out
    # stays closed, and loads nothing more while nothing changes
    node.watchdog.check()
    assert node.state()["restores"] == 1
    # a foreign flush of the closed node is undone, still closed
    node.ns("nft", "flush", "ruleset")
    node.watchdog.check()
    assert node.state()["state"] == "closed" and node.state()["restores"] == 2
    # the address is back: the confirmed table again
    node.ns("ip", "addr", "add", "10.89.0.2/24", "dev", "eth0")
    node.watchdog.check()
    assert node.state()["state"] == "ok"
    assert node.table() == node.record.read_text()
    assert "which is back" in node.state()["reason"]


@needs_netns
def test_a_missing_interface_closes_the_node(node):
    node.ns("ip", "link", "delete", "eth0")
    node.watchdog.check()
    assert node.state()["state"] == "closed"
    assert "rendered for 10.89.0.2 on eth0, but eth0 does not exist" in node.state()["reason"]
    assert node.state()["address"]["found"] == []


@needs_netns
def test_stop_says_so(node):
    node.watchdog.check()
    node.watchdog.stop()
    assert node.state()["state"] == "stopped"
    assert 'state="stopped"} 1' in (node.state_dir / "firewall.prom").read_text()
