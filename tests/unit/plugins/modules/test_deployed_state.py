# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""deployed_state on recorded `systemctl show` and `dpkg-query` output
(tests/unit/fixtures/deployed) and on real files in a temporary directory."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.modules import deployed_state

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "deployed"
BOOT = "hardened-vllm-firewall.service"
WATCHDOG = "hardened-vllm-firewall-watchdog.service"
OWNER = pwd.getpwuid(os.getuid())[0]
GROUP = grp.getgrgid(os.getgid())[0]


@pytest.fixture
def node(monkeypatch):
    """Answer systemctl and dpkg-query with fixtures; record every argv."""
    seen = []

    def use(
        show="show-in-place.txt", dpkg=("dpkg-installed.txt", 0), bins=("systemctl", "dpkg-query")
    ):
        def run_command(self, argv, **kwargs):
            seen.append(argv)
            if argv[0].endswith("systemctl"):
                return 0, (FIXTURES / show).read_text(), ""
            return dpkg[1], (FIXTURES / dpkg[0]).read_text(), "dpkg-query: no packages found"

        monkeypatch.setattr(AnsibleModule, "run_command", run_command)
        monkeypatch.setattr(
            AnsibleModule,
            "get_bin_path",
            lambda self, name, **kw: "/usr/bin/" + name if name in bins else None,
        )
        return seen

    return use


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as leaving:
        deployed_state.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


def ok(capsys, **args):
    code, out = run(capsys, **args)
    assert code == 0, out
    return out


def put(path, text, mode=0o644):
    path.write_text(text)
    path.chmod(mode)
    return {
        "path": str(path),
        "checksum": hashlib.sha1(text.encode()).hexdigest(),
        "mode": f"{mode:04o}",
        "owner": OWNER,
        "group": GROUP,
    }


def test_everything_in_place_is_said_so_in_one_call_each(tmp_path, node, capsys):
    seen = node()
    unit = put(tmp_path / BOOT, "[Unit]\nDescription=x\n")
    code, out = run(
        capsys,
        files=[unit],
        units=[{"name": BOOT}, {"name": WATCHDOG}],
        packages=["nftables"],
    )
    assert code == 0 and out["in_place"] is True and out["differ"] == [] and not out["changed"]
    assert out["units"][WATCHDOG]["UnitFileState"] == "enabled"
    assert out["packages"] == {"nftables": True}
    assert out["files"][unit["path"]]["checksum"] == unit["checksum"]
    # One systemctl call for both units, one dpkg-query for the packages.
    assert [argv[0] for argv in seen] == ["/usr/bin/systemctl", "/usr/bin/dpkg-query"]
    assert seen[0][-3:] == ["--", BOOT, WATCHDOG]


def test_drifted_units_are_named_with_what_differs(tmp_path, node, capsys):
    node(show="show-drifted.txt")
    code, out = run(
        capsys,
        units=[{"name": BOOT}, {"name": WATCHDOG}, {"name": "nosuch.service"}],
    )
    assert code == 0 and out["in_place"] is False
    assert out["differ"] == [
        f"{BOOT}: its unit file changed since systemd loaded it",
        f"{WATCHDOG}: UnitFileState is disabled, not enabled",
        f"{WATCHDOG}: ActiveState is inactive, not active",
        "nosuch.service: not loaded (not-found)",
    ]


def test_a_unit_that_must_not_run_nor_be_enabled(tmp_path, node, capsys):
    node(show="show-drifted.txt")
    out = ok(capsys, units=[{"name": WATCHDOG, "enabled": False, "active": False}])
    assert out["in_place"] is True


def test_a_unit_systemctl_did_not_report_is_not_in_place(tmp_path, node, capsys):
    node(show="show-in-place.txt")
    out = ok(capsys, units=[{"name": "other.service"}])
    assert out["in_place"] is False and out["differ"] == ["other.service: not read from systemctl"]


def test_files_that_differ_in_content_mode_owner_or_kind(tmp_path, node, capsys):
    node()
    same = put(tmp_path / "same", "a\n")
    content = put(tmp_path / "content", "a\n") | {"checksum": hashlib.sha1(b"b\n").hexdigest()}
    mode = put(tmp_path / "mode", "a\n", 0o600) | {"mode": "0644"}
    owner = put(tmp_path / "owner", "a\n") | {"owner": "nobody-here", "group": "nogroup-here"}
    (tmp_path / "dir").mkdir()
    kind = {"path": str(tmp_path / "dir"), "checksum": same["checksum"]}
    missing = {"path": str(tmp_path / "missing"), "checksum": same["checksum"]}
    out = ok(capsys, files=[same, content, mode, owner, kind, missing])
    assert out["in_place"] is False
    assert out["differ"] == [
        f"{content['path']}: content differs",
        f"{mode['path']}: mode 0600, not 0644",
        f"{owner['path']}: owner {OWNER}, not nobody-here",
        f"{owner['path']}: group {GROUP}, not nogroup-here",
        f"{kind['path']}: not a regular file",
        f"{missing['path']}: missing",
    ]


