#!/usr/bin/env bash
# Build the collection tarball, install it into a temporary path and use it from a
# directory outside the repository, as a user would:
#   - ansible-doc renders every plugin and role the installed collection has (and at
#     least hardened.vllm.cluster_plan and hardened.vllm.cluster);
#   - tests/integration/use_installed.yml runs the plugins by their FQCNs.
# The tarball stays in .build/dist/.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=$repo/.venv/bin:$PATH  # the pinned tools, also when run without make
dist=$repo/.build/dist
required_filters=(hardened.vllm.cluster_plan)
required_roles=(hardened.vllm.cluster)

die() { echo "build-test: $*" >&2; exit 1; }

rm -rf "$dist"
mkdir -p "$dist"
ansible-galaxy collection build --force --output-path "$dist" "$repo"
tarballs=("$dist"/hardened-vllm-*.tar.gz)
[ -f "${tarballs[0]}" ] || die "ansible-galaxy built no tarball in $dist"

tmp=$(mktemp -d /tmp/hv-build-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# Only the installed copy: not the repository link that the Makefile exports.
export ANSIBLE_COLLECTIONS_PATH=$tmp/collections
ansible-galaxy collection install --offline -p "$tmp/collections" "${tarballs[0]}"
cp "$repo/tests/integration/use_installed.yml" "$tmp/"
cd "$tmp"

installed=$(ansible-galaxy collection list hardened.vllm --format json |
  python3 -c 'import json, sys; print(*json.load(sys.stdin))')
[ "$installed" = "$tmp/collections/ansible_collections" ] ||
  die "hardened.vllm resolves to '$installed', not to the installed tarball"

# The installed collection's plugins of one type, plus the names given, once each.
names() {
  local type=$1
  shift
  { ansible-doc -t "$type" --list --json hardened.vllm |
      python3 -c 'import json, sys; print(*json.load(sys.stdin), sep="\n")'
    printf '%s\n' "$@"; } | sed '/^$/d' | sort -u
}

for type in filter test lookup module; do
  required=()
  [ "$type" = filter ] && required=("${required_filters[@]}")
  list=$(names "$type" "${required[@]}")
  [ -n "$list" ] || continue
  mapfile -t plugins <<<"$list"
  # Text output, as users read it; ansible-doc exits non-zero on a missing or broken doc.
  ansible-doc -t "$type" "${plugins[@]}" >"$tmp/doc.txt" ||
    die "ansible-doc -t $type failed for: ${plugins[*]}"
  echo "ansible-doc -t $type: ${#plugins[@]} rendered: ${plugins[*]}"
done

# ansible-doc exits 0 for an unknown role: check the argument specs it returns instead.
list=$(names role "${required_roles[@]}")
mapfile -t roles <<<"$list"
for role in "${roles[@]}"; do
  ansible-doc -t role --json "$role" | python3 -c '
import json, sys
name = sys.argv[1]
doc = json.load(sys.stdin).get(name, {}).get("entry_points", {})
if not doc.get("main", {}).get("options"):
    sys.exit(f"build-test: role {name}: no options in meta/argument_specs.yml for entry point main")
' "$role"
  ansible-doc -t role "$role" >/dev/null
  echo "ansible-doc -t role $role: argument specs rendered"
done

ansible-playbook -i localhost, use_installed.yml
