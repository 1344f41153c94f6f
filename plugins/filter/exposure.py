# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exposure_verdict and exposure_matrix filters (documentation beside them, *.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.basic import missing_required_lib

from ansible_collections.hardened.vllm.plugins.plugin_utils import _exposure


def exposure_verdict(listeners, plan, ruleset, interfaces=None, admins=None):
    """Judge one host's listening sockets against its plan and its live nftables ruleset."""
    if _exposure.netaddr is None:
        raise AnsibleFilterError(
            f"hardened.vllm.exposure_verdict: {missing_required_lib('netaddr')}"
        )
    try:
        return _exposure.exposure_verdict(listeners, plan, ruleset, interfaces, admins)
    except _exposure.ExposureError as exc:
        raise AnsibleFilterError(f"hardened.vllm.exposure_verdict: {exc}") from None


def exposure_matrix(verdicts):
    """Render exposure verdicts as a node x socket x source-class text table."""
    try:
        return _exposure.exposure_matrix(verdicts)
    except _exposure.ExposureError as exc:
        raise AnsibleFilterError(f"hardened.vllm.exposure_matrix: {exc}") from None


class FilterModule:
    """hardened.vllm exposure filters."""

    def filters(self):
        return {"exposure_verdict": exposure_verdict, "exposure_matrix": exposure_matrix}