def test_absent_files(tmp_path, node, capsys):
    node()
    gone = {"path": str(tmp_path / "gone"), "state": "absent"}
    there = put(tmp_path / "there", "x") | {"state": "absent"}
    out = ok(capsys, files=[gone])
    assert out["in_place"] is True and out["files"][gone["path"]] == {"exists": False}
    out = ok(capsys, files=[there])
    assert out["differ"] == [f"{there['path']}: present, to be removed"]


def test_a_missing_package_is_found_though_dpkg_query_fails(tmp_path, node, capsys):
    node(dpkg=("dpkg-missing.txt", 1))
    out = ok(capsys, packages=["nftables", "nosuchpkg"])
    assert out["packages"] == {"nftables": True, "nosuchpkg": False}
    assert out["differ"] == ["package nosuchpkg: not installed"]


def test_without_dpkg_query_no_package_counts_as_in_place(tmp_path, node, capsys):
    node(bins=("systemctl",))
    out = ok(capsys, packages=["nftables"])
    assert out["in_place"] is False and out["packages"] == {"nftables": None}
    assert out["differ"] == ["package nftables: cannot be checked without dpkg-query"]


def test_a_file_entry_needs_a_checksum(tmp_path, node, capsys):
    node()
    code, out = run(capsys, files=[{"path": str(tmp_path / "x")}])
    assert code == 1 and "checksum" in out["msg"]


def test_a_masked_unit_that_must_not_run_and_one_that_must(node, capsys):
    node(show="show-masked.txt")
    out = ok(
        capsys,
        units=[
            {"name": "nginx.service", "enabled": False, "active": False},
            {"name": "ssh.service"},
        ],
    )
    assert out["in_place"] is True
    out = ok(capsys, units=[{"name": "ssh.service", "enabled": False, "active": False}])
    assert out["differ"] == [
        "ssh.service: enabled, to be left disabled",
        "ssh.service: ActiveState is active, to be stopped",
    ]
    out = ok(capsys, units=[{"name": "nginx.service"}])
    assert out["differ"] == ["nginx.service: not loaded (masked)"]


def test_links_directories_users_and_groups(tmp_path, node, capsys):
    node()
    (tmp_path / "masked").symlink_to("/dev/null")
    (tmp_path / "elsewhere").symlink_to("/etc/hostname")
    (tmp_path / "dir").mkdir(mode=0o711)
    (tmp_path / "dir").chmod(0o711)
    me = pwd.getpwuid(os.getuid())
    good = ok(
        capsys,
        links=[{"path": str(tmp_path / "masked"), "src": "/dev/null"}],
        directories=[
            {"path": str(tmp_path / "dir"), "mode": "0711", "owner": OWNER, "group": GROUP}
        ],
        groups=[GROUP],
        users=[{"name": OWNER, "group": GROUP, "shell": me.pw_shell, "home": me.pw_dir}],
    )
    assert good["in_place"] is True, good["differ"]
    bad = ok(
        capsys,
        links=[
            {"path": str(tmp_path / "elsewhere"), "src": "/dev/null"},
            {"path": str(tmp_path / "none"), "src": "/dev/null"},
            {"path": str(tmp_path / "dir"), "src": "/dev/null"},
        ],
        directories=[
            {"path": str(tmp_path / "dir"), "mode": "0755"},
            {"path": str(tmp_path / "masked")},
            {"path": str(tmp_path / "none")},
        ],
        groups=["no-such-group-hv"],
        users=[
            {"name": "no-such-user-hv"},
            {"name": OWNER, "shell": "/usr/sbin/nologin", "home": "/nonexistent"},
        ],
    )
    assert bad["differ"] == [
        "group no-such-group-hv: missing",
        "user no-such-user-hv: missing",
        f"user {OWNER}: shell {me.pw_shell}, not /usr/sbin/nologin",
        f"user {OWNER}: home {me.pw_dir}, not /nonexistent",
        f"{tmp_path}/dir: mode 0711, not 0755",
        f"{tmp_path}/masked: not a directory",
        f"{tmp_path}/none: missing (No such file or directory)",
        f"{tmp_path}/elsewhere: links to /etc/hostname, not /dev/null",
        f"{tmp_path}/none: missing, to link to /dev/null",
        f"{tmp_path}/dir: not a link to /dev/null (Invalid argument)",
    ]
