# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replacing a file on the node in one step (target side, stdlib only)."""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress


def write_atomic(path, data, mode=0o600, move=None):
    """Replace ``path`` with ``data`` (bytes, or text written as UTF-8).

    A reader sees the old file or the new one, never a part of it, also after a crash: the
    data go to a temporary file beside ``path`` (``mode`` from the start), are fsynced, the
    file is renamed over ``path`` and the directory is fsynced. ``move`` is a module's
    ``atomic_move``, which keeps the owner, mode and SELinux context of the file it replaces
    (a new file gets the umask's mode); without it the file keeps ``mode``. The temporary file
    is removed when anything fails.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        if move is None:
            os.replace(tmp, path)
        else:
            move(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
