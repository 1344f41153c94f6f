# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run playbooks/site.yml with every broken inventory of a catalog and judge each refusal.

    catalog.py CATALOG SITE WORKDIR [--jobs N]

CATALOG is a YAML file (molecule/cluster_plan/catalog.yml): `base` (group_vars of vllm_cluster
and each host's vars, a good inventory) and `cases` (each one change of it). The hosts are
podman containers, reached over SSH as root with the test key (.cache/ssh, authorized by the
scenario's prepare.yml), with pipelining and ssh's shared connection, as users reach their nodes
(podman exec costs several processes per task: 11 cases took 273 s that way against 189 s over
SSH, side by side). First the base inventory must pass the plan play (site.yml with a tag
nothing has, so only the plan play runs); then every case runs the whole site.yml and must be
refused in the plan play on every cluster host, naming the host (or the cluster) and the
variable with a fix, with changed=0 everywhere; and every node must be byte-identical before and
after the catalog. Prints one line per case; exit status 1 on any failure (with its output), 0
when every case was refused as it must be.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

# What a deploy could change on a node: the live ruleset, every file of the trees the roles
# write, the unit files, users and groups, and the package database.
SNAPSHOT = (
    "nft list ruleset 2>&1; "
    "find /etc /opt /srv /usr/local /var/lib/vllm /var/cache/hardened-vllm -xdev -type f "
    "-print0 2>/dev/null | sort -z | xargs -0 -r sha256sum; "
    "systemctl list-unit-files --no-legend --no-pager; "
    "getent passwd; getent group; dpkg-query -W"
)
SSH_KEY = Path(__file__).resolve().parents[2] / ".cache" / "ssh" / "id_ed25519"
SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
PLAN_ONLY_TAG = "hv-catalog-plan-only"  # no task has it: only the plan play (tag always) runs
LATER_PLAY = "PLAY [Install the NVIDIA driver"


def address(host):
    """The container's address on its podman network, for SSH."""
    run = subprocess.run(
        [
            "podman",
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            host,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return run.stdout.split()[0]


def inventory(base, case, addresses):
    """The inventory of one case: the base with the case's variables over it."""
    group_vars = {**base["group_vars"], **case.get("set", {})}
    hosts = {}
    for host, hostvars in base["hosts"].items():
        merged = {**hostvars, **case.get("hosts", {}).get(host, {})}
        connection = {
            "ansible_connection": "ssh",
            "ansible_host": addresses[host],
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(SSH_KEY),
            "ansible_ssh_common_args": SSH_ARGS,
        }
        hosts[host] = {**connection, **merged}
    return {"all": {"children": {"vllm_cluster": {"hosts": hosts, "vars": group_vars}}}}


def playbook(site, inventory_file, extra=()):
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", inventory_file, site]
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_PIPELINING": "1",
    }
    started = time.monotonic()
    run = subprocess.run(
        [*argv, *extra], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    return run.returncode, run.stdout + run.stderr, time.monotonic() - started


def snapshot(hosts):
    out = {}
    for host in hosts:
        run = subprocess.run(
            ["podman", "exec", host, "sh", "-c", SNAPSHOT],
            capture_output=True,
            text=True,
            timeout=1200,
            check=True,
        )
        out[host] = run.stdout
    return out


def judge(case, code, out, hosts):
    """Every way this run fails to be a proper refusal (empty when it is one)."""
    wrong = []
    if code == 0:
        wrong.append("site.yml succeeded")
    if LATER_PLAY in out:
        wrong.append("a play after the plan play started")
    for host in hosts:
        if f"fatal: [{host}]" not in out:
            wrong.append(f"{host} did not fail")
        recap = re.search(rf"^{re.escape(host)}\s+: .*$", out, re.MULTILINE)
        if recap and "changed=0 " not in recap.group(0):
            wrong.append(f"{host} changed: {recap.group(0)}")
    var = re.escape(case["var"])
    named = (
        rf"(host [\w.-]+|cluster (\w+ )?\(all hosts\)), variable {var}(?!\w)"
        rf"|host [\w.-]+, variables of hardened\.vllm\.\w+: [^\n]*\b{var}(?!\w)"
    )
    if not re.search(named, out):
        wrong.append(f"no message names the host (or the cluster) and the variable {case['var']}")
    if "Fix: " not in out:
        wrong.append("no fix in the message")
    if "refused in the plan play, before any host changed" not in out:
        wrong.append("not refused by the plan play's refusal task")
    if case.get("says") and case["says"] not in out:
        wrong.append(f"the message does not say {case['says']!r}")
    return wrong


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("catalog")
    parser.add_argument("site")
    parser.add_argument("workdir")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated case ids (default: all)")
    args = parser.parse_args()
    catalog = yaml.safe_load(Path(args.catalog).read_text(encoding="utf-8"))
    base, cases = catalog["base"], catalog["cases"]
    if args.only:
        cases = [case for case in cases if case["id"] in args.only.split(",")]
    ids = [case["id"] for case in cases]
    if len(set(ids)) != len(ids):
        sys.exit(f"catalog.py: case ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    hosts = list(base["hosts"])
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)

    def write(name, data):
        path = work / f"{name}.yml"
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")  # JSON is YAML
        return str(path)

    addresses = {host: address(host) for host in hosts}
    before = snapshot(hosts)
    code, out, seconds = playbook(
        args.site, write("base", inventory(base, {}, addresses)), ["--tags", PLAN_ONLY_TAG]
    )
    if code != 0:
        print(out[-6000:])
        sys.exit(f"catalog.py: the base inventory does not pass the plan play (rc {code})")
    print(f"base inventory passes the plan play ({seconds:.1f} s)")

    def run(case):
        code, out, seconds = playbook(
            args.site, write(case["id"], inventory(base, case, addresses))
        )
        return case, code, out, seconds, judge(case, code, out, hosts)

    failed = []
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for case, code, out, seconds, wrong in pool.map(run, cases):
            verdict = "refused" if not wrong else "WRONG: " + "; ".join(wrong)
            print(f"{case['id']:<36} rc {code:<3} {seconds:5.1f} s  {verdict}", flush=True)
            if wrong:
                failed.append((case, out))
    for case, out in failed:
        print(f"\n===== {case['id']}: {json.dumps({k: v for k, v in case.items() if k != 'id'})}")
        print(out[-4000:], flush=True)
    after = snapshot(hosts)
    changed = [host for host in hosts if before[host] != after[host]]
    for host in changed:
        digest = hashlib.sha256(after[host].encode()).hexdigest()[:12]
        print(f"\n{host} changed during the catalog (snapshot now {digest}):")
        old, new = set(before[host].splitlines()), set(after[host].splitlines())
        print("\n".join([f"- {line}" for line in sorted(old - new)][:40]))
        print("\n".join([f"+ {line}" for line in sorted(new - old)][:40]))
    print(
        f"\n{len(cases) - len(failed)}/{len(cases)} cases refused as they must be; "
        f"nodes unchanged: {'yes' if not changed else 'NO: ' + ', '.join(changed)}; "
        f"{time.monotonic() - started:.0f} s with {args.jobs} jobs"
    )
    sys.exit(1 if failed or changed else 0)


if __name__ == "__main__":
    main()
