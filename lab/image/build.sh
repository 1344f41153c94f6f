#!/usr/bin/env bash
# Build the local test node image (systemd as PID 1, sshd, python3, nftables) from a
# Debian suite with debootstrap, only when its recipe changed.
#
#   lab/image/build.sh [--force] [SUITE]
#       SUITE: bookworm (Debian 12, the default) or trixie (Debian 13); the image is
#       localhost/hardened-vllm-node:SUITE unless HV_IMAGE names another;
#       --force builds even when the image is up to date.
#
# The recipe is everything under lab/image/ (this script, `packages` and the `rootfs/`
# overlay, where @SUITE@ stands for the suite) plus the suite. Its hash is stored in the
# image as the label org.hardened-vllm.recipe.
# A machine-wide flock serialises concurrent callers: the second one waits, then finds
# the image fresh and returns.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# Suites this recipe is tested with; another Debian suite may work but is refused rather
# than guessed at (Ubuntu and RHEL images cannot be built from Debian's archive).
suites=(bookworm trixie)
mirror=http://deb.debian.org/debian
label=org.hardened-vllm.recipe
lock=${HV_IMAGE_LOCK:-/run/lock/hardened-vllm-image.lock}
force=
suite=bookworm

die() { echo "lab/image/build.sh: $*" >&2; exit 1; }

recipe_hash() {
  # Paths and contents of every recipe file, in a stable order.
  { echo "suite $suite"
    (cd "$here" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); } |
    sha256sum | cut -d' ' -f1
}

image_hash() {
  podman image inspect --format "{{ index .Labels \"$label\" }}" "$image" 2>/dev/null || true
}

build_rootfs() {
  local rootfs=$1 include
  include=$(grep -Ev '^[[:space:]]*(#|$)' "$here/packages" | paste -sd, -)
  mkdir -p "$repo/.cache/debootstrap"
  debootstrap --variant=minbase --include="$include" \
    --cache-dir="$repo/.cache/debootstrap" "$suite" "$rootfs" "$mirror"

  cp -rT --no-preserve=mode,ownership "$here/rootfs" "$rootfs"
  sed -i "s/@SUITE@/$suite/g" "$rootfs/etc/apt/sources.list"
  chroot "$rootfs" systemctl enable ssh-hostkeys.service
  # Units that have nothing to do in a container and only fail or wait there.
  chroot "$rootfs" systemctl mask \
    getty@tty1.service console-getty.service serial-getty@.service \
    systemd-udevd.service systemd-udev-trigger.service systemd-firstboot.service \
    systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount \
    sys-kernel-tracing.mount dev-hugepages.mount

  # Per-container identity comes at first boot, not from the image.
  rm -f "$rootfs"/etc/ssh/ssh_host_*
  : >"$rootfs/etc/machine-id"
  rm -f "$rootfs/var/lib/dbus/machine-id" "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
  install -d -m 0700 "$rootfs/root/.ssh"

  # What the dpkg excludes in rootfs/ keep out of later installs, and apt's caches.
  find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,info}/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/bootstrap.log "$rootfs"/var/cache/debconf/*-old
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
    -exec rm -rf {} +
}

for arg in "$@"; do
  case $arg in
    --force) force=--force ;;
    -*) die "unknown option $arg (usage: build.sh [--force] [SUITE])" ;;
    *) suite=$arg ;;
  esac
done
[[ " ${suites[*]} " == *" $suite "* ]] ||
  die "suite '$suite' is not one of: ${suites[*]} (usage: build.sh [--force] [SUITE])"
image=${HV_IMAGE:-localhost/hardened-vllm-node:$suite}
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and rootful podman need it)"
for tool in debootstrap podman flock; do
  command -v "$tool" >/dev/null || die "$tool is missing: run tests/setup.sh first"
done

want=$(recipe_hash)
[ "$force" = --force ] || [ "$(image_hash)" != "$want" ] || {
  echo "image $image is up to date (recipe ${want:0:12})"
  exit 0
}

mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
flock 9
# Another caller may have built it while this one waited for the lock.
if [ "$force" != --force ] && [ "$(image_hash)" = "$want" ]; then
  echo "image $image is up to date (recipe ${want:0:12})"
  exit 0
fi

start=$SECONDS
work=$(mktemp -d /var/tmp/hv-image.XXXXXX)
# --one-file-system: never into a /proc or /sys a failed debootstrap left mounted.
trap 'rm -rf --one-file-system "$work"' EXIT
echo "building $image (recipe ${want:0:12}) in $work"
build_rootfs "$work/rootfs" >"$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  die "building the root file system failed (log above)"
}

tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/rootfs" -c . |
  podman import --quiet \
    --change 'CMD=["/sbin/init"]' \
    --change 'STOPSIGNAL=SIGRTMIN+3' \
    --change "LABEL=$label=$want" \
    --message "hardened.vllm test node, recipe $want" \
    - "$image" >/dev/null
[ "$(image_hash)" = "$want" ] || die "podman import did not produce $image with label $label=$want"

# Earlier builds that lost the tag; those still used by a container stay until it goes.
for id in $(podman images --quiet --filter dangling=true --filter "label=$label"); do
  podman image rm "$id" >/dev/null 2>&1 || echo "kept the previous image $id: a container uses it"
done
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "built $image in $((SECONDS - start)) s, $((size / 1048576)) MiB"
