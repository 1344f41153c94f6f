#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install a package repository's signing key only if its fingerprint is the pinned one."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_repo_key
short_description: Install a repository signing key whose fingerprint is pinned
version_added: 0.1.0
description:
  - Writes an OpenPGP public key to O(dest) only when it holds exactly one primary key and
    that key's fingerprint is O(fingerprint). The fingerprint is computed here, without gpg.
  - Every armored block and every packet of the download is parsed. A second key appended,
    prepended or concatenated (in another armored block or in the same binary stream), a
    packet that does not belong in a public key, text outside the armor or a damaged armor
    checksum is refused.
  - What is written is rebuilt from the checked packets (ASCII armor, as
    C(gpg --export --armor) writes it), never the downloaded bytes as they are.
  - When O(dest) already holds the pinned key nothing is downloaded, so later runs work
    offline and report no change.
  - Used for NVIDIA's CUDA repository key (apt C(signed-by=) or an RPM C(gpgkey=file://)),
    but works for any repository key.
author:
  - hardened.vllm maintainers (@hardened-vllm)
requirements:
  - Python 3 on the managed host (standard library only) (the fingerprint is computed without gpg)
options:
  url:
    description:
      - Where to download the key (armored or binary). Mutually exclusive with O(content).
    type: str
  content:
    description:
      - The key itself, for air-gapped hosts and mirrors. Mutually exclusive with O(url).
    type: str
  fingerprint:
    description:
      - The pinned fingerprint, 40 (v4) or 64 (v6) hex digits; spaces are ignored.
    type: str
    required: true
  dest:
    description:
      - Where to write the verified key, always ASCII armored, so name the file C(.asc).
    type: path
    required: true
  mode:
    description:
      - Permissions of O(dest).
    type: raw
    default: "0644"
  timeout:
    description:
      - Download timeout in seconds.
    type: int
    default: 30
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Downloads always verify TLS certificates; the fingerprint check comes on top of that.
"""

EXAMPLES = r"""
- name: Install NVIDIA's CUDA repository key (Debian, Ubuntu)
  hardened.vllm.nvidia_repo_key:
    url: https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/3bf863cc.pub
    fingerprint: EB69 3B30 35CD 5710 E231 E123 A4B4 6996 3BF8 63CC
    dest: /etc/apt/keyrings/hardened-vllm-nvidia-cuda.asc
"""

RETURN = r"""
fingerprint:
  description: Fingerprint of the key now at O(dest).
  returned: success
  type: str
  sample: EB693B3035CD5710E231E123A4B469963BF863CC
dest:
  description: Where the key is.
  returned: success
  type: str
  sample: /etc/apt/keyrings/hardened-vllm-nvidia-cuda.asc
subkeys:
  description: Subkey fingerprints written with the pinned key; null when nothing was written.
  returned: success
  type: list
  elements: str
downloaded:
  description: Whether the key was downloaded during this run.
  returned: success
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import fetch_url

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_pgp as pgp
from ansible_collections.hardened.vllm.plugins.module_utils._files import write_atomic


def _current(dest, fingerprint):
    """True if dest holds exactly the pinned key in the form this module writes."""
    try:
        with open(dest, "rb") as handle:
            data = handle.read()
        return pgp.verified_key(data, fingerprint)[2] == data
    except (OSError, pgp.PgpError):
        return False


def _download(module):
    url = module.params["url"]
    response, info = fetch_url(module, url, timeout=module.params["timeout"])
    # file:// answers without a status; HTTP must answer 200.
    if response is None or info.get("status") not in (200, None):
        module.fail_json(msg=f"could not download the repository key from {url}: {info.get('msg')}")
    return response.read()


def _write(module, dest, data):
    directory = os.path.dirname(dest) or "."
    if not os.path.isdir(directory):
        module.fail_json(msg=f"directory {directory} of dest {dest} does not exist")
    write_atomic(dest, data, move=module.atomic_move)


def main():
    argument_spec = dict(
        url={"type": "str"},
        content={"type": "str", "no_log": False},
        fingerprint={"type": "str", "required": True},
        dest={"type": "path", "required": True},
        mode={"type": "raw", "default": "0644"},
        timeout={"type": "int", "default": 30},
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("url", "content")],
        required_one_of=[("url", "content")],
        supports_check_mode=True,
    )
    params = module.params
    dest = params["dest"]
    try:
        pinned = pgp.normalize_fingerprint(params["fingerprint"])
    except pgp.PgpError as exc:
        module.fail_json(msg=f"fingerprint: {exc}")

    downloaded = False
    changed = not _current(dest, pinned)
    subkeys = None
    if changed:
        if params["content"] is not None:
            data = params["content"].encode("utf-8")
        else:
            data, downloaded = _download(module), True
        source = params["url"] or "content"
        try:
            _fingerprint, subkeys, verified = pgp.verified_key(data, pinned)
        except pgp.PgpError as exc:
            module.fail_json(msg=f"refusing the repository key from {source}: {exc}", dest=dest)
        if not module.check_mode:
            _write(module, dest, verified)
    file_args = module.load_file_common_arguments(
        {"path": dest, "mode": params["mode"], "owner": "root", "group": "root"}
    )
    if os.path.exists(dest):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(
        changed=changed, fingerprint=pinned, subkeys=subkeys, dest=dest, downloaded=downloaded
    )


if __name__ == "__main__":
    main()
