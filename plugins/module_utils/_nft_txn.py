# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace the firewall table atomically, behind an automatic rollback (target side).

One apply is a small transaction with three outcomes:

* apply: save the live table, arm a transient systemd timer that restores it after
  N seconds, then load the new table (one ``nft -f``: the whole table at once);
* confirm: the controller reconnected, so disarm and persist the new ruleset as the
  boot file (and remember its live listing to detect drift on the next run);
* rollback: nobody confirmed in time, the timer puts the saved table back and
  leaves a marker that says so.

The boot file changes only at confirm, so a reboot during the window boots the
last confirmed ruleset. A lock (flock) makes confirm and rollback exclusive.
Stdlib only; commands run through the caller's ``run(argv) -> (rc, out, err)``.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import tempfile
import time
from contextlib import contextmanager, suppress

from ansible_collections.hardened.vllm.plugins.module_utils._files import write_atomic
from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import TABLE

RUN_DIR = "/run/hardened-vllm-firewall"
RECORD = "/var/lib/hardened-vllm/firewall.applied"
ROLLBACK_UNIT = "hardened-vllm-firewall-rollback"

_SCRIPT = """#!/bin/sh
# Written by hardened.vllm.nft_apply. Started by the transient timer {unit}.timer:
# restores table {table} as it was before an apply that nobody confirmed in time.
cd {run_dir} || exit 1
exec 9>lock
flock 9
[ -e armed ] || exit 0
if {nft} -f rollback.nft; then result=restored; else result="FAILED (nft exit $?)"; fi
rm -f armed pending.nft pending.list
echo "at $(date -u +%Y-%m-%dT%H:%M:%SZ): $result" >rolled-back
echo "hardened-vllm-firewall: unconfirmed ruleset rolled back: $result"
"""


class NftError(RuntimeError):
    """A command failed; the message names the command and nft's own words."""


class RolledBack(RuntimeError):
    """The rollback already fired: there is nothing left to confirm."""


