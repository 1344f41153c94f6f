#!/usr/bin/env bash
# The cluster plan's controller cost for 2, 16, 64, 256, 1024 and 4096 synthetic hosts (the
# recorded Debian 12 network facts of the unit tests, one address each): the play's one
# computation, per host, the growth exponent; the plan as it was (one computation of every
# host's plan per host) for comparison up to 256 hosts. No timed tests: figures only.
#
#   bench/plan/run.sh [--ansible "16 64 256"]
#
# --ansible also runs roles/cluster in real ansible-playbook runs of those sizes (local hosts,
# facts from a fact cache) and prints the play's time next to Ansible's own cost per host.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
# The plan as it was before it was computed once per cluster (a commit of this repository).
before=${PLAN_BEFORE:-c00b756}
mkdir -p "$repo/.build/collections/ansible_collections/hardened"
[ -e "$repo/.build/collections/ansible_collections/hardened/vllm" ] ||
  ln -sfn "$repo" "$repo/.build/collections/ansible_collections/hardened/vllm"
export PYTHONPATH=$repo/.build/collections:$repo/bench/plan
export ANSIBLE_COLLECTIONS_PATH=$repo/.build/collections

echo "== the plan per play (hardened.vllm.cluster_plans, as roles/cluster calls it once)"
"$python" "$repo/bench/plan/bench.py" --before "$before"
if [ "${1:-}" = --ansible ]; then
  echo "== roles/cluster in ansible-playbook (forks ${ANSIBLE_FORKS:-16})"
  # shellcheck disable=SC2086 # the sizes are words on purpose
  "$python" "$repo/bench/plan/ansible_play.py" ${2:-16 64 256}
fi
