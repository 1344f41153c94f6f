# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Package, stream, pin and hold selection per distribution; apt candidate checks."""

from __future__ import annotations

import pytest
from _nvidia_fixtures import fixture

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_packages as pkgs

FACTS = {
    "debian12": {
        "distribution": "Debian",
        "distribution_major_version": "12",
        "distribution_version": "12.12",
        "distribution_release": "bookworm",
        "architecture": "x86_64",
        "kernel": "6.1.0-40-amd64",
    },
    "debian13": {
        "distribution": "Debian",
        "distribution_major_version": "13",
        "distribution_version": "13.1",
        "distribution_release": "trixie",
        "architecture": "aarch64",
        "kernel": "6.12.48+deb13-arm64",
    },
    "ubuntu2204": {
        "distribution": "Ubuntu",
        "distribution_major_version": "22",
        "distribution_version": "22.04",
        "distribution_release": "jammy",
        "architecture": "x86_64",
        "kernel": "5.15.0-160-generic",
    },
    "ubuntu2404": {
        "distribution": "Ubuntu",
        "distribution_major_version": "24",
        "distribution_version": "24.04",
        "distribution_release": "noble",
        "architecture": "x86_64",
        "kernel": "6.8.0-85-generic",
    },
    "rhel8": {
        "distribution": "RedHat",
        "distribution_major_version": "8",
        "distribution_version": "8.10",
        "distribution_release": "Ootpa",
        "architecture": "x86_64",
        "kernel": "4.18.0-553.el8_10.x86_64",
    },
    "rocky9": {
        "distribution": "Rocky",
        "distribution_major_version": "9",
        "distribution_version": "9.6",
        "distribution_release": "Blue Onyx",
        "architecture": "x86_64",
        "kernel": "5.14.0-570.el9.x86_64",
    },
    "rhel10": {
        "distribution": "RedHat",
        "distribution_major_version": "10",
        "distribution_version": "10.0",
        "distribution_release": "Coughlan",
        "architecture": "x86_64",
        "kernel": "6.12.0-55.el10.x86_64",
    },
}


def settings(**over):
    base = {
        "source": "cuda",
        "branch": "580",
        "version": "",
        "kernel_modules": "open",
        "fabric_manager": False,
        "persistenced": True,
        "kernel_headers": True,
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("host", "over", "packages", "repo"),
    [
        (
            "debian12",
            {},
            [
                "nvidia-driver-cuda",
                "nvidia-kernel-open-dkms",
                "nvidia-persistenced",
                "linux-headers-6.1.0-40-amd64",
            ],
            {"source": "cuda", "path": "debian12", "arch": "x86_64"},
        ),
        (
            "debian13",
            {"kernel_modules": "proprietary"},
            [
                "nvidia-driver-cuda",
                "nvidia-kernel-dkms",
                "nvidia-persistenced",
                "linux-headers-6.12.48+deb13-arm64",
            ],
            {"source": "cuda", "path": "debian13", "arch": "sbsa"},
        ),
        (
            "debian12",
            {"source": "distribution", "branch": "535"},
            [
                "nvidia-open-kernel-dkms",
                "nvidia-smi",
                "libcuda1",
                "nvidia-persistenced",
                "linux-headers-6.1.0-40-amd64",
            ],
            {
                "source": "distribution",
                "distribution": "Debian",
                "suite": "bookworm",
                "components": ["contrib", "non-free", "non-free-firmware"],
            },
        ),
        (
            "debian13",
            {
                "source": "distribution",
                "branch": "550",
                "kernel_modules": "proprietary",
                "kernel_headers": False,
            },
            ["nvidia-kernel-dkms", "nvidia-smi", "libcuda1", "nvidia-persistenced"],
            {
                "source": "distribution",
                "distribution": "Debian",
                "suite": "trixie",
                "components": ["contrib", "non-free", "non-free-firmware"],
            },
        ),
        (
            "ubuntu2204",
            {"source": "distribution", "branch": "570"},
            [
                "nvidia-headless-570-server-open",
                "nvidia-utils-570-server",
                "linux-headers-5.15.0-160-generic",
            ],
            {
                "source": "distribution",
                "distribution": "Ubuntu",
                "suite": "jammy",
                "components": [],
            },
        ),
        (
            "ubuntu2404",
            {"kernel_modules": "proprietary", "kernel_headers": False},
            [
                "libnvidia-compute-580",
                "nvidia-dkms-580",
                "nvidia-utils-580",
                "nvidia-compute-utils-580",
            ],
            {"source": "cuda", "path": "ubuntu2404", "arch": "x86_64"},
        ),
        (
            "rhel8",
            {},
            [
                "nvidia-driver-cuda",
                "kmod-nvidia-open-dkms",
                "nvidia-persistenced",
                "kernel-devel-4.18.0-553.el8_10.x86_64",
            ],
            {"source": "cuda", "path": "rhel8", "arch": "x86_64"},
        ),
        (
            "rocky9",
            {"kernel_modules": "proprietary", "persistenced": False, "kernel_headers": False},
            ["nvidia-driver-cuda", "kmod-nvidia-latest-dkms"],
            {"source": "cuda", "path": "rhel9", "arch": "x86_64"},
        ),
    ],
)
def test_packages_and_repo(host, over, packages, repo):
    chosen = pkgs.select(FACTS[host], settings(**over))
    assert chosen["packages"] == packages
    got = dict(chosen["repo"])
    origin = got.pop("origin")
    assert got == repo
    assert origin == ("NVIDIA" if repo["source"] == "cuda" else FACTS[host]["distribution"])
    assert not any(p.startswith(("linux-headers", "kernel-devel")) for p in chosen["hold"])


