# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_filters: the one wrapper of the filters' input errors and the netaddr check."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.plugin_utils import _addresses, _filters


class InputError(ValueError):
    pass


def test_input_errors_name_the_filter_and_keep_the_message():
    with pytest.raises(AnsibleFilterError) as err, _filters.input_errors("some_filter", InputError):
        raise InputError("host a, variable v: is bad. Fix: set it.")
    assert str(err.value) == "hardened.vllm.some_filter: host a, variable v: is bad. Fix: set it."
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_other_errors_and_results_pass_through():
    with pytest.raises(KeyError), _filters.input_errors("some_filter", InputError):
        raise KeyError("a bug, not bad input")
    with _filters.input_errors("some_filter", InputError):
        result = 42
    assert result == 42


def test_missing_netaddr_names_the_filter(monkeypatch):
    _filters.require_netaddr("cluster_plan")  # installed in the test environment
    monkeypatch.setattr(_addresses, "netaddr", None)
    with pytest.raises(AnsibleFilterError, match=r"^hardened\.vllm\.cluster_plan: .*netaddr"):
        _filters.require_netaddr("cluster_plan")
