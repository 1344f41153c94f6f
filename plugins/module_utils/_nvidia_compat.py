# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which CUDA versions an NVIDIA driver can run: the one place that knows the rule.

Sources: NVIDIA's CUDA Toolkit release notes ("CUDA Toolkit and Corresponding Driver
Versions", Linux x86_64, GA releases) and the CUDA Compatibility guide (minor-version
compatibility: 13.x needs >= 580, 12.x >= 525, 11.x >= 450.80.02).

Private module: free to change; used by the nvidia_gpu_facts module and the
hardened.vllm.nvidia_cuda_compat / nvidia_cuda_select filters.
"""

from __future__ import annotations

import re

# (CUDA major.minor, minimum Linux x86_64 driver of that toolkit's GA release), newest first.
TOOLKIT_DRIVERS = (
    ("13.1", "590.44.01"),
    ("13.0", "580.65.06"),
    ("12.9", "575.51.03"),
    ("12.8", "570.26"),
    ("12.6", "560.28.03"),
    ("12.5", "555.42.02"),
    ("12.4", "550.54.14"),
    ("12.3", "545.23.06"),
    ("12.2", "535.54.03"),
    ("12.1", "530.30.02"),
    ("12.0", "525.60.13"),
    ("11.8", "520.61.05"),
    ("11.7", "515.43.04"),
    ("11.6", "510.39.01"),
    ("11.5", "495.29.05"),
    ("11.4", "470.42.01"),
    ("11.3", "465.19.01"),
    ("11.2", "460.27.03"),
    ("11.1", "455.23"),
    ("11.0", "450.36.06"),
)

# CUDA major -> minimum driver for minor-version compatibility inside that major.
MINOR_VERSION_COMPAT = {13: "580", 12: "525.60.13", 11: "450.80.02"}

_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")
_CU_TAG = re.compile(r"^cu(\d{2})(\d{1,2})$")


def parse_version(text, what="version"):
    """'580.95.05' -> (580, 95, 5); raise ValueError naming `what` on anything else."""
    value = str(text).strip()
    if not _VERSION.match(value):
        raise ValueError(f"{what} {text!r} is not a dotted number like 580.95.05")
    return tuple(int(part) for part in value.split("."))


def parse_cuda(text):
    """'12.9', '12.9.1', 'cu129' or 'cu130' -> (major, minor)."""
    value = str(text).strip().lower()
    tag = _CU_TAG.match(value)
    if tag:
        return int(tag.group(1)), int(tag.group(2))
    parts = parse_version(value, "CUDA version")
    if len(parts) < 2:
        raise ValueError(f"CUDA version {text!r} needs a major and a minor, like 12.9 or cu129")
    return parts[0], parts[1]


def _ge(driver, minimum):
    return parse_version(driver, "driver version") >= parse_version(minimum)


def cuda_max_for_driver(driver):
    """Highest CUDA major.minor whose toolkit driver is <= `driver` (None below CUDA 11.0).

    Drivers newer than the table report the newest CUDA the table knows; nvidia-smi's own
    "CUDA Version" is the better source when the driver is loaded.
    """
    for cuda, minimum in TOOLKIT_DRIVERS:
        if _ge(driver, minimum):
            return cuda
    return None


def _toolkit_minimum(major, minor):
    """Minimum driver of the newest known toolkit release <= major.minor (None if older)."""
    for cuda, minimum in TOOLKIT_DRIVERS:
        if parse_cuda(cuda) <= (major, minor):
            return minimum
    return None


def cuda_compat(driver, cuda, minor_version_compat=False):
    """Can a program built for CUDA `cuda` run on driver `driver`?

    native: the driver is at least the toolkit's own driver (every feature works).
    minor_version_compat: same CUDA major and the driver meets that major's minimum
    (works with limits: no PTX JIT of newer PTX, some APIs return errors).
    supported: native, or minor-version compatible when `minor_version_compat` is allowed.
    """
    major, minor = parse_cuda(cuda)
    parse_version(driver, "driver version")
    native_min = _toolkit_minimum(major, minor)
    if native_min is None:
        raise ValueError(
            f"CUDA {major}.{minor} is older than CUDA 11.0, which this rule does not cover"
        )
    compat_min = MINOR_VERSION_COMPAT.get(major)
    native = _ge(driver, native_min) and (major, minor) <= parse_cuda(TOOLKIT_DRIVERS[0][0])
    compat = compat_min is not None and _ge(driver, compat_min)
    supported = native or (bool(minor_version_compat) and compat)
    if supported:
        reason = "native" if native else "minor-version compatibility"
    elif compat:
        reason = (
            f"driver {driver} runs CUDA {major}.{minor} only through minor-version compatibility "
            f"(native needs >= {native_min}); allow it with minor_version_compat=true "
            "or upgrade the driver"
        )
    else:
        needed = native_min if compat_min is None else compat_min
        reason = f"driver {driver} is too old for CUDA {major}.{minor}: it needs >= {needed}"
    return {
        "driver": str(driver),
        "cuda": f"{major}.{minor}",
        "supported": supported,
        "native": native,
        "minor_version_compat": compat,
        "min_driver_native": native_min,
        "min_driver_minor_version_compat": compat_min,
        "max_cuda": cuda_max_for_driver(driver),
        "reason": reason,
    }


def select_cuda_build(driver, builds, minor_version_compat=False):
    """Pick, from `builds` (e.g. ['cu130', 'cu129', 'cu128']), the newest the driver supports.

    Returns the build as given, or None when the driver supports none of them.
    """
    ranked = sorted(builds, key=parse_cuda, reverse=True)
    for build in ranked:
        if cuda_compat(driver, build, minor_version_compat)["supported"]:
            return build
    return None