@pytest.mark.parametrize(
    ("host", "flavour", "stream"),
    [
        ("rhel8", "open", "nvidia-driver:580-open"),
        ("rocky9", "proprietary", "nvidia-driver:580-dkms"),
        ("rhel10", "open", None),
        ("debian12", "open", None),
    ],
)
def test_module_streams(host, flavour, stream):
    chosen = pkgs.select(FACTS[host], settings(kernel_modules=flavour))
    assert chosen["module_stream"] == stream
    assert chosen["family"] == ("apt" if host.startswith("debian") else "dnf")


def test_rhel_pins_the_branch_in_the_install_specs():
    chosen = pkgs.select(FACTS["rhel10"], settings(version="580.95.05"))
    assert chosen["install"][:3] == [
        "nvidia-driver-cuda-580.95.05*",
        "kmod-nvidia-open-dkms-580.95.05*",
        "nvidia-persistenced-580.95.05*",
    ]
    assert chosen["install"][3] == "kernel-devel-6.12.0-55.el10.x86_64"


def test_pin_is_the_branch_or_the_exact_version():
    assert pkgs.select(FACTS["ubuntu2404"], settings())["pin_version"] == "580.*"
    assert (
        pkgs.select(FACTS["ubuntu2404"], settings(version="580.95.05"))["pin_version"]
        == "580.95.05*"
    )


def test_fabric_manager_is_held_in_lockstep_with_the_driver():
    ubuntu = pkgs.select(FACTS["ubuntu2404"], settings(fabric="nvswitch"))
    assert ubuntu["fabric_manager_packages"] == [
        "nvidia-fabricmanager",
        "libnvidia-nscq",
        "libnvsdm",
    ]
    assert set(ubuntu["fabric_manager_packages"]) <= set(ubuntu["lockstep"]) <= set(ubuntu["hold"])
    rocky = pkgs.select(FACTS["rocky9"], settings(fabric="nvswitch", version="580.95.05"))
    assert "nvidia-fabricmanager-580.95.05*" in rocky["install"]


def test_ubuntu_holds_the_kernel_module_package_too():
    chosen = pkgs.select(FACTS["ubuntu2204"], settings(source="distribution", branch="570"))
    assert chosen["hold"] == [
        "nvidia-headless-570-server-open",
        "nvidia-utils-570-server",
        "nvidia-dkms-570-server-open",
    ]


