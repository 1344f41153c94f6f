# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""report_files writes on the controller itself: no module runs, no connection is used."""

from __future__ import annotations

import os
from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.hardened.vllm.plugins.action import report_files


def action(**args):
    task = MagicMock(async_val=0, check_mode=False, action="hardened.vllm.report_files")
    task.args = args
    connection = MagicMock()
    connection._shell.tmpdir = None
    plugin = report_files.ActionModule(
        task, connection, MagicMock(), MagicMock(), MagicMock(), None
    )
    plugin._execute_module = MagicMock(side_effect=AssertionError("no module may run"))
    plugin._low_level_execute_command = MagicMock(
        side_effect=AssertionError("nothing runs on a host")
    )
    return plugin, connection


def test_writes_every_file_in_a_new_directory_then_only_what_differs(tmp_path):
    dest = tmp_path / "report" / "deep"
    plugin, connection = action(
        dest=str(dest), files={"exposure.json": '{"ok": true}\n', "exposure-matrix.txt": "m\n"}
    )
    result = plugin.run(task_vars={})
    assert result["changed"] and sorted(result["written"]) == [
        str(dest / "exposure-matrix.txt"),
        str(dest / "exposure.json"),
    ]
    assert (dest / "exposure.json").read_text() == '{"ok": true}\n'
    assert oct(dest.stat().st_mode & 0o777) == "0o755"
    assert oct((dest / "exposure.json").stat().st_mode & 0o777) == "0o644"
    assert not connection.exec_command.called
    plugin, _connection = action(
        dest=str(dest), files={"exposure.json": '{"ok": false}\n', "exposure-matrix.txt": "m\n"}
    )
    again = plugin.run(task_vars={})
    assert again["written"] == [str(dest / "exposure.json")]
    assert (dest / "exposure.json").read_text() == '{"ok": false}\n'
    assert not [n for n in os.listdir(dest) if n.endswith(".tmp")]


def test_a_file_with_the_same_content_but_another_mode_is_rewritten(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "a.txt").chmod(0o600)
    plugin, _connection = action(dest=str(tmp_path), files={"a.txt": "x"})
    assert plugin.run(task_vars={})["written"] == [str(tmp_path / "a.txt")]
    assert oct((tmp_path / "a.txt").stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"files": {"a": "x"}}, "dest must be a directory path"),
        ({"dest": "/tmp", "files": ["a"]}, "files must map plain file names"),
        ({"dest": "/tmp", "files": {"../a": "x"}}, "files must map plain file names"),
    ],
)
def test_bad_arguments_are_refused(args, message):
    plugin, _connection = action(**args)
    with pytest.raises(AnsibleActionFail, match=message):
        plugin.run(task_vars={})


def test_an_unwritable_directory_names_the_fix(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    plugin, _connection = action(dest=str(blocker / "report"), files={"a": "x"})
    with pytest.raises(AnsibleActionFail, match=r"cannot write the report in .* Fix:"):
        plugin.run(task_vars={})
