#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A directory's manifest (sha256 per file), or what a copy of it lacks against one."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_manifest
short_description: Make a directory's manifest (sha256 per file), or find what a copy lacks
version_added: 0.1.0
description:
  - Without O(manifest), describes O(path), links followed, as RV(manifest) - every file's
    name, size and sha256 - and changes nothing (run on the controller for a directory that is
    copied to the nodes, such as C(vllm_model_source)).
  - With O(manifest), compares O(path) with it and returns RV(lacking), the files that are
    missing or differ (size or sha256); removes what the manifest does not hold (RV(extra)) when
    O(remove_extra) is set; creates the directories the manifest needs and gives the files that
    match and those directories O(owner), O(group), O(mode) and O(directory_mode). The files it
    lacks are for the caller to transfer (C(hardened.vllm.vllm)'s stage); a second call with
    O(must_match) then proves the copy whole.
  - Entries whose name starts with a dot are not part of a manifest and never removed
    (C(.gitattributes), a hub download's C(.cache/)). Every other name must be a relative path
    whose parts start with a letter or digit and hold only letters, digits and C(_.+-).
  - With O(record), the digests it computed are kept with each file's size, modification and
    change time and inode, and a file whose C(lstat) still matches is not read again - a rerun
    over a 140 GB model reads nothing. Any write to a file changes its change time, which user
    space cannot set back, so a changed file is always read again. Remove the record to make it
    read every file.
author:
  - hardened.vllm maintainers (@hardened-vllm)
requirements:
  - Python 3 on the managed host (standard library only)
options:
  path:
    description: The directory.
    type: path
    required: true
  manifest:
    description:
      - What O(path) must hold, as RV(manifest) returned it - C(files), a list of C(path) (relative
        name), C(size) (bytes) and C(sha256) (hex). Omitted, O(path) is described instead.
    type: dict
  record:
    description:
      - A JSON file (written 0600, replaced atomically) of the digests computed before. Omitted,
        every file is read.
    type: path
  remove_extra:
    description:
      - Remove the files, links and directories under O(path) that O(manifest) does not hold.
    type: bool
    default: false
  must_match:
    description: Fail when O(path) still lacks files of O(manifest) (after a transfer).
    type: bool
    default: false
  origin:
    description:
      - What O(path) is, for the messages, e.g. C(host node1, vllm_model_path /srv/models/m).
    type: str
    default: ""
  owner:
    description: Owner of the matching files and of the directories (with O(manifest)).
    type: str
  group:
    description: Group of the matching files and of the directories (with O(manifest)).
    type: str
  mode:
    description: Mode of the matching files, e.g. C("0640") (with O(manifest)).
    type: raw
  directory_mode:
    description: Mode of O(path) and the directories below it, e.g. C("0750") (with O(manifest)).
    type: raw
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: >-
      Reads and hashes as usual and writes nothing; C(changed) then also counts the files that
      the copy lacks (they would be transferred).
  diff_mode:
    support: none
    details: No diff; RV(lacking) and RV(extra) name what differs.
  platform:
    support: full
    platforms: posix
seealso:
  - module: ansible.builtin.copy
    description: >-
      Copies a directory from the controller to every node, reading each file on the node for
      its checksum on every run; this module lets the role send the model once per cluster and
      skips files whose digest it already recorded.
"""

EXAMPLES = r"""
- name: Describe the model on the controller
  hardened.vllm.file_manifest:
    path: /data/models/tiny-llama
    record: ~/.cache/hardened-vllm/manifest/tiny-llama.json
  delegate_to: localhost
  run_once: true
  register: model_manifest

- name: Find what the node's copy lacks; remove what the manifest does not hold
  hardened.vllm.file_manifest:
    path: /srv/models/tiny-llama
    manifest: "{{ model_manifest.manifest }}"
    record: /var/cache/hardened-vllm/manifest-tiny-llama.json
    remove_extra: true
    owner: root
    group: vllm
    mode: "0640"
    directory_mode: "0750"
  register: model_here
"""

RETURN = r"""
manifest:
  description: The manifest of O(path) (without O(manifest)), or O(manifest) as given.
  returned: always
  type: dict
  contains:
    files:
      description: Every file, sorted by name, with C(path), C(size) and C(sha256).
      type: list
      elements: dict
    bytes:
      description: Their bytes in all.
      type: int
    digest:
      description: The sha256 of the list of names, sizes and digests (one value for the whole).
      type: str
  sample:
    files:
      - path: config.json
        size: 508
        sha256: ddbc556b0f64c8ae65c43ba8c9cdc0f1fb50911fdc5d17d73b954d9e5bf38b09
    bytes: 508
    digest: 0a0ad1b4f28a8b0fa0b7c1d1e5a3d3f9e1c2b4a6d8f0e2c4b6a8d0f2e4c6b8a0
lacking:
  description: The manifest's entries that O(path) lacks or holds otherwise (with O(manifest)).
  returned: always
  type: list
  elements: dict
  sample:
    - path: model.safetensors
      size: 2232984
      sha256: fe033d9a210ff5817ae33e583e739e70956b9660ceebeeb9e63afdc728d7ef41
lacking_bytes:
  description: Their bytes in all.
  returned: always
  type: int
  sample: 2232984
extra:
  description: Names under O(path) that the manifest does not hold (removed with O(remove_extra)).
  returned: always
  type: list
  elements: str
  sample: [model-00003-of-00003.safetensors]
hashed:
  description: How many files were read for their digest (the others matched the record).
  returned: always
  type: int
  sample: 0
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils import _file_manifest as fm
from ansible_collections.hardened.vllm.plugins.module_utils._files import write_atomic


def prefix(origin, path):
    return f"{origin}: " if origin else f"{path}: "


def save_record(module, record_path, root, old, new):
    if record_path and new != old and not module.check_mode:
        os.makedirs(os.path.dirname(record_path) or ".", mode=0o700, exist_ok=True)
        write_atomic(record_path, fm.record_text(root, new), mode=0o600)


def merged(old, files, extra, matched):
    """The record after a comparison: what was checked replaced, what was removed dropped."""
    checked = {entry["path"] for entry in files}
    gone = tuple(extra)
    keep = {
        name: entry
        for name, entry in old.items()
        if name not in checked and not any(name == g or name.startswith(g + "/") for g in gone)
    }
    return {**keep, **matched}


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def attributes(module, path, mode, changed):
    p = module.params
    args = module.load_file_common_arguments(
        {"path": path, "owner": p["owner"], "group": p["group"], "mode": mode}
    )
    return module.set_fs_attributes_if_different(args, changed)


def apply(module, root, files, lacking, extra):
    """Remove the extras, create the directories, set owner and modes; whether anything changed."""
    p = module.params
    changed = False
    if p["remove_extra"] and extra:
        changed = True
        if not module.check_mode:
            for name in extra:
                remove(os.path.join(root, *name.split("/")))
    for name in ["", *fm.directories(files)]:
        path = os.path.join(root, *name.split("/")) if name else root
        if not os.path.isdir(path):
            changed = True
            if module.check_mode:
                continue
            os.makedirs(path)
        changed = attributes(module, path, p["directory_mode"], changed)
    bad = {entry["path"] for entry in lacking}
    for entry in files:
        path = os.path.join(root, *entry["path"].split("/"))
        if entry["path"] not in bad:
            changed = attributes(module, path, p["mode"], changed)
    return changed


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "manifest": {"type": "dict"},
            "record": {"type": "path"},
            "remove_extra": {"type": "bool", "default": False},
            "must_match": {"type": "bool", "default": False},
            "origin": {"type": "str", "default": ""},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw"},
            "directory_mode": {"type": "raw"},
        },
        supports_check_mode=True,
    )
    p = module.params
    root = os.path.normpath(p["path"])
    say = prefix(p["origin"], root)
    record = fm.read_record(p["record"])
    try:
        if p["manifest"] is None:
            manifest, fresh, read = fm.describe(root, record)
            save_record(module, p["record"], root, record, fresh)
            module.exit_json(
                changed=False,
                manifest=manifest,
                lacking=[],
                lacking_bytes=0,
                extra=[],
                hashed=len(read),
            )
        files = fm.check_manifest(p["manifest"])
        if root == os.sep or (root.count(os.sep) < 2 and p["remove_extra"]):
            raise fm.ManifestError(
                f"{root} is too close to / for a copy whose extra files are removed; "
                "use a directory of its own, e.g. /srv/models/NAME"
            )
        lacking, extra, matched, read = fm.compare(root, files, record)
    except (fm.ManifestError, OSError) as exc:
        module.fail_json(msg=f"{say}{exc}")
    if p["must_match"] and lacking:
        module.fail_json(
            msg=f"{say}{len(lacking)} file(s) still differ from the manifest after the transfer: "
            f"{', '.join(e['path'] for e in lacking[:10])}{' ...' if len(lacking) > 10 else ''}. "
            "Fix: check the node's disk (space, errors) and run again; only those files move.",
            lacking=lacking,
        )
    try:
        changed = apply(module, root, files, lacking, extra)
    except OSError as exc:
        module.fail_json(msg=f"{say}{exc}")
    # Owner and modes change the ctime: the record keeps the stamps as they are now.
    for name in list(matched):
        matched[name]["stamp"] = fm.stamp(os.lstat(os.path.join(root, *name.split("/"))))
    save_record(
        module,
        p["record"],
        root,
        record,
        merged(record, files, extra if p["remove_extra"] else [], matched),
    )
    module.exit_json(
        changed=changed or (module.check_mode and bool(lacking)),
        manifest=p["manifest"],
        lacking=lacking,
        lacking_bytes=sum(e["size"] for e in lacking),
        extra=extra,
        hashed=len(read),
    )


if __name__ == "__main__":
    main()
