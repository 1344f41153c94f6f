# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nvidia_gpu_facts and nvidia_repo_key run in-process against fixtures."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_hw as hw
from ansible_collections.hardened.vllm.plugins.modules import nvidia_gpu_facts, nvidia_repo_key

_HELPERS = Path(__file__).resolve().parents[1] / "module_utils" / "_nvidia_fixtures.py"
_spec = importlib.util.spec_from_file_location("_nvidia_fixtures", _HELPERS)
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)
FIXTURES = helpers.FIXTURES
PIN = (FIXTURES / "test-key.fingerprint").read_text().strip()
OTHER = (FIXTURES / "test-key-second.fingerprint").read_text().strip()


def run(module, capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as leaving:
        module.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def fake_smi(tmp_path, monkeypatch):
    """An nvidia-smi on PATH that answers with the constructed HGX fixtures, and a loaded module."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in -q) cat "{FIXTURES}/smi-q-x-hgx-h100.xml";;\n'
        f'  *) cat "{FIXTURES}/smi-query-hgx-h100.csv";; esac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(
        nvidia_gpu_facts, "_loaded_module", lambda: {"version": "580.95.05", "flavor": "open"}
    )


def test_facts_on_this_machine_recording(tmp_path, capsys):
    sysfs = helpers.sysfs_from_recording("this-machine-no-nvidia", tmp_path / "pci")
    code, out = run(nvidia_gpu_facts, capsys, pci_devices=str(sysfs), sysfs_root=str(tmp_path))
    facts = out["ansible_facts"]["nvidia"]
    assert code == 0 and out["changed"] is False
    assert facts["gpu_present"] is False and facts["fabric_manager_required"] is False
    assert facts["driver_version"] is None and facts["smi"]["available"] is False


def test_facts_on_hgx_with_driver(tmp_path, capsys, fake_smi):
    sysfs = helpers.sysfs_from_recording("hgx-h100-8gpu", tmp_path / "pci")
    code, out = run(nvidia_gpu_facts, capsys, pci_devices=str(sysfs), sysfs_root=str(tmp_path))
    facts = out["ansible_facts"]["nvidia"]
    assert code == 0
    assert (len(facts["gpus"]), len(facts["nvswitches"]), facts["fabric_manager_required"]) == (
        8,
        4,
        True,
    )
    assert facts["driver_version"] == "580.95.05" and facts["cuda_version"] == "13.0"
    assert facts["compute_capabilities"] == ["9.0"] and len(facts["smi"]["gpus"]) == 8
    assert facts["persistence_mode"] is True and facts["fabric"]["kind"] == "nvswitch"


def test_facts_find_nvlink5_switches_in_the_b200_layout(tmp_path, capsys):
    root = helpers.sysfs_layout("hgx-b200-nvlink5", tmp_path)
    _code, out = run(nvidia_gpu_facts, capsys, sysfs_root=str(root), nvidia_smi=False)
    facts = out["ansible_facts"]["nvidia"]
    assert facts["fabric"] == {
        "kind": "nvlink5",
        "pci_nvswitches": 0,
        "nvlink5_switches": ["mlx5_4", "mlx5_5"],
        "infiniband_devices": ["mlx5_0", "mlx5_4", "mlx5_5"],
        "vpd_unreadable": [],
    }
    assert facts["fabric_manager_required"] is True and facts["nvlsm_required"] is True
    switches = hw.read_infiniband(str(root))
    assert [d["pci_address"] for d in switches] == ["0000:1a:00.0", "0000:c1:00.0", "0000:c1:00.1"]
    assert len(facts["gpus"]) == 8 and facts["open_modules_supported"] is True
    assert facts["persistence_mode"] is None  # nvidia-smi not asked


def test_facts_h100_layout_with_an_hca_is_not_nvlink5(tmp_path, capsys):
    root = helpers.sysfs_layout("hgx-h100-nvswitch", tmp_path)
    _code, out = run(nvidia_gpu_facts, capsys, sysfs_root=str(root), nvidia_smi=False)
    facts = out["ansible_facts"]["nvidia"]
    assert facts["fabric"]["kind"] == "nvswitch" and facts["fabric"]["pci_nvswitches"] == 4
    assert facts["fabric"]["infiniband_devices"] == ["mlx5_0"]
    assert facts["nvlsm_required"] is False


def test_facts_report_persistence_mode_off(tmp_path, capsys, fake_smi, monkeypatch):
    csv = (FIXTURES / "smi-query-hgx-h100.csv").read_text().replace("Enabled", "Disabled", 1)
    (tmp_path / "off.csv").write_text(csv)
    script = tmp_path / "bin" / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in -q) cat "{FIXTURES}/smi-q-x-hgx-h100.xml";;\n'
        f'  *) cat "{tmp_path}/off.csv";; esac\n'
    )
    sysfs = helpers.sysfs_from_recording("hgx-h100-8gpu", tmp_path / "pci")
    _code, out = run(nvidia_gpu_facts, capsys, pci_devices=str(sysfs), sysfs_root=str(tmp_path))
    assert out["ansible_facts"]["nvidia"]["persistence_mode"] is False


def test_facts_fall_back_to_the_table_without_nvidia_smi(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        nvidia_gpu_facts, "_loaded_module", lambda: {"version": "575.57.08", "flavor": "open"}
    )
    sysfs = helpers.sysfs_from_recording("pcie-l40s-no-nvswitch", tmp_path / "pci")
    _code, out = run(
        nvidia_gpu_facts, capsys, pci_devices=str(sysfs), sysfs_root=str(tmp_path), nvidia_smi=False
    )
    assert out["ansible_facts"]["nvidia"]["cuda_version"] == "12.9"


def test_repo_key_from_content_then_idempotent(tmp_path, capsys):
    dest = tmp_path / "key.asc"
    content = (FIXTURES / "test-key.asc").read_text()
    code, out = run(nvidia_repo_key, capsys, content=content, fingerprint=PIN, dest=str(dest))
    assert code == 0 and out["changed"] is True and dest.read_text() == content
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    _code, again = run(
        nvidia_repo_key, capsys, content="not even a key", fingerprint=PIN, dest=str(dest)
    )
    assert (
        again["changed"] is False
    )  # dest already holds the pinned key: nothing read, nothing written


def test_repo_key_from_file_url(tmp_path, capsys):
    dest = tmp_path / "key.gpg"
    url = (FIXTURES / "test-key-second.gpg").as_uri()
    _code, out = run(nvidia_repo_key, capsys, url=url, fingerprint=OTHER, dest=str(dest))
    assert out["changed"] is True and out["downloaded"] is True and dest.exists()


def test_repo_key_refuses_a_wrong_key_and_writes_nothing(tmp_path, capsys):
    dest = tmp_path / "key.asc"
    code, out = run(
        nvidia_repo_key,
        capsys,
        content=(FIXTURES / "test-key.asc").read_text(),
        fingerprint=OTHER,
        dest=str(dest),
    )
    assert code == 1 and out["failed"] is True
    assert f"not the pinned {OTHER}" in out["msg"] and not dest.exists()


def test_repo_key_replaces_a_tampered_file(tmp_path, capsys):
    dest = tmp_path / "key.asc"
    dest.write_text((FIXTURES / "test-keys-two.asc").read_text())
    _code, out = run(
        nvidia_repo_key,
        capsys,
        content=(FIXTURES / "test-key.asc").read_text(),
        fingerprint=PIN,
        dest=str(dest),
    )
    assert out["changed"] is True and dest.read_text() == (FIXTURES / "test-key.asc").read_text()


def test_repo_key_check_mode_writes_nothing(tmp_path, capsys):
    dest = tmp_path / "key.asc"
    _code, out = run(
        nvidia_repo_key,
        capsys,
        content=(FIXTURES / "test-key.asc").read_text(),
        fingerprint=PIN,
        dest=str(dest),
        _ansible_check_mode=True,
    )
    assert out["changed"] is True and not dest.exists()


def test_repo_key_refuses_the_pinned_key_with_a_second_key_appended(tmp_path, capsys):
    dest = tmp_path / "key.asc"
    content = (FIXTURES / "test-key.asc").read_text() + (FIXTURES / "test-keys-two.asc").read_text()
    code, out = run(nvidia_repo_key, capsys, content=content, fingerprint=PIN, dest=str(dest))
    assert code == 1 and "primary keys" in out["msg"] and not dest.exists()


def test_repo_key_writes_the_checked_packets_not_the_download(tmp_path, capsys):
    dest = tmp_path / "key.asc"
    # Armor headers and CRLF line ends are dropped: dest holds the rebuilt armor only.
    content = (FIXTURES / "test-key.asc").read_text()
    dressed = content.replace("BLOCK-----\n\n", "BLOCK-----\nVersion: X\n\n").replace("\n", "\r\n")
    _code, out = run(nvidia_repo_key, capsys, content=dressed, fingerprint=PIN, dest=str(dest))
    assert out["changed"] is True and dest.read_text() == content
    assert out["subkeys"] == []
