# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hardened.vllm.nvidia_driver_packages (documentation in nvidia_driver_packages.yml)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_hw as hw
from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_packages as pkgs

FABRIC_MANAGER = ("auto", "always", "never")


def _fail(host, message):
    where = f"host {host}: " if host else ""
    raise AnsibleFilterError(f"hardened.vllm.nvidia_driver_packages: {where}{message}")


def _fabric(nvidia, wanted):
    """none / nvswitch / nvlink5 from the hardware facts and nvidia_driver_fabric_manager."""
    found = (nvidia.get("fabric") or {}).get("kind")
    if found is None:  # facts of an older nvidia_gpu_facts: PCI NVSwitches only
        found = "nvswitch" if nvidia.get("fabric_manager_required") else "none"
    if wanted == "never":
        return "none"
    if wanted == "always" and found == "none":
        return "nvswitch"
    return found


def nvidia_driver_packages(facts, settings, candidates=None, installed=False):
    """What to install, hold and pin on one host; optionally check candidates or installs."""
    if not isinstance(facts, Mapping):
        _fail(None, f"input must be ansible_facts (a mapping), got {type(facts).__name__}")
    if not isinstance(settings, Mapping):
        _fail(None, f"settings must be a mapping, got {settings!r}")
    host = settings.get("host")
    nvidia = facts.get("nvidia")
    if not isinstance(nvidia, Mapping):
        _fail(host, "ansible_facts.nvidia is missing: run hardened.vllm.nvidia_gpu_facts first")
    fabric = settings.get("fabric_manager", "auto")
    if fabric not in FABRIC_MANAGER:
        _fail(
            host,
            f"nvidia_driver_fabric_manager {fabric!r} is not one of {', '.join(FABRIC_MANAGER)}",
        )
    try:
        flavour = hw.choose_kernel_modules(
            settings.get("kernel_modules", "auto"), nvidia.get("gpus") or []
        )
    except ValueError as exc:
        _fail(host, f"nvidia_driver_kernel_modules: {exc}")
    resolved = {
        "source": settings.get("source"),
        "branch": settings.get("branch"),
        "version": settings.get("version"),
        "kernel_modules": flavour,
        "fabric": _fabric(nvidia, fabric),
        "persistenced": bool(settings.get("persistenced", True)),
        "kernel_headers": bool(settings.get("kernel_headers", True)),
    }
    try:
        selection = pkgs.select(facts, resolved)
        selection["candidate_version"] = None
        if candidates is not None:
            if not isinstance(candidates, Mapping):
                _fail(
                    host,
                    "candidates must be ansible_facts.nvidia.packages (a mapping), "
                    f"got {candidates!r}",
                )
            check = pkgs.check_installed if installed else pkgs.check_candidates
            selection["candidate_version"] = check(candidates, selection)
    except pkgs.SelectionError as exc:
        _fail(host, str(exc))
    selection["fabric_manager"] = selection["fabric"] != "none"
    return selection


class FilterModule:
    """NVIDIA driver package selection."""

    def filters(self):
        return {"nvidia_driver_packages": nvidia_driver_packages}