def test_debian_distribution_persistenced_is_not_lockstep():
    chosen = pkgs.select(FACTS["debian12"], settings(source="distribution", branch="535"))
    assert (
        "nvidia-persistenced" in chosen["hold"] and "nvidia-persistenced" not in chosen["lockstep"]
    )


@pytest.mark.parametrize(
    ("host", "over", "message"),
    [
        (
            "debian12",
            {"source": "distribution"},
            "carries driver branch 535, not 580: set nvidia_driver_branch: '535'",
        ),
        (
            "debian12",
            {"source": "distribution", "branch": "535", "fabric": "nvswitch"},
            "no Fabric Manager",
        ),
        ("rhel8", {"source": "distribution"}, "ship no NVIDIA driver of their own"),
        ("ubuntu2404", {"branch": "58"}, "nvidia_driver_branch '58' is not a driver branch"),
        (
            "ubuntu2404",
            {"version": "570.1.2"},
            "nvidia_driver_version '570.1.2' is not a version of branch 580",
        ),
        ("ubuntu2404", {"branch": "470"}, "branch 470 has no open kernel modules"),
        (
            "ubuntu2404",
            {"source": "ppa"},
            "nvidia_driver_source 'ppa' is not one of cuda, distribution",
        ),
    ],
)
def test_refusals_name_the_variable(host, over, message):
    with pytest.raises(pkgs.SelectionError, match=message):
        pkgs.select(FACTS[host], settings(**over))


def test_unsupported_distribution_and_architecture():
    with pytest.raises(pkgs.SelectionError, match="Ubuntu 20 is not supported"):
        pkgs.select(dict(FACTS["ubuntu2204"], distribution_major_version="20"), settings())
    with pytest.raises(pkgs.SelectionError, match="architecture ppc64le is not supported"):
        pkgs.select(dict(FACTS["rhel8"], architecture="ppc64le"), settings())
    with pytest.raises(pkgs.SelectionError, match="ansible_kernel"):
        pkgs.select(dict(FACTS["rhel8"], kernel=""), settings())


def test_apt_policy_of_debian_12_open_modules_recorded():
    policy = pkgs.parse_apt_policy(fixture("apt-policy-bookworm-open.txt"))
    assert policy["nvidia-open-kernel-dkms"] == {"installed": None, "candidate": "535.261.03-1"}
    assert policy["nvidia-smi"]["candidate"] == "535.309.01-0+deb12u1"
    assert "nvidia-no-such-package" not in policy


def test_debian_12_open_skew_is_caught_and_the_fix_named():
    chosen = pkgs.select(FACTS["debian12"], settings(source="distribution", branch="535"))
    policy = pkgs.parse_apt_policy(fixture("apt-policy-bookworm-open.txt"))
    with pytest.raises(pkgs.SelectionError, match=r"set nvidia_driver_version: '535\.261\.03'"):
        pkgs.check_candidates(policy, chosen)


def test_debian_12_open_with_the_version_pinned_resolves():
    chosen = pkgs.select(
        FACTS["debian12"], settings(source="distribution", branch="535", version="535.261.03")
    )
    policy = pkgs.parse_apt_policy(fixture("apt-policy-bookworm-open-pinned.txt"))
    assert pkgs.check_candidates(policy, chosen) == "535.261.03"


def test_missing_and_wrong_branch_candidates():
    chosen = pkgs.select(FACTS["ubuntu2404"], settings(kernel_headers=False))
    with pytest.raises(
        pkgs.SelectionError, match="no candidate for libnvidia-compute-580, nvidia-dkms-580-open"
    ):
        pkgs.check_candidates({}, chosen)
    policy = {p: {"installed": None, "candidate": "590.44.01-0ubuntu1"} for p in chosen["lockstep"]}
    with pytest.raises(pkgs.SelectionError, match="outside branch 580"):
        pkgs.check_candidates(policy, chosen)


@pytest.mark.parametrize(
    ("version", "upstream"),
    [
        ("1:580.95.05-0ubuntu0.24.04.2", "580.95.05"),
        ("535.261.03-1", "535.261.03"),
        ("580.95.05", "580.95.05"),
    ],
)
def test_upstream_version(version, upstream):
    assert pkgs.upstream_version(version) == upstream
