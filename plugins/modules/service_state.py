#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A systemd service's state, and which of its inputs changed after its process started."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_state
short_description: Read a systemd service's state and find inputs newer than its running process
version_added: 0.1.0
description:
  - Reads C(LoadState), C(ActiveState), C(SubState), C(MainPID), C(NRestarts) and the start time
    of the main process of the service O(name) with C(systemctl show).
  - Lists the O(paths) that changed after that process started (configuration, a C(current)
    link, a model directory), so that a service whose inputs were rewritten by a run that then
    stopped before restarting it is still restarted by the next run.
  - >-
    With O(healthy_record), counts the restarts since the service was last confirmed healthy
    (RV(restarts_since_healthy)). C(NRestarts) also counts systemd's restarts during a group's
    start-up, so a group healed by a run would otherwise be restarted again by the next one.
  - Reads only; changes nothing.
author:
  - hardened.vllm maintainers (@hardened-vllm)
requirements:
  - Python 3 on the managed host (standard library only)
  - systemd (systemctl) on the managed host
options:
  name:
    description: The unit, for example C(hardened-vllm.service).
    type: str
    required: true
  paths:
    description:
      - Files, directories and links the running process read when it started. A path counts
        by the newest modification time of itself (the link itself and what it points to) and,
        for a directory, of its direct entries. Paths that do not exist are ignored.
    type: list
    elements: path
    default: []
  healthy_record:
    description:
      - >-
        A JSON file written when the service was last confirmed healthy (by the role after its
        health wait, by the node's heal watchdog), holding C({"invocation": InvocationID,
        "n_restarts": NRestarts}) of that moment. A missing or unreadable file counts as no
        record.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
notes:
  - The start time comes from C(ExecMainStartTimestampMonotonic), which every systemd version
    reports the same way, converted with the node's clocks.
"""

EXAMPLES = r"""
- name: Read the vLLM service's state and its inputs newer than its process
  hardened.vllm.service_state:
    name: hardened-vllm.service
    paths:
      - /etc/hardened-vllm/vllm.env
      - /etc/systemd/system/hardened-vllm.service
      - /opt/hardened-vllm/current
      - /srv/models/tiny-llama
  register: vllm_state
"""

RETURN = r"""
exists:
  description: Whether systemd knows the unit (C(LoadState) is not C(not-found)).
  returned: always
  type: bool
  sample: true
load_state:
  description: C(LoadState), for example V(loaded), V(not-found), V(masked).
  returned: always
  type: str
  sample: loaded
active_state:
  description: C(ActiveState), for example V(active), V(inactive), V(failed), V(activating).
  returned: always
  type: str
  sample: active
sub_state:
  description: C(SubState), for example V(running) or V(auto-restart).
  returned: always
  type: str
  sample: running
main_pid:
  description: C(MainPID); 0 when no process runs.
  returned: always
  type: int
  sample: 796
n_restarts:
  description: C(NRestarts), the restarts systemd did on its own since the unit was last started.
  returned: always
  type: int
  sample: 0
invocation_id:
  description: >-
    C(InvocationID), new for every start of the unit (systemd's own restarts too); empty when
    none runs.
  returned: always
  type: str
  sample: 1b4e28ba2fa1475e9a4b6f3e5d0c2a11
restarts_since_healthy:
  description:
    - >-
      Starts of the unit since the record of O(healthy_record). 0 while the invocation that was
      confirmed healthy still runs; else the restarts systemd did since then (C(NRestarts) minus
      the recorded count, or all of C(NRestarts) when the counter was reset), at least 1, since
      a new invocation means the process was started again (by systemd, a reboot or by hand).
    - Without a record, C(NRestarts).
  returned: always
  type: int
  sample: 0
healthy_record:
  description: The record read from O(healthy_record); null when there is none.
  returned: always
  type: dict
  sample: {invocation: 1b4e28ba2fa1475e9a4b6f3e5d0c2a11, n_restarts: 4}
started:
  description: When the main process started, in seconds since the epoch; null when none runs.
  returned: always
  type: float
  sample: 1795855181.42
changed_since_start:
  description: The O(paths) modified after the main process started, in the order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/hardened-vllm/vllm.env]
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "MainPID",
    "NRestarts",
    "ExecMainStartTimestampMonotonic",
    "InvocationID",
)


def parse_show(text):
    """`systemctl show` output -> {property: value}."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def to_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def started_at(props, now_real, now_mono):
    """Epoch seconds when the main process started, or None when no process runs."""
    mono_us = to_int(props.get("ExecMainStartTimestampMonotonic"))
    if not mono_us or not to_int(props.get("MainPID")):
        return None
    return now_real - (now_mono - mono_us / 1e6)


def newest_mtime(path):
    """Newest modification time of a path, what a link points to, and a directory's entries."""
    try:
        times = [os.lstat(path).st_mtime]
    except OSError:
        return None
    try:
        times.append(os.stat(path).st_mtime)
        if os.path.isdir(path):
            with os.scandir(path) as entries:
                times += [entry.stat(follow_symlinks=False).st_mtime for entry in entries]
    except OSError:
        pass  # a dangling link or an unreadable directory counts by what could be read
    return max(times)


def read_record(path):
    """The healthy record at path as {invocation, n_restarts}, or None when there is none."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("invocation"), str):
        return None
    return {"invocation": record["invocation"], "n_restarts": to_int(record.get("n_restarts"))}


def restarts_since_healthy(props, record):
    """How often the unit started again since the invocation recorded healthy."""
    n_restarts = to_int(props.get("NRestarts"))
    if record is None:
        return n_restarts
    invocation = props.get("InvocationID", "")
    if invocation and invocation == record["invocation"]:
        return 0
    if not to_int(props.get("MainPID")) and not invocation:
        # Nothing runs: the unit's state (inactive, failed) is the reason, not a restart count.
        return max(n_restarts - record["n_restarts"], 0)
    since = n_restarts - record["n_restarts"] if n_restarts >= record["n_restarts"] else n_restarts
    return max(since, 1)


def changed_since(paths, started):
    if started is None:
        return []
    return [p for p in paths if (newest_mtime(p) or 0) > started]


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "paths": {"type": "list", "elements": "path", "default": []},
            "healthy_record": {"type": "path"},
        },
        supports_check_mode=True,
    )
    name = module.params["name"]
    argv = [module.get_bin_path("systemctl", required=True), "show", name]
    rc, out, err = module.run_command(argv + [f"--property={p}" for p in PROPERTIES])
    if rc:
        module.fail_json(msg=f"systemctl show {name} failed (exit {rc}): {err.strip()}")
    props = parse_show(out)
    started = started_at(props, time.time(), time.clock_gettime(time.CLOCK_MONOTONIC))
    record = read_record(module.params["healthy_record"])
    module.exit_json(
        changed=False,
        exists=props.get("LoadState", "not-found") != "not-found",
        load_state=props.get("LoadState", "not-found"),
        active_state=props.get("ActiveState", "inactive"),
        sub_state=props.get("SubState", "dead"),
        main_pid=to_int(props.get("MainPID")),
        n_restarts=to_int(props.get("NRestarts")),
        invocation_id=props.get("InvocationID", ""),
        restarts_since_healthy=restarts_since_healthy(props, record),
        healthy_record=record,
        started=started,
        changed_since_start=changed_since(module.params["paths"], started),
    )


if __name__ == "__main__":
    main()
