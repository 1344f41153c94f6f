#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection: every file git tracks or would track
# (untracked ones included, ignored ones not), under <tmp>/ansible_collections/hardened/vllm
# as ansible-test requires. Extra arguments go to ansible-test, e.g. --test pep8.
# ansible-test makes one venv per sanity test from PyPI and reuses it on later runs.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH=$repo/.venv/bin:$PATH  # the pinned tools, also when run without make
python=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
tmp=$(mktemp -d /tmp/hv-sanity.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/ansible_collections/hardened/vllm
mkdir -p "$dest"

git -C "$repo" rev-parse --git-dir >/dev/null 2>&1 ||
  { echo "tests/sanity/run.sh: $repo is not a git checkout" >&2; exit 1; }
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -C "$dest" -xf -

# ansible-test bootstraps pip in its venvs with a script from a host we cannot reach:
# hand it the offline stand-in unless a real one is cached already.
pip_version=$(python3 -c 'from types import SimpleNamespace as N
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(N(version="'"$python"'"))["pip"])')
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -f "$get_pip" ] || grep -q 'hardened.vllm offline get-pip' "$get_pip"; then
  mkdir -p "$(dirname "$get_pip")"
  cp "$repo/tests/sanity/get_pip.py" "$get_pip"
fi

cd "$dest"
ansible-test sanity --venv --python "$python" --color no "$@"
