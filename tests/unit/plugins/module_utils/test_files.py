# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_files.write_atomic: the one way the modules replace a file."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.hardened.vllm.plugins.module_utils import _files


def test_text_and_bytes_replace_the_file_with_the_mode_and_leave_nothing_beside(
    tmp_path, monkeypatch
):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(_files.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "rules.nft"
    path.write_text("old\n")
    _files.write_atomic(str(path), "new ✓\n")
    assert path.read_text(encoding="utf-8") == "new ✓\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _files.write_atomic(str(path), b"\x00\x01", mode=0o644)
    assert path.read_bytes() == b"\x00\x01" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["rules.nft"]
    assert len(synced) == 4  # the file and its directory, each time


def test_the_module_move_replaces_the_file_when_given(tmp_path):
    moves = []

    def move(src, dest):
        moves.append((os.path.dirname(src), dest))
        os.replace(src, dest)

    path = tmp_path / "key.gpg"
    _files.write_atomic(str(path), b"key", move=move)
    assert path.read_bytes() == b"key" and moves == [(str(tmp_path), str(path))]


def test_a_failed_move_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    path = tmp_path / "marker.json"
    path.write_text("old")

    def failing_move(src, dest):
        raise SystemExit(1)  # what fail_json does inside atomic_move

    with pytest.raises(SystemExit):
        _files.write_atomic(str(path), "new", move=failing_move)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["marker.json"]
