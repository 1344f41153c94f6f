#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tcp_probe
short_description: Try TCP connections from this host and report which ones were accepted
version_added: 0.1.0
author: hardened.vllm maintainers (@hardened-vllm)
description:
  - Opens a TCP connection to every target, in parallel, with a short timeout, closes it at once
    and reports whether the target accepted it, refused it, or let it time out (a firewall drop).
  - Also reports the source address this host used (or would use) for each target, so the caller
    can tell which audience of the cluster plan the probe stands for (peer, client, other).
  - Sends no payload. Uses only the Python standard library on the probing host.
  - Used by the P(hardened.vllm.verify#role) role to prove from real vantage points that nothing
    internal can be reached from outside the cluster.
requirements:
  - Python 3 on the managed host (standard library only)
options:
  targets:
    description: Endpoints to try.
    type: list
    elements: dict
    required: true
    suboptions:
      address:
        description: IPv4 or IPv6 address to connect to.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        required: true
      label:
        description: Free text echoed in the result (e.g. the node and the listener).
        type: str
  timeout:
    description: Seconds to wait for each connection before counting it as dropped.
    type: float
    default: 2.0
  parallel:
    description: How many connections to try at the same time.
    type: int
    default: 64
  vantage:
    description: Name of this probing host, echoed in the result so that runs from several hosts
      can be told apart after they are gathered.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only opens and closes connections; it runs in check mode too.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - A connection that is accepted and closed at once may still show in the target's logs.
  - Only probe hosts you operate.
"""

EXAMPLES = r"""
- name: Try every port of the nodes from the outsider
  hardened.vllm.tcp_probe:
    targets:
      - {address: 10.0.0.11, port: 8000, label: node1 api}
      - {address: 10.0.0.11, port: 29550, label: node1 dp_rpc}
    timeout: 1.5
  register: probe
"""

RETURN = r"""
results:
  description: One entry per target, in the order given.
  returned: always
  type: list
  elements: dict
  sample:
    - address: 10.0.0.11
      port: 29550
      label: node1 dp_rpc
      state: timeout
      open: false
      source: 10.0.0.50
      error: timed out
      seconds: 1.5
vantage:
  description: The O(vantage) given, or null.
  returned: always
  type: str
  sample: outsider
open_count:
  description: How many targets accepted the connection.
  returned: always
  type: int
  sample: 1
"""

import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils._tcp import (
    connect,
    failure,
    source_address,
    targets_problem,
)


def probe(target, timeout):
    """Try one connection; classify the outcome as open, refused, timeout or unreachable."""
    address, port = target["address"], int(target["port"])
    started = time.monotonic()
    result = {"address": address, "port": port, "label": target.get("label")}
    try:
        with connect(address, port, timeout) as sock:
            result.update(state="open", error=None, source=sock.getsockname()[0])
    except OSError as exc:
        state, error = failure(exc)
        result.update(state=state, error=error)
    result["open"] = result["state"] == "open"
    result.setdefault("source", source_address(address, port))
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "targets": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "address": {"type": "str", "required": True},
                    "port": {"type": "int", "required": True},
                    "label": {"type": "str"},
                },
            },
            "timeout": {"type": "float", "default": 2.0},
            "parallel": {"type": "int", "default": 64},
            "vantage": {"type": "str"},
        },
        supports_check_mode=True,
    )
    targets = module.params["targets"]
    problem = targets_problem(targets)
    if problem:
        module.fail_json(msg=f"tcp_probe: {problem}")
    workers = max(1, min(module.params["parallel"], len(targets) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda t: probe(t, module.params["timeout"]), targets))
    module.exit_json(
        changed=False,
        results=results,
        vantage=module.params["vantage"],
        open_count=sum(1 for r in results if r["open"]),
    )


if __name__ == "__main__":
    main()
