#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse the vLLM service's argv and environment with the installed vLLM's own parser."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vllm_argv_check
short_description: Parse a vLLM service's argv and environment with the installed vLLM itself
version_added: 0.1.0
description:
  - Runs the virtual environment's Python (O(python)) with a short script that builds the
    argument parser exactly as C(vllm serve) does, parses O(argv), runs the subcommand's own
    checks and builds the engine arguments; no engine, model or device is touched and nothing
    on the host changes.
  - Fails, naming the host, the variable and a fix, when vLLM rejects an argument (a typo, an
    option that this version renamed or removed, a bad value), when the extra arguments change
    an option of O(plan_options) (argparse takes abbreviations, e.g. C(--master-a)), or when a
    C(VLLM_*) variable of O(env) is unknown to this vLLM or has a value it cannot read.
  - The role runs it after installing and before stopping the running service, so a bad
    argument never stops a healthy one.
author:
  - hardened.vllm maintainers (@hardened-vllm)
requirements:
  - Python 3 on the managed host (standard library only)
  - vLLM installed in the environment of O(python)
options:
  python:
    description: The Python of the virtual environment vLLM is installed in.
    type: path
    required: true
  argv:
    description: The service's arguments after the executable (C(serve MODEL ...)).
    type: list
    elements: str
    required: true
  plan_argv:
    description:
      - The arguments without the extra ones (what the cluster plan decides); parsed too, so
        that an extra argument that changes a plan option is found.
    type: list
    elements: str
  plan_options:
    description: The option strings whose values the cluster plan decides.
    type: list
    elements: str
    default: []
  env:
    description:
      - The service's environment. It is the environment of the parse; the cache and home
        directories are redirected to a temporary directory that is removed afterwards.
    type: dict
    default: {}
  sources:
    description: Variable name -> its list of arguments, to name the variable in messages.
    type: dict
    default: {}
  env_sources:
    description: Variable name -> the environment names it sets, to name it in messages.
    type: dict
    default: {}
  host:
    description: The host's name in messages (the inventory name); the node's name by default.
    type: str
  timeout:
    description: Seconds the parse may take (importing vLLM takes 10-30 s on a loaded host).
    type: int
    default: 300
  cache:
    description:
      - A file on the node (root's, mode 0600) that remembers the last parse that passed.
      - Its key is a SHA-256 of everything the verdict depends on - the arguments, the
        environment's names and values, the sources, the host, this module's parser and judge,
        and the identity (inode, modification time) of the interpreter and of its environment's
        C(site-packages) and C(vllm) package directories, which change when packages are
        installed or removed. When the key matches, the stored answer is returned without
        importing vLLM (a run with nothing to change); anything else parses again.
      - Only a parse without problems is stored, never in check mode, and never a secret (the
        key is a digest). Not set, every call parses.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It only reads, so it runs in check mode too.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: hardened.vllm.vllm_venv
"""

EXAMPLES = r"""
- name: Parse the service's argv with the installed vLLM before restarting it
  hardened.vllm.vllm_argv_check:
    python: /opt/hardened-vllm/venvs/vllm-0.32.0-abc/bin/python
    argv: [serve, /srv/models/tiny, --uds, /run/hardened-vllm/api.sock, --enforce-eager]
    plan_argv: [serve, /srv/models/tiny, --uds, /run/hardened-vllm/api.sock]
    plan_options: [--uds, --host, --port]
    env: {VLLM_HOST_IP: 10.0.0.11, VLLM_TARGET_DEVICE: cpu}
    sources: {vllm_extra_args: [--enforce-eager]}
"""

RETURN = r"""
version:
  description: The version of vLLM that parsed the argv.
  returned: always
  type: str
  sample: 0.32.0
listen:
  description: What the parsed argv sets for the options that decide listeners.
  returned: success
  type: dict
  sample: {api_server_count: "None", grpc: "False", uds: /run/hardened-vllm/api.sock}
warnings_seen:
  description: Warnings vLLM logged while parsing (deprecated arguments).
  returned: always
  type: list
  elements: str
  sample: ["argument 'disable_log_requests' is deprecated"]
cached:
  description: Whether the answer came from O(cache) (the same inputs passed) without a parse.
  returned: success
  type: bool
  sample: true
"""

import glob
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils import _vllm_argv

# Where vLLM, torch and the hub would write while importing: a private, removed directory.
CACHE_ENV = (
    "HOME",
    "TMPDIR",
    "XDG_CACHE_HOME",
    "VLLM_CACHE_ROOT",
    "HF_HOME",
    "NUMBA_CACHE_DIR",
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
    "OUTLINES_CACHE_DIR",
)


def run_parse(python, checks, env, timeout):
    """The script's JSON output for checks (each: argv, plan_argv, plan_options, env_names)."""
    scratch = tempfile.mkdtemp(prefix="hardened-vllm-argv-")
    try:
        environ = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
        environ.update({str(k): str(v) for k, v in env.items()})
        environ.update({name: scratch for name in CACHE_ENV})
        proc = subprocess.run(
            [python, "-I", "-c", _vllm_argv.SCRIPT],
            input=json.dumps({"checks": checks, "stand_in": scratch}),
            capture_output=True,
            text=True,
            env=environ,
            timeout=timeout,
            check=False,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), proc
    except (ValueError, IndexError):
        return None, proc


def installed_identity(python):
    """Inode and mtime of the interpreter and of its environment's package directories.

    Installing, upgrading or removing a package renames or adds entries in site-packages (and
    rewrites vllm/ when vLLM itself changes), so these change with what the parser would import.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    paths = [python]
    for site in sorted(glob.glob(os.path.join(root, "lib", "python*", "site-packages"))):
        paths += [site, os.path.join(site, "vllm")]
    identity = []
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            identity.append([path, None])
            continue
        identity.append([path, st.st_ino, st.st_mtime_ns, st.st_size])
    return identity


def _judge_source():
    try:
        return inspect.getsource(_vllm_argv)
    except (OSError, TypeError):  # no source to read: the parser script still keys the cache
        return _vllm_argv.SCRIPT


def cache_key(params, host, check):
    material = {
        "check": check,
        "env": {str(k): str(v) for k, v in params["env"].items()},
        "sources": params["sources"],
        "env_sources": params["env_sources"],
        "host": host,
        "judge": hashlib.sha256(_judge_source().encode()).hexdigest(),
        "installed": installed_identity(params["python"]),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def read_cache(path, key):
    """The stored answer when the file holds this key, else None."""
    try:
        with open(path, encoding="utf-8") as handle:
            stored = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    out = stored.get("out")
    return out if isinstance(out, dict) else None


def write_cache(path, key, out):
    """Store a passing answer, root-only, atomically; a cache that cannot be written is skipped."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".argv-check-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"key": key, "out": out}, handle, sort_keys=True)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except OSError:
        return False
    return True


