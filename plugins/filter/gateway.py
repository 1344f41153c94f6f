# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hardened.vllm.gateway_config and gateway_http2_on filters (docs in their .yml files)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.plugin_utils import _gateway
from ansible_collections.hardened.vllm.plugins.plugin_utils._filters import input_errors


def gateway_config(plan, settings):
    """Validate one host's gateway settings against its plan; what the templates render."""
    if not isinstance(plan, Mapping) or "host" not in plan or "api" not in plan:
        raise AnsibleFilterError(
            "hardened.vllm.gateway_config: input must be the cluster_plan fact from "
            f"hardened.vllm.cluster, got {type(plan).__name__}; run the cluster role first"
        )
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError(
            f"hardened.vllm.gateway_config: settings must be a mapping, got {settings!r}"
        )
    with input_errors("gateway_config", _gateway.GatewayInvalid):
        return _gateway.gateway_config(plan, settings)


def gateway_http2_on(version):
    """Whether nginx of this version takes ``http2 on;`` instead of ``listen ... http2``."""
    try:
        return _gateway.http2_on(version)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(
            f"hardened.vllm.gateway_http2_on: {version!r} is not an nginx version ({exc})"
        ) from None


class FilterModule:
    def filters(self):
        return {"gateway_config": gateway_config, "gateway_http2_on": gateway_http2_on}
