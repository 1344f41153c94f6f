# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hardened.vllm firewall watchdog: keeps the table inet hardened_vllm as it was confirmed.

Installed by the role hardened.vllm.firewall as hardened-vllm-firewall-watchdog.service; needs
no Ansible, only Python's standard library, nft and ip. Every interval it compares the live
table (``nft -s list table inet hardened_vllm``) with the listing recorded when the controller
last confirmed an apply, and when the table is missing (``nft flush ruleset``, ``nft delete
table``) or differs (a rule added or deleted by hand or by another tool) it re-loads the
confirmed ruleset, the boot file, in one ``nft -f`` transaction. That script only replaces this
table: other tables are never read or written.

The confirmed ruleset names the address it was rendered for (a comment written by the role).
When the cluster interface no longer holds that address (DHCP gave another one, a container
came back with a new one), the peer, client, monitoring and custom sets are emptied in the same
transaction: the node stays closed, SSH from the admins only, until a deployment for the new
address or the old address comes back.

It never fights the role: it takes the role's lock (``<run dir>/lock``, also taken by apply,
confirm and the rollback timer) and does nothing while an apply waits for its confirmation
(``<run dir>/armed``). What it found is logged to the journal and written as JSON and as a
node-exporter textfile (``.prom``) to the state directory.
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress

TABLE = "inet hardened_vllm"
NAME = "hardened-vllm-firewall-watchdog"
ADDRESS_LINE = re.compile(r"^# hardened\.vllm\.firewall address: (\S+) on (\S+)$", re.M)
SET_LINE = re.compile(r"^\tset ([A-Za-z0-9_]+) \{$", re.M)
# What a node whose address changed keeps: SSH from the admins.
KEEP_WHEN_CLOSED = frozenset(("admins_v4", "admins_v6"))
STATES = ("ok", "closed", "paused", "unconfigured", "error", "stopped")
# sd-daemon priority prefixes (journald reads them from stdout)
ERR, WARNING, NOTICE, INFO = "<3>", "<4>", "<5>", "<6>"


# --- pure helpers (unit-tested) ---------------------------------------------------------


def expected_address(boot_text):
    """(address, interface) the confirmed ruleset was rendered for, or None."""
    match = ADDRESS_LINE.search(boot_text or "")
    if not match:
        return None
    try:
        return str(ipaddress.ip_address(match.group(1))), match.group(2)
    except ValueError:
        return None


def interface_addresses(ip_json):
    """The addresses in ``ip -j addr show dev IFACE`` output (normalised), as a sorted list."""
    try:
        links = json.loads(ip_json or "[]")
    except ValueError:
        return []
    found = set()
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info") or []:
            with suppress(ValueError, TypeError):
                found.add(str(ipaddress.ip_address(info.get("local"))))
    return sorted(found)


def closed_script(boot_text):
    """The confirmed ruleset with the elements of every set but the admins' left out.

    The same one-transaction replacement of this table, only the sets are empty. (Not
    ``flush set`` after the table in one script: nft 1.1.3 of Debian 13 crashes on that.)
    """
    lines, current, skipping = [], None, False
    for line in boot_text.splitlines():
        match = SET_LINE.match(line)
        if match:
            current = match.group(1)
        elif line == "\t}":
            current = None
        if skipping or (
            current not in (None, *KEEP_WHEN_CLOSED) and line.startswith("\t\telements = {")
        ):
            skipping = not line.rstrip().endswith("}")
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def finding(live, expected):
    """None when the live table is the expected one, else what is wrong with it."""
    if live is None:
        return "missing"
    if live != expected:
        return "changed"
    return None


