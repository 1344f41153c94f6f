# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Synthetic clusters of N hosts from the recorded Debian 12 network facts (the unit tests').

Each host is the recorded VM with eth0 on its own address of 10.64.0.0/10 (IPv4 only, the
global IPv6 address removed), a data-parallel head and N-1 workers.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECORDED = json.loads(
    (REPO / "tests/unit/fixtures/facts/debian12_vm_network.json").read_text(encoding="utf-8")
)
SETTINGS = {
    "cluster_topology": "data_parallel",
    "cluster_network": ["10.64.0.0/10"],
    "cluster_client_cidrs": ["192.0.2.0/24"],
    "cluster_admin_cidrs": ["198.51.100.0/28"],
}


def name(index):
    return f"gpu{index:05d}"


def address(index):
    return str(ipaddress.ip_address("10.64.0.1") + index)


def facts(index):
    data = copy.deepcopy(RECORDED)
    data["eth0"]["ipv4"]["address"] = address(index)
    data["eth0"]["ipv6"] = [a for a in data["eth0"]["ipv6"] if a["scope"] == "link"]
    return data


def hostvars(count):
    return {
        name(i): {
            "ansible_facts": facts(i),
            "cluster_node_role": "head" if i == 0 else "worker",
        }
        for i in range(count)
    }
