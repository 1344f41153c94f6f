#!/usr/bin/env bash
# Recovery figures on the lab, with no Ansible run, printed as "name: value" lines.
#
#   bench/recovery/run.sh worker|head [RUNS]      (root, after make lab; RUNS default 3)
#
# worker  podman restart lab-node2 (the DP worker; what a reboot does: firewall and vLLM start
#         at boot, the lab's addresses are fixed), then seconds until the cluster serves again:
#         bench/recovery/serving.py sends completions to every engine at once through the
#         head's socket. The head's heal watchdog sees the worker knock and restarts the head.
# head    the same for lab-node1 (the head); the worker's watchdog sees the head's ports
#         closed and restarts the worker.
# Each run first waits until the cluster serves. Prints every run, then min/median/max.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
serving=$repo/bench/recovery/serving.py
head_container=lab-node1

die() { echo "bench/recovery/run.sh: $*" >&2; exit 1; }

# min/median/max of the numbers given.
summary() {
  python3 -c 'import statistics, sys
v = sorted(float(x) for x in sys.argv[1:])
print(f"min {v[0]:.1f} s, median {statistics.median(v):.1f} s, max {v[-1]:.1f} s")' "$@"
}

# Seconds until the cluster serves again after `podman restart CONTAINER`, RUNS times.
restart_runs() {
  local what=$1 container=$2 runs=$3 i out seconds=()
  podman container exists "$container" || die "no $container: run make lab first"
  for i in $(seq "$runs"); do
    python3 "$serving" "$head_container" 900 >/dev/null ||
      die "the lab does not serve before run $i of $what"
    podman restart --time 10 "$container" >/dev/null
    out=$(python3 "$serving" "$head_container" 900) || die "$what run $i: $out"
    seconds+=("$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["seconds"])' "$out")")
    echo "$what restart, run $i: ${seconds[-1]} s to the first completions on every engine"
  done
  echo "$what restart to serving ($runs runs): $(summary "${seconds[@]}")"
}

case ${1:-} in
  worker) restart_runs worker lab-node2 "${2:-3}" ;;
  head) restart_runs head "$head_container" "${2:-3}" ;;
  *) sed -n '3,12s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
