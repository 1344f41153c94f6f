# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/cluster in a real ansible-playbook run on N synthetic hosts (no host is contacted).

    ansible_play.py N [N ...]

Each host is local (ansible_connection: local) with the recorded Debian 12 network facts in a
jsonfile fact cache, so the role reads them as gathered facts and no task runs a module on a
host. Prints the play's wall time, the role's one computation (run_once) and the per-host tasks,
and, for scale, a play of one per-host debug task (Ansible's own cost per host and task).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fleet

PLAY = """
- name: Plan
  hosts: vllm_cluster
  gather_facts: false
  roles:
    - role: hardened.vllm.cluster
- name: One per-host task, for scale
  hosts: vllm_cluster
  gather_facts: false
  tasks:
    - name: Per-host baseline
      ansible.builtin.debug:
        msg: "{{ cluster_plan.host_ip }}"
      changed_when: false
"""


def run(count, work):
    cache = work / f"facts-{count}"
    cache.mkdir()
    hosts = {}
    for i in range(count):
        hosts[fleet.name(i)] = {"cluster_node_role": "head" if i == 0 else "worker"}
        facts = {f"ansible_{k}": v for k, v in fleet.facts(i).items()}
        # The jsonfile cache of ansible-core 2.19: s1_<host>, the facts as a JSON payload.
        (cache / f"s1_{fleet.name(i)}").write_text(json.dumps({"__payload__": json.dumps(facts)}))
    group_vars = {
        **fleet.SETTINGS,
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
    }
    inventory = work / f"inventory-{count}.json"
    inventory.write_text(
        json.dumps({"all": {"children": {"vllm_cluster": {"hosts": hosts, "vars": group_vars}}}})
    )
    play = work / "play.yml"
    play.write_text(PLAY)
    env = {
        **os.environ,
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "0",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.null",
        "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
        "ANSIBLE_FORKS": os.environ.get("ANSIBLE_FORKS", "16"),
    }
    started = time.monotonic()
    out = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(play)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.monotonic() - started
    if out.returncode:
        sys.exit(out.stdout[-3000:] + out.stderr[-3000:])
    tasks = dict(
        (name.strip(), float(seconds))
        for name, seconds in re.findall(r"^(.+?) -{3,} +([0-9.]+)s$", out.stdout, re.MULTILINE)
    )
    once = sum(v for k, v in tasks.items() if "once" in k)
    baseline = tasks.get("Per-host baseline", float("nan"))
    role = sum(v for k, v in tasks.items() if k.startswith("hardened.vllm.cluster"))
    print(
        f"{count:>5} hosts  ansible-playbook {wall:7.1f} s  roles/cluster {role:7.1f} s "
        f"(the one computation {once:5.2f} s)  one per-host debug task {baseline:6.1f} s "
        f"({baseline / count * 1000:5.1f} ms per host)",
        flush=True,
    )


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for count in map(int, sys.argv[1:]):
            run(count, Path(tmp))


if __name__ == "__main__":
    main()
