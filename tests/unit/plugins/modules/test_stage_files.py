# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staging: file_manifest, stage_files and the role's stage server, over real loopback HTTP.

The server (roles/vllm/files/stage_server.py) runs in a thread on 127.0.0.1 with a port the
kernel picks; the modules run whole (AnsibleModule with patched arguments) against it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.module_utils import _stage
from ansible_collections.hardened.vllm.plugins.modules import file_manifest, stage_files

SCRIPT = Path(__file__).resolve().parents[4] / "roles" / "vllm" / "files" / "stage_server.py"
spec = importlib.util.spec_from_file_location("stage_server", SCRIPT)
server_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(server_mod)


def tree(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


SOURCE = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}\n',
    "model.safetensors": os.urandom(3 * _stage.CHUNK + 17),
    "tokenizer/tokenizer.json": b"{}\n",
}


def run(module, capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as leaving:
        module.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def source(tmp_path):
    return tree(tmp_path / "src", SOURCE)


@pytest.fixture
def served(source):
    """A stage server for 127.0.0.1 serving `source` as /model; yields its base URL."""
    args = server_mod.parse_args(
        ["--bind", "127.0.0.1", "--port", "0", "--allow", "127.0.0.1/32", f"model={source}"]
    )
    server = server_mod.make_server(args)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/model"
    server.shutdown()
    server.server_close()


def manifest(capsys, path, cache=None):
    rc, out = run(file_manifest, capsys, path=str(path), **({"cache": str(cache)} if cache else {}))
    assert rc == 0, out
    return out


def test_manifest_lists_every_file_and_hashes_each_once(source, tmp_path, capsys):
    cache = tmp_path / "cache" / "model.json"
    out = manifest(capsys, source, cache)
    assert [e["path"] for e in out["files"]] == sorted(SOURCE)
    big = next(e for e in out["files"] if e["path"] == "model.safetensors")
    assert big["sha256"] == hashlib.sha256(SOURCE["model.safetensors"]).hexdigest()
    assert out["bytes"] == out["hashed_bytes"] == sum(len(v) for v in SOURCE.values())
    again = manifest(capsys, source, cache)
    assert again["hashed_bytes"] == 0 and again["digest"] == out["digest"]
    (source / "config.json").write_bytes(b"{}\n")
    changed = manifest(capsys, source, cache)
    assert changed["hashed_bytes"] == 3 and changed["digest"] != out["digest"]


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"path": "../etc/passwd", "size": 1, "sha256": "0" * 64}, "without '.', '..'"),
        ({"path": "/etc/passwd", "size": 1, "sha256": "0" * 64}, "must be relative"),
        ({"path": "a.part", "size": 1, "sha256": "0" * 64}, "stager's own"),
        ({"path": "a", "size": -1, "sha256": "0" * 64}, "not a byte count"),
        ({"path": "a", "size": 1, "sha256": "XYZ"}, "not 64 hex digits"),
        ({"path": "a", "size": 1}, "exactly path, size, sha256"),
    ],
)
def test_bad_manifests_are_refused_before_anything_is_written(tmp_path, capsys, entry, words):
    rc, out = run(
        stage_files,
        capsys,
        dest=str(tmp_path / "dest"),
        files=[entry],
        marker=str(tmp_path / "marker.json"),
        source="http://127.0.0.1:9/x",
    )
    assert rc == 1 and words in out["msg"] and str(tmp_path / "dest") in out["msg"]
    assert not (tmp_path / "dest").exists()


def test_fetch_from_the_stage_server_then_nothing_to_do(source, served, tmp_path, capsys):
    files = manifest(capsys, source)["files"]
    dest, marker = tmp_path / "dest", tmp_path / "stage" / "model.json"
    args = {"dest": str(dest), "files": files, "marker": str(marker), "mode": "0640"}
    rc, check = run(stage_files, capsys, check_only=True, **args)
    assert rc == 0 and not check["changed"] and not check["ready"]
    assert check["missing"] == sorted(SOURCE)
    rc, out = run(stage_files, capsys, source=served, **args)
    assert rc == 0 and out["changed"] and out["ready"]
    assert out["fetched_bytes"] == sum(len(v) for v in SOURCE.values())
    for rel, content in SOURCE.items():
        assert (dest / rel).read_bytes() == content
        assert (dest / rel).stat().st_mode & 0o777 == 0o640
    assert not list(dest.rglob("*.part"))
    rc, again = run(stage_files, capsys, check_only=True, **args)
    assert rc == 0 and again["ready"] and again["missing"] == [] and not again["changed"]


def test_an_interrupted_transfer_resumes_where_it_stopped(source, served, tmp_path, capsys):
    files = manifest(capsys, source)["files"]
    dest = tmp_path / "dest"
    dest.mkdir()
    half = len(SOURCE["model.safetensors"]) // 2
    (dest / "model.safetensors.part").write_bytes(SOURCE["model.safetensors"][:half])
    big = [e for e in files if e["path"] == "model.safetensors"]
    rc, out = run(
        stage_files,
        capsys,
        dest=str(dest),
        files=big,
        marker=str(tmp_path / "m.json"),
        source=served,
    )
    assert rc == 0 and out["fetched_bytes"] == len(SOURCE["model.safetensors"]) - half
    assert (dest / "model.safetensors").read_bytes() == SOURCE["model.safetensors"]


