# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan for N synthetic hosts: the play's one computation, per host, growth exponent.

    bench.py [--before REF] [--sizes 2,16,...] [--repeats R]

Times hardened.vllm.cluster_plans as roles/cluster calls it once per play (hostvars read once,
every host's plan computed, peer sets merged once), the best of R runs. With --before, also
one call of the plan as it was at git REF (the role made one such call per host, each
computing every host's plan), for the sizes where that ends in reasonable time.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fleet

from ansible_collections.hardened.vllm.plugins.filter.cluster_plan import FilterModule

FILTERS = FilterModule().filters()


def best(repeats, call):
    times = []
    for _repeat in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def old_compute(ref):
    """compute_plans of _plan.py at ``ref``, loaded beside the current one."""
    text = subprocess.run(
        ["git", "-C", str(fleet.REPO), "show", f"{ref}:plugins/plugin_utils/_plan.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "_plan_before.py"
    # It finds the roles' argument_specs from its own path: point it at the repository's.
    path.write_text(
        text.replace("Path(__file__).resolve().parents[2]", f"Path({str(fleet.REPO)!r})"),
        encoding="utf-8",
    )
    spec = importlib.util.spec_from_file_location("_plan_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compute_plans


class Once:
    """The play's one computation for these hostvars; the last result kept for a check."""

    def __init__(self, hv, result):
        self.hv, self.result = hv, result

    def __call__(self):
        group = list(self.hv)
        self.result.update(FILTERS["cluster_plans"](self.hv, group, group, "seen"))


def exponent(rows, key):
    """Least-squares slope of log(time) over log(N), sizes of 64 and more."""
    xs = [math.log(r["n"]) for r in rows if r["n"] >= 64 and r.get(key)]
    ys = [math.log(r[key]) for r in rows if r["n"] >= 64 and r.get(key)]
    if len(xs) < 2:
        return float("nan")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2,16,64,256,1024,4096")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", default="")
    parser.add_argument("--before-max", type=int, default=256)
    args = parser.parse_args()
    before = old_compute(args.before) if args.before else None
    rows = []
    for n in map(int, args.sizes.split(",")):
        hv = fleet.hostvars(n)
        for vars_ in hv.values():
            vars_["seen"] = fleet.SETTINGS
        result = {}
        row = {"n": n, "total": best(args.repeats if n <= 1024 else 1, Once(hv, result))}
        assert all("plan" in r for r in result.values()), next(iter(result.values()))
        row["per_host"] = row["total"] / n
        if before and n <= args.before_max:
            hosts = {name: {**v, "seen": None} for name, v in hv.items()}
            row["before_call"] = best(1, lambda hosts=hosts: before(hosts, dict(fleet.SETTINGS)))
            row["before_play"] = row["before_call"] * n
        rows.append(row)
        print(
            f"{n:>5} hosts  plan per play {row['total'] * 1000:9.1f} ms  per host "
            f"{row['per_host'] * 1e6:7.1f} us"
            + (
                f"  | before: one call {row['before_call'] * 1000:8.1f} ms x {n} calls = "
                f"{row['before_play']:8.1f} s"
                if "before_call" in row
                else ""
            ),
            flush=True,
        )
    for prev, cur in itertools.pairwise(rows):
        print(
            f"growth {prev['n']:>4} -> {cur['n']:>4} hosts: exponent "
            f"{math.log(cur['total'] / prev['total']) / math.log(cur['n'] / prev['n']):.2f}"
        )
    print(f"growth exponent of the plan per play (fit over N >= 64): {exponent(rows, 'total'):.2f}")
    if before:
        print(f"growth exponent before, per play (N calls): {exponent(rows, 'before_play'):.2f}")
    thousand = [r for r in rows if r["n"] == 1024]
    if thousand:
        verdict = "meets" if thousand[0]["total"] < 2 else "MISSES"
        print(f"1024 hosts: {thousand[0]['total']:.2f} s per play ({verdict} the < 2 s target)")


if __name__ == "__main__":
    sys.exit(main())
