# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hardened.vllm.nft_ruleset filter (documentation in nft_ruleset.yml)."""

from __future__ import annotations

from ansible_collections.hardened.vllm.plugins.module_utils._nft_ruleset import PlanError, render
from ansible_collections.hardened.vllm.plugins.plugin_utils._filters import input_errors


def nft_ruleset(plan, admins=None, log_dropped=True, log_rate="10/minute", icmp_echo=True):
    """The nft script that the firewall role applies for ``plan``."""
    with input_errors("nft_ruleset", PlanError):
        return render(
            plan, admins=admins, log_dropped=log_dropped, log_rate=log_rate, icmp_echo=icmp_echo
        )


class FilterModule:
    """hardened.vllm firewall ruleset filter."""

    def filters(self):
        return {"nft_ruleset": nft_ruleset}
