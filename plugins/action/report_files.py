# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of hardened.vllm.report_files: write report files on the controller.

It writes in the controller's own process: no module is sent anywhere and no Python is started
per file, where a delegated copy costs a module run per file on every play (issue 15).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from contextlib import suppress

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase


def write_report(directory, name, content, mode=0o644):
    """Replace directory/name with content when it differs; True when the file was written."""
    path = os.path.join(directory, name)
    data = to_bytes(content, errors="surrogate_or_strict")
    with suppress(OSError), open(path, "rb") as handle:
        if handle.read() == data and (os.stat(path).st_mode & 0o7777) == mode:
            return False
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dest", "files"))

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        result = super().run(tmp, task_vars)
        del tmp
        dest = self._task.args.get("dest")
        files = self._task.args.get("files")
        if not isinstance(dest, str) or not dest:
            raise AnsibleActionFail("hardened.vllm.report_files: dest must be a directory path")
        if not isinstance(files, Mapping) or not all(
            isinstance(name, str) and name and os.sep not in name and name not in (".", "..")
            for name in files
        ):
            raise AnsibleActionFail(
                "hardened.vllm.report_files: files must map plain file names to their content"
            )
        dest = os.path.expanduser(dest)
        try:
            os.makedirs(dest, mode=0o755, exist_ok=True)
            written = [
                os.path.join(dest, name)
                for name, content in files.items()
                if write_report(dest, name, "" if content is None else str(content))
            ]
        except OSError as error:
            raise AnsibleActionFail(
                f"hardened.vllm.report_files: cannot write the report in {dest} on the "
                f"controller: {error}. Fix: make the directory writable or set another one"
            ) from error
        result.update(changed=bool(written), written=written, dest=dest)
        return result
