# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""API gateway audit filters: http_routes, http_findings, http_matrix (docs in http_*.yml).

Not named http.py: a module of that name shadows the standard library's http for pylint.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.plugin_utils import _http
from ansible_collections.hardened.vllm.plugins.plugin_utils._filters import (
    input_errors,
    require_netaddr,
)


def http_routes(openapi, extra=None):
    """Routes for hardened.vllm.http_probe: the catalog plus a running server's OpenAPI paths."""
    if extra is not None and (isinstance(extra, (str, bytes)) or not isinstance(extra, list)):
        raise AnsibleFilterError(
            f"hardened.vllm.http_routes: extra must be a list of routes, got {extra!r}"
        )
    with input_errors("http_routes", _http.HttpInputError):
        return _http.http_routes(openapi, extra)


def http_findings(runs, plans):
    """Judge http_probe runs (one per vantage) against the plans, ``{node: cluster_plan}``."""
    require_netaddr("http_findings")
    if not isinstance(runs, list) or not all(
        isinstance(r, Mapping) and isinstance(r.get("results"), list) for r in runs
    ):
        raise AnsibleFilterError(
            "hardened.vllm.http_findings: input must be a list of registered "
            f"hardened.vllm.http_probe results, got {runs!r}"
        )
    if not isinstance(plans, Mapping) or not all(isinstance(p, Mapping) for p in plans.values()):
        raise AnsibleFilterError(
            "hardened.vllm.http_findings: plans must map each node to its cluster_plan, "
            f"got {plans!r}"
        )
    with input_errors("http_findings", _http.HttpInputError):
        return _http.http_findings(runs, plans)


def http_matrix(rows):
    """Plain-text matrix of http_findings rows."""
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise AnsibleFilterError(
            f"hardened.vllm.http_matrix: input must be a list of http_findings rows, got {rows!r}"
        )
    return _http.http_matrix(rows)


class FilterModule:
    """hardened.vllm API gateway audit filters."""

    def filters(self):
        return {
            "http_routes": http_routes,
            "http_findings": http_findings,
            "http_matrix": http_matrix,
        }
