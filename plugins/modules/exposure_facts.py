#!/usr/bin/python
# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything the exposure audit reads on a node, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: exposure_facts
short_description: Read a node's listeners, live nftables ruleset and state files in one call
version_added: 0.3.0
author:
  - hardened.vllm maintainers (@hardened-vllm)
description:
  - What P(hardened.vllm.verify#role) reads on each node before it judges and probes, in one
    round trip instead of one per read (issue 15, a run with nothing to change).
  - The listening sockets exactly as M(hardened.vllm.listening_sockets) reports them (the same
    code reads them), in the same facts.
  - The live nftables ruleset as C(nft -j list ruleset) prints it, parsed (O(ruleset)).
  - The text of each of O(files) (for example the firewall watchdog's state, the gateway's CA);
    a file that cannot be read is reported with the reason, not a failure.
  - Reads only; changes nothing. Needs only the Python standard library on the managed host.
requirements:
  - Python 3 on the managed host (standard library only); Linux /proc
  - nft (nftables) on the managed host for O(ruleset)
options:
  namespaces:
    description: As O(hardened.vllm.listening_sockets#module:namespaces).
    type: list
    elements: str
    default: []
  ruleset:
    description:
      - Read the live ruleset with C(nft -j list ruleset). Without C(nft) on the node the
        ruleset is empty and RV(ruleset_error) says so; any other failure of C(nft) fails the task.
    type: bool
    default: true
  files:
    description: Files to read as UTF-8 text.
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    support: full
    platforms: linux
notes:
  - Never reports C(changed).
seealso:
  - module: hardened.vllm.listening_sockets
"""

EXAMPLES = r"""
- name: Read what the audit needs on this node
  hardened.vllm.exposure_facts:
    files:
      - /run/hardened-vllm-watchdog/firewall.json
  register: exposure

- name: Show the tables of the live ruleset
  ansible.builtin.debug:
    msg: >-
      {{ exposure.ruleset.nftables | selectattr('table', 'defined')
         | map(attribute='table.name') }}
"""

RETURN = r"""
ansible_facts:
  description: >-
    C(listening_sockets) and C(listening_sockets_summary), as
    M(hardened.vllm.listening_sockets) returns them.
  returned: always
  type: dict
  sample: {listening_sockets: [], listening_sockets_summary: {}}
ruleset:
  description: The output of C(nft -j list ruleset), parsed; empty when it was not read.
  returned: always
  type: dict
  sample: {nftables: [{metainfo: {version: 1.0.6, json_schema_version: 1}}]}
ruleset_error:
  description: Why the ruleset is empty (C(nft) not installed, O(ruleset) false); null otherwise.
  returned: always
  type: str
  sample: null
files:
  description: For each of O(files), its text, or null and the reason it could not be read.
  returned: always
  type: dict
  sample:
    /run/hardened-vllm-watchdog/firewall.json:
      content: '{"state": "healthy"}'
      error: null
"""

import json
import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils._socket_sources import gather
from ansible_collections.hardened.vllm.plugins.module_utils._sockets import SocketError


def read_file(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return {"content": handle.read(), "error": None}
    except (OSError, UnicodeDecodeError) as error:
        return {"content": None, "error": getattr(error, "strerror", None) or str(error)}


def read_ruleset(module):
    """(parsed `nft -j list ruleset`, why it is empty or None)."""
    nft = module.get_bin_path("nft")
    if not nft:
        return {}, "nft is not installed"
    rc, out, err = module.run_command([nft, "-j", "list", "ruleset"])
    if rc != 0:
        module.fail_json(msg=f"exposure_facts: nft -j list ruleset failed (rc {rc}): {err.strip()}")
    try:
        return json.loads(out or "{}"), None
    except ValueError as error:
        module.fail_json(msg=f"exposure_facts: nft -j list ruleset printed no JSON: {error}")
        raise  # not reached


def main():
    module = AnsibleModule(
        argument_spec={
            "namespaces": {"type": "list", "elements": "str", "default": []},
            "ruleset": {"type": "bool", "default": True},
            "files": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    if platform.system() != "Linux":
        module.fail_json(msg=f"exposure_facts: needs Linux, this host runs {platform.system()}")
    try:
        sockets, summary = gather(
            namespaces=module.params["namespaces"], protocols=["tcp", "udp"], method="auto"
        )
    except (SocketError, OSError) as exc:
        module.fail_json(msg=f"exposure_facts: {exc}")
    ruleset, why = read_ruleset(module) if module.params["ruleset"] else ({}, "not asked for")
    module.exit_json(
        changed=False,
        ansible_facts={"listening_sockets": sockets, "listening_sockets_summary": summary},
        ruleset=ruleset,
        ruleset_error=why,
        files={path: read_file(path) for path in module.params["files"]},
    )


if __name__ == "__main__":
    main()
