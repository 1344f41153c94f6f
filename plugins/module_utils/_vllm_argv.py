# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vLLM's own argument parser on the service's argv and environment (no engine started).

SCRIPT runs in the installed virtual environment's Python: it builds the parser exactly as
``vllm serve`` does (vllm.entrypoints.cli.serve.ServeSubcommand on a FlexibleArgumentParser),
parses the argv, runs the subcommand's own checks (``validate``), builds the engine arguments
(``AsyncEngineArgs.from_cli_args``, no device, no model load), compares what the plan's options
parse to with and without the extra arguments (argparse takes abbreviations), and reads every
``VLLM_*`` variable of the environment through ``vllm.envs``. It prints one JSON object.
``judge`` (pure, unit-tested on recorded output) turns that into problems naming host,
variable and fix. Standard library only on this side.
"""

from __future__ import annotations

import re

# Runs with the venv's python (-I) on the node; reads {"checks": [{argv, plan_argv, env_names}]}.
SCRIPT = r"""
import contextlib, io, json, logging, os, sys

req = json.load(sys.stdin)
warnings = []


class _Keep(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.getMessage())


import vllm
import vllm.envs as envs
from vllm.entrypoints.cli import serve
from vllm.utils.argparse_utils import FlexibleArgumentParser

logging.getLogger("vllm").addHandler(_Keep())
LISTEN = ("api_server_count", "grpc", "data_parallel_multi_port_external_lb",
          "data_parallel_supervisor_port", "kv_events_config", "uds", "host", "port",
          "headless")


def count_calls(serve_parser, decided, counts):
    # How often argparse stores into each option the plan decides: an abbreviation, a repeat
    # or an option the plan left out is one more call than the plan's argv alone makes.
    def counted(base):
        class Counted(base):
            def __call__(self, parser, namespace, values, option_string=None):
                key = "/".join(self.option_strings)
                counts[key] = counts.get(key, 0) + 1
                return base.__call__(self, parser, namespace, values, option_string)

        return Counted

    for action in serve_parser._actions:
        if set(action.option_strings) & decided:
            action.__class__ = counted(type(action))


def parse(argv, decided=frozenset(), counts=None):
    parser = FlexibleArgumentParser(prog="vllm")
    sub = parser.add_subparsers(dest="subparser")
    cmd = serve.ServeSubcommand()
    serve_parser = cmd.subparser_init(sub)
    count_calls(serve_parser, decided, {} if counts is None else counts)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit:
        lines = err.getvalue().strip().splitlines()
        first = next((i for i, line in enumerate(lines) if ": error: " in line), 0)
        text = " ".join(line.strip() for line in lines[first:]) or "argparse error"
        return None, serve_parser, "argparse", text[:800]
    try:
        cmd.validate(args)
        # As ServeSubcommand.cmd does; a model that is not staged yet (check mode) is stood in
        # for by an empty directory: the engine arguments only resolve its path.
        if getattr(args, "model_tag", None) is not None:
            args.model = args.model_tag
        if req.get("stand_in") and not os.path.exists(args.model):
            args.model = req["stand_in"]
        vllm.AsyncEngineArgs.from_cli_args(args)
    except Exception as exc:
        return None, serve_parser, type(exc).__name__, str(exc)
    return args, serve_parser, None, None


def check(item):
    del warnings[:]
    out = {"argv": item["argv"]}
    decided = frozenset(item.get("plan_options") or ())
    full, alone = {}, {}
    args, _parser, kind, error = parse(item["argv"], decided, full)
    out["error_kind"], out["error"] = kind, error
    if args is not None and item.get("plan_argv") is not None:
        plan_args, _p, pkind, perror = parse(item["plan_argv"], decided, alone)
        if plan_args is None:
            out["plan_error"] = f"{pkind}: {perror}"
        else:
            out["overridden"] = sorted(k for k in full if full[k] != alone.get(k, 0))
    if args is not None:
        out["listen"] = {k: str(getattr(args, k, None)) for k in LISTEN}
    env = {}
    for name in item.get("env_names") or ():
        if not name.startswith("VLLM_"):
            continue
        if name not in envs.environment_variables:
            env[name] = "unknown"
            continue
        try:
            getattr(envs, name)
        except Exception as exc:
            env[name] = f"{type(exc).__name__}: {exc}"
    out["env"] = env
    out["warnings"] = list(warnings)
    return out


