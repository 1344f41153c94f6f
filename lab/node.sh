#!/usr/bin/env bash
# Reach test containers over SSH from the controller, as Ansible does on real hosts.
#
#   lab/node.sh key                         make the test key pair once; print its path
#   lab/node.sh inject CONTAINER...         authorize the test key for root in containers
#   lab/node.sh ip CONTAINER [NETWORK] [4|6]  the container's address on NETWORK
#                                           (default: its only network; family 4)
#   lab/node.sh ssh CONTAINER [COMMAND...]  ssh to it as root with the test key
#
# The key pair lives in .cache/ssh/ (git-ignored). Host keys are not remembered: test
# containers get fresh ones each time they are created.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
key=$repo/.cache/ssh/id_ed25519

die() { echo "lab/node.sh: $*" >&2; exit 1; }

ensure_key() {
  # The public half is written last: once it exists, the pair is complete.
  [ -f "$key.pub" ] && return
  mkdir -p "$(dirname "$(dirname "$key")")"
  install -d -m 0700 "$(dirname "$key")"
  (
    flock 8
    [ -f "$key.pub" ] || ssh-keygen -q -t ed25519 -N '' -C hardened-vllm-tests -f "$key"
  ) 8>"$(dirname "$key")/.lock"
}

inject() {
  local name pub
  ensure_key
  pub=$(cat "$key.pub")
  for name in "$@"; do
    podman container exists "$name" || die "no container named $name"
    # Prints "authorized" only when it added the key (for Ansible's changed_when).
    podman exec -i "$name" sh -ec '
      umask 077; mkdir -p /root/.ssh; touch /root/.ssh/authorized_keys
      grep -qxF "$1" /root/.ssh/authorized_keys && exit 0
      printf "%s\n" "$1" >>/root/.ssh/authorized_keys; echo authorized' sh "$pub"
  done
}

address() {
  local name=$1 network=${2:-} family=${3:-4} field networks
  [ "$family" = 4 ] && field=IPAddress || field=GlobalIPv6Address
  [ "$family" = 4 ] || [ "$family" = 6 ] || die "family must be 4 or 6, not $family"
  if [ -z "$network" ]; then
    networks=$(podman inspect --format '{{range $n, $v := .NetworkSettings.Networks}}{{$n}} {{end}}' "$name") ||
      die "no container named $name"
    local nets
    read -ra nets <<<"$networks"
    [ ${#nets[@]} -eq 1 ] || die "$name is on networks: $networks; name one"
    network=${nets[0]}
  fi
  local ip
  ip=$(podman inspect --format "{{with index .NetworkSettings.Networks \"$network\"}}{{.$field}}{{end}}" "$name") ||
    die "no container named $name"
  [ -n "$ip" ] || die "$name has no IPv$family address on network $network"
  echo "$ip"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  key) ensure_key; echo "$key" ;;
  inject) [ $# -gt 0 ] || die "inject: name at least one container"; inject "$@" ;;
  ip) [ $# -ge 1 ] || die "ip: name a container"; address "$@" ;;
  ssh)
    [ $# -ge 1 ] || die "ssh: name a container"
    ensure_key
    host=$(address "$1"); shift
    exec ssh -i "$key" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
      -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "root@$host" "$@" ;;
  *) sed -n '2,11s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
