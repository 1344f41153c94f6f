# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One row per distribution x driver branch (575, 580, 590+): the package table as a spec.

Every row is an HGX host with PCI NVSwitches (open modules, persistence daemon, no kernel
headers, CUDA repository). Names follow NVIDIA's driver installation guide (compute-only
installs; "Recent updates": Ubuntu 590 renames, pinning packages) and NVIDIA's
gpu-driver-container (ubuntu24.04/install.sh, rhel9/install.sh, rhel10/install.sh: from 580
nvidia-fabricmanager, libnvidia-nscq, libnvsdm (not on arm64) and nvidia-imex, unversioned,
installed at the driver's version and held).
"""

from __future__ import annotations

import pytest
from test_nvidia_packages import FACTS

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_packages as pkgs

FACTS = dict(
    FACTS,
    rhel9={
        "distribution": "RedHat",
        "distribution_major_version": "9",
        "distribution_version": "9.6",
        "distribution_release": "Plow",
        "architecture": "x86_64",
        "kernel": "5.14.0-570.el9.x86_64",
    },
)

UBUNTU_575 = [
    "libnvidia-compute-575",
    "nvidia-dkms-575-open",
    "nvidia-utils-575",
    "nvidia-compute-utils-575",
    "nvidia-fabricmanager-575",
    "libnvidia-nscq-575",
]
UBUNTU_580 = [
    "libnvidia-compute-580",
    "nvidia-dkms-580-open",
    "nvidia-utils-580",
    "nvidia-compute-utils-580",
    "nvidia-fabricmanager",
    "libnvidia-nscq",
    "libnvsdm",
]
UBUNTU_590 = [
    "libnvidia-compute",
    "nvidia-dkms-open",
    "nvidia-utils",
    "nvidia-compute-utils",
    "nvidia-fabricmanager",
    "libnvidia-nscq",
    "libnvsdm",
]
DEBIAN = ["nvidia-driver-cuda", "nvidia-kernel-open-dkms", "nvidia-persistenced"]
RHEL = ["nvidia-driver-cuda", "kmod-nvidia-open-dkms", "nvidia-persistenced"]
FM_575 = ["nvidia-fabricmanager-575", "libnvidia-nscq-575"]
RHEL_FM_575 = ["nvidia-fabric-manager", "libnvidia-nscq-575"]
FM = ["nvidia-fabricmanager", "libnvidia-nscq", "libnvsdm"]
FM_ARM = ["nvidia-fabricmanager", "libnvidia-nscq"]  # no libnvsdm for sbsa

ROWS = [
    ("ubuntu2204", "575", UBUNTU_575),
    ("ubuntu2204", "580", UBUNTU_580),
    ("ubuntu2204", "590", UBUNTU_590),
    ("ubuntu2404", "575", UBUNTU_575),
    ("ubuntu2404", "580", UBUNTU_580),
    ("ubuntu2404", "590", UBUNTU_590),
    ("debian12", "575", DEBIAN + FM_575),
    ("debian12", "580", DEBIAN + FM),
    ("debian12", "590", DEBIAN + FM),
    ("debian13", "575", DEBIAN + FM_575),
    ("debian13", "580", DEBIAN + FM_ARM),
    ("debian13", "590", DEBIAN + FM_ARM),
    ("rhel9", "575", RHEL + RHEL_FM_575),
    ("rhel9", "580", RHEL + FM),
    ("rhel9", "590", RHEL + FM),
    ("rhel10", "575", RHEL + RHEL_FM_575),
    ("rhel10", "580", RHEL + FM),
    ("rhel10", "590", RHEL + FM),
]


def _settings(branch, **over):
    base = {
        "source": "cuda",
        "branch": branch,
        "version": "",
        "kernel_modules": "open",
        "fabric": "nvswitch",
        "persistenced": True,
        "kernel_headers": False,
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("host", "branch", "packages"), ROWS, ids=[f"{h}-{b}" for h, b, _p in ROWS]
)
def test_row(host, branch, packages):
    chosen = pkgs.select(FACTS[host], _settings(branch))
    assert chosen["packages"] == packages
    # Everything the driver needs is held, at one version: Fabric Manager included.
    assert chosen["hold"] == packages == chosen["lockstep"]
    assert chosen["pin_version"] == f"{branch}.*"
    assert chosen["fabric"] == "nvswitch" and chosen["nvlink5_tools"] == []
    if host.startswith("rhel"):
        assert chosen["install"] == [f"{p}-{branch}*" for p in packages]
        assert chosen["foreign_origins"] == []
        assert chosen["epel"] == {
            "package": "epel-release",
            "url": f"https://dl.fedoraproject.org/pub/epel/epel-release-latest-{host[4:]}.noarch.rpm",
            "key_url": f"https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-{host[4:]}",
        }
    else:
        assert chosen["install"] == packages
        assert chosen["foreign_origins"] == ["Ubuntu" if host.startswith("ubuntu") else "Debian"]
        assert chosen["epel"] is None


def test_every_supported_distribution_and_branch_has_a_row():
    assert {(h, b) for h, b, _p in ROWS} == {
        (h, b)
        for h in ("ubuntu2204", "ubuntu2404", "debian12", "debian13", "rhel9", "rhel10")
        for b in ("575", "580", "590")
    }


def test_branches_after_590_keep_the_590_names():
    assert pkgs.select(FACTS["ubuntu2404"], _settings("595"))["packages"] == UBUNTU_590


@pytest.mark.parametrize(
    ("host", "branch", "fabric"),
    [
        (
            "ubuntu2404",
            "580",
            ["nvidia-fabricmanager", "libnvidia-nscq", "libnvsdm", "nvidia-imex"],
        ),
        (
            "ubuntu2404",
            "575",
            ["nvidia-fabricmanager-575", "libnvidia-nscq-575", "nvidia-imex-575"],
        ),
        ("rhel10", "590", ["nvidia-fabricmanager", "libnvidia-nscq", "libnvsdm", "nvidia-imex"]),
        ("debian13", "580", ["nvidia-fabricmanager", "libnvidia-nscq", "nvidia-imex"]),
    ],
)
def test_nvlink5_adds_imex_held_and_nvlsm_not_held(host, branch, fabric):
    chosen = pkgs.select(FACTS[host], _settings(branch, fabric="nvlink5"))
    assert chosen["fabric_manager_packages"] == fabric
    assert set(fabric) <= set(chosen["lockstep"])
    assert chosen["nvlink5_tools"] == ["nvlsm", "infiniband-diags"]
    assert chosen["packages"][-2:] == ["nvlsm", "infiniband-diags"]
    assert not {"nvlsm", "infiniband-diags"} & set(chosen["hold"])
    assert chosen["kernel_modules_load"] == ["ib_umad"]


def test_no_fabric_installs_no_fabric_manager():
    chosen = pkgs.select(FACTS["ubuntu2404"], _settings("580", fabric="none"))
    assert chosen["fabric_manager_packages"] == [] and chosen["kernel_modules_load"] == []
    assert not any("fabric" in p or "nscq" in p for p in chosen["packages"])


def test_ubuntu_archive_keeps_its_own_server_names_and_pins_nvidia_away():
    chosen = pkgs.select(FACTS["ubuntu2404"], _settings("580", source="distribution"))
    assert chosen["packages"] == [
        "nvidia-headless-580-server-open",
        "nvidia-utils-580-server",
        "nvidia-fabricmanager-580",
        "libnvidia-nscq-580",
    ]
    assert chosen["foreign_origins"] == ["NVIDIA"]


@pytest.mark.parametrize(
    ("distribution", "epel"),
    [
        ("Rocky", {"package": "epel-release", "url": None}),
        ("AlmaLinux", {"package": "epel-release", "url": None}),
        ("OracleLinux", {"package": "oracle-epel-release-el9", "url": None}),
    ],
)
def test_epel_comes_from_the_rebuilds_own_extras(distribution, epel):
    facts = dict(FACTS["rhel9"], distribution=distribution)
    assert pkgs.select(facts, _settings("580"))["epel"] == epel


def test_installed_versions_must_match_exactly():
    chosen = pkgs.select(FACTS["rhel9"], _settings("580"))
    same = {p: {"installed": "580.95.05-1.el9", "candidate": None} for p in chosen["lockstep"]}
    assert pkgs.check_installed(same, chosen) == "580.95.05"
    skewed = dict(same, **{"nvidia-fabricmanager": {"installed": "580.105.08-1.el9"}})
    with pytest.raises(pkgs.SelectionError, match=r"nvidia-fabricmanager 580\.105\.08"):
        pkgs.check_installed(skewed, chosen)
    with pytest.raises(pkgs.SelectionError, match="libnvsdm not installed"):
        pkgs.check_installed(dict(same, libnvsdm={"installed": None}), chosen)