class Firewall:
    """The live table, its boot file and the rollback machinery of one host."""

    def __init__(
        self,
        run,
        nft,
        config_path,
        run_dir=RUN_DIR,
        record_path=RECORD,
        systemctl="systemctl",
        systemd_run="systemd-run",
        unit=ROLLBACK_UNIT,
    ):
        self.run, self.nft, self.config_path = run, nft, config_path
        self.run_dir, self.record_path, self.unit = run_dir, record_path, unit
        self.systemctl, self.systemd_run = systemctl, systemd_run

    def _path(self, name):
        return os.path.join(self.run_dir, name)

    # --- reading ------------------------------------------------------------

    def live(self):
        """``nft -s list table`` of our table (canonical, no counters), None if absent."""
        rc, out, err = self.run([self.nft, "-s", "list", "table", *TABLE.split()])
        if rc == 0:
            return out
        if "No such file or directory" in err:
            return None
        raise NftError(f"nft list table {TABLE} failed (rc {rc}): {err.strip()}")

    def pending(self):
        """True while an apply waits for its confirmation."""
        return os.path.exists(self._path("armed"))

    def changes(self, content, read_live=True):
        """Why applying ``content`` would change something, and the diffs to show."""
        current, record = _read(self.config_path), _read(self.record_path)
        live = self.live() if read_live else record
        reasons, diffs = [], []
        if current != content:
            reasons.append(f"the rendered ruleset differs from {self.config_path}")
            diffs.append(
                {
                    "before_header": self.config_path,
                    "before": current or "",
                    "after_header": f"{self.config_path} (rendered from cluster_plan)",
                    "after": content,
                }
            )
        if live != record:
            reasons.append(
                f"the live table {TABLE} differs from the one applied last "
                "(changed by hand, flushed by another tool, or never applied)"
            )
            diffs.append(
                {
                    "before_header": f"live table {TABLE}",
                    "before": live or "",
                    "after_header": f"table {TABLE} as applied last",
                    "after": record or "",
                }
            )
        if self.pending():
            reasons.append("an earlier apply was never confirmed")
        return reasons, diffs

    def check(self, path):
        rc, _out, err = self.run([self.nft, "-c", "-f", path])
        if rc != 0:
            raise NftError(f"nft -c -f {path} rejects the ruleset: {err.strip()}")

    # --- writing ------------------------------------------------------------

    def check_content(self, content, directory=None):
        """Validate ``content`` with ``nft -c`` (from a temp file in ``directory``)."""
        if directory is None:
            directory = self.run_dir
            os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="check.", suffix=".nft", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            self.check(path)
        finally:
            os.unlink(path)

    def apply(self, content, timeout):
        """Arm the rollback, then load ``content``; return the table's new listing."""
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        with self._lock():
            self.check_content(content)
            if not self.pending():
                # An unconfirmed earlier apply keeps its saved table: that one is the
                # last state somebody confirmed.
                write_atomic(self._path("rollback.nft"), replace_script(self.live()))
                try:
                    self.check(self._path("rollback.nft"))
                except NftError as exc:
                    raise NftError(
                        f"cannot save the current table for a rollback, so "
                        f"nothing was applied: {exc}"
                    ) from None
            write_atomic(self._path("pending.nft"), content)
            write_atomic(
                self._path("rollback.sh"),
                _SCRIPT.format(
                    unit=self.unit,
                    table=TABLE,
                    run_dir=shlex.quote(self.run_dir),
                    nft=shlex.quote(self.nft),
                ),
            )
            _remove(self._path("rolled-back"))
            write_atomic(self._path("armed"), f"{int(time.time()) + timeout}\n")
            try:
                self._arm_timer(timeout)
                rc, _out, err = self.run([self.nft, "-f", self._path("pending.nft")])
                if rc != 0:
                    raise NftError(f"nft -f refused the new ruleset: {err.strip()}")
            except NftError as exc:
                raise NftError(f"{exc}; {self._roll_back_now()}") from None
            listing = self.live()
            write_atomic(self._path("pending.list"), listing or "")
        return listing

    def confirm(self):
        """Disarm and persist; False if nothing was pending, RolledBack if too late."""
        if not os.path.isdir(self.run_dir):
            return False
        with self._lock():
            if not self.pending():
                marker = _read(self._path("rolled-back"))
                if marker:
                    raise RolledBack(marker.strip())
                return False
            for source, target in (
                ("pending.nft", self.config_path),
                ("pending.list", self.record_path),
            ):
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                write_atomic(target, _read(self._path(source)) or "")
            self._disarm()
        return True

    def _arm_timer(self, timeout):
        self._disarm_timer()
        rc, _out, err = self.run(
            [
                self.systemd_run,
                f"--unit={self.unit}",
                f"--on-active={timeout}s",
                "--timer-property=AccuracySec=1s",
                "--collect",
                f"--description=hardened.vllm firewall rollback of table {TABLE}",
                "/bin/sh",
                self._path("rollback.sh"),
            ]
        )
        if rc != 0:
            raise NftError(f"systemd-run could not arm the rollback timer: {err.strip()}")

    def _disarm_timer(self):
        # Either may not be loaded; both commands are no-ops then.
        self.run([self.systemctl, "stop", f"{self.unit}.timer"])
        self.run([self.systemctl, "reset-failed", f"{self.unit}.timer", f"{self.unit}.service"])

    def _roll_back_now(self):
        """Restore the saved table at once (caller holds the lock); say what happened."""
        rc, _out, err = self.run([self.nft, "-f", self._path("rollback.nft")])
        self._disarm()
        if rc != 0:
            return f"restoring the saved table failed too: {err.strip()}"
        return "the table is as it was before (last confirmed state)"

    def _disarm(self):
        for name in ("armed", "pending.nft", "pending.list", "rollback.nft"):
            _remove(self._path(name))
        self._disarm_timer()

    @contextmanager
    def _lock(self):
        with open(self._path("lock"), "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def replace_script(listing):
    """An nft script that replaces our table with ``listing`` (None: removes it)."""
    head = f"table {TABLE}\ndelete table {TABLE}\n"
    return head + (listing or "")


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _remove(path):
    with suppress(FileNotFoundError):
        os.unlink(path)