def test_content_that_does_not_match_the_manifest_is_removed_and_named(
    source, served, tmp_path, capsys
):
    files = manifest(capsys, source)["files"]
    (source / "config.json").write_bytes(b"tampered on the seeder\n")  # same name, other bytes
    dest = tmp_path / "dest"
    rc, out = run(
        stage_files,
        capsys,
        dest=str(dest),
        files=files,
        marker=str(tmp_path / "m.json"),
        source=served,
    )
    assert rc == 1 and "config.json" in out["msg"] and "the manifest says" in out["msg"]
    assert not (dest / "config.json").exists() and not (dest / "config.json.part").exists()
    assert not (tmp_path / "m.json").exists()


def test_unchanged_files_of_an_older_tree_are_linked_not_fetched(source, tmp_path, capsys):
    # A wheelhouse upgrade: flat trees, most wheels the same. No source: nothing may be fetched.
    files = [e for e in manifest(capsys, source)["files"] if "/" not in e["path"]]
    old = tree(tmp_path / "wheelhouse" / "old", {e["path"]: SOURCE[e["path"]] for e in files})
    new = tmp_path / "wheelhouse" / "new"
    rc, out = run(
        stage_files,
        capsys,
        dest=str(new),
        files=files,
        marker=str(tmp_path / "m.json"),
        reuse=[str(tmp_path / "wheelhouse")],
    )
    assert rc == 0 and out["ready"] and out["fetched_bytes"] == 0
    assert sorted(out["reused"]) == ["config.json", "model.safetensors"]
    assert (new / "model.safetensors").stat().st_ino == (old / "model.safetensors").stat().st_ino


def test_without_a_source_missing_files_fail_with_their_name(source, tmp_path, capsys):
    files = manifest(capsys, source)["files"]
    rc, out = run(
        stage_files, capsys, dest=str(tmp_path / "d"), files=files, marker=str(tmp_path / "m")
    )
    assert rc == 1 and "lacks config.json" in out["msg"] and "no source" in out["msg"]


def test_a_changed_file_makes_the_marker_stale(source, served, tmp_path, capsys):
    files = manifest(capsys, source)["files"]
    dest, marker = tmp_path / "dest", tmp_path / "m.json"
    args = {"dest": str(dest), "files": files, "marker": str(marker)}
    run(stage_files, capsys, source=served, **args)
    (dest / "config.json").write_bytes(b"x")
    _rc, out = run(stage_files, capsys, check_only=True, **args)
    assert not out["ready"] and out["missing"] == ["config.json"]


def test_check_mode_writes_nothing(source, served, tmp_path, capsys):
    files = manifest(capsys, source)["files"]
    dest = tmp_path / "dest"
    rc, out = run(
        stage_files,
        capsys,
        dest=str(dest),
        files=files,
        marker=str(tmp_path / "m.json"),
        source=served,
        _ansible_check_mode=True,
    )
    assert rc == 0 and out["changed"] and not dest.exists() and not (tmp_path / "m.json").exists()


# --- the stage server ----------------------------------------------------------------------


def get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, b"", dict(error.headers)


def test_server_answers_ranges_and_nothing_outside_its_trees(served):
    status, body, headers = get(f"{served}/model.safetensors", {"Range": "bytes=10-19"})
    assert status == 206 and body == SOURCE["model.safetensors"][10:20]
    assert headers["Content-Range"].startswith("bytes 10-19/")
    assert get(f"{served}/config.json")[1] == SOURCE["config.json"]
    for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "", "/tokenizer"):
        assert get(served + path)[0] == 404, path
    assert get(served.rsplit("/", 1)[0] + "/other/config.json")[0] == 404
    assert get(f"{served}/config.json", {"Range": "bytes=999999999-"})[0] == 416


def test_server_answers_only_its_peers(source):
    args = server_mod.parse_args(
        ["--bind", "127.0.0.1", "--port", "0", "--allow", "10.0.0.12/32", f"model={source}"]
    )
    server = server_mod.make_server(args)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert get(f"http://127.0.0.1:{server.server_address[1]}/model/config.json")[0] == 403
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--bind", "0.0.0.0", "--port", "1", "--allow", "10.0.0.0/24"], "wildcard"),
        (["--bind", "::", "--port", "1", "--allow", "10.0.0.0/24"], "wildcard"),
        (["--bind", "10.0.0.11", "--port", "1"], "at least one --allow"),
    ],
)
def test_server_refuses_wildcards_and_an_empty_allow_list(source, capsys, argv, words):
    with pytest.raises(SystemExit):
        server_mod.parse_args([*argv, f"model={source}"])
    assert words in capsys.readouterr().err
