#!/usr/bin/env bash
# Build the collection tarball, install it into a temporary path and use it from a
# directory outside the repository, as a user would:
#   - ansible-doc renders every plugin and role the installed collection has (and at
#     least hardened.vllm.cluster_plan and hardened.vllm.cluster);
#   - tests/integration/use_installed.yml runs the plugins by their FQCNs;
#   - galaxy-importer (tests/integration/galaxy-importer.cfg: what Galaxy runs on upload,
#     ansible-test off) accepts the tarball without an error or a warning;
#   - ansible-builder finds the collection's execution-environment dependencies (netaddr
#     among them) in the installed copy, and `ansible-builder create` writes a build
#     context for docs/execution-environment.yml whose introspection step finds them too.
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

# Galaxy's import checks, offline. The importer exits 0 on some failures (a plugin whose docs
# ansible-doc cannot load is only logged): any ERROR or WARNING line fails the stage.
mkdir -p "$tmp/importer"
GALAXY_IMPORTER_CONFIG=$repo/tests/integration/galaxy-importer.cfg \
  GALAXY_IMPORTER_TMP_ROOT_DIR=$tmp/importer \
  python3 -m galaxy_importer.main "${tarballs[0]}" >"$tmp/importer.log" 2>&1 || {
  cat "$tmp/importer.log" >&2
  die "galaxy-importer refused ${tarballs[0]##*/}"
}
if grep -E '^(ERROR|WARNING)' "$tmp/importer.log" >&2; then
  die "galaxy-importer reported the problems above for ${tarballs[0]##*/}"
fi
grep -q '^Importer processing completed successfully' "$tmp/importer.log" ||
  die "galaxy-importer did not report success: $(tail -n 5 "$tmp/importer.log")"
echo "galaxy-importer: $(grep -c '^Loading ' "$tmp/importer.log") contents loaded, no error or warning"

# Execution environment: what ansible-builder adds for the installed collection.
need_ee() {
  local file=$1 what=$2 name
  shift 2
  for name in "$@"; do
    grep -Eq "^${name}[ >=<\[]" "$file" ||
      die "$what lacks $name for hardened.vllm: $(tr '\n' ' ' <"$file")"
  done
}
ansible-builder introspect --sanitize --write-pip "$tmp/ee-pip.txt" \
  --write-bindep "$tmp/ee-bindep.txt" "$tmp/collections" >/dev/null
need_ee "$tmp/ee-pip.txt" "ansible-builder introspect (python)" netaddr cryptography
need_ee "$tmp/ee-bindep.txt" "ansible-builder introspect (system)" openssh-client
echo "ansible-builder introspect: python $(cut -d' ' -f1 "$tmp/ee-pip.txt" | paste -sd' ')"
ansible-builder create --file "$repo/docs/execution-environment.yml" \
  --context "$tmp/ee-context" >/dev/null
containerfile=$tmp/ee-context/Containerfile
grep -q 'introspect.py introspect' "$containerfile" ||
  die "ansible-builder create wrote no introspection step into $containerfile"
# The build runs this script on the collections it installed; run it on ours.
python3 "$tmp/ee-context/_build/scripts/introspect.py" introspect \
  --write-pip "$tmp/ee-build-pip.txt" --write-bindep "$tmp/ee-build-bindep.txt" \
  "$tmp/collections" >/dev/null
need_ee "$tmp/ee-build-pip.txt" "the build context's introspection (python)" netaddr
echo "ansible-builder create: build context for docs/execution-environment.yml; its introspection finds netaddr"
