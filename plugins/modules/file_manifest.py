#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest (path, size, sha256 of every file) of a directory tree, hashed once."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_manifest
short_description: List every file of a directory tree with its size and sha256
version_added: 0.1.0
description:
  - Walks O(path) (links to files and directories followed) and returns each regular file's
    path relative to O(path), its size and its sha256, sorted by path, and the digest that
    names this manifest.
  - With O(cache) a file is hashed only when its size, modification time or inode differ from
    what the cache recorded, so a large model directory is read once, not on every run.
  - Used on the controller (C(delegate_to) localhost) to describe what hardened.vllm.stage_files
    must put on every node; nodes check what they received against it.
author:
  - hardened.vllm maintainers (@hardened-vllm)
options:
  path:
    description: The directory to describe.
    type: path
    required: true
  cache:
    description:
      - A JSON file that keeps the hashes between runs (written atomically; created with its
        directory). Not written in check mode.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only; the cache is not written.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: hardened.vllm.stage_files
"""

EXAMPLES = r"""
- name: Describe the model directory on the controller
  hardened.vllm.file_manifest:
    path: /srv/staging/llama-3-70b
    cache: ~/.cache/hardened-vllm/manifests/llama-3-70b.json
  delegate_to: localhost
  run_once: true
  register: model_manifest
"""

RETURN = r"""
files:
  description: Every file, sorted by path.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "config.json", "size": 612, "sha256": "5d41402abc4b2a76b9719d911017c592..."}]
digest:
  description: sha256 of the manifest's canonical JSON; equal trees have equal digests.
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
bytes:
  description: Total size of the files.
  returned: always
  type: int
  sample: 633292800
hashed_bytes:
  description: Bytes read and hashed by this run (0 when the cache knew every file).
  returned: always
  type: int
  sample: 0
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils import _stage


def main():
    module = AnsibleModule(
        argument_spec={"path": {"type": "path", "required": True}, "cache": {"type": "path"}},
        supports_check_mode=True,
    )
    root, cache_file = module.params["path"], module.params["cache"]
    cache = (_stage.read_json(cache_file) or {}) if cache_file else {}
    try:
        files, new_cache, hashed = _stage.manifest_of(root, cache.get("files"))
    except (_stage.StageError, OSError) as exc:
        module.fail_json(msg=f"cannot describe {root}: {exc}")
    if cache_file and not module.check_mode and new_cache != cache.get("files"):
        os.makedirs(os.path.dirname(cache_file) or ".", exist_ok=True)
        tmp = f"{cache_file}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"root": root, "files": new_cache}, f)
        module.atomic_move(tmp, cache_file)
    module.exit_json(
        changed=False,
        files=files,
        digest=_stage.digest_of(files),
        bytes=sum(e["size"] for e in files),
        hashed_bytes=hashed,
    )


if __name__ == "__main__":
    main()
