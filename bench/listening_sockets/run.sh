#!/usr/bin/env bash
# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# hardened.vllm.listening_sockets vs community.general.listen_ports_facts on 10,000 listening
# TCP sockets in a network namespace made for the run (ls-bench-<pid>, removed on exit).
# Needs root, ip(8), ss(8) and the dev venv. Usage: bench/listening_sockets/run.sh [SOCKETS [RUNS]]
# listen_ports_facts runs `ps` twice per socket: with 10,000 sockets one run takes minutes,
# so RUNS defaults to 3 (about 10 minutes in all on 2 cores).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
sockets=${1:-10000}
runs=${2:-3}
netns="ls-bench-$$"

if [[ $EUID -ne 0 ]]; then
    echo "run.sh: needs root to create network namespace $netns" >&2
    exit 2
fi
mkdir -p "$repo/.build/collections/ansible_collections/hardened"
[[ -e $repo/.build/collections/ansible_collections/hardened/vllm ]] \
    || ln -sfn "$repo" "$repo/.build/collections/ansible_collections/hardened/vllm"

cleanup() { ip netns delete "$netns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$netns"
ip netns exec "$netns" ip link set lo up

PYTHONPATH="$repo/.build/collections" "$repo/.venv/bin/python" \
    "$repo/bench/listening_sockets/bench.py" "$netns" --sockets "$sockets" --runs "$runs"
