# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vllm_venv: the uv command lines, and whole runs against a stand-in uv.

The stand-in makes real virtual environments (python -m venv) and "installs" a package named
like the requirement's module by writing it into site-packages, so the import check, the
provided metadata, the marker and idempotence are exercised for real, without any index.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.modules import vllm_venv

FAKE_UV = r"""#!/bin/sh
# Stand-in for uv: records its argv, makes venvs, "installs" a module named by FAKE_MODULE.
echo "$*" >>"$FAKE_UV_LOG"
case "$1" in
  venv) shift; while [ $# -gt 1 ]; do shift; done; exec "$FAKE_PYTHON" -m venv --without-pip "$1" ;;
  pip)
    [ -n "$FAKE_UV_FAIL" ] && { echo "resolution failed: no wheel for torch" >&2; exit 1; }
    py=$(echo "$*" | sed -n 's/.*--python \([^ ]*\).*/\1/p')
    site=$("$py" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    mkdir -p "$site/$FAKE_MODULE"
    echo "$FAKE_BODY" >"$site/$FAKE_MODULE/__init__.py" ;;
esac
"""


@pytest.fixture
def fake_uv(tmp_path, monkeypatch):
    uv = tmp_path / "uv"
    uv.write_text(FAKE_UV)
    uv.chmod(uv.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "uv.log"
    monkeypatch.setenv("FAKE_UV_LOG", str(log))
    monkeypatch.setenv("FAKE_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_MODULE", "fakevllm")
    monkeypatch.setenv("FAKE_BODY", "__version__ = '0.32.0'")
    return uv, log


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as leaving:
        vllm_venv.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


def base(tmp_path, uv, **over):
    lock = tmp_path / "requirements.lock"
    lock.write_text("fakevllm==0.32.0 --hash=sha256:00\n")
    args = {
        "path": str(tmp_path / "venvs" / "fakevllm-0.32.0"),
        "python": sys.executable,
        "uv": str(uv),
        "lock": str(lock),
        "find_links": [str(tmp_path / "wheelhouse")],
        "no_index": True,
        "check_import": "fakevllm",
    }
    args.update(over)
    return args


def test_sync_from_a_lock_then_nothing_to_do(tmp_path, fake_uv, capsys):
    uv, log = fake_uv
    args = base(tmp_path, uv)
    rc, out = run(capsys, **args)
    assert rc == 0 and out["changed"] and out["version"] == "0.32.0"
    calls = log.read_text().splitlines()
    assert calls[0].startswith("venv --quiet --python")
    assert calls[1].startswith("pip sync --quiet --python")
    assert "--require-hashes --no-index --find-links" in calls[1]
    marker = json.loads((tmp_path / "venvs/fakevllm-0.32.0" / vllm_venv.MARKER).read_text())
    assert marker["version"] == "0.32.0"

    rc, again = run(capsys, **args)
    assert rc == 0 and not again["changed"] and again["version"] == "0.32.0"
    assert len(log.read_text().splitlines()) == 2  # uv was not run again


def test_a_changed_lock_reinstalls(tmp_path, fake_uv, capsys):
    uv, log = fake_uv
    args = base(tmp_path, uv)
    run(capsys, **args)
    (tmp_path / "requirements.lock").write_text("fakevllm==0.32.1 --hash=sha256:11\n")
    _rc, out = run(capsys, **args)
    assert out["changed"]
    # The venv exists: only the sync runs again.
    assert [c.split()[0:2] for c in log.read_text().splitlines()] == [
        ["venv", "--quiet"],
        ["pip", "sync"],
        ["pip", "sync"],
    ]


def test_check_mode_predicts_without_touching_anything(tmp_path, fake_uv, capsys):
    uv, log = fake_uv
    args = base(tmp_path, uv, _ansible_check_mode=True)
    _rc, out = run(capsys, **args)
    assert out["changed"] and not log.exists()
    assert not (tmp_path / "venvs").exists()


def test_a_broken_import_fails_and_leaves_no_marker(tmp_path, fake_uv, capsys, monkeypatch):
    uv = fake_uv[0]
    monkeypatch.setenv("FAKE_BODY", "raise ImportError('libnuma.so.1: cannot open shared object')")
    args = base(tmp_path, uv)
    rc, out = run(capsys, **args)
    assert rc == 1 and "import fakevllm' fails, so it is not used" in out["msg"]
    assert "libnuma.so.1" in out["msg"]
    assert not (tmp_path / "venvs/fakevllm-0.32.0" / vllm_venv.MARKER).exists()
    # Fixed on the node: the next run installs again and succeeds.
    monkeypatch.setenv("FAKE_BODY", "__version__ = '0.32.0'")
    rc, out = run(capsys, **args)
    assert rc == 0 and out["changed"]


def test_a_failed_install_says_what_uv_said(tmp_path, fake_uv, capsys, monkeypatch):
    uv = fake_uv[0]
    monkeypatch.setenv("FAKE_UV_FAIL", "1")
    rc, out = run(capsys, **base(tmp_path, uv))
    assert rc == 1 and "no wheel for torch" in out["msg"] and "failed (exit 1)" in out["msg"]


def test_provides_writes_metadata_the_venv_python_can_read(tmp_path, fake_uv, capsys):
    uv = fake_uv[0]
    args = base(tmp_path, uv, provides={"name": "vllm", "version": "0.32.0+cpu"})
    rc, _out = run(capsys, **args)
    assert rc == 0
    python = os.path.join(args["path"], "bin", "python")
    seen = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('vllm'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert seen == "0.32.0+cpu"


# Every process of the venv, children that multiprocessing spawns included, runs the hook: ask
# the kernel which extended features this process may use (arch_prctl ARCH_GET_XCOMP_PERM).
AMX_PERMISSION = r"""
import ctypes, multiprocessing, sys

def permitted(_=None):
    mask = ctypes.c_uint64(0)
    ctypes.CDLL(None, use_errno=True).syscall(158, 0x1022, ctypes.byref(mask))
    return bool(mask.value >> 18 & 1), "_hardened_vllm_amx" in sys.modules

if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        print(permitted(), pool.apply(permitted))
"""


def cpu_has_amx():
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        return " amx_tile" in f.read()


def test_request_amx_hooks_every_process_and_is_removed_when_off(tmp_path, fake_uv, capsys):
    uv = fake_uv[0]
    args = base(tmp_path, uv, request_amx=True)
    rc, out = run(capsys, **args)
    assert rc == 0 and out["changed"], out
    python = os.path.join(args["path"], "bin", "python")
    script = tmp_path / "amx.py"
    script.write_text(AMX_PERMISSION)

    def seen():
        result = subprocess.run([python, str(script)], capture_output=True, text=True, check=True)
        return result.stdout.strip()

    # (AMX permitted, hook loaded) in the process and in a spawned child. Without AMX in the CPU
    # the kernel refuses the request; the hook still loads and the interpreter still starts.
    amx = cpu_has_amx()
    assert seen() == f"({amx}, True) ({amx}, True)"
    assert run(capsys, **args)[1]["changed"] is False

    rc, out = run(capsys, **{**args, "request_amx": False})
    assert rc == 0 and out["changed"]
    assert seen() == "(False, False) (False, False)"


def test_requirements_with_exclusions_use_an_override_file(tmp_path, fake_uv, capsys):
    uv, log = fake_uv
    args = base(
        tmp_path,
        uv,
        no_index=False,
        find_links=[],
        requirements=["fakevllm==0.32.0"],
        exclude=["torchvision", "triton"],
        index_url="https://user:token@pypi.example/simple",
        torch_backend="cu129",
    )
    del args["lock"]
    rc, out = run(capsys, **args)
    assert rc == 0, out
    install = log.read_text().splitlines()[1]
    assert install.startswith("pip install --quiet --python")
    assert "--index-url https://user:token@pypi.example/simple --torch-backend cu129" in install
    override = install.split("--override ")[1].split()[0]
    with open(override, encoding="utf-8") as f:
        assert (
            f.read() == "torchvision ; sys_platform == 'never'\ntriton ; sys_platform == 'never'\n"
        )
    # The marker keeps no credentials.
    marker = (tmp_path / "venvs/fakevllm-0.32.0" / vllm_venv.MARKER).read_text()
    assert "token" not in marker


def test_dist_info_has_a_record_listing_itself():
    files = vllm_venv.dist_info("vllm", "0.32.0+cpu", "note")
    assert set(files) == {
        "vllm-0.32.0+cpu.dist-info/METADATA",
        "vllm-0.32.0+cpu.dist-info/INSTALLER",
        "vllm-0.32.0+cpu.dist-info/RECORD",
    }
    assert "Name: vllm\nVersion: 0.32.0+cpu\n" in files["vllm-0.32.0+cpu.dist-info/METADATA"]
    assert files["vllm-0.32.0+cpu.dist-info/RECORD"].count(",,\n") == 3
