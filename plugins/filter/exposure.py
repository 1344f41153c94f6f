# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exposure_verdict and exposure_matrix filters (documentation beside them, *.yml)."""

from __future__ import annotations

from ansible_collections.hardened.vllm.plugins.plugin_utils import _exposure
from ansible_collections.hardened.vllm.plugins.plugin_utils._filters import (
    input_errors,
    require_netaddr,
)


def exposure_verdict(listeners, plan, ruleset, interfaces=None, admins=None):
    """Judge one host's listening sockets against its plan and its live nftables ruleset."""
    require_netaddr("exposure_verdict")
    with input_errors("exposure_verdict", _exposure.ExposureError):
        return _exposure.exposure_verdict(listeners, plan, ruleset, interfaces, admins)


def exposure_matrix(verdicts):
    """Render exposure verdicts as a node x socket x source-class text table."""
    with input_errors("exposure_matrix", _exposure.ExposureError):
        return _exposure.exposure_matrix(verdicts)


class FilterModule:
    """hardened.vllm exposure filters."""

    def filters(self):
        return {"exposure_verdict": exposure_verdict, "exposure_matrix": exposure_matrix}
