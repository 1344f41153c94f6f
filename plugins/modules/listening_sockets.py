#!/usr/bin/python
# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: listening_sockets
short_description: Listening TCP and bound UDP sockets, with owners and network namespaces
version_added: 0.1.0
author:
  - hardened.vllm maintainers (@hardened-vllm)
description:
  - Reports every listening TCP socket and every bound, unconnected UDP socket (what C(ss -ltnu)
    lists) straight from the kernel, with the process that holds it and the network namespace
    it lives in.
  - Reads the kernel's C(NETLINK_SOCK_DIAG) interface, like C(ss). It is the only interface that
    tells, per socket, whether an IPv6 socket has C(IPV6_V6ONLY) set, so
    RV(ansible_facts.listening_sockets[].dual_stack) is exact. C(/proc/net/tcp6) and C(udp6)
    do not carry that flag.
  - Falls back to C(/proc/net/{tcp,tcp6,udp,udp6}) per protocol and family when the kernel
    cannot answer (no C(inet_diag)/C(udp_diag) support, or netlink blocked). For sockets read
    that way the v6only flag is the namespace's C(net.ipv6.bindv6only) default and
    RV(ansible_facts.listening_sockets[].v6only_source) says C(sysctl); a program that set
    C(IPV6_V6ONLY) itself is then misreported.
  - Maps socket inodes to processes through C(/proc/<pid>/fd). Processes that exit during the
    scan are skipped. Without root, sockets of other users' processes have no owner.
  - Needs only the Python standard library on the managed host. Linux only.
requirements:
  - Python 3 on the managed host (standard library only); Linux /proc
options:
  namespaces:
    description:
      - Network namespaces to read besides the module's own, which is always read.
      - V(all) reads every namespace that a process (C(/proc/<pid>/ns/net)) or a name under
        C(/run/netns) refers to; namespaces that vanish or cannot be entered are skipped with a
        warning in RV(ansible_facts.listening_sockets_summary.warnings).
      - A number is a process id, whose namespace is read. A plain name is a namespace under
        C(/run/netns) (as made by C(ip netns add)). An absolute path is any namespace file, for
        example a container runtime's bind mount. These must be readable or the module fails.
      - Entering another namespace needs C(CAP_SYS_ADMIN). Without it, namespaces reached
        through a process are read from C(/proc/<pid>/net) instead.
    type: list
    elements: str
    default: []
  protocols:
    description:
      - Which protocols to report.
    type: list
    elements: str
    choices: [tcp, udp]
    default: [tcp, udp]
  method:
    description:
      - V(auto) uses sock_diag and falls back to C(/proc/net) per protocol and family.
      - V(sock_diag) fails instead of falling back.
      - V(proc) only reads C(/proc/net); dual-stack reporting then relies on C(net.ipv6.bindv6only).
    type: str
    choices: [auto, sock_diag, proc]
    default: auto
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
  - A socket shared by several processes (after C(fork)) is reported once, with all pids in
    RV(ansible_facts.listening_sockets[].pids) and the lowest in
    RV(ansible_facts.listening_sockets[].pid).
  - Socket inodes are unique across namespaces, so one scan of C(/proc) finds the owners of
    sockets in every namespace.
seealso:
  - module: community.general.listen_ports_facts
    description: Parses C(ss)/C(netstat) output and runs C(ps) twice per socket.
"""

EXAMPLES = r"""
- name: Read the host's listening sockets
  hardened.vllm.listening_sockets:

- name: Fail when something listens on every address
  ansible.builtin.assert:
    that: ansible_facts.listening_sockets | selectattr('wildcard') | list | length == 0
    fail_msg: >-
      Wildcard listeners: {{ ansible_facts.listening_sockets | selectattr('wildcard')
      | map(attribute='address') | zip(ansible_facts.listening_sockets | selectattr('wildcard')
      | map(attribute='port')) | list }}

- name: Include the sockets of every container and named network namespace
  hardened.vllm.listening_sockets:
    namespaces: [all]

- name: Only TCP, only the namespace of one process and the one made by 'ip netns add lab'
  hardened.vllm.listening_sockets:
    protocols: [tcp]
    namespaces:
      - "{{ vllm_main_pid }}"
      - lab

