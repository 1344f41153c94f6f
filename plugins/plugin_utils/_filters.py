# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every filter of the collection does around its pure code (controller side).

The filters in plugins/filter check their input, call pure code in plugin_utils or
module_utils and turn its input errors into one AnsibleFilterError that names the filter;
a missing netaddr is reported with Ansible's missing_required_lib text, not a traceback.
"""

from __future__ import annotations

from contextlib import contextmanager

from ansible.errors import AnsibleFilterError
from ansible.module_utils.basic import missing_required_lib

from ansible_collections.hardened.vllm.plugins.plugin_utils import _addresses

PREFIX = "hardened.vllm"


def require_netaddr(name):
    """Raise the filter's error when netaddr is not installed on the controller."""
    if _addresses.netaddr is None:  # the one optional import of netaddr
        raise AnsibleFilterError(f"{PREFIX}.{name}: {missing_required_lib('netaddr')}")


@contextmanager
def input_errors(name, *errors):
    """Inside it, an exception of ``errors`` becomes the filter's AnsibleFilterError."""
    try:
        yield
    except errors as exc:
        raise AnsibleFilterError(f"{PREFIX}.{name}: {exc}") from None
