#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about a host's NVIDIA GPUs, NVSwitches, loaded driver and driver packages."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_gpu_facts
short_description: Facts about NVIDIA GPUs, NVSwitches, the loaded driver and its packages
version_added: 0.1.0
description:
  - Reads the NVIDIA PCI functions from sysfs (GPUs and NVSwitches), the Secure Boot state,
    the loaded kernel module (C(/proc/driver/nvidia/version)) and, when C(nvidia-smi) answers,
    the driver version, the CUDA version the driver supports and each GPU's compute capability.
  - Optionally reports the installed and candidate versions of packages (apt) or the installed
    versions (rpm), so a role can check that driver packages match before it installs them.
  - Works on hosts without any NVIDIA device and changes nothing.
author:
  - hardened.vllm maintainers (@hardened-vllm)
requirements:
  - Python 3 on the managed host (standard library only); Linux /sys
  - nvidia-smi and mokutil on the managed host where present (without them the facts they
    give are left out)
  - apt-mark (Debian, Ubuntu) or rpm (RHEL) on the managed host
options:
  packages:
    description:
      - Packages whose installed and candidate versions, and apt hold state, to report.
    type: list
    elements: str
    default: []
  nvidia_smi:
    description:
      - Run C(nvidia-smi) when it is installed and a kernel module is loaded.
    type: bool
    default: true
  mok_key:
    description:
      - Public key (DER) that signs DKMS-built modules; under Secure Boot the module reports
        whether it is enrolled (C(mokutil --test-key)).
    type: path
    default: /var/lib/dkms/mok.pub
  sysfs_root:
    description:
      - Where sysfs is mounted. Tests point it at a copy of a recorded layout
        (C(bus/pci/devices), C(class/infiniband)).
    type: path
    default: /sys
  pci_devices:
    description:
      - The sysfs directory of PCI functions; default C(<sysfs_root>/bus/pci/devices).
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    support: full
    platforms: linux
notes:
  - Kernel module flavour support is derived from PCI device IDs (Turing, 0x1E00, and newer
    work with the open modules; Blackwell, 0x2900, and newer only with them).
"""

EXAMPLES = r"""
- name: Read NVIDIA facts
  hardened.vllm.nvidia_gpu_facts:

- name: Refuse a driver that cannot run CUDA 12.9 builds
  ansible.builtin.assert:
    that: >-
      (ansible_facts.nvidia.driver_version | hardened.vllm.nvidia_cuda_compat('12.9')).supported
    fail_msg: "driver {{ ansible_facts.nvidia.driver_version }} is too old for CUDA 12.9"
  when: ansible_facts.nvidia.driver_version is not none

- name: Read the fabric from a recorded sysfs layout (tests)
  hardened.vllm.nvidia_gpu_facts:
    sysfs_root: /srv/fixtures/sysfs/hgx-b200-nvlink5
    nvidia_smi: false

- name: Compare driver package candidates
  hardened.vllm.nvidia_gpu_facts:
    packages: [nvidia-smi, libcuda1, nvidia-kernel-dkms]