- name: Dual-stack listeners (an IPv6 '::' socket that also accepts IPv4)
  ansible.builtin.debug:
    msg: >-
      {{ ansible_facts.listening_sockets | selectattr('dual_stack')
         | map(attribute='port') | list }}
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: complex
  contains:
    listening_sockets:
      description:
        - One item per socket, ordered by namespace, protocol, port, family, address.
      returned: always
      type: list
      elements: dict
      contains:
        protocol:
          description: C(tcp) or C(udp).
          returned: always
          type: str
          sample: tcp
        family:
          description: Address family of the socket, C(ipv4) or C(ipv6).
          returned: always
          type: str
          sample: ipv6
        address:
          description:
            - Local address in its normal text form (as C(inet_ntop) and C(ss) write it).
            - An IPv6 socket bound to an IPv4-mapped address reads C(::ffff:127.0.0.1).
          returned: always
          type: str
          sample: "::"
        port:
          description: Local port.
          returned: always
          type: int
          sample: 8000
        wildcard:
          description: Bound to the unspecified address (C(0.0.0.0), C(::) or C(::ffff:0.0.0.0)).
          returned: always
          type: bool
          sample: true
        loopback:
          description: Bound to a loopback address (C(127.0.0.0/8), C(::1) or their mapped form).
          returned: always
          type: bool
          sample: false
        mapped_ipv4:
          description: For an IPv6 socket bound to an IPv4-mapped address, that IPv4 address;
            it only accepts IPv4 traffic. Otherwise null.
          returned: always
          type: str
          sample: null
        dual_stack:
          description: An IPv6 C(::) socket without C(IPV6_V6ONLY), which also accepts IPv4 on every
            address. Such a socket is reachable over both families.
          returned: always
          type: bool
          sample: true
        v6only:
          description: The socket's C(IPV6_V6ONLY) flag; null for IPv4 sockets.
          returned: always
          type: bool
          sample: false
        v6only_source:
          description: C(socket) when read from the socket (sock_diag), C(sysctl) when assumed from
            C(net.ipv6.bindv6only) (C(/proc/net)); null for IPv4 sockets.
          returned: always
          type: str
          sample: socket
        interface:
          description: Device the socket is bound to with C(SO_BINDTODEVICE), or null (not bound, or
            not known because the socket was read from C(/proc/net)).
          returned: always
          type: str
          sample: null
        source:
          description: Where the socket was read, C(sock_diag) or C(proc).
          returned: always
          type: str
          sample: sock_diag
        inode:
          description: Socket inode, as in C(/proc/<pid>/fd/N -> socket:[inode]).
          returned: always
          type: int
          sample: 283731
        uid:
          description: Owner uid of the socket (the uid that created it).
          returned: always
          type: int
          sample: 0
        user:
          description: User name of RV(ansible_facts.listening_sockets[].uid), null if it has none.
          returned: always
          type: str
          sample: root
        pid:
          description: Lowest pid holding the socket open; null when no readable process holds it.
          returned: always
          type: int
          sample: 1234
        pids:
          description: Every pid holding the socket open.
          returned: always
          type: list
          elements: int
          sample: [1234, 1240]
        process:
          description: Name (C(/proc/<pid>/comm)) of RV(ansible_facts.listening_sockets[].pid).
          returned: always
          type: str
          sample: python3
        cmdline:
          description: Command line of RV(ansible_facts.listening_sockets[].pid), one item per
            argument.
          returned: always
          type: list
          elements: str
          sample: [/opt/vllm/bin/python, -m, vllm.entrypoints.openai.api_server, --port, "8000"]
        netns:
          description: Id (inode) of the network namespace holding the socket, as in
            C(readlink /proc/<pid>/ns/net).
          returned: always
          type: int
          sample: 4026531840
        netns_is_host:
          description: Whether that namespace is the host's (PID 1's; see
            RV(ansible_facts.listening_sockets_summary.host_netns_source)).
          returned: always
          type: bool
          sample: true
        netns_names:
          description: Names of the namespace under C(/run/netns), if any.
          returned: always
          type: list
          elements: str
          sample: []
    listening_sockets_summary:
      description: Counts, the namespaces read and anything that could not be read.
      returned: always
      type: dict
      contains:
        total:
          description: Number of sockets reported.
          returned: always
          type: int
          sample: 7
        tcp:
          description: TCP sockets.
          returned: always
          type: int
          sample: 5
        udp:
          description: UDP sockets.
          returned: always
          type: int
          sample: 2
        wildcard:
          description: Sockets bound to the unspecified address.
          returned: always
          type: int
          sample: 2
        dual_stack:
          description: Dual-stack IPv6 sockets.
          returned: always
          type: int
          sample: 1
        loopback:
          description: Sockets bound to loopback.
          returned: always
          type: int
          sample: 3
        without_process:
          description: Sockets no readable process holds (kernel sockets, or other users'
            without root).
          returned: always
          type: int
          sample: 0
        sources:
          description: The sources the sockets were read from.
          returned: always
          type: list
          elements: str
          sample: [sock_diag]
        host_netns:
          description: Id of the host's network namespace.
          returned: always
          type: int
          sample: 4026531840
        host_netns_source:
          description: C(pid1) when read from PID 1; C(assumed) when PID 1's namespace was not
            readable
            and the module's own namespace was taken as the host's.
          returned: always
          type: str
          sample: pid1
        namespaces:
          description: The namespaces read, with C(id), C(is_host), C(names) and C(bindv6only).
          returned: always
          type: list
          elements: dict
          sample: [{id: 4026531840, is_host: true, names: [], bindv6only: false}]
        warnings:
          description: Fallbacks taken and namespaces skipped.
          returned: always
          type: list
          elements: str
          sample: []
"""

import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils._socket_sources import gather
from ansible_collections.hardened.vllm.plugins.module_utils._sockets import SocketError

ARGUMENT_SPEC = {
    "namespaces": {"type": "list", "elements": "str", "default": []},
    "protocols": {
        "type": "list",
        "elements": "str",
        "choices": ["tcp", "udp"],
        "default": ["tcp", "udp"],
    },
    "method": {"type": "str", "choices": ["auto", "sock_diag", "proc"], "default": "auto"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if platform.system() != "Linux":
        module.fail_json(msg=f"listening_sockets: needs Linux, this host runs {platform.system()}")
    protocols = [p for p in ("tcp", "udp") if p in module.params["protocols"]]
    try:
        sockets, summary = gather(
            namespaces=module.params["namespaces"],
            protocols=protocols,
            method=module.params["method"],
        )
    except (SocketError, OSError) as exc:
        module.fail_json(msg=f"listening_sockets: {exc}")
    module.exit_json(
        changed=False,
        ansible_facts={
            "listening_sockets": sockets,
            "listening_sockets_summary": summary,
        },
    )


if __name__ == "__main__":
    main()
