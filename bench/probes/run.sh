#!/usr/bin/env bash
# Peer probes of roles/verify per node vs N: before (every node probed every other node's
# every target) and with hardened.vllm.probe_peers' sample (verify_probe_peers, default 3),
# and that every target is still covered. Targets per node: what probe_targets gives a
# dual-stack data-parallel worker (sshd, the gateway, the DP RPC port and one kernel-chosen
# port, each on its IPv4 and IPv6 address: 8). Figures only, no timing.
#
#   bench/probes/run.sh [PEERS]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
mkdir -p "$repo/.build/collections/ansible_collections/hardened"
[ -e "$repo/.build/collections/ansible_collections/hardened/vllm" ] ||
  ln -sfn "$repo" "$repo/.build/collections/ansible_collections/hardened/vllm"

PYTHONPATH=$repo/.build/collections "$python" - "${1:-3}" <<'PY'
import math, sys

from ansible_collections.hardened.vllm.plugins.filter.probe import FilterModule

filters = FilterModule().filters()
peers = int(sys.argv[1])
ports = (22, 8000, 29550, 41234)
print(f"{'N':>5} {'before: per node':>17} {'sampled: per node':>18} {'probed by':>10} "
      f"{'all peer probes before':>23} {'sampled':>9}")
rows = []
for n in (2, 4, 16, 64, 256, 1024, 4096):
    names = [f"n{i:04d}" for i in range(n)]
    targets = [{"node": m, "address": a, "port": p}
               for i, m in enumerate(names) for a in (f"v4-{i}", f"v6-{i}") for p in ports]
    per_target = len(ports) * 2
    sample = filters["probe_peers"](names, peers)
    shares = filters["probe_shard"](targets, sample)
    covered = {}
    for vantage, share in shares.items():
        for t in share:
            covered.setdefault((t["node"], t["address"], t["port"]), set()).add(vantage)
    assert len(covered) == len(targets), "a target is not covered"
    per_node = max(len(s) for s in shares.values())
    before = (n - 1) * per_target
    least = min(len(v) for v in covered.values())
    rows.append((n, before * n, sum(len(s) for s in shares.values())))
    print(f"{n:>5} {before:>17} {per_node:>18} {least:>10} {before * n:>23} {rows[-1][2]:>9}")
big = [r for r in rows if r[0] >= 64]
slope = lambda i: (math.log(big[-1][i]) - math.log(big[0][i])) / (math.log(big[-1][0]) - math.log(big[0][0]))
print(f"growth exponent of all peer probes (N >= 64): before {slope(1):.2f}, sampled {slope(2):.2f}")
print(f"every target of every node probed by min({peers}, N - 1) peers (column 'probed by'); "
      "the outside vantages and the controller still probe every target")
PY