def prom(status):
    """The state as a node-exporter textfile."""
    prefix = "hardened_vllm_firewall_watchdog"
    lines = [
        f"# HELP {prefix}_state 1 for the watchdog's current state of table {TABLE}.",
        f"# TYPE {prefix}_state gauge",
    ]
    lines += [f'{prefix}_state{{state="{name}"}} {int(status["state"] == name)}' for name in STATES]
    for metric, key, kind, help_text in (
        ("restores_total", "restores", "counter", "Times the table was re-loaded."),
        (
            "last_check_timestamp_seconds",
            "last_check",
            "gauge",
            "When the table was last compared.",
        ),
        (
            "last_restore_timestamp_seconds",
            "last_restore",
            "gauge",
            "When the table was last re-loaded (0: never).",
        ),
    ):
        lines += [
            f"# HELP {prefix}_{metric} {help_text}",
            f"# TYPE {prefix}_{metric} {kind}",
            f"{prefix}_{metric} {status.get(key) or 0}",
        ]
    return "\n".join(lines) + "\n"


# --- the watchdog -------------------------------------------------------------------------


class Stop(Exception):
    """SIGTERM or SIGINT: write the state 'stopped' and leave."""


class Watchdog:
    def __init__(self, args, run=None, clock=time.time):
        self.args = args
        self.run = run or _run
        self.clock = clock
        self.status = {
            "state": "unconfigured",
            "table": TABLE,
            "reason": "not checked yet",
            "restores": 0,
            "last_check": None,
            "last_restore": None,
            "last_event": None,
            "boot_file": args.boot_file,
        }
        self.closed_listing = None  # the closed table as nft lists it, once loaded
        self.adopted = None  # (record, listing): the confirmed script lists differently
        self.logged = None

    # one round ----------------------------------------------------------------------

    def check(self):
        os.makedirs(self.args.run_dir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.args.run_dir, "lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # apply, confirm or rollback at work: look again next round
            self._check_locked()
        self.status["last_check"] = round(self.clock(), 3)
        self.write_state()

    def _check_locked(self):
        if os.path.exists(os.path.join(self.args.run_dir, "armed")):
            self._set(
                "paused",
                "an apply waits for its confirmation (the rollback timer owns the table)",
                INFO,
            )
            return
        boot, record = _read(self.args.boot_file), _read(self.args.record)
        if boot is None or record is None:
            self._set(
                "unconfigured",
                f"no confirmed ruleset yet ({self.args.boot_file} or {self.args.record} "
                "missing): run the role hardened.vllm.firewall",
                WARNING,
            )
            return
        mismatch = self._address_mismatch(boot)
        if mismatch:
            script, expected, state = closed_script(boot), self.closed_listing, "closed"
        else:
            self.closed_listing = None
            if self.adopted and self.adopted[0] != record:
                self.adopted = None
            script, expected, state = boot, (self.adopted or (None, record))[1], "ok"
        try:
            live = self._live()
        except RuntimeError as exc:
            self._set("error", str(exc), ERR)
            return
        found = finding(live, expected)
        if found is None:
            reason = mismatch or "the table is the confirmed one"
            self._set(state, reason, ERR if mismatch else INFO)
            return
        self._restore(found, script, state, mismatch, record)

    def _restore(self, found, script, state, mismatch, record):
        started = self.clock()
        rc, _out, err = self.run([self.args.nft, "-f", "-"], script)
        elapsed = self.clock() - started
        what = {
            "missing": "was missing (deleted, or flushed by another tool)",
            "changed": "differed from the confirmed one (edited by hand or by another tool)",
        }[found]
        if mismatch and found == "changed" and self.closed_listing is None:
            what = "admitted the peers and clients of an address this node no longer has"
        elif not mismatch and found == "changed" and self.status["state"] == "closed":
            what = "was closed for an address this node did not have, which is back"
        if rc != 0:
            self._set(
                "error",
                f"table {TABLE} {what}; re-loading {self.args.boot_file} failed "
                f"(nft exit {rc}): {err.strip()}",
                ERR,
            )
            return
        listing = self._live()
        if state == "closed":
            self.closed_listing = listing
            loaded = "the confirmed ruleset with only SSH from the admins (closed)"
        else:
            loaded = f"the confirmed ruleset {self.args.boot_file}"
            if listing != record:
                # nft lists the confirmed script differently from the record (an nftables
                # upgrade?): take that listing as the reference instead of re-loading forever.
                self.adopted = (record, listing)
        now = round(self.clock(), 3)
        self.status["restores"] += 1
        self.status["last_restore"] = now
        self.status["last_event"] = {
            "at": now,
            "found": found,
            "loaded": state,
            "seconds": round(elapsed, 3),
        }
        reason = f"table {TABLE} {what}: re-loaded {loaded} in {elapsed:.3f} s"
        if mismatch:
            reason += f"; {mismatch}"
        self._set(state, reason, ERR if mismatch else WARNING, force=True)

    def _address_mismatch(self, boot):
        wanted = expected_address(boot)
        if wanted is None:
            self.status.pop("address", None)
            return None
        address, iface = wanted
        rc, out, _err = self.run([self.args.ip, "-j", "addr", "show", "dev", iface])
        have = interface_addresses(out) if rc == 0 else []
        self.status["address"] = {"expected": address, "interface": iface, "found": have}
        if address in have:
            return None
        if rc != 0:
            found = f"{iface} does not exist"
        else:
            found = f"{iface} has {', '.join(have) if have else 'no address'}"
        return (
            f"the confirmed ruleset was rendered for {address} on {iface}, but {found}: "
            "the node stays closed (SSH from the admins only) until the deployment "
            f"runs for its new address (playbooks/site.yml) or {address} comes back"
        )

    def _live(self):
        rc, out, err = self.run([self.args.nft, "-s", "list", "table", *TABLE.split()])
        if rc == 0:
            return out
        if "No such file or directory" in err:
            return None
        raise RuntimeError(f"nft list table {TABLE} failed (rc {rc}): {err.strip()}")

    # state and journal ----------------------------------------------------------------

    def _set(self, state, reason, priority, force=False):
        self.status["state"], self.status["reason"] = state, reason
        if force or self.logged != (state, reason):
            print(f"{priority}{NAME}: {state}: {reason}", flush=True)
            self.logged = (state, reason)

    def write_state(self):
        directory = self.args.state_dir
        with suppress(OSError):
            os.makedirs(directory, mode=0o755, exist_ok=True)
            _write(os.path.join(directory, "firewall.json"), json.dumps(self.status) + "\n")
            _write(os.path.join(directory, "firewall.prom"), prom(self.status))

    def stop(self):
        self._set("stopped", "the watchdog is stopped: the table stays as it is", NOTICE)
        self.status["last_check"] = round(self.clock(), 3)
        self.write_state()


def _run(argv, stdin=None):
    env = {**os.environ, "LC_ALL": "C"}
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, env=env, check=False, timeout=60
    )
    return done.returncode, done.stdout, done.stderr


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _write(path, text):
    fd, tmp = tempfile.mkstemp(prefix=".tmp.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _notify(message):
    """sd_notify without libsystemd (Type=notify: ready once the first round is done)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def _parse(argv):
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--boot-file", default="/etc/hardened-vllm/firewall.nft")
    parser.add_argument("--record", default="/var/lib/hardened-vllm/firewall.applied")
    parser.add_argument("--run-dir", default="/run/hardened-vllm-firewall")
    parser.add_argument("--state-dir", default="/run/hardened-vllm-watchdog")
    parser.add_argument("--nft", default="/usr/sbin/nft")
    parser.add_argument("--ip", default="ip")
    parser.add_argument("--once", action="store_true", help="one round, then exit")
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse(argv)
    watchdog = Watchdog(args)

    def _stop(_signum, _frame):
        raise Stop

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        f"{INFO}{NAME}: watching table {TABLE} every {args.interval:g} s "
        f"(confirmed ruleset {args.boot_file})",
        flush=True,
    )
    try:
        watchdog.check()
        _notify("READY=1")
        while not args.once:
            time.sleep(args.interval)
            watchdog.check()
    except Stop:
        watchdog.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