def main():
    module = AnsibleModule(
        argument_spec={
            "python": {"type": "path", "required": True},
            "argv": {"type": "list", "elements": "str", "required": True},
            "plan_argv": {"type": "list", "elements": "str"},
            "plan_options": {"type": "list", "elements": "str", "default": []},
            "env": {"type": "dict", "default": {}},
            "sources": {"type": "dict", "default": {}},
            "env_sources": {"type": "dict", "default": {}},
            "host": {"type": "str"},
            "timeout": {"type": "int", "default": 300},
            "cache": {"type": "path"},
        },
        supports_check_mode=True,
    )
    p = module.params
    host = p["host"] or os.uname().nodename
    if not os.access(p["python"], os.X_OK):
        module.fail_json(msg=f"{p['python']}: no such interpreter (is vLLM installed?)")
    check = {
        "argv": p["argv"],
        "plan_argv": p["plan_argv"],
        "plan_options": p["plan_options"],
        "env_names": sorted(p["env"]),
    }
    key = cache_key(p, host, check) if p["cache"] else None
    if key is not None:
        stored = read_cache(p["cache"], key)
        if stored is not None:
            module.exit_json(**{**stored, "changed": False, "cached": True})
    try:
        data, proc = run_parse(p["python"], [check], p["env"], p["timeout"])
    except subprocess.TimeoutExpired:
        module.fail_json(msg=f"vLLM's parser did not answer within {p['timeout']} s")
    if data is None:
        module.fail_json(
            msg=f"{p['python']} could not run vLLM's parser (exit {proc.returncode}): "
            + (proc.stderr.strip().splitlines() or ["no output"])[-1],
            stderr=proc.stderr[-4000:],
        )
    result = data["results"][0]
    problems = _vllm_argv.judge(host, result, p["sources"], p["env_sources"], data["version"])
    out = {
        "changed": False,
        "version": data["version"],
        "listen": result.get("listen") or {},
        "warnings_seen": result.get("warnings") or [],
    }
    if problems:
        module.fail_json(
            msg=f"hardened.vllm.vllm_argv_check: {len(problems)} problem(s); the running "
            "service was not stopped:\n" + "\n".join(f"- {x}" for x in problems),
            **out,
        )
    if key is not None and not module.check_mode:
        write_cache(p["cache"], key, out)
    module.exit_json(**out, cached=False)


if __name__ == "__main__":
    main()
