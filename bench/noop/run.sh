#!/usr/bin/env bash
# A converge with nothing to change against a facts-only play on the same hosts, in one run.
#
#   bench/noop/run.sh [ROUNDS]     (root; the lab must be up and converged: make lab)
#
# Runs, ROUNDS times (default 2) in turn: bench/noop/facts.yml (gather facts only, hosts
# vllm_cluster) and playbooks/site.yml on the lab's inventory (.lab/inventory.yml). Fails when
# site.yml changes anything (it must be a no-op). Prints the best and median wall time of each,
# the ratio no-op/facts (target: <= 3), the tasks site.yml ran per host and its slowest tasks
# (profile_tasks, full list in .build/bench-noop/site-N.log).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${1:-2}
inventory=$repo/.lab/inventory.yml
export PATH=$repo/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$repo/.build/collections
logs=$repo/.build/bench-noop
die() { echo "bench/noop/run.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }

[ -f "$inventory" ] || die "no $inventory: bring the lab up first (make lab)"
mkdir -p "$logs"
cd "$repo"

facts=() site=()
for round in $(seq 1 "$rounds"); do
  start=$(now)
  ansible-playbook -i "$inventory" bench/noop/facts.yml >"$logs/facts-$round.log" 2>&1 ||
    die "the facts-only play failed ($logs/facts-$round.log)"
  facts+=("$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')")
  start=$(now)
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=15 \
    ansible-playbook -i "$inventory" playbooks/site.yml >"$logs/site-$round.log" 2>&1 ||
    die "site.yml failed ($logs/site-$round.log)"
  site+=("$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')")
  changed=$(awk '/PLAY RECAP/ { r = 1; next } r && /changed=/ { sub(/.*changed=/, ""); s += $1 } END { print s + 0 }' "$logs/site-$round.log")
  [ "$changed" = 0 ] || die "site.yml changed $changed thing(s): not a no-op ($logs/site-$round.log)"
  echo "round $round: facts-only ${facts[-1]} s, no-op site.yml ${site[-1]} s" >&2
done

stats() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f %.2f", v[1], v[int((NR + 1) / 2)] }'; }
read -r fbest fmed <<<"$(stats "${facts[@]}")"
read -r sbest smed <<<"$(stats "${site[@]}")"
last=$logs/site-$rounds.log
echo "hosts: $(awk '/PLAY RECAP/ { r = 1; next } r && /ok=/ { n++ } END { print n }' "$last") in the recap, vllm_cluster: $(ansible-inventory -i "$inventory" --graph vllm_cluster | grep -c -- '--')"
echo "facts-only play: best $fbest s, median $fmed s ($rounds rounds)"
echo "no-op site.yml: best $sbest s, median $smed s, changed=0"
awk -v s="$smed" -v f="$fmed" 'BEGIN { printf "ratio no-op/facts (medians): %.1f (target <= 3)\n", s / f }'
awk '/PLAY RECAP/ { r = 1; next } r && /ok=/ { h = $1; sub(/.*ok=/, ""); ok = $1; sub(/.*skipped=/, ""); printf "tasks on %s: ok=%s skipped=%s\n", h, ok, $1 }' "$last"
echo "slowest tasks of the last no-op run:"
sed -n '/^=\{20,\}/,$p' "$last" | grep -E -- '-+ [0-9.]+s$' | head -15 | sed 's/^/  /'
