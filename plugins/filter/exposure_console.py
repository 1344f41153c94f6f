# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exposure_console filter (documentation beside it, exposure_console.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.plugin_utils import _console
from ansible_collections.hardened.vllm.plugins.plugin_utils._filters import input_errors


def exposure_console(tcp_rows, http_rows=None, violations=None, blocked=None, **limits):
    """The audit's result as terminal lines: violations first, then compact matrices."""
    unknown = sorted(set(limits) - {"max_rows", "max_vantages"})
    if unknown:
        raise AnsibleFilterError(
            f"hardened.vllm.exposure_console: unknown option(s) {', '.join(unknown)}; "
            "it takes http_rows, violations, blocked, max_rows and max_vantages"
        )
    with input_errors("exposure_console", _console.ConsoleInputError):
        return _console.console_lines(
            tcp_rows,
            http_rows,
            [] if violations is None else violations,
            [] if blocked is None else blocked,
            **limits,
        )


class FilterModule:
    """hardened.vllm console summary of the exposure audit."""

    def filters(self):
        return {"exposure_console": exposure_console}
