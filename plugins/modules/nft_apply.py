#!/usr/bin/python
# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nft_apply
short_description: Apply the cluster firewall table with an automatic rollback
version_added: 0.1.0
author:
  - hardened.vllm maintainers (@hardened-vllm)
description:
  - Renders the nftables table C(inet hardened_vllm) from a host's cluster plan (see the
    P(hardened.vllm.nft_ruleset#filter) filter for its shape), checks it with C(nft -c) and
    replaces the whole table in one C(nft -f) transaction. Other tables are never read or touched;
    there is no C(flush ruleset).
  - Before applying it saves the live table and arms a transient systemd timer
    (C(hardened-vllm-firewall-rollback.timer)) that restores it after O(rollback_timeout) seconds.
    The action plugin then opens a fresh connection to the host (as C(meta) C(reset_connection) and
    M(ansible.builtin.wait_for_connection) do) and confirms; only a confirmed ruleset is written to
    O(path), the file the boot unit loads. When the controller cannot reconnect, the rollback fires
    and the task fails with a message that says what happened.
  - When the plan has no admin addresses (C(cluster_admin_cidrs) empty), SSH is admitted from the
    controller's address as the host sees it (C(SSH_CLIENT) of this connection, read in the login
    session before C(become)), with a warning. Without an SSH connection (podman, local) the
    module fails and asks for C(cluster_admin_cidrs).
  - Reports a change when the rendered ruleset differs from O(path), when the live table differs
    from the one it applied last (drift, for example after another tool flushed the ruleset), or
    when an earlier apply was never confirmed.
  - Stdlib only on the managed host; needs C(nft), C(systemd-run) and C(flock).
requirements:
  - Python 3 on the managed host (standard library only)
  - nft (nftables), systemd-run and flock on the managed host
options:
  plan:
    description:
      - The host's cluster plan, as published by the role P(hardened.vllm.cluster#role) in the host
        fact C(cluster_plan).
    type: dict
    required: true
  path:
    description: The boot file of the ruleset, written when an apply is confirmed.
    type: path
    default: /etc/hardened-vllm/firewall.nft
  log_dropped:
    description: Log dropped packets, at most O(log_rate), with prefix C(hardened-vllm drop:).
    type: bool
    default: true
  log_rate:
    description: Most log lines per time unit, in nft's syntax.
    type: str
    default: 10/minute
  icmp_echo:
    description: Answer ping (ICMP and ICMPv6 echo requests, at most 10 per second).
    type: bool
    default: true
  rollback_timeout:
    description:
      - Seconds after which an unconfirmed apply is rolled back.
      - Must exceed O(reconnect_timeout) by at least 5 seconds.
    type: int
    default: 60
  reconnect_timeout:
    description:
      - Seconds the action plugin keeps trying to open a fresh connection after the apply.
      - One SSH attempt against a host that drops it lasts the connection's C(timeout) (10 s by
        default).
    type: int
    default: 30
  _phase:
    description:
      - Internal use only, set by the action plugin. V(apply) arms and applies, V(confirm) disarms.
    type: str
    choices: [apply, confirm]
    default: apply
  _ssh_client:
    description:
      - Internal use only, set by the action plugin when the plan has no admins. C(SSH_CLIENT)
        as read in the login session, before C(become) (sudo drops it from the environment).
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
    details: The action plugin reconnects and confirms between the two phases.
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Renders, validates with C(nft -c) and reports the diff; changes nothing.
  diff_mode:
    support: full
    details: Shows the boot file diff and, on drift, the live table against the one applied last.
  platform:
    support: full
    platforms: debian
notes:
  - The rollback restores the table only; the boot file O(path) is never written before a
    confirmation, so a reboot inside the window boots the last confirmed ruleset.
  - State lives in C(/run/hardened-vllm-firewall) (rollback) and
    C(/var/lib/hardened-vllm/firewall.applied) (the live listing at the last confirmation).
seealso:
  - plugin: hardened.vllm.nft_ruleset
    plugin_type: filter
  - module: community.general.iptables_state
    description: The same safety net for iptables.
"""

EXAMPLES = r"""
- name: Apply the firewall of the cluster plan
  hardened.vllm.nft_apply:
    plan: "{{ cluster_plan }}"

- name: Short rollback window for a test
  hardened.vllm.nft_apply:
    plan: "{{ cluster_plan }}"
    rollback_timeout: 20
    reconnect_timeout: 10
"""

RETURN = r"""
reasons:
  description: Why the table is (or in check mode, would be) replaced; empty when nothing changes.
  returned: always
  type: list
  elements: str
  sample: ["the rendered ruleset differs from /etc/hardened-vllm/firewall.nft"]
admins:
  description: Where SSH is admitted from, and why.
  returned: in the apply phase
  type: dict
  contains:
    cidrs:
      description: The admin networks written into the sets C(admins_v4) and C(admins_v6).
      type: list
      elements: str
      sample: ["192.0.2.10/32"]
    source:
      description: C(cluster_plan) or the environment variable the address was derived from.
      type: str
      sample: the login session of this connection
config_file:
  description: The boot file (O(path)).
  returned: always
  type: str
  sample: /etc/hardened-vllm/firewall.nft
rollback:
  description: The armed rollback; the action plugin confirms it.
  returned: when the table was replaced
  type: dict
  contains:
    unit:
      description: The transient timer that restores the previous table.
      type: str
      sample: hardened-vllm-firewall-rollback.timer
    timeout:
      description: Seconds until it fires.
      type: int
      sample: 60
