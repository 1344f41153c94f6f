# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which NVIDIA driver packages to install, per distribution, version and source.

One table and one function, unit tested for every supported distribution. The role asks
select() what to install, hold and pin; it never spells a package name itself.

Package names follow NVIDIA's driver installation guide (compute-only installs, branches
580 and later) and the distributions' archives (Ubuntu's -server branches, Debian's
non-free and contrib). After the package sources are configured the role compares the
candidates' versions (check_candidates) before it installs anything, so a name or version
a mirror does not have fails with a message instead of a half-installed driver.
"""

from __future__ import annotations

import re

SOURCES = ("cuda", "distribution")
# The driver branch Debian's own archive carries, per Debian major release.
DEBIAN_BRANCH = {"12": "535", "13": "550"}
UBUNTU_VERSIONS = ("22", "24")
RHEL_VERSIONS = ("8", "9", "10")
RHEL_LIKE = ("RedHat", "Rocky", "AlmaLinux", "OracleLinux", "CentOS")
CUDA_ARCH = {"x86_64": "x86_64", "aarch64": "sbsa"}
FIRST_OPEN_BRANCH = 515

_BRANCH = re.compile(r"^\d{3}$")


class SelectionError(ValueError):
    """The settings cannot work on this host; the message names the variable and the fix."""


def _check_branch_and_version(branch, version):
    if not _BRANCH.match(branch):
        raise SelectionError(
            f"nvidia_driver_branch {branch!r} is not a driver branch: use three digits, like '580'"
        )
    if version and not re.match(rf"^{branch}\.\d+(\.\d+)?$", version):
        raise SelectionError(
            f"nvidia_driver_version {version!r} is not a version of branch {branch}: "
            f"use a full driver version such as '{branch}.95.05', or leave it empty"
        )


def _distro(facts):
    name = str(facts.get("distribution", ""))
    major = str(facts.get("distribution_major_version", ""))
    if name == "Debian" and major in DEBIAN_BRANCH:
        return "debian", major
    if name == "Ubuntu" and major in UBUNTU_VERSIONS:
        return "ubuntu", major
    if name in RHEL_LIKE and major in RHEL_VERSIONS:
        return "rhel", major
    raise SelectionError(
        f"{name or 'an unknown distribution'} {major} is not supported by "
        "hardened.vllm.nvidia_driver "
        "(Debian 12/13, Ubuntu 22.04/24.04, RHEL-compatible 8/9/10): run the role on those only"
    )


def _headers(kind, kernel):
    if not kernel:
        raise SelectionError(
            "the kernel release fact (ansible_kernel) is missing: gather facts first"
        )
    return f"kernel-devel-{kernel}" if kind == "rhel" else f"linux-headers-{kernel}"


# Branch boundaries in NVIDIA's packaging (driver installation guide, "Recent updates";
# gpu-driver-container ubuntu24.04/install.sh and rhel9|rhel10/install.sh):
# - from 580 Fabric Manager, NSCQ, NVSDM and IMEX have unversioned names on the CUDA
#   repository (apt and dnf), held at the driver's exact version;
# - from 590 the Ubuntu packages of the CUDA repository lose their branch suffix
#   (libnvidia-compute-580 -> libnvidia-compute, nvidia-dkms-580-open -> nvidia-dkms-open).
FIRST_UNVERSIONED_FABRIC = 580
FIRST_UNSUFFIXED_UBUNTU = 590
FABRICS = ("none", "nvswitch", "nvlink5")
# NVLink5 (fourth-generation NVSwitch, HGX B200/B300): the switches are managed over
# InfiniBand by NVIDIA's NVLink subnet manager; these come from the distribution (or the
# CUDA repository) at their own versions, so they are installed but not held in lockstep.
NVLINK5_TOOLS = ("nvlsm", "infiniband-diags")
NVLINK5_MODULES = ("ib_umad",)


def _fabric_packages(kind, source, branch, arch, fabric):
    """Fabric Manager and its libraries for one distribution and branch; [] without NVSwitch."""
    if fabric == "none":
        return []
    if kind == "ubuntu" and source == "distribution":
        # Ubuntu's own archive keeps the branch in every name (and needs the -server driver).
        names = [f"nvidia-fabricmanager-{branch}", f"libnvidia-nscq-{branch}"]
        return names + ([f"nvidia-imex-{branch}"] if fabric == "nvlink5" else [])
    if int(branch) < FIRST_UNVERSIONED_FABRIC:
        fm = "nvidia-fabric-manager" if kind == "rhel" else f"nvidia-fabricmanager-{branch}"
        names = [fm, f"libnvidia-nscq-{branch}"]
        return names + ([f"nvidia-imex-{branch}"] if fabric == "nvlink5" else [])
    names = ["nvidia-fabricmanager", "libnvidia-nscq"]
    if arch == "x86_64":  # NVIDIA publishes no libnvsdm for arm64 (sbsa)
        names.append("libnvsdm")
    if fabric == "nvlink5":  # multi-node NVLink needs IMEX; NVLink4 HGX boards do not
        names.append("nvidia-imex")
    return names


def _ubuntu(settings, branch, flavour):
    if settings["source"] == "distribution":
        suffix = "-open" if flavour == "open" else ""
        return {
            "packages": [
                f"nvidia-headless-{branch}-server{suffix}",
                f"nvidia-utils-{branch}-server",
            ],
            "kernel_module_package": f"nvidia-dkms-{branch}-server{suffix}",
            "persistenced": [],  # nvidia-compute-utils, a dependency of the headless package
        }
    # NVIDIA's compute-only install for Ubuntu from the CUDA repository: the compute
    # libraries, the DKMS module, nvidia-smi (nvidia-utils) and nvidia-persistenced
    # (nvidia-compute-utils); 590 and later without the branch in the names.
    tag = "" if int(branch) >= FIRST_UNSUFFIXED_UBUNTU else f"-{branch}"
    kmod = f"nvidia-dkms{tag}-open" if flavour == "open" else f"nvidia-dkms{tag}"
    return {
        "packages": [f"libnvidia-compute{tag}", kmod, f"nvidia-utils{tag}"],
        "kernel_module_package": kmod,
        "persistenced": [f"nvidia-compute-utils{tag}"],
    }


def _debian(settings, branch, flavour, major):
    if settings["source"] == "distribution":
        if branch != DEBIAN_BRANCH[major]:
            raise SelectionError(
                f"Debian {major}'s archive carries driver branch {DEBIAN_BRANCH[major]}, "
                f"not {branch}: "
                f"set nvidia_driver_branch: '{DEBIAN_BRANCH[major]}' or nvidia_driver_source: cuda"
            )
        if settings["fabric"] != "none":
            raise SelectionError(
                "Debian's archive has no Fabric Manager, which this host's NVSwitches need: "
                "set nvidia_driver_source: cuda"
            )
        kmod = "nvidia-open-kernel-dkms" if flavour == "open" else "nvidia-kernel-dkms"
        return {
            "packages": [kmod, "nvidia-smi", "libcuda1"],
            "kernel_module_package": kmod,
            # Debian builds nvidia-persistenced from its own source with its own versions.
            "persistenced": ["nvidia-persistenced"],
            "independent": ["nvidia-persistenced"],
        }
    # NVIDIA's compute-only install for Debian: nvidia-driver-cuda and the DKMS module.
    kmod = "nvidia-kernel-open-dkms" if flavour == "open" else "nvidia-kernel-dkms"
    return {
        "packages": ["nvidia-driver-cuda", kmod],
        "kernel_module_package": kmod,
        "persistenced": ["nvidia-persistenced"],
    }


def _rhel(settings, branch, flavour, major):
    if settings["source"] == "distribution":
        raise SelectionError(
            "RHEL-compatible distributions ship no NVIDIA driver of their own: "
            "set nvidia_driver_source: cuda"
        )
    kmod = "kmod-nvidia-open-dkms" if flavour == "open" else "kmod-nvidia-latest-dkms"
    stream = None
    if major in ("8", "9"):
        stream = (
            f"nvidia-driver:{branch}-open" if flavour == "open" else f"nvidia-driver:{branch}-dkms"
        )
    return {
        "packages": ["nvidia-driver-cuda", kmod],
        "kernel_module_package": kmod,
        "persistenced": ["nvidia-persistenced"],
        "module_stream": stream,
    }


def _epel(facts, major):
    """How this RHEL-compatible host gets EPEL, which alone has dkms >= 3.1.8.

    NVIDIA's DKMS packages (kmod-nvidia-open-dkms, kmod-nvidia-latest-dkms) require
    dkms >= 3.1.8, which RHEL and its rebuilds carry only in EPEL (driver installation
    guide, "Red Hat Enterprise Linux": "Satisfy third-party package dependency").
    """
    name = str(facts.get("distribution", ""))
    if name == "OracleLinux":
        return {"package": f"oracle-epel-release-el{major}", "url": None}
    if name == "RedHat":
        return {
            "package": "epel-release",
            "url": f"https://dl.fedoraproject.org/pub/epel/epel-release-latest-{major}.noarch.rpm",
            "key_url": f"https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-{major}",
        }
    # Rocky, AlmaLinux, CentOS Stream: epel-release is in their own signed extras.
    return {"package": "epel-release", "url": None}


def select(facts, settings):
    """What to install, hold and pin for this host.

    facts: distribution, distribution_major_version, distribution_version,
      distribution_release, architecture, kernel (Ansible's fact names, no prefix).
    settings: source, branch, version, kernel_modules ('open'/'proprietary', already
      resolved against the GPUs), fabric ('none', 'nvswitch' or 'nvlink5', already resolved
      against the hardware), persistenced, kernel_headers (bools).
    """
    source = settings.get("source")
    if source not in SOURCES:
        raise SelectionError(f"nvidia_driver_source {source!r} is not one of {', '.join(SOURCES)}")
    branch = str(settings.get("branch", "")).strip()
    version = str(settings.get("version") or "").strip()
    _check_branch_and_version(branch, version)
    flavour = settings.get("kernel_modules")
    if flavour not in ("open", "proprietary"):
        raise SelectionError(f"kernel modules {flavour!r} must be resolved to open or proprietary")
    if flavour == "open" and int(branch) < FIRST_OPEN_BRANCH:
        raise SelectionError(
            f"branch {branch} has no open kernel modules (they start with {FIRST_OPEN_BRANCH}): "
            "raise nvidia_driver_branch or set nvidia_driver_kernel_modules: proprietary"
        )
    fabric = settings.get("fabric", "none")
    if fabric not in FABRICS:
        raise SelectionError(f"fabric {fabric!r} must be resolved to one of {', '.join(FABRICS)}")
    arch = str(facts.get("architecture", ""))
    if arch not in CUDA_ARCH:
        raise SelectionError(
            f"architecture {arch or '(unknown)'} is not supported (x86_64, aarch64)"
        )
    kind, major = _distro(facts)
    settings = dict(settings, fabric=fabric)
    if kind == "ubuntu":
        table = _ubuntu(settings, branch, flavour)
    elif kind == "debian":
        table = _debian(settings, branch, flavour, major)
    else:
        table = _rhel(settings, branch, flavour, major)

    packages = list(table["packages"])
    if settings.get("persistenced"):
        packages += table["persistenced"]
    fabric_packages = _fabric_packages(kind, source, branch, arch, fabric)
    packages += fabric_packages
    held = list(packages)
    if table["kernel_module_package"] not in held:
        held.append(table["kernel_module_package"])
    lockstep = [p for p in held if p not in table.get("independent", [])]
    tools = list(NVLINK5_TOOLS) if fabric == "nvlink5" else []
    packages += tools
    if settings.get("kernel_headers"):
        packages.append(_headers(kind, facts.get("kernel")))

    pin = f"{version}*" if version else f"{branch}.*"
    install = list(packages)
    if kind == "rhel":
        # dnf has no pin file: every lockstep name carries the version (or branch) itself,
        # as NVIDIA's recipes install nvidia-fabricmanager-${DRIVER_VERSION}.
        install = [
            f"{name}-{version or branch}*" if name in lockstep else name for name in packages
        ]

    if source == "cuda":
        dist_version = str(facts.get("distribution_version", "")).replace(".", "")
        path = {
            "debian": f"debian{major}",
            "ubuntu": f"ubuntu{dist_version}",
            "rhel": f"rhel{major}",
        }[kind]
        repo = {"source": "cuda", "path": path, "arch": CUDA_ARCH[arch], "origin": "NVIDIA"}
    else:
        repo = {
            "source": "distribution",
            "distribution": facts.get("distribution"),
            "suite": facts.get("distribution_release"),
            "components": ["contrib", "non-free", "non-free-firmware"] if kind == "debian" else [],
            "origin": str(facts.get("distribution")),
        }
    # apt origins the driver packages must never come from: the other side of the mix.
    if kind == "rhel":
        foreign_origins = []
    elif source == "cuda":
        foreign_origins = ["Ubuntu"] if kind == "ubuntu" else ["Debian"]
    else:
        foreign_origins = ["NVIDIA"]
    return {
        "family": "dnf" if kind == "rhel" else "apt",
        "repo": repo,
        "packages": packages,
        "install": install,
        "hold": held,
        "lockstep": lockstep,
        "pin_version": pin,
        "foreign_origins": foreign_origins,
        "module_stream": table.get("module_stream"),
        "kernel_module_package": table["kernel_module_package"],
        "kernel_modules": flavour,
        "fabric": fabric,
        "fabric_manager_packages": fabric_packages,
        "nvlink5_tools": tools,
        "kernel_modules_load": list(NVLINK5_MODULES) if fabric == "nvlink5" else [],
        "epel": _epel(facts, major) if kind == "rhel" else None,
    }


def parse_apt_policy(text):
    """`apt-cache policy PKG...` -> {pkg: {'installed': v|None, 'candidate': v|None}}."""
    result = {}
    current = None
    for line in (text or "").splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            current = line.rstrip()[:-1]
            result[current] = {"installed": None, "candidate": None}
            continue
        stripped = line.strip()
        for key in ("Installed", "Candidate"):
            if current and stripped.startswith(f"{key}:"):
                value = stripped.split(":", 1)[1].strip()
                result[current][key.lower()] = None if value == "(none)" else value
    return result


def upstream_version(version):
    """'1:580.95.05-0ubuntu0.24.04.2' -> '580.95.05' (no epoch, no packaging revision)."""
    value = str(version)
    if ":" in value:
        value = value.split(":", 1)[1]
    return value.rsplit("-", 1)[0] if "-" in value else value


def check_candidates(policy, selection):
    """Raise SelectionError unless every lockstep package has one candidate version in branch."""
    branch = selection["pin_version"].split(".")[0].rstrip("*")
    missing = [p for p in selection["lockstep"] if not (policy.get(p) or {}).get("candidate")]
    if missing:
        raise SelectionError(
            f"no candidate for {', '.join(missing)} in the configured package sources: check "
            "nvidia_driver_source, nvidia_driver_branch and nvidia_driver_version against the "
            "mirror (apt-cache policy shows what it offers)"
        )
    versions = {p: upstream_version(policy[p]["candidate"]) for p in selection["lockstep"]}
    outside = {p: v for p, v in versions.items() if not v.startswith(f"{branch}.")}
    if outside:
        listed = ", ".join(f"{p} {v}" for p, v in sorted(outside.items()))
        raise SelectionError(
            f"candidates outside branch {branch}: {listed}; the package sources do not offer "
            "that branch: check nvidia_driver_branch"
        )
    return _one_version(
        versions,
        selection,
        lambda listed, kmod: (
            f"the driver packages' candidates differ ({listed}) and would install a kernel module "
            f"that does not match its libraries: set nvidia_driver_version: '{kmod}' (the "
            f"{selection['kernel_module_package']} version), or another version all of them have"
        ),
    )


def check_installed(packages, selection):
    """Raise SelectionError unless every lockstep package is installed at one version.

    Fabric Manager refuses to start unless it is exactly the loaded driver's version; the
    same holds for NSCQ, NVSDM and IMEX. `packages` is ansible_facts.nvidia.packages.
    """
    missing = [p for p in selection["lockstep"] if not (packages.get(p) or {}).get("installed")]
    if missing:
        raise SelectionError(
            f"{', '.join(missing)} not installed after the install step: check the package "
            "manager's log on the host"
        )
    versions = {p: upstream_version(packages[p]["installed"]) for p in selection["lockstep"]}
    return _one_version(
        versions,
        selection,
        lambda listed, kmod: (
            f"the installed driver packages differ ({listed}); Fabric Manager and the "
            f"libraries must be exactly the driver's version: set nvidia_driver_version: "
            f"'{kmod}' and run the role again"
        ),
    )


def _one_version(versions, selection, differ):
    """The one version of the lockstep packages, or SelectionError(``differ(listed, kmod)``)."""
    if len(set(versions.values())) > 1:
        listed = ", ".join(f"{p} {v}" for p, v in sorted(versions.items()))
        raise SelectionError(differ(listed, versions.get(selection["kernel_module_package"])))
    return next(iter(versions.values()))
