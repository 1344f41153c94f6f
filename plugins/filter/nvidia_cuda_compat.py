# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hardened.vllm.nvidia_cuda_compat and nvidia_cuda_select (docs in the .yml files beside)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_compat as compat
from ansible_collections.hardened.vllm.plugins.plugin_utils._filters import input_errors


def _driver(value, name):
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        raise AnsibleFilterError(
            f"hardened.vllm.{name}: the driver version is empty; on hosts without a loaded driver "
            "ansible_facts.nvidia.driver_version is null, so test it before calling the filter"
        )
    return str(value).strip()


def nvidia_cuda_compat(driver, cuda, minor_version_compat=False):
    """Whether driver `driver` can run programs built for CUDA `cuda`, and why."""
    with input_errors("nvidia_cuda_compat", ValueError):
        return compat.cuda_compat(_driver(driver, "nvidia_cuda_compat"), cuda, minor_version_compat)


def nvidia_cuda_select(driver, builds, minor_version_compat=False):
    """The newest of `builds` (cu130, 12.9, ...) that driver `driver` can run, or None."""
    if isinstance(builds, (str, bytes)) or not isinstance(builds, (list, tuple)):
        raise AnsibleFilterError(
            "hardened.vllm.nvidia_cuda_select: builds must be a list like ['cu130', 'cu129'], "
            f"got {builds!r}"
        )
    with input_errors("nvidia_cuda_select", ValueError):
        return compat.select_cuda_build(
            _driver(driver, "nvidia_cuda_select"), builds, minor_version_compat
        )


class FilterModule:
    """NVIDIA driver / CUDA compatibility filters."""

    def filters(self):
        return {"nvidia_cuda_compat": nvidia_cuda_compat, "nvidia_cuda_select": nvidia_cuda_select}
