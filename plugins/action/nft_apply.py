# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of hardened.vllm.nft_apply: apply, reconnect afresh, confirm.

Doing the three steps in one task means no tag, --start-at-task or failed
handler can separate the apply from its confirmation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import suppress

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

# After the rollback should have fired: how long to wait on top, before looking again.
ROLLBACK_GRACE = 5
# What the confirmation needs after the last reconnect attempt ended (one module run).
CONFIRM_MARGIN = 5


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        (
            "plan",
            "path",
            "log_dropped",
            "log_rate",
            "icmp_echo",
            "rollback_timeout",
            "reconnect_timeout",
        )
    )

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        host = task_vars.get("inventory_hostname", "?")
        rollback = _seconds(args.get("rollback_timeout", 60), "rollback_timeout", host)
        reconnect = _seconds(args.get("reconnect_timeout", 30), "reconnect_timeout", host)
        attempt, how = self._attempt_seconds()
        needed = reconnect + attempt + CONFIRM_MARGIN
        if rollback < needed:
            raise AnsibleActionFail(
                f"host {host}, variable firewall_rollback_timeout: {rollback} s is too short: "
                f"the reconnect phase (firewall_reconnect_timeout {reconnect} s) can end with "
                f"an attempt that starts just before its deadline and lasts {attempt} s "
                f"({how}), and confirming needs {CONFIRM_MARGIN} s more, so the rollback "
                f"would fire while the controller confirms; nothing was changed. Fix: set "
                f"firewall_rollback_timeout to {needed} or more, or lower "
                "firewall_reconnect_timeout or the connection's timeout"
            )
        ssh_client = self._ssh_client(args.get("plan"))
        if ssh_client:
            args["_ssh_client"] = ssh_client
        applied_at = time.monotonic()
        result.update(self._phase("apply", args, task_vars))
        if result.get("failed") or "rollback" not in result:
            return self._done(result)

        reached, error, failures = self._reconnect(task_vars, reconnect)
        if reached:
            confirmed = self._phase("confirm", args, task_vars)
            result.update(confirmed=confirmed.get("confirmed", False))
            if confirmed.get("failed"):
                result.update(
                    failed=True,
                    rolled_back=confirmed.get("rolled_back", False),
                    msg=self._too_late(host, confirmed, error, failures),
                )
            return self._done(result)

        result.update(
            failed=True,
            msg=self._after_lockout(
                host, args, task_vars, error, reconnect, applied_at + rollback + ROLLBACK_GRACE
            ),
        )
        return self._done(result)

    def _ssh_client(self, plan):
        """SSH_CLIENT of the login session, when the plan leaves the admins to derive.

        Read without become: sudo drops SSH_CLIENT from the environment it gives the module.
        """
        admins = plan.get("admins") if isinstance(plan, Mapping) else None
        if isinstance(admins, Mapping) and any(admins.get(f) for f in ("ipv4", "ipv6")):
            return None
        answer = self._low_level_execute_command(
            'echo "${SSH_CLIENT:-$SSH_CONNECTION}"', sudoable=False
        )
        return answer.get("stdout", "").strip() or None

    def _phase(self, phase, args, task_vars):
        return self._execute_module(
            module_name="hardened.vllm.nft_apply",
            module_args={**args, "_phase": phase},
            task_vars=task_vars,
        )

    def _attempt_seconds(self):
        """How long one fresh connection attempt can last, and how that was worked out.

        The connection's timeout per try, its retries (ssh: reconnection_retries) and the
        pauses between them (ssh: 2**n - 1 s, at most 30).
        """
        options = {}
        for name, default in (("timeout", 10), ("reconnection_retries", 0)):
            try:
                options[name] = int(self._connection.get_option(name))
            except (AttributeError, KeyError, TypeError, ValueError):
                options[name] = default
        tries = options["reconnection_retries"] + 1
        pauses = sum(min(2**n - 1, 30) for n in range(tries - 1))
        seconds = options["timeout"] * tries + pauses
        how = f"connection timeout {options['timeout']} s x {tries} tries"
        return seconds, how + (f" + {pauses} s of pauses" if pauses else "")

    def _too_late(self, host, confirmed, error, failures):
        """The confirmation came after the rollback: a lock-out, or a slow host?"""
        if failures:
            return (
                f"host {host}: after applying the new firewall table, {failures} fresh "
                f"connection attempt(s) failed (last error: {error}); one got through only "
                f"after the automatic rollback had already run ({confirmed.get('rolled_back')}), "
                "that is with the previous table back in force. The new ruleset most likely "
                "does not admit the controller (a lock-out): check cluster_admin_cidrs against "
                "the address Ansible connects from. The previous table is in force; the boot "
                "file, the boot unit and the watchdog were not changed."
            )
        return (
            f"{confirmed.get('msg')}. The first fresh connection got through, but only after "
            "the rollback: raise firewall_rollback_timeout if the host is slow to answer."
        )

    def _reconnect(self, task_vars, timeout):
        """Open fresh connections until one runs a module; (reached, last error, failures)."""
        deadline = time.monotonic() + timeout
        failures, error = 0, None
        while True:
            # Drop the persistent (ControlPersist) connection: an established connection
            # survives any ruleset, only a new one proves access.
            with suppress(AttributeError):
                self._connection.reset()
            try:
                answer = self._execute_module(
                    module_name="ansible.legacy.ping", module_args={}, task_vars=task_vars
                )
                if answer.get("ping") == "pong":
                    return True, error, failures
                error = answer.get("msg", "ping did not answer pong")
            except AnsibleConnectionFailure as exc:
                error = str(exc)
            failures += 1
            display.vvv(f"nft_apply: reconnect failed ({error})")
            if time.monotonic() >= deadline:
                return False, error, failures
            time.sleep(1)

    def _after_lockout(self, host, args, task_vars, error, reconnect, rollback_done):
        """Wait for the rollback, look again, and say what happened."""
        lost = (
            f"host {host}: after applying the new firewall table, no fresh connection "
            f"could be opened within {reconnect} s (last error: {error}). The new ruleset "
            "most likely does not admit the controller: check cluster_admin_cidrs "
            "against the address Ansible connects from"
        )
        time.sleep(max(0.0, rollback_done - time.monotonic()))
        reached, error, _failures = self._reconnect(task_vars, reconnect)
        if not reached:
            return (
                f"{lost}. The automatic rollback should have restored the previous table "
                f"by now, but the host is still unreachable ({error}): check it on its "
                "console (systemctl status hardened-vllm-firewall-rollback)."
            )
        status = self._phase("confirm", args, task_vars)
        rolled_back = status.get("rolled_back")
        if rolled_back and rolled_back.endswith(": restored"):
            return (
                f"{lost}. The automatic rollback ran {rolled_back}: the previous table is in "
                "force, the host is reachable again and nothing else changed (the boot file, "
                "the boot unit and the watchdog are written only after a confirmed apply; the "
                "package nftables stays installed). Fix the plan and re-run."
            )
        if rolled_back:
            return (
                f"{lost}. The automatic rollback ran {rolled_back}; the host is reachable but "
                "its table may not be the previous one: check nft list table inet "
                "hardened_vllm and journalctl -u hardened-vllm-firewall-rollback."
            )
        if status.get("confirmed"):
            return (
                f"{lost}. The host answers again and the new table is now confirmed "
                "(the outage was transient); re-run to verify."
            )
        return f"{lost}. The host answers again, but confirming failed: {status.get('msg')}"

    def _done(self, result):
        with suppress(AnsibleConnectionFailure):  # the result already says it is unreachable
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result


def _seconds(value, name, host):
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise AnsibleActionFail(
            f"host {host}: {name} (role variable firewall_{name}) must be a whole number of "
            f"seconds (1 or more), got {value!r}"
        )
    return number
