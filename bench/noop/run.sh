#!/usr/bin/env bash
# A site.yml run with nothing to change against a facts-only play on the same hosts, in the
# same run, and their ratio (issue 15's target: <= 3x). Two kinds of hosts:
#   bench/noop/run.sh [N]   bench/fleet's light containers, N of them (default 4), one
#                           data-parallel cluster; site.yml --skip-tags vllm,gateway,nvidia_driver
#                           (the plan play always runs); the containers are removed afterwards
#   bench/noop/run.sh lab   the lab that `make lab` brought up (.lab/inventory.yml): the whole
#                           site.yml, vLLM and the gateway included; the lab stays up
# Both over SSH with the same forks. Order: site.yml once (to converge), then ROUNDS (default 3)
# x (facts-only play, no-op site.yml); prints the median of each, the ratio, the no-op run's
# seconds per play, and the plays before the audit against the verify play (the audit, which
# probes for real on every run).
#
# PROFILE=1 also prints the no-op run's 12 slowest tasks (ansible.posix.profile_tasks).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$repo/.build/bench-noop
rounds=${ROUNDS:-3}
forks=${FORKS:-16}
export PATH=$repo/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$repo/.build/collections
mkdir -p "$work"
if [ "${1:-}" = lab ]; then
  inventory=$repo/.lab/inventory.yml
  [ -f "$inventory" ] || { echo "no lab: run make lab first ($inventory is missing)" >&2; exit 1; }
  skip=()
  n="the lab's $(ansible-inventory -i "$inventory" --graph vllm_cluster | grep -c -- '--')"
  what="site.yml (all of it)"
else
  n=${1:-4}
  skip=(--skip-tags "vllm,gateway,nvidia_driver")
  what="site.yml --skip-tags vllm,gateway,nvidia_driver"
  trap '"$repo/bench/fleet/run.sh" down' EXIT
  "$repo/bench/fleet/run.sh" down
  inventory=$("$repo/bench/fleet/run.sh" up "$n")
fi
cat >"$work/facts.yml" <<'YAML'
---
- name: Facts only, as a baseline
  hosts: vllm_cluster
  gather_facts: true
  tasks: []
YAML

callbacks=stage_times
[ "${PROFILE:-}" = 1 ] && callbacks=stage_times,ansible.posix.profile_tasks
run() {
  local out=$1
  shift
  HV_STAGE_TIMES=$out.json ANSIBLE_CALLBACK_PLUGINS=$repo/bench/fleet ANSIBLE_CALLBACKS_ENABLED=$callbacks \
    PROFILE_TASKS_TASK_OUTPUT_LIMIT=12 \
    ANSIBLE_PIPELINING=1 ansible-playbook --forks "$forks" -i "$inventory" "$@" >"$out.log" 2>&1 ||
    { echo "failed, see $out.log" >&2; tail -30 "$out.log" >&2; return 1; }
}

run "$work/converge" "$repo/playbooks/site.yml" "${skip[@]}"
for r in $(seq 1 "$rounds"); do
  run "$work/facts-$r" "$work/facts.yml"
  run "$work/noop-$r" "$repo/playbooks/site.yml" "${skip[@]}"
  grep -qE 'changed=[1-9]' "$work/noop-$r.log" && { echo "the no-op run changed something: $work/noop-$r.log" >&2; exit 1; }
done
python3 - "$work" "$rounds" "$n" "$forks" "$what" <<'PY'
import json, statistics, sys
work, rounds, n, forks, what = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
load = lambda name: json.load(open(f"{work}/{name}.json"))
facts = [load(f"facts-{r}")["total"] for r in range(1, rounds + 1)]
noop = [load(f"noop-{r}")["total"] for r in range(1, rounds + 1)]
f, s = statistics.median(facts), statistics.median(noop)
print(f"{n} nodes, forks {forks}, {rounds} rounds: facts-only play {f:.1f} s, no-op {what} "
      f"{s:.1f} s (changed=0): ratio {s / f:.1f}x")
last = load(f"noop-{rounds}")
print("no-op run per play: " + ", ".join(f"{p} {t:.1f} s" for p, t in last["plays"] if t >= 0.05))
# The split, median over the rounds: the plays before the audit (what a run re-checks before it
# would change anything) against the verify play (the audit: real probes on every run, the
# controller's wait verify_probe_timeout for every port that drops it).
def part(run, audit):
    return sum(t for p, t in run["plays"] if p.startswith("Prove the exposure") == audit)
deploy = statistics.median(part(load(f"noop-{r}"), False) for r in range(1, rounds + 1))
audit = statistics.median(part(load(f"noop-{r}"), True) for r in range(1, rounds + 1))
print(f"of which the plays before the audit {deploy:.1f} s ({deploy / f:.1f}x the facts-only play), "
      f"verify play (the audit) {audit:.1f} s")
PY
if [ "${PROFILE:-}" = 1 ]; then
  echo "slowest tasks of the last no-op run:"
  sed -n '/^=\{20,\}/,$p' "$work/noop-$rounds.log" | grep -E ' -+ +[0-9.]+s$' | head -12
fi
