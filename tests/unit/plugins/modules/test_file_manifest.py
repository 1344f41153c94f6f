# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_manifest on the tiny test model's recorded files (tests/unit/fixtures/manifest) and on
copies of it that lack, change or add files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.module_utils import _file_manifest as fm
from ansible_collections.hardened.vllm.plugins.modules import file_manifest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "manifest"
RECORDED = json.loads((FIXTURES / "tiny-llama.json").read_text())
SMALL = ("config.json", "generation_config.json", "tokenizer_config.json")


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as leaving:
        file_manifest.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def model(tmp_path):
    """The recorded model's small files, as generated."""
    root = tmp_path / "source"
    shutil.copytree(FIXTURES / "tiny-llama", root)
    return root


def small_manifest():
    return fm.manifest_of([f for f in RECORDED["files"] if f["path"] in SMALL])


def test_describe_matches_the_recorded_manifest(model, tmp_path, capsys):
    (model / ".gitattributes").write_text("*.safetensors filter=lfs\n")  # hidden: left out
    (model / ".cache" / "huggingface").mkdir(parents=True)
    (model / ".cache" / "huggingface" / "x.lock").write_text("")
    record = tmp_path / "controller" / "record.json"
    rc, out = run(capsys, path=str(model), record=str(record))
    assert rc == 0 and out["changed"] is False
    assert out["manifest"] == small_manifest() and out["hashed"] == 3
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    # A second look reads nothing; a rewritten file is read again (its ctime moved).
    assert run(capsys, path=str(model), record=str(record))[1]["hashed"] == 0
    (model / "config.json").write_text((model / "config.json").read_text())
    assert run(capsys, path=str(model), record=str(record))[1]["hashed"] == 1


def test_describe_follows_links_and_refuses_names_it_cannot_serve(model, tmp_path, capsys):
    blob = tmp_path / "blobs" / "abc"
    blob.parent.mkdir()
    blob.write_bytes(b"w" * 10)
    (model / "original").mkdir()
    (model / "original" / "params.json").symlink_to(blob)  # a hub snapshot links its blobs
    manifest = fm.describe(str(model), {})[0]
    assert {"path": "original/params.json", "size": 10, "sha256": fm.sha256_of(blob)} in manifest[
        "files"
    ]
    (model / "a file.json").write_text("{}")
    rc, out = run(capsys, path=str(model), origin="vllm_model_source /m (on the controller)")
    assert rc == 1 and out["msg"].startswith("vllm_model_source /m (on the controller): ")
    assert "a file.json" in out["msg"] and "cannot serve" in out["msg"]
    rc, out = run(capsys, path=str(tmp_path / "absent"))
    assert rc == 1 and "is not a directory" in out["msg"]


def node(capsys, root, manifest, record, **extra):
    return run(
        capsys,
        path=str(root),
        manifest=manifest,
        record=str(record),
        remove_extra=True,
        mode="0640",
        directory_mode="0750",
        origin="host n2, vllm_model_path /srv/m",
        **extra,
    )


def test_a_copy_lacking_changed_and_extra_files(model, tmp_path, capsys):
    manifest = small_manifest()
    copy, record = tmp_path / "srv" / "models" / "m", tmp_path / "node-record.json"
    # A fresh node lacks everything; check mode creates nothing and says it would change.
    rc, out = node(capsys, copy, manifest, record, _ansible_check_mode=True)
    assert rc == 0 and out["changed"] is True and not copy.exists() and not record.exists()
    assert [e["path"] for e in out["lacking"]] == list(SMALL) and out["lacking_bytes"] == manifest[
        "bytes"
    ]
    rc, out = node(capsys, copy, manifest, record)
    assert rc == 0 and copy.is_dir() and oct(copy.stat().st_mode & 0o777) == "0o750"
    assert len(out["lacking"]) == 3
    # The transfer: two files whole, one broken off half way, one extra and a stale temporary.
    shutil.copy(model / "config.json", copy)
    shutil.copy(model / "tokenizer_config.json", copy)
    (copy / "generation_config.json").write_bytes(
        (model / "generation_config.json").read_bytes()[:20]
    )
    (copy / "model-00002-of-00002.safetensors").write_bytes(b"old shard")
    (copy / "tmpq1w2e3").write_bytes(b"partial")
    (copy / "old").mkdir()
    (copy / "old" / "x.bin").write_bytes(b"x")
    (copy / ".hidden").write_text("kept")
    rc, out = node(capsys, copy, manifest, record)
    assert rc == 0 and out["changed"] is True
    assert [e["path"] for e in out["lacking"]] == ["generation_config.json"]
    assert out["extra"] == ["model-00002-of-00002.safetensors", "old", "tmpq1w2e3"]
    assert sorted(p.name for p in copy.iterdir()) == [
        ".hidden",
        "config.json",
        "generation_config.json",
        "tokenizer_config.json",
    ]
    assert oct((copy / "config.json").stat().st_mode & 0o777) == "0o640"
    # must_match names the host, the variable and the file that is still short.
    rc, out = node(capsys, copy, manifest, record, must_match=True)
    assert rc == 1 and out["msg"].startswith(
        "host n2, vllm_model_path /srv/m: 1 file(s) still differ"
    )
    assert "generation_config.json" in out["msg"]
    shutil.copy(model / "generation_config.json", copy)
    rc, out = node(capsys, copy, manifest, record, must_match=True)
    assert rc == 0 and out["lacking"] == [] and out["hashed"] == 1  # only the fetched file is read
    rc, out = node(capsys, copy, manifest, record)
    assert (rc, out["changed"], out["hashed"], out["extra"]) == (0, False, 0, [])


def test_a_changed_model_lacks_only_what_changed(model, tmp_path, capsys):
    copy, record = tmp_path / "srv" / "models" / "m", tmp_path / "r.json"
    shutil.copytree(model, copy)
    node(capsys, copy, small_manifest(), record)
    (model / "generation_config.json").write_text('{"bos_token_id": 1, "eos_token_id": 3}\n')
    changed = fm.describe(str(model), {})[0]
    rc, out = node(capsys, copy, changed, record)
    assert rc == 0 and [e["path"] for e in out["lacking"]] == ["generation_config.json"]
    assert changed["digest"] != RECORDED["digest"]


def test_refuses_bad_manifests_and_shallow_paths(tmp_path, capsys):
    for bad in (
        {},
        {"files": []},
        {"files": [{"path": "../etc/passwd", "size": 1, "sha256": "0" * 64}]},
        {"files": [{"path": "a", "size": "1", "sha256": "0" * 64}]},
    ):
        rc, out = run(capsys, path=str(tmp_path / "m"), manifest=bad)
        assert rc == 1 and "manifest" in out["msg"], bad
    rc, out = run(capsys, path="/srv", manifest=small_manifest(), remove_extra=True)
    assert rc == 1 and "too close to /" in out["msg"]


def test_record_survives_other_files_and_drops_removed_ones():
    old = {"a": {"sha256": "1"}, "d/x": {"sha256": "2"}, "b": {"sha256": "3"}}
    new = file_manifest.merged(old, [{"path": "a"}], ["d"], {"a": {"sha256": "4"}})
    assert new == {"a": {"sha256": "4"}, "b": {"sha256": "3"}}


def test_unreadable_record_counts_as_none(tmp_path):
    path = tmp_path / "r.json"
    assert fm.read_record(str(path)) == {}
    path.write_text("not json")
    assert fm.read_record(str(path)) == {}
    path.write_text(json.dumps({"version": 0, "files": {"a": {}}}))
    assert fm.read_record(str(path)) == {}
    os.unlink(path)
