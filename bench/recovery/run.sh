#!/usr/bin/env bash
# Recovery without Ansible (issue 12), seen from outside the node; every mode prints each run,
# then min/median/max.
#
#   bench/recovery/run.sh flush [RUNS]   seconds from a foreign `nft flush ruleset` on fw-node1
#                                        until fw-outsider can no longer reach its internal port
#                                        (the firewall watchdog re-loaded the table)
#   bench/recovery/run.sh worker [RUNS]  podman restart lab-node2 (the DP worker; what a reboot
#                                        does: firewall and vLLM start at boot, the lab's
#                                        addresses are fixed), then seconds until the cluster
#                                        serves again on every engine (bench/recovery/serving.py
#                                        through the head's socket); the head's heal watchdog
#                                        sees the worker knock and restarts the head
#   bench/recovery/run.sh head [RUNS]    the same for lab-node1 (the head); the worker's
#                                        watchdog sees the head's ports closed and restarts
# RUNS defaults to 3. worker and head run on the lab (make lab first), or on the containers of
# the cluster Molecule scenario (converged): BENCH_HEAD=vl-head BENCH_WORKER=vl-worker; each
# run may take as long as the role gives a start (heal_timeout in the head's
# /etc/hardened-vllm/heal.json, i.e. vllm_health_timeout, plus the watchdog's detection and
# RestartSec, as molecule/cluster/recovery.yml does); flush on the containers
# of the firewall Molecule scenario: when fw-node1 is not running, it converges the scenario
# first and destroys it at the end (BENCH_KEEP=1 keeps it); on a shared machine wrap it in the
# scenario's lock:
#   flock /work/locks/molecule-firewall.lock bash bench/recovery/run.sh flush
#   flock /work/locks/molecule-cluster.lock env BENCH_HEAD=vl-head BENCH_WORKER=vl-worker \
#     bash bench/recovery/run.sh worker
# The outsider probes every 0.1 s (molecule/firewall/files/fw-reopen.py); both timestamps come
# from the host's clock, which every container shares.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mode=${1:-}
runs=${2:-3}
node=fw-node1
outsider=fw-outsider
usage() { sed -n '2,28p' "${BASH_SOURCE[0]}" >&2; exit 2; }
[ -n "$mode" ] || usage
[ "$(id -u)" = 0 ] || { echo "bench/recovery/run.sh: needs root (podman)" >&2; exit 1; }

serving=$repo/bench/recovery/serving.py
head_container=${BENCH_HEAD:-lab-node1}
worker_container=${BENCH_WORKER:-lab-node2}

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
  bound=$(podman exec "$head_container" cat /etc/hardened-vllm/heal.json | python3 -c '
import json, sys
c = json.load(sys.stdin)
print(int(c["heal_timeout"]) + int(c["misses"]) * int(c["interval"]) + 10)')
  for i in $(seq "$runs"); do
    python3 "$serving" "$head_container" "$bound" >/dev/null ||
      die "$head_container does not serve before run $i of $what"
    podman restart --time 10 "$container" >/dev/null
    out=$(python3 "$serving" "$head_container" "$bound") || die "$what run $i: $out"
    seconds+=("$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["seconds"])' "$out")")
    echo "$what restart, run $i: ${seconds[-1]} s to the first completions on every engine" \
      "(load average $(python3 -c 'import json, sys; print(" -> ".join(map(str, json.loads(sys.argv[1])["load"])))' "$out"))"
  done
  echo "$what restart to serving ($runs runs, bound $bound s): $(summary "${seconds[@]}")"
}

running() { [ "$(podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }

scenario_up() {
  if running "$node" && running "$outsider"; then return; fi
  echo "converging the firewall scenario (molecule converge -s firewall) ..." >&2
  (cd "$repo" && PATH=$repo/.venv/bin:$PATH molecule converge -s firewall >/dev/null)
  if [ -z "${BENCH_KEEP:-}" ]; then
    trap '(cd "$repo" && PATH=$repo/.venv/bin:$PATH molecule destroy -s firewall >/dev/null)' EXIT
  fi
}

one_flush() {
  local address port broke
  address=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$node")
  port=$(podman exec "$node" cat /run/fw-listeners.port)
  podman exec "$outsider" rm -f /run/fw-reopen.ready /run/fw-reopen.json
  podman exec "$outsider" systemd-run --quiet --unit="fw-reopen-bench-$$-$1" --collect sh -c \
    "python3 /usr/local/bin/fw-reopen.py $address $port 30 >/run/fw-reopen.tmp && mv /run/fw-reopen.tmp /run/fw-reopen.json"
  for _ in $(seq 300); do podman exec "$outsider" test -e /run/fw-reopen.ready && break; sleep 0.2; done
  broke=$(podman exec "$node" sh -c 'date +%s.%N && nft flush ruleset')
  for _ in $(seq 450); do podman exec "$outsider" test -e /run/fw-reopen.json && break; sleep 0.2; done
  # the flush removed the Docker-shaped test tables too: put them back for the next run
  podman exec "$node" systemctl restart fw-foreign.service
  podman exec "$outsider" cat /run/fw-reopen.json | python3 -c '
import json, sys
seen, broke = json.load(sys.stdin), float(sys.argv[1])
if seen["closed"] is None:
    sys.exit(f"never closed again: {seen}")
opened = "never" if seen["opened"] is None else "%.2f s" % (seen["last_open"] - broke)
print("%.3f %s" % (seen["closed"] - broke, opened))' "$broke"
}

case $mode in
  flush)
    scenario_up
    podman cp "$repo/molecule/firewall/files/fw-reopen.py" "$outsider:/usr/local/bin/fw-reopen.py"
    podman exec "$node" systemctl is-active --quiet hardened-vllm-firewall-watchdog ||
      { echo "bench/recovery/run.sh: the watchdog is not active on $node" >&2; exit 1; }
    results=()
    for run in $(seq "$runs"); do
      read -r closed last_open < <(one_flush "$run") || true
      [ -n "${closed:-}" ] || { echo "bench/recovery/run.sh: run $run measured nothing" >&2; exit 1; }
      echo "run $run: closed again ${closed} s after the flush (last open connect: +${last_open})"
      results+=("$closed")
      sleep 2
    done
    printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
values = sorted(float(line) for line in sys.stdin)
print("flush -> closed again (outsider view), %d runs: min %.2f s, median %.2f s, max %.2f s"
      % (len(values), values[0], statistics.median(values), values[-1]))'
    ;;
  worker) restart_runs worker "$worker_container" "$runs" ;;
  head) restart_runs head "$head_container" "$runs" ;;
  *) usage ;;
esac
