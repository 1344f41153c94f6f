# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nvidia_cuda_compat, nvidia_cuda_select and nvidia_driver_packages as Jinja sees them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter import nvidia_cuda_compat as cuda_filters
from ansible_collections.hardened.vllm.plugins.filter import nvidia_driver_packages as pkg_filter

FILTERS = {**cuda_filters.FilterModule().filters(), **pkg_filter.FilterModule().filters()}

H100 = {
    "pci_address": "0000:18:00.0",
    "device_id": "0x2330",
    "open_modules_supported": True,
    "proprietary_modules_supported": True,
}
V100 = {
    "pci_address": "0000:3b:00.0",
    "device_id": "0x1db4",
    "open_modules_supported": False,
    "proprietary_modules_supported": True,
}


def facts(gpus=(H100,), nvswitch=False, **over):
    base = {
        "distribution": "Ubuntu",
        "distribution_major_version": "24",
        "distribution_version": "24.04",
        "distribution_release": "noble",
        "architecture": "x86_64",
        "kernel": "6.8.0-85-generic",
        "nvidia": {"gpus": list(gpus), "fabric_manager_required": nvswitch},
    }
    base.update(over)
    return base


def test_compat_filter():
    verdict = FILTERS["nvidia_cuda_compat"]("580.95.05", "cu130")
    assert verdict["supported"] and verdict["max_cuda"] == "13.0"
    assert not FILTERS["nvidia_cuda_compat"]("535.261.03", "12.9")["supported"]
    assert FILTERS["nvidia_cuda_compat"]("535.261.03", "12.9", True)["supported"]


@pytest.mark.parametrize("bad", [None, "", "five"])
def test_compat_filter_errors_name_the_filter(bad):
    with pytest.raises(AnsibleFilterError, match=r"hardened\.vllm\.nvidia_cuda_compat"):
        FILTERS["nvidia_cuda_compat"](bad, "12.9")


def test_select_filter():
    assert FILTERS["nvidia_cuda_select"]("575.57.08", ["cu130", "cu129"]) == "cu129"
    assert FILTERS["nvidia_cuda_select"]("535.261.03", ["cu130", "cu129"]) is None
    with pytest.raises(AnsibleFilterError, match="builds must be a list"):
        FILTERS["nvidia_cuda_select"]("575.57.08", "cu129")


def test_packages_auto_resolves_open_and_fabric_manager():
    chosen = FILTERS["nvidia_driver_packages"](
        facts(nvswitch=True), {"source": "cuda", "branch": "580"}
    )
    assert chosen["kernel_modules"] == "open" and chosen["fabric_manager"] is True
    assert chosen["fabric"] == "nvswitch" and "nvidia-fabricmanager" in chosen["packages"]
    assert chosen["candidate_version"] is None


def test_packages_auto_picks_proprietary_for_pre_turing():
    chosen = FILTERS["nvidia_driver_packages"](
        facts(gpus=[V100]), {"source": "cuda", "branch": "580"}
    )
    assert chosen["kernel_modules"] == "proprietary" and "nvidia-dkms-580" in chosen["packages"]


def test_packages_fabric_manager_never_and_always():
    never = FILTERS["nvidia_driver_packages"](
        facts(nvswitch=True), {"source": "cuda", "branch": "580", "fabric_manager": "never"}
    )
    assert never["fabric_manager"] is False and never["fabric_manager_packages"] == []
    always = FILTERS["nvidia_driver_packages"](
        facts(), {"source": "cuda", "branch": "580", "fabric_manager": "always"}
    )
    assert always["fabric_manager"] is True


@pytest.mark.parametrize(
    ("the_facts", "settings", "message"),
    [
        (
            facts(gpus=[V100]),
            {"source": "cuda", "branch": "580", "kernel_modules": "open", "host": "gpu7"},
            "host gpu7: nvidia_driver_kernel_modules: GPUs 0x1db4 are older than Turing",
        ),
        (
            facts(),
            {"source": "cuda", "branch": "580", "fabric_manager": "yes"},
            "'yes' is not one of auto",
        ),
        (
            {"distribution": "Ubuntu"},
            {"source": "cuda", "branch": "580"},
            "run hardened.vllm.nvidia_gpu_facts first",
        ),
        (facts(), "cuda", "settings must be a mapping"),
        ([], {}, "input must be ansible_facts"),
    ],
)
def test_packages_refusals(the_facts, settings, message):
    with pytest.raises(AnsibleFilterError, match=message):
        FILTERS["nvidia_driver_packages"](the_facts, settings)


def test_packages_with_candidates():
    settings = {"source": "cuda", "branch": "580", "kernel_headers": False}
    chosen = FILTERS["nvidia_driver_packages"](facts(), settings)
    good = {
        p: {"installed": None, "candidate": "580.95.05-0ubuntu1", "held": False}
        for p in chosen["lockstep"]
    }
    assert (
        FILTERS["nvidia_driver_packages"](facts(), settings, good)["candidate_version"]
        == "580.95.05"
    )
    skewed = dict(good, **{chosen["kernel_module_package"]: {"candidate": "580.82.07-0ubuntu1"}})
    with pytest.raises(AnsibleFilterError, match=r"set nvidia_driver_version: '580\.82\.07'"):
        FILTERS["nvidia_driver_packages"](facts(), settings, skewed)


def test_packages_follow_the_fabric_the_facts_found():
    nvlink5 = facts()
    nvlink5["nvidia"]["fabric"] = {"kind": "nvlink5"}
    chosen = FILTERS["nvidia_driver_packages"](nvlink5, {"source": "cuda", "branch": "580"})
    assert chosen["fabric"] == "nvlink5" and "nvlsm" in chosen["packages"]
    assert "nvidia-imex" in chosen["hold"] and chosen["kernel_modules_load"] == ["ib_umad"]
    never = FILTERS["nvidia_driver_packages"](
        nvlink5, {"source": "cuda", "branch": "580", "fabric_manager": "never"}
    )
    assert never["fabric"] == "none" and "nvlsm" not in never["packages"]


def test_packages_check_installed_versions():
    settings = {"source": "cuda", "branch": "580", "host": "gpu1"}
    chosen = FILTERS["nvidia_driver_packages"](facts(nvswitch=True), settings)
    installed = {p: {"installed": "580.95.05-0ubuntu1"} for p in chosen["lockstep"]}
    ok = FILTERS["nvidia_driver_packages"](facts(nvswitch=True), settings, installed, True)
    assert ok["candidate_version"] == "580.95.05"
    installed["nvidia-fabricmanager"] = {"installed": "580.105.08-0ubuntu1"}
    with pytest.raises(AnsibleFilterError, match="host gpu1: the installed driver packages differ"):
        FILTERS["nvidia_driver_packages"](facts(nvswitch=True), settings, installed, True)
