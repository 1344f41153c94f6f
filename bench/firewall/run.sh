#!/usr/bin/env bash
# Firewall scaling: rules in the input chain and `nft -f` time to replace the whole table,
# for 2, 64, 1024 and 4096 peers (each IPv4 and IPv6), rendered by the role's own renderer
# (plugins/module_utils/_nft_ruleset.py) and applied in a network namespace made for the run.
#
#   bench/firewall/run.sh [REPEATS]     (root; default 7 timed replacements per size)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
repeats=${1:-7}
python=${PYTHON:-$repo/.venv/bin/python}
[ "$(id -u)" = 0 ] || { echo "bench/firewall/run.sh: needs root (ip netns)" >&2; exit 1; }
for tool in nft ip; do
  command -v "$tool" >/dev/null || { echo "bench/firewall/run.sh: $tool is missing" >&2; exit 1; }
done
mkdir -p "$repo/.build/collections/ansible_collections/hardened"
[ -e "$repo/.build/collections/ansible_collections/hardened/vllm" ] ||
  ln -sfn "$repo" "$repo/.build/collections/ansible_collections/hardened/vllm"

netns=fw-bench-$$
ip netns add "$netns"
trap 'ip netns delete "$netns"' EXIT

PYTHONPATH=$repo/.build/collections "$python" - "$netns" "$repeats" "$repo" <<'PY'
import ipaddress, json, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from ansible_collections.hardened.vllm.plugins.module_utils._nft_ruleset import render

netns, repeats, repo = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
base = json.loads((repo / "tests/unit/fixtures/nft/plan_node1.json").read_text())


def nft(*args):
    return subprocess.run(["ip", "netns", "exec", netns, "nft", *args],
                          capture_output=True, text=True, check=True).stdout


def plan(peers):
    # Every other address, so no two peers merge into one prefix.
    v4 = [f"{ipaddress.ip_address('10.64.0.0') + 2 * i}/32" for i in range(peers)]
    v6 = [f"{ipaddress.ip_address('fd42:64::') + 2 * i}/128" for i in range(peers)]
    return {**base, "peers": {"ipv4": v4, "ipv6": v6}}


rows = []
with tempfile.TemporaryDirectory() as tmp:
    for peers in (2, 64, 1024, 4096):
        started = time.perf_counter()
        text = render(plan(peers))
        render_ms = (time.perf_counter() - started) * 1000
        path = Path(tmp) / f"{peers}.nft"
        path.write_text(text)
        nft("-f", str(path))  # first load; the timed runs replace an existing table
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            nft("-f", str(path))
            times.append((time.perf_counter() - started) * 1000)
        listing = json.loads(nft("-j", "list", "table", "inet", "hardened_vllm"))["nftables"]
        rules = sum(1 for item in listing if "rule" in item)
        elements = sum(len(item["set"].get("elem", [])) for item in listing
                       if "set" in item and item["set"]["name"].startswith("peers_"))
        assert elements == 2 * peers, (elements, peers)
        rows.append((peers, rules, elements, len(text), render_ms, statistics.median(times)))

print(f"{'peers':>6} {'rules':>6} {'set elems':>9} {'script B':>9} {'render ms':>9} "
      f"{'nft -f ms (median of ' + str(repeats) + ')':>26}")
for peers, rules, elements, size, render_ms, apply_ms in rows:
    print(f"{peers:>6} {rules:>6} {elements:>9} {size:>9} {render_ms:>9.1f} {apply_ms:>26.1f}")
first, last = rows[0], rows[-1]
print(f"ratio 4096/2: rules {last[1] / first[1]:.2f}, nft -f time {last[5] / first[5]:.2f}")
PY