print(json.dumps({"version": vllm.__version__, "results": [check(i) for i in req["checks"]]}))
"""

# Listeners the plan does not model, as the parsed argv shows them (the vllm_service filter
# refuses their options by name; this catches them however they were spelled).
LISTENERS = {
    "grpc": "the parsed argv starts the gRPC server (--grpc): no TLS, no key, past the gateway",
    "data_parallel_multi_port_external_lb": (
        "the parsed argv runs multi-port external load balancing: an HTTP port per DP rank and "
        "the supervisor on 0.0.0.0:9256, past the gateway"
    ),
}
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w.+-]*)")


def _where(option, sources):
    """The variable (with index) whose item holds ``option`` or abbreviates it, else None."""
    option = option.replace("_", "-")
    for variable, items in sources.items():
        for index, item in enumerate(items or ()):
            name = str(item).partition("=")[0].replace("_", "-")
            if name == option or (
                name.startswith("--") and len(name) > 3 and option.startswith(name)
            ):
                return f"{variable}[{index}]"
    return None


def _problem(host, variable, what, fix):
    where = f"host {host}" if host else "cluster (all hosts)"
    return f"{where}, variable {variable}: {what}. Fix: {fix}."


def judge(host, result, sources, env_sources, version):
    """Problems (strings) in one recorded parse; sources: {variable: [args]} of the extra args."""
    problems = []
    error = result.get("error")
    if error:
        options = OPTION.findall(error)
        where = next((w for w in (_where(o, sources) for o in options) if w), None)
        if where:
            fix = (
                f"correct or remove it (vLLM {version} rejects it: a typo, or an option this "
                f"version renamed or removed; `vllm serve --help=all` in the new environment "
                f"lists what it takes)"
            )
        else:
            where = "cluster_* (the plan's arguments)"
            fix = (
                f"the plan renders an argument vLLM {version} rejects: pin vllm_version to a "
                "release this collection supports (0.32), or report it"
            )
        problems.append(_problem(host, where, f"vLLM {version} refuses the argv: {error}", fix))
    if result.get("plan_error"):
        problems.append(
            _problem(
                host,
                "cluster_* (the plan's arguments)",
                f"vLLM {version} refuses the plan's own arguments: {result['plan_error']}",
                "pin vllm_version to a release this collection supports (0.32), or report it",
            )
        )
    for option in result.get("overridden") or ():
        problems.append(
            _problem(
                host,
                next(
                    (w for w in (_where(o, sources) for o in option.split("/")) if w),
                    "vllm_extra_args / vllm_api_extra_args",
                ),
                f"the extra arguments change {option}, which the cluster plan decides "
                "(argparse takes abbreviations and later repeats)",
                "remove that argument and set the cluster_* variable instead",
            )
        )
    listen = result.get("listen") or {}
    for key, what in LISTENERS.items():
        if listen.get(key) == "True":
            problems.append(
                _problem(host, "vllm_extra_args / vllm_api_extra_args", what, "remove it")
            )
    events = listen.get("kv_events_config") or ""
    if "enable_kv_cache_events=True" in events and "publisher='zmq'" in events:
        for endpoint in re.findall(r"endpoint='tcp://([^']*)'", events):
            bound = endpoint.rpartition(":")[0].strip("[]")
            if bound in ("*", "0.0.0.0", "::", ""):
                problems.append(
                    _problem(
                        host,
                        "vllm_extra_args / vllm_api_extra_args",
                        f"the KV-events publisher binds tcp://{endpoint}: every interface",
                        "set its endpoint to tcp://<host_ip>:PORT",
                    )
                )
    for name, why in sorted((result.get("env") or {}).items()):
        variable = next(
            (f"{var}.{name}" for var, names in env_sources.items() if name in (names or ())),
            "the service environment",
        )
        what = (
            f"{name} is not a variable vLLM {version} reads (a typo, or renamed or removed)"
            if why == "unknown"
            else f"vLLM {version} cannot read {name}: {why}"
        )
        problems.append(_problem(host, variable, what, "correct or remove it"))
    return problems
