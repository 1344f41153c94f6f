#!/usr/bin/env bash
# Prepare this machine for `make test` and `make lab`; idempotent and quick when done.
#   1. OS packages (apt-get only when one is missing; shellcheck for ansible-test sanity);
#   2. rootful podman on hosts without a unified cgroup v2 hierarchy: runc and ulimits
#      that fit the host's hard limits (docs: /work/shared/FACTS.md, "Test hosts");
#   3. the virtual environment .venv from tests/requirements-dev.txt, rebuilt when that
#      file changes (its hash is stamped inside .venv).
# PYTHON selects the interpreter for the venv (default: python3, >= 3.11).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
requirements=$repo/tests/requirements-dev.txt
venv=$repo/.venv
stamp=$venv/.requirements.sha256
uv_version=0.13.9
podman_conf=/etc/containers/containers.conf.d/50-hardened-vllm-tests.conf

die() { echo "tests/setup.sh: $*" >&2; exit 1; }

install_packages() {
  local pkg missing=()
  for pkg in podman runc debootstrap nftables iproute2 openssh-client shellcheck git make; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  # Debian's python3 makes venvs only with python3-venv (ensurepip).
  "$python" -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: install them as root"
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

configure_podman() {
  # With cgroup v2 podman's defaults work. Elsewhere crun cannot set up cgroups and
  # podman's default nofile limit exceeds what the host lets a container raise to.
  # A drop-in leaves /etc/containers/containers.conf alone and overrides only these keys.
  [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && return
  local want
  want=$(printf '%s\n' \
    '# Written by hardened.vllm tests/setup.sh: this host has no unified cgroup v2.' \
    '[containers]' \
    'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' \
    '' \
    '[engine]' \
    'runtime = "runc"')
  [ -f "$podman_conf" ] && [ "$(cat "$podman_conf")" = "$want" ] && return
  [ "$(id -u)" = 0 ] || die "$podman_conf must be written as root"
  if [ -f "$podman_conf" ]; then
    echo "replacing $podman_conf (it differed; old copy kept as $podman_conf.old)"
    cp -p "$podman_conf" "$podman_conf.old"
  fi
  mkdir -p "$(dirname "$podman_conf")"
  printf '%s\n' "$want" >"$podman_conf"
  echo "wrote $podman_conf"
}

make_venv() {
  local want
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$python is $("$python" -V 2>&1); ansible-core 2.19 needs Python >= 3.11 (set PYTHON=...)"
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/ansible" ] && return
  if [ -f "$stamp" ] || [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv from $requirements"
    rm -rf "$venv"
    "$python" -m venv "$venv"
  else
    # A venv made by hand (no stamp): bring it to the pins in place, then stamp it.
    echo "updating $venv to $requirements"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -r "$requirements"
  echo "$want" >"$stamp"
}

install_packages
configure_podman
make_venv
echo "setup: packages, podman and $venv ready"
