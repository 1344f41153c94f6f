# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PCI inventory (NVSwitch detection), module flavour rules and Secure Boot state."""

from __future__ import annotations

import pytest
from _nvidia_fixtures import sysfs_from_recording

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_hw as hw


def inventory(tmp_path, recording):
    return hw.nvidia_inventory(hw.read_pci_devices(str(sysfs_from_recording(recording, tmp_path))))


def test_this_machine_recording_has_no_nvidia_device(tmp_path):
    devices = hw.read_pci_devices(str(sysfs_from_recording("this-machine-no-nvidia", tmp_path)))
    assert len(devices) == 6 and devices[1]["driver"] == "virtio-pci"
    assert hw.nvidia_inventory(devices) == {"gpus": [], "nvswitches": []}


def test_hgx_h100_has_eight_gpus_and_four_nvswitches(tmp_path):
    found = inventory(tmp_path, "hgx-h100-8gpu")
    assert len(found["gpus"]) == 8 and len(found["nvswitches"]) == 4
    assert {s["class"] for s in found["nvswitches"]} == {"0x068000"}
    assert found["gpus"][0]["driver"] == "nvidia"
    assert all(
        g["open_modules_supported"] and g["proprietary_modules_supported"] for g in found["gpus"]
    )


def test_pcie_card_audio_function_is_neither_gpu_nor_nvswitch(tmp_path):
    found = inventory(tmp_path, "pcie-l40s-no-nvswitch")
    assert [g["pci_address"] for g in found["gpus"]] == ["0000:41:00.0"]
    assert found["nvswitches"] == []


def test_missing_sysfs_directory_is_no_device(tmp_path):
    assert hw.read_pci_devices(str(tmp_path / "absent")) == []


@pytest.mark.parametrize(
    ("recording", "requested", "chosen"),
    [
        ("hgx-h100-8gpu", "auto", "open"),
        ("hgx-h100-8gpu", "proprietary", "proprietary"),
        ("tesla-v100-pre-turing", "auto", "proprietary"),
        ("hgx-b200-blackwell", "auto", "open"),
        ("this-machine-no-nvidia", "auto", "open"),
    ],
)
def test_choose_kernel_modules(tmp_path, recording, requested, chosen):
    assert hw.choose_kernel_modules(requested, inventory(tmp_path, recording)["gpus"]) == chosen


@pytest.mark.parametrize(
    ("recording", "requested", "message"),
    [
        ("tesla-v100-pre-turing", "open", "0x1db4 are older than Turing"),
        ("hgx-b200-blackwell", "proprietary", "Blackwell or newer and need the open"),
        ("mixed-pascal-blackwell", "auto", "no driver flavour drives both"),
    ],
)
def test_impossible_kernel_modules(tmp_path, recording, requested, message):
    with pytest.raises(ValueError, match=message):
        hw.choose_kernel_modules(requested, inventory(tmp_path, recording)["gpus"])


def test_secure_boot_efivar(tmp_path):
    efivars = tmp_path / "efi" / "efivars"
    efivars.mkdir(parents=True)
    assert hw.read_secure_boot(str(efivars)) is False  # EFI without the variable
    var = efivars / hw.SECURE_BOOT_VAR
    var.write_bytes(b"\x06\x00\x00\x00\x01")
    assert hw.read_secure_boot(str(efivars)) is True
    var.write_bytes(b"\x06\x00\x00\x00\x00")
    assert hw.read_secure_boot(str(efivars)) is False
    assert hw.read_secure_boot(str(tmp_path / "no-efi" / "efivars")) is False  # legacy BIOS


def test_mokutil_outputs():
    assert hw.parse_sb_state("SecureBoot enabled\n") is True
    assert hw.parse_sb_state("SecureBoot disabled\nPlatform is in Setup Mode\n") is False
    assert hw.parse_sb_state("EFI variables are not supported on this system\n") is None
    assert hw.parse_mok_test_key("/var/lib/dkms/mok.pub is already enrolled\n") is True
    assert hw.parse_mok_test_key("/var/lib/dkms/mok.pub is not enrolled\n") is False


def test_fabric_prefers_nvlink5_and_names_unreadable_vpd(tmp_path):
    ib = tmp_path / "class/infiniband/mlx5_0/device"
    ib.mkdir(parents=True)
    (ib / "vpd").write_bytes(b"\x82\x05\x00xxxxx\x90\x09\x00V3\x06SW_MNG\x78")
    (tmp_path / "class/infiniband/mlx5_1/device").mkdir(parents=True)  # no vpd file
    devices = hw.read_infiniband(str(tmp_path))
    assert [d["nvlink_switch"] for d in devices] == [True, False]
    found = hw.fabric([{"pci_address": "0000:05:00.0"}], devices)
    assert found["kind"] == "nvlink5" and found["vpd_unreadable"] == ["mlx5_1"]
    assert hw.fabric([], [])["kind"] == "none"
    assert hw.read_infiniband(str(tmp_path / "missing")) == []
    # On a host `device` is a link to the PCI function: its name is the address.
    pci = tmp_path / "devices/0000:c1:00.0"
    pci.mkdir(parents=True)
    (tmp_path / "class/infiniband/mlx5_9").mkdir()
    (tmp_path / "class/infiniband/mlx5_9/device").symlink_to(pci)
    assert hw.read_infiniband(str(tmp_path))[-1]["pci_address"] == "0000:c1:00.0"