"""

RETURN = r"""
ansible_facts:
  description: Facts published under C(ansible_facts.nvidia).
  returned: always
  type: dict
  contains:
    nvidia:
      description: NVIDIA hardware, driver and package facts.
      returned: always
      type: dict
      contains:
        gpu_present:
          description: Whether at least one NVIDIA GPU is on the PCI bus.
          type: bool
          sample: true
        gpus:
          description: NVIDIA GPUs on the PCI bus (no driver needed).
          type: list
          elements: dict
          sample:
            - pci_address: "0000:17:00.0"
              vendor_id: "0x10de"
              device_id: "0x2330"
              class: "0x030200"
              driver: nvidia
              open_modules_supported: true
              proprietary_modules_supported: true
        nvswitches:
          description:
            - NVSwitch functions on the PCI bus (bridge class 0x0680), NVSwitch generations 1-3
              (HGX A100, H100, H200).
          type: list
          elements: dict
        fabric:
          description:
            - Which NVLink fabric the host has. V(nvlink5) when an InfiniBand device's PCI VPD
              contains C(SW_MNG) (fourth-generation NVSwitch, HGX B200/B300, managed by NVLSM
              over InfiniBand), V(nvswitch) for PCI NVSwitches, V(none) otherwise.
            - C(vpd_unreadable) lists InfiniBand devices whose VPD could not be read (run as root).
          type: dict
          sample:
            kind: nvlink5
            pci_nvswitches: 0
            nvlink5_switches: [mlx5_4, mlx5_5]
            infiniband_devices: [mlx5_0, mlx5_4, mlx5_5]
            vpd_unreadable: []
        fabric_manager_required:
          description: Whether Fabric Manager is needed (any NVSwitch, PCI or NVLink5).
          type: bool
        nvlsm_required:
          description: Whether NVLSM and C(ib_umad) are needed (NVLink5).
          type: bool
        persistence_mode:
          description:
            - Whether persistence mode is on for every GPU (nvidia-smi); null when nvidia-smi
              did not answer.
          type: bool
        open_modules_supported:
          description: Whether every GPU can use the open kernel modules.
          type: bool
        proprietary_modules_supported:
          description: Whether every GPU can use the proprietary kernel modules.
          type: bool
        secure_boot:
          description: Secure Boot state; null when it cannot be read.
          type: bool
        mok_enrolled:
          description: Whether O(mok_key) is enrolled; null when unknown or not applicable.
          type: bool
        loaded_module:
          description: The loaded kernel module, from /proc/driver/nvidia/version.
          type: dict
          sample: {version: "580.95.05", flavor: open}
        driver_version:
          description: Driver version from nvidia-smi, else from the loaded module; null when none.
          type: str
          sample: "580.95.05"
        cuda_version:
          description: Highest CUDA version the driver supports (nvidia-smi, else NVIDIA's table).
          type: str
          sample: "13.0"
        compute_capabilities:
          description: Sorted distinct compute capabilities of the GPUs (from nvidia-smi).
          type: list
          elements: str
          sample: ["9.0"]
        smi:
          description: What nvidia-smi reported (available, gpus, error).
          type: dict
        packages:
          description: Per package, installed and candidate versions and whether it is held.
          type: dict
          sample: {nvidia-smi: {installed: null, candidate: "535.261.03-1", held: false}}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_compat as compat
from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_hw as hw
from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_packages as pkgs
from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_smi as smi

PROC_VERSION = "/proc/driver/nvidia/version"
C_ENV = {"LC_ALL": "C", "LANG": "C"}


def _run(module, argv):
    return module.run_command(argv, environ_update=C_ENV, check_rc=False)


def _loaded_module():
    try:
        with open(PROC_VERSION, encoding="utf-8") as handle:
            return smi.parse_proc_version(handle.read())
    except OSError:
        return None


def _query_smi(module, binary):
    fields = ",".join(smi.QUERY_FIELDS)
    rc, out, err = _run(module, [binary, f"--query-gpu={fields}", "--format=csv,noheader,nounits"])
    if rc != 0:
        return {"available": False, "error": (err or out).strip() or f"nvidia-smi exited {rc}"}
    result = {"available": True, "error": None}
    try:
        result["gpus"] = smi.parse_query_csv(out)
        rc, xml_out, err = _run(module, [binary, "-q", "-x"])
        result["xml"] = smi.parse_smi_xml(xml_out) if rc == 0 else None
    except smi.ParseError as exc:
        module.fail_json(msg=f"nvidia-smi answered in a format this module does not know: {exc}")
    return result


def _secure_boot(module):
    state = hw.read_secure_boot()
    mokutil = module.get_bin_path("mokutil")
    if state is None and mokutil:
        _rc, out, err = _run(module, [mokutil, "--sb-state"])
        state = hw.parse_sb_state(out + err)
    enrolled = None
    key = module.params["mok_key"]
    if state and mokutil and os.path.exists(key):
        _rc, out, err = _run(module, [mokutil, "--test-key", key])
        enrolled = hw.parse_mok_test_key(out + err)
    return state, enrolled


def _packages(module, names):
    if not names:
        return {}
    apt_cache = module.get_bin_path("apt-cache")
    if apt_cache:
        rc, out, err = _run(module, [apt_cache, "policy", *names])
        if rc != 0:
            module.fail_json(msg=f"apt-cache policy {' '.join(names)} failed: {err.strip()}")
        policy = pkgs.parse_apt_policy(out)
        _rc, held_out, _err = _run(
            module, [module.get_bin_path("apt-mark", required=True), "showhold"]
        )
        held = set(held_out.split())
        return {
            name: dict(policy.get(name, {"installed": None, "candidate": None}), held=name in held)
            for name in names
        }
    rpm = module.get_bin_path("rpm", required=True)
    result = {}
    for name in names:
        rc, out, _err = _run(module, [rpm, "-q", "--qf", "%{VERSION}-%{RELEASE}", name])
        result[name] = {
            "installed": out.strip() if rc == 0 else None,
            "candidate": None,
            "held": None,
        }
    return result


def gather(module):
    """All facts; split out so tests can call it with a fake module."""
    sysfs = module.params["sysfs_root"]
    pci = module.params["pci_devices"] or os.path.join(sysfs, "bus/pci/devices")
    inventory = hw.nvidia_inventory(hw.read_pci_devices(pci))
    gpus = inventory["gpus"]
    fabric = hw.fabric(inventory["nvswitches"], hw.read_infiniband(sysfs))
    secure_boot, enrolled = _secure_boot(module)
    loaded = _loaded_module()
    facts = {
        "gpu_present": bool(gpus),
        "gpus": gpus,
        "nvswitches": inventory["nvswitches"],
        "fabric": fabric,
        "fabric_manager_required": fabric["kind"] != "none",
        "nvlsm_required": fabric["kind"] == "nvlink5",
        "persistence_mode": None,
        "open_modules_supported": all(g["open_modules_supported"] for g in gpus),
        "proprietary_modules_supported": all(g["proprietary_modules_supported"] for g in gpus),
        "secure_boot": secure_boot,
        "mok_enrolled": enrolled,
        "loaded_module": loaded,
        "driver_version": loaded["version"] if loaded else None,
        "cuda_version": None,
        "compute_capabilities": [],
        "smi": {"available": False, "error": "not run", "gpus": []},
    }
    binary = module.get_bin_path("nvidia-smi")
    if module.params["nvidia_smi"] and binary and loaded:
        result = _query_smi(module, binary)
        xml = result.pop("xml", None) or {}
        facts["smi"] = {"gpus": [], **result}
        smi_gpus = result.get("gpus") or []
        if smi_gpus and smi_gpus[0].get("driver_version"):
            facts["driver_version"] = smi_gpus[0]["driver_version"]
        facts["cuda_version"] = xml.get("cuda_version")
        modes = [g.get("persistence_mode") for g in smi_gpus]
        if modes and all(modes):
            facts["persistence_mode"] = all(m == "Enabled" for m in modes)
        facts["compute_capabilities"] = sorted(
            {g["compute_cap"] for g in smi_gpus if g.get("compute_cap")}
        )
    if facts["driver_version"] and not facts["cuda_version"]:
        facts["cuda_version"] = compat.cuda_max_for_driver(facts["driver_version"])
    facts["packages"] = _packages(module, module.params["packages"])
    return facts


def main():
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "nvidia_smi": {"type": "bool", "default": True},
            "mok_key": {"type": "path", "default": "/var/lib/dkms/mok.pub"},
            "sysfs_root": {"type": "path", "default": hw.SYSFS},
            "pci_devices": {"type": "path"},
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, ansible_facts={"nvidia": gather(module)})


if __name__ == "__main__":
    main()
