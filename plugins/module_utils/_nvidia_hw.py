# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the hardware says, before any NVIDIA software is installed (stdlib only).

- NVIDIA PCI functions from sysfs: GPUs (display class 0x03xxxx) and NVSwitches (bridge
  class 0x0680xx, "other bridge"), the way Fabric Manager needs to be decided: from the
  hardware, not from a product name.
- Which kernel module flavours a GPU can use, from its PCI device ID: Turing (0x1E00) and
  newer work with the open modules, older ones only with the proprietary modules;
  Blackwell (0x2900) and newer only with the open modules.
- Secure Boot state from the EFI variable, or from `mokutil --sb-state` output.
- NVLink5 (fourth-generation NVSwitch, HGX B200/B300): those switches are not NVIDIA PCI
  bridges; the host sees them as InfiniBand devices whose PCI VPD names them "SW_MNG"
  (switch management). NVIDIA's gpu-driver-container detects them the same way
  (`_assert_nvlink5_system` in rhel9/nvidia-driver: /sys/class/infiniband/*/device/vpd).
"""

from __future__ import annotations

import os

NVIDIA_VENDOR = 0x10DE
SYSFS = "/sys"
PCI_DEVICES = "/sys/bus/pci/devices"
INFINIBAND = "class/infiniband"
SWITCH_MANAGEMENT_VPD = b"SW_MNG"
EFIVARS = "/sys/firmware/efi/efivars"
SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

# PCI device IDs of the first Turing GPU and the first Blackwell GPU.
FIRST_TURING_DEVICE = 0x1E00
FIRST_BLACKWELL_DEVICE = 0x2900

_ATTRIBUTES = ("vendor", "device", "class", "subsystem_vendor", "subsystem_device")


def _read_hex(path):
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip(), 16)
    except (OSError, ValueError):
        return None


def read_pci_devices(root=PCI_DEVICES):
    """Every PCI function under `root` (a sysfs devices directory) as a dict of ints."""
    devices = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return devices
    for name in names:
        path = os.path.join(root, name)
        device = {"address": name}
        for attr in _ATTRIBUTES:
            device[attr] = _read_hex(os.path.join(path, attr))
        driver = os.path.join(path, "driver")
        device["driver"] = os.path.basename(os.readlink(driver)) if os.path.islink(driver) else None
        devices.append(device)
    return devices


def kind(device):
    """'gpu', 'nvswitch', 'other' (another NVIDIA function) or None (not NVIDIA)."""
    if device.get("vendor") != NVIDIA_VENDOR or device.get("class") is None:
        return None
    if device["class"] >> 16 == 0x03:
        return "gpu"
    if device["class"] >> 8 == 0x0680:
        return "nvswitch"
    return "other"


def module_support(device_id):
    """Kernel module flavours a GPU can use: {'open': bool, 'proprietary': bool}."""
    return {
        "open": device_id >= FIRST_TURING_DEVICE,
        "proprietary": device_id < FIRST_BLACKWELL_DEVICE,
    }


def _public(device):
    support = module_support(device["device"] or 0)
    return {
        "pci_address": device["address"],
        "vendor_id": f"0x{device['vendor']:04x}",
        "device_id": f"0x{(device['device'] or 0):04x}",
        "class": f"0x{device['class']:06x}",
        "driver": device["driver"],
        "open_modules_supported": support["open"],
        "proprietary_modules_supported": support["proprietary"],
    }


def nvidia_inventory(devices):
    """Split PCI functions into NVIDIA GPUs and NVSwitches."""
    gpus = [_public(d) for d in devices if kind(d) == "gpu"]
    switches = [_public(d) for d in devices if kind(d) == "nvswitch"]
    for switch in switches:
        del switch["open_modules_supported"], switch["proprietary_modules_supported"]
    return {"gpus": gpus, "nvswitches": switches}


def _slot(device):
    """The PCI address of a class device: PCI_SLOT_NAME in its uevent, else the link's target."""
    try:
        with open(os.path.join(device, "uevent"), encoding="ascii") as handle:
            for line in handle:
                if line.startswith("PCI_SLOT_NAME="):
                    return line.strip().split("=", 1)[1]
    except (OSError, UnicodeDecodeError):
        pass
    return os.path.basename(os.path.realpath(device)) if os.path.islink(device) else None


def read_infiniband(sysfs=SYSFS):
    """InfiniBand devices under `sysfs`/class/infiniband: name and whether the VPD says SW_MNG."""
    root = os.path.join(sysfs, INFINIBAND)
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    devices = []
    for name in names:
        device = os.path.join(root, name, "device")
        try:
            with open(os.path.join(device, "vpd"), "rb") as handle:
                vpd = handle.read()
        except OSError:
            vpd = None  # no VPD, or not readable (it needs root): not a switch we can name
        devices.append(
            {
                "name": name,
                "pci_address": _slot(device),
                "vpd_readable": vpd is not None,
                "nvlink_switch": bool(vpd) and SWITCH_MANAGEMENT_VPD in vpd,
            }
        )
    return devices


def fabric(nvswitches, infiniband):
    """The fabric kind: 'nvlink5' (IB-managed NVSwitch gen 4), 'nvswitch' (PCI, gen 1-3), 'none'.

    NVLink5 wins when both are seen: its Fabric Manager needs NVLSM before it starts.
    """
    switches = [d["name"] for d in infiniband if d["nvlink_switch"]]
    if switches:
        kind = "nvlink5"
    elif nvswitches:
        kind = "nvswitch"
    else:
        kind = "none"
    return {
        "kind": kind,
        "pci_nvswitches": len(nvswitches),
        "nvlink5_switches": switches,
        "infiniband_devices": [d["name"] for d in infiniband],
        "vpd_unreadable": [d["name"] for d in infiniband if not d["vpd_readable"]],
    }


def choose_kernel_modules(requested, gpus):
    """Resolve 'auto'/'open'/'proprietary' against the GPUs; raise ValueError if impossible."""
    if requested not in ("auto", "open", "proprietary"):
        raise ValueError(f"kernel modules {requested!r} is not one of auto, open, proprietary")
    old = [g["device_id"] for g in gpus if not g["open_modules_supported"]]
    new = [g["device_id"] for g in gpus if not g["proprietary_modules_supported"]]
    if old and new:
        raise ValueError(
            f"this host mixes pre-Turing GPUs ({', '.join(old)}: proprietary modules only) with "
            f"Blackwell or newer GPUs ({', '.join(new)}: open modules only); "
            "no driver flavour drives both"
        )
    if requested == "auto":
        return "proprietary" if old else "open"
    if requested == "open" and old:
        raise ValueError(
            f"GPUs {', '.join(old)} are older than Turing and need the proprietary kernel modules"
        )
    if requested == "proprietary" and new:
        raise ValueError(
            f"GPUs {', '.join(new)} are Blackwell or newer and need the open kernel modules"
        )
    return requested


def read_secure_boot(efivars=EFIVARS):
    """True/False from the SecureBoot EFI variable; False without EFI; None if unreadable."""
    if not os.path.isdir(os.path.dirname(efivars.rstrip("/"))):
        return False  # no /sys/firmware/efi: legacy BIOS boot, no Secure Boot
    try:
        with open(os.path.join(efivars, SECURE_BOOT_VAR), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return False if os.path.isdir(efivars) else None
    except OSError:
        return None
    # 4 bytes of attributes, then the one-byte value.
    return len(data) >= 5 and data[4] == 1


def parse_sb_state(text):
    """`mokutil --sb-state` output -> True/False, None when it says neither."""
    for line in (text or "").splitlines():
        words = line.lower().split()
        if "secureboot" in words:
            if "enabled" in words:
                return True
            if "disabled" in words:
                return False
    return None


def parse_mok_test_key(text):
    """`mokutil --test-key KEY` output -> True (enrolled), False (not), None (unclear)."""
    lower = (text or "").lower()
    if "is not enrolled" in lower:
        return False
    if "is already enrolled" in lower:
        return True
    return None
