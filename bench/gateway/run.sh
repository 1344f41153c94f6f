#!/usr/bin/env bash
# The API gateway's cost: small completions (max_tokens 2) straight to vLLM's unix socket vs
# through the gateway (https to the node's API address, TLS verified with the CA, a client key),
# at concurrency 1, 16 and 64, both paths from one client process (bench.py), in alternating
# windows. Prints a table, the ratios, and the issue's targets (< 5% throughput, < 2 ms p50):
# reported, never asserted.
#
#   bench/gateway/run.sh [lab|stub] [SECONDS [ROUNDS]]   (root; default: lab 10 3)
#
# lab   Against the running lab (make lab): vLLM (tiny-llama, DP=2) behind the gateway of
#       lab-node1. The client runs in lab-node1 itself: the direct path exists only there (the
#       socket), and from the same host both paths share the same CPUs, so the difference is
#       the gateway (nginx, TLS, one loopback hop) and nothing else. From lab-client the
#       gateway path would also pay the bridge and the firewall, which are the network's cost.
#       Keys: vLLM's own (.lab/api-key) for the direct path, the lab's `bench` gateway key
#       (.lab/gateway-keys/bench) through the gateway; the CA is .lab/gateway-ca/ca.pem.
# stub  The gateway role applied to a throwaway container gw-bench (the test image, podman's
#       default network, no firewall) in front of stub.py, a stdlib server on vLLM's socket
#       path that answers one fixed completion: the gateway's own overhead without vLLM's
#       noise. Limits are set far above the load, so they are evaluated but never bind.
#       gw-bench is removed at the end; nothing else is touched.
# SECONDS per window and path, ROUNDS windows per path and concurrency; MAX_TOKENS=N (1-4).
# Settings reach bench.py as JSON on stdin: no key is on a command line. Only one vLLM at a
# time on this machine: the lab mode needs the lab up and nothing else heavy running.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export PATH=$repo/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$repo/.build/collections
mode=${1:-lab}
seconds=${2:-10}
rounds=${3:-3}
max_tokens=${MAX_TOKENS:-2}
image=${HV_IMAGE:-localhost/hardened-vllm-node:bookworm}
container=gw-bench
work=$repo/.build/bench-gateway

die() { echo "bench/gateway/run.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (rootful podman)"

# bench.py's settings as JSON; key files and the CA are read here, on the controller.
settings() {
  python3 - "$@" <<'PY'
import json, pathlib, sys
label, socket_path, direct_key, host, key, ca, seconds, rounds, max_tokens = sys.argv[1:10]
def read(path):
    return pathlib.Path(path).read_text().strip() if path else ""
print(json.dumps({
    "label": label, "socket": socket_path, "direct_key": read(direct_key),
    "host": host, "port": 8000, "gateway_key": read(key), "ca": pathlib.Path(ca).read_text(),
    "model": "tiny-llama", "max_tokens": int(max_tokens), "concurrency": [1, 16, 64],
    "seconds": float(seconds), "rounds": int(rounds)}))
PY
}

# Copy bench.py into CONTAINER and run it there with the settings on stdin.
run_in() {
  local name=$1
  podman cp "$here/bench.py" "$name:/root/hv-gateway-bench.py"
  podman exec -i "$name" python3 /root/hv-gateway-bench.py
  podman exec "$name" rm -f /root/hv-gateway-bench.py
}

bench_lab() {
  local head=lab-node1 address
  if [ ! -f "$repo/.lab/inventory.yml" ] || ! podman container exists "$head"; then
    die "the lab is not up: make lab"
  fi
  [ -f "$repo/.lab/gateway-keys/bench" ] || die "no .lab/gateway-keys/bench: run make lab"
  address=$("$repo/lab/node.sh" ip "$head" hv-lab)
  echo "$ bench/gateway/run.sh lab $seconds $rounds   ($(date -u '+%F %T UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
  settings "lab: vLLM tiny-llama DP=2 (lab-node1 + lab-node2); client in $head; direct = unix:/run/hardened-vllm/api.sock, gateway = https://$address:8000" \
    /run/hardened-vllm/api.sock "$repo/.lab/api-key" "$address" "$repo/.lab/gateway-keys/bench" \
    "$repo/.lab/gateway-ca/ca.pem" "$seconds" "$rounds" "$max_tokens" | run_in "$head"
}

bench_stub() {
  local address subnet log=$work/ansible.log
  podman image exists "$image" || die "no image $image: run make image"
  [ -e "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/hardened/vllm/galaxy.yml" ] ||
    die "hardened.vllm is not linked: run make link"
  if podman container exists "$container"; then
    [ "$(podman inspect --format '{{index .Config.Labels "hardened-vllm"}}' "$container")" = bench ] ||
      die "a container named $container exists that this script did not make; remove or rename it"
    podman rm --force --time 5 "$container" >/dev/null
  fi
  mkdir -p "$work"
  trap 'podman rm --force --time 5 "$container" >/dev/null 2>&1 || true' EXIT
  podman run -d --name "$container" --hostname "$container" --network podman \
    --systemd always --cap-add SYS_ADMIN --label hardened-vllm=bench \
    "$image" /sbin/init >/dev/null
  local state="" tries=0
  # Until systemd's bus exists the question fails at once ("Failed to connect to bus").
  until [ "$state" = running ] || [ $tries -ge 60 ]; do
    state=$(timeout 120 podman exec "$container" systemctl is-system-running --wait 2>/dev/null || true)
    [ "$state" = running ] || { sleep 1; tries=$((tries + 1)); }
  done
  [ "$state" = running ] || die "$container: systemd is '$state', not running"
  address=$("$repo/lab/node.sh" ip "$container" podman)
  subnet=$(podman network inspect podman --format '{{range .Subnets}}{{.Subnet}} {{end}}' |
    tr ' ' '\n' | grep -m1 '\.')
  (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$work/bench-key")
  (umask 077 && cat >"$work/inventory.yml" <<EOF
---
# Written by bench/gateway/run.sh stub for the container $container; overwritten every run.
all:
  children:
    vllm_cluster:
      hosts:
        $container:
          ansible_connection: containers.podman.podman
          ansible_python_interpreter: /usr/bin/python3
      vars:
        cluster_topology: single
        cluster_network: ["$subnet"]
        cluster_client_cidrs: ["$address/32"]
        gateway_keys: [{name: bench, key: "$(cat "$work/bench-key")"}]
        gateway_upstream_key: "$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        gateway_tls_ca_dir: $work/ca
        gateway_firewall_unit: ""
        # Evaluated on every request, never reached by this load.
        gateway_rate: 100000
        gateway_burst: 100000
        gateway_concurrency: 10000
EOF
  )
  echo "deploying the gateway in front of stub.py in $container ($address); log: $log" >&2
  ansible-playbook -i "$work/inventory.yml" "$here/stub-play.yml" >"$log" 2>&1 ||
    { tail -30 "$log" >&2; die "the stub deployment failed ($log)"; }
  echo "$ bench/gateway/run.sh stub $seconds $rounds   ($(date -u '+%F %T UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
  settings "stub: stub.py (fixed ~300-byte completion) behind the gateway in $container, client in $container; direct = unix:/run/hardened-vllm/api.sock, gateway = https://$address:8000" \
    /run/hardened-vllm/api.sock "" "$address" "$work/bench-key" "$work/ca/ca.pem" \
    "$seconds" "$rounds" "$max_tokens" | run_in "$container"
  podman exec "$container" sh -c 'nginx -v 2>&1; python3 --version'
}

case $mode in
  lab) bench_lab ;;
  stub) bench_stub ;;
  *) sed -n '8s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