confirmed:
  description: The apply was confirmed and persisted.
  returned: after the confirm phase
  type: bool
  sample: true
rolled_back:
  description:
    - The rollback had already run when the confirmation came; when (UTC) and its outcome.
  returned: when the confirm phase fails for that reason
  type: str
  sample: "at 2026-11-28T05:06:55Z: restored"
"""

import ipaddress
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils._nft_ruleset import PlanError, render
from ansible_collections.hardened.vllm.plugins.module_utils._nft_txn import (
    ROLLBACK_UNIT,
    Firewall,
    NftError,
    RolledBack,
)
from ansible_collections.hardened.vllm.plugins.module_utils._sockets import unmapped

_SSH_VARIABLES = ("SSH_CLIENT", "SSH_CONNECTION")


def controller_address(ssh_client, environ):
    """The SSH client address of this connection and where it was found, or (None, None).

    ``ssh_client`` is what the action plugin read in the login session before ``become``
    (sudo drops SSH_CLIENT from the module's environment); the module's own environment
    serves when Ansible connects as root.
    """
    candidates = [("the login session of this connection", ssh_client)]
    candidates += [
        (f"{name} in the module's environment", environ.get(name)) for name in _SSH_VARIABLES
    ]
    for where, value in candidates:
        address = _first_address(value)
        if address:
            return address, where
    return None, None


def _first_address(value):
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.split()[0].split("%")[0])
    except ValueError:
        return None
    address = unmapped(address)
    return f"{address}/{address.max_prefixlen}"


def effective_admins(plan, ssh_client, environ):
    """(admin CIDRs or None to keep the plan's, source, warning or None)."""
    admins = plan.get("admins")
    if isinstance(admins, dict) and any(admins.get(f) for f in ("ipv4", "ipv6")):
        return None, "cluster_plan (cluster_admin_cidrs)", None
    address, where = controller_address(ssh_client, environ)
    host = plan.get("host", "?")
    if address is None:
        raise PlanError(
            f"host {host}, variable cluster_admin_cidrs: is empty and the controller's address "
            "cannot be derived (this connection has no SSH_CLIENT: a podman, docker or local "
            "connection?), so the firewall would admit SSH from nobody. Fix: set "
            "cluster_admin_cidrs to the networks you administer the cluster from."
        )
    warning = (
        f"cluster_admin_cidrs is empty: SSH to {host} is admitted only from {address}, "
        f"the controller's address as the host sees it (SSH_CLIENT, from {where}). Set "
        "cluster_admin_cidrs to keep other admins' access."
    )
    return [address], where, warning


def main():
    module = AnsibleModule(
        argument_spec={
            "plan": {"type": "dict", "required": True},
            "path": {"type": "path", "default": "/etc/hardened-vllm/firewall.nft"},
            "log_dropped": {"type": "bool", "default": True},
            "log_rate": {"type": "str", "default": "10/minute"},
            "icmp_echo": {"type": "bool", "default": True},
            "rollback_timeout": {"type": "int", "default": 60},
            "reconnect_timeout": {"type": "int", "default": 30},
            "_phase": {"type": "str", "choices": ["apply", "confirm"], "default": "apply"},
            "_ssh_client": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    host = params["plan"].get("host", "?")
    nft = module.get_bin_path("nft")

    def run(argv):
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    firewall = Firewall(run, nft or "nft", params["path"])
    # Not "path": AnsibleModule would add that file's owner and mode to the result.
    result = {"changed": False, "reasons": [], "config_file": params["path"]}

    if params["_phase"] == "confirm":
        try:
            result["confirmed"] = result["changed"] = firewall.confirm()
        except RolledBack as exc:
            module.fail_json(
                msg=f"host {host}: the automatic rollback of the unconfirmed ruleset already ran "
                f"({exc}); the new ruleset was not confirmed in time",
                rolled_back=str(exc),
                **result,
            )
        module.exit_json(**result)

    try:
        admins, source, warning = effective_admins(
            params["plan"], params["_ssh_client"], os.environ
        )
        content = render(
            params["plan"],
            admins=admins,
            log_dropped=params["log_dropped"],
            log_rate=params["log_rate"],
            icmp_echo=params["icmp_echo"],
        )
    except PlanError as exc:
        module.fail_json(msg=str(exc), **result)
    if warning:
        module.warn(warning)
    result["admins"] = {"cidrs": admins or _plan_admins(params["plan"]), "source": source}
    if nft is None and not module.check_mode:
        module.fail_json(
            msg=f"host {host}: nft is not installed; install the package nftables "
            "(the role hardened.vllm.firewall does)",
            **result,
        )
    timeout = params["rollback_timeout"]  # checked against reconnect_timeout by the action
    try:
        # Check mode before nftables is installed: show the ruleset, there is no table yet.
        reasons, diffs = firewall.changes(content, read_live=nft is not None)
        result.update(changed=bool(reasons), reasons=reasons, diff=diffs)
        if reasons and module.check_mode and nft is not None:
            firewall.check_content(content, directory=module.tmpdir)
        elif reasons:
            firewall.apply(content, timeout)
            result["rollback"] = {"unit": f"{ROLLBACK_UNIT}.timer", "timeout": timeout}
    except (NftError, OSError) as exc:
        module.fail_json(msg=f"host {host}: {exc}", **result)
    module.exit_json(**result)


def _plan_admins(plan):
    admins = plan.get("admins") or {}
    return [*(admins.get("ipv4") or []), *(admins.get("ipv6") or [])]


if __name__ == "__main__":
    main()
