#!/usr/bin/python
# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a role's files, units and packages on a node are already as the role deploys them."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployed_state
short_description: Check in one call whether what a role deploys is in place
version_added: 0.3.0
description:
  - Compares what a role would deploy with what is on the node, in one round trip, so that a run
    with nothing to change can skip the role's template, copy, package and service tasks (one
    round trip each, per host) instead of running each of them to find that nothing changes.
  - "A file is in place when it exists as a regular file with the given SHA-1 (the checksum
    M(ansible.builtin.copy) and M(ansible.builtin.template) compare), and the given mode, owner
    and group; with O(files[].state=absent), when nothing is at the path."
  - A unit is in place when systemd has loaded it from the file on disk (C(NeedDaemonReload=no)),
    C(UnitFileState) is C(enabled) for O(units[].enabled=true), and C(ActiveState) is C(active)
    for O(units[].active=true). One C(systemctl show) reads all units.
  - Directories, links, users and groups are compared with what the role makes (kind, mode,
    owner, target, primary group, shell, home).
  - A package is in place when C(dpkg-query) reports it installed (C(ii)). On a node without
    C(dpkg-query) no package counts as in place, so the role's own tasks run.
  - Anything that cannot be read counts as not in place. The module only ever says "in place"
    when it saw that everything is; the role then skips tasks that would have changed nothing.
  - Reads only; changes nothing.
author:
  - hardened.vllm maintainers (@hardened-vllm)
requirements:
  - Python 3 on the managed host (standard library only)
  - systemd (systemctl) on the managed host, for O(units)
options:
  files:
    description: Files the role writes.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file on the node.
        type: path
        required: true
      checksum:
        description:
          - SHA-1 of the content the role writes, in hex.
          - Required unless O(files[].state=absent).
        type: str
      mode:
        description: The mode the role gives it, in octal, for example V(0644).
        type: str
      owner:
        description: The owner's name.
        type: str
      group:
        description: The group's name.
        type: str
      state:
        description: V(absent) for a file the role removes.
        type: str
        choices: [file, absent]
        default: file
  links:
    description: Symbolic links the role makes (a unit masked with a link to C(/dev/null)).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The link.
        type: path
        required: true
      src:
        description: What it must point to, exactly as the link holds it.
        type: str
        required: true
  directories:
    description: Directories the role makes.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory (a link to one does not count).
        type: path
        required: true
      mode:
        description: Its mode, in octal.
        type: str
      owner:
        description: The owner's name.
        type: str
      group:
        description: The group's name.
        type: str
  groups:
    description: Groups that must exist.
    type: list
    elements: str
    default: []
  users:
    description: Users that must exist, as the role makes them.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The user's name.
        type: str
        required: true
      group:
        description: The name of the user's primary group.
        type: str
      shell:
        description: The login shell.
        type: str
      home:
        description: The home directory.
        type: str
  units:
    description: systemd units the role installs (or keeps from running).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The unit, for example C(hardened-vllm-firewall.service).
        type: str
        required: true
      enabled:
        description:
          - V(true) - the unit must be enabled (C(UnitFileState=enabled)) and loaded from the file
            on disk.
          - V(false) - it must not be enabled (any other C(UnitFileState), C(masked) included).
        type: bool
        default: true
      active:
        description:
          - V(true) - the unit must be active (C(ActiveState=active)) and loaded from the file on
            disk.
          - V(false) - it must not be active or activating (a unit that is not found or is masked
            counts as not active).
        type: bool
        default: true
  packages:
    description: Packages the role installs.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
notes:
  - Used by hardened.vllm.firewall, hardened.vllm.gateway and hardened.vllm.vllm to skip their
    install tasks on a node where they would change nothing; the tasks run as before wherever
    anything differs.
seealso:
  - module: hardened.vllm.service_state
"""

EXAMPLES = r"""
- name: Check the firewall's units, watchdog program and package in one call
  hardened.vllm.deployed_state:
    files:
      - path: /etc/systemd/system/hardened-vllm-firewall.service
        checksum: >-
          {{ lookup('ansible.builtin.template', 'hardened-vllm-firewall.service.j2')
             | hash('sha1') }}
        mode: "0644"
        owner: root
        group: root
    units:
      - name: hardened-vllm-firewall.service
    packages: [nftables]
  register: firewall_deployed

- name: Install the unit only where it is not in place
  ansible.builtin.template:
    src: hardened-vllm-firewall.service.j2
    dest: /etc/systemd/system/hardened-vllm-firewall.service
    mode: "0644"
  when: not firewall_deployed.in_place
"""

RETURN = r"""
in_place:
  description: Whether every file, unit and package is as given.
  returned: always
  type: bool
  sample: true
differ:
  description: What is not in place, one line each (empty when RV(in_place)).
  returned: always
  type: list
  elements: str
  sample:
    - "/etc/systemd/system/hardened-vllm-firewall.service: content differs"
    - "hardened-vllm-firewall-watchdog.service: UnitFileState is disabled, not enabled"
files:
  description: What was found at each path.
  returned: always
  type: dict
  sample:
    /etc/systemd/system/hardened-vllm-firewall.service:
      exists: true
      checksum: 2f4c7c1e0a0d9f1b1e6f0e9d4b8c3a2d1e0f9a8b
      mode: "0644"
      owner: root
      group: root
units:
  description: The properties read for each unit.
  returned: always
  type: dict
  sample:
    hardened-vllm-firewall.service:
      LoadState: loaded
      ActiveState: active
      UnitFileState: enabled
      NeedDaemonReload: "no"
packages:
  description: Whether each package is installed; null where it could not be read.
  returned: always
  type: dict
  sample: {nftables: true}
"""

import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

UNIT_PROPERTIES = ("Id", "LoadState", "ActiveState", "UnitFileState", "NeedDaemonReload")


def sha1(path):
    digest = hashlib.sha1()  # what copy and template compare (checksum)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def file_state(entry):
    """(what is at the path, [what differs])."""
    path = entry["path"]
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        found = {"exists": False}
        return found, ([] if entry["state"] == "absent" else [f"{path}: missing"])
    except OSError as error:
        return {"exists": None}, [f"{path}: cannot be read ({error.strerror})"]
    if entry["state"] == "absent":
        return {"exists": True}, [f"{path}: present, to be removed"]
    if not stat.S_ISREG(info.st_mode):
        return {"exists": True}, [f"{path}: not a regular file"]
    found = {
        "exists": True,
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "owner": _name(pwd.getpwuid, info.st_uid),
        "group": _name(grp.getgrgid, info.st_gid),
    }
    try:
        found["checksum"] = sha1(path)
    except OSError as error:
        return found, [f"{path}: cannot be read ({error.strerror})"]
    problems = []
    if found["checksum"] != (entry.get("checksum") or "").lower():
        problems.append(f"{path}: content differs")
    return found, problems + owner_problems(path, entry, info)


def link_problems(entry):
    path = entry["path"]
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return [f"{path}: missing, to link to {entry['src']}"]
    except OSError as error:
        return [f"{path}: not a link to {entry['src']} ({error.strerror})"]
    return [] if target == entry["src"] else [f"{path}: links to {target}, not {entry['src']}"]


def directory_problems(entry):
    path = entry["path"]
    try:
        info = os.lstat(path)
    except OSError as error:
        return [f"{path}: missing ({error.strerror})"]
    if not stat.S_ISDIR(info.st_mode):
        return [f"{path}: not a directory"]
    return owner_problems(path, entry, info)


def owner_problems(path, entry, info):
    """What differs in mode, owner and group of an entry, against os.lstat's info."""
    found = {
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "owner": _name(pwd.getpwuid, info.st_uid),
        "group": _name(grp.getgrgid, info.st_gid),
    }
    problems = []
    if entry.get("mode") is not None and found["mode"] != f"{int(entry['mode'], 8):04o}":
        problems.append(f"{path}: mode {found['mode']}, not {entry['mode']}")
    for key in ("owner", "group"):
        if entry.get(key) is not None and found[key] != entry[key]:
            problems.append(f"{path}: {key} {found[key]}, not {entry[key]}")
    return problems


def user_problems(entry):
    name = entry["name"]
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        return [f"user {name}: missing"]
    problems = []
    group = _name(grp.getgrgid, user.pw_gid)
    if entry.get("group") is not None and group != entry["group"]:
        problems.append(f"user {name}: primary group {group}, not {entry['group']}")
    if entry.get("shell") is not None and user.pw_shell != entry["shell"]:
        problems.append(f"user {name}: shell {user.pw_shell}, not {entry['shell']}")
    if entry.get("home") is not None and user.pw_dir != entry["home"]:
        problems.append(f"user {name}: home {user.pw_dir}, not {entry['home']}")
    return problems


def group_problems(name):
    try:
        grp.getgrnam(name)
    except KeyError:
        return [f"group {name}: missing"]
    return []


def parse_units(text):
    """`systemctl show -p Id -p ... UNIT...` output -> {Id: {property: value}}."""
    units = {}
    for block in text.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            units[props["Id"]] = props
    return units


def unit_problems(entry, props):
    name = entry["name"]
    if not props:
        return [f"{name}: not read from systemctl"]
    if not (entry["enabled"] or entry["active"]):
        # Must not run: a unit that is not found or is masked qualifies.
        problems = []
        if entry["enabled"] is False and props.get("UnitFileState") == "enabled":
            problems.append(f"{name}: enabled, to be left disabled")
        if entry["active"] is False and props.get("ActiveState") in (
            "active",
            "activating",
            "reloading",
        ):
            problems.append(f"{name}: ActiveState is {props.get('ActiveState')}, to be stopped")
        return problems
    if props.get("LoadState") != "loaded":
        return [f"{name}: not loaded ({props.get('LoadState', 'not read')})"]
    problems = []
    if props.get("NeedDaemonReload") != "no":
        problems.append(f"{name}: its unit file changed since systemd loaded it")
    if entry["enabled"] and props.get("UnitFileState") != "enabled":
        state = props.get("UnitFileState") or "empty"
        problems.append(f"{name}: UnitFileState is {state}, not enabled")
    elif entry["enabled"] is False and props.get("UnitFileState") == "enabled":
        problems.append(f"{name}: enabled, to be left disabled")
    if entry["active"] and props.get("ActiveState") != "active":
        problems.append(f"{name}: ActiveState is {props.get('ActiveState')}, not active")
    elif entry["active"] is False and props.get("ActiveState") in (
        "active",
        "activating",
        "reloading",
    ):
        problems.append(f"{name}: ActiveState is {props.get('ActiveState')}, to be stopped")
    return problems


def parse_dpkg(text):
    """`dpkg-query -W -f '${Package}\\t${db:Status-Abbrev}\\n'` output -> {package: installed}."""
    found = {}
    for line in text.splitlines():
        name, _tab, status = line.partition("\t")
        if name:
            found[name] = status.startswith("ii")
    return found


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "path", "required": True},
                    "checksum": {"type": "str"},
                    "mode": {"type": "str"},
                    "owner": {"type": "str"},
                    "group": {"type": "str"},
                    "state": {"type": "str", "choices": ["file", "absent"], "default": "file"},
                },
                "required_if": [("state", "file", ("checksum",))],
            },
            "links": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "path", "required": True},
                    "src": {"type": "str", "required": True},
                },
            },
            "directories": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "path", "required": True},
                    "mode": {"type": "str"},
                    "owner": {"type": "str"},
                    "group": {"type": "str"},
                },
            },
            "groups": {"type": "list", "elements": "str", "default": []},
            "users": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "group": {"type": "str"},
                    "shell": {"type": "str"},
                    "home": {"type": "str"},
                },
            },
            "units": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "enabled": {"type": "bool", "default": True},
                    "active": {"type": "bool", "default": True},
                },
            },
            "packages": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    differ, files, units, packages = [], {}, {}, {}

    for name in params["groups"]:
        differ += group_problems(name)
    for entry in params["users"]:
        differ += user_problems(entry)
    for entry in params["directories"]:
        differ += directory_problems(entry)
    for entry in params["links"]:
        differ += link_problems(entry)
    for entry in params["files"]:
        files[entry["path"]], problems = file_state(entry)
        differ += problems

    if params["units"]:
        names = [entry["name"] for entry in params["units"]]
        systemctl = module.get_bin_path("systemctl")
        shown = {}
        if systemctl:
            argv = [systemctl, "show", "--no-pager"]
            for prop in UNIT_PROPERTIES:
                argv += ["-p", prop]
            rc, out, _err = module.run_command([*argv, "--", *names])
            shown = parse_units(out) if rc == 0 else {}
        for entry in params["units"]:
            units[entry["name"]] = shown.get(entry["name"], {})
            differ += unit_problems(entry, shown.get(entry["name"]))

    if params["packages"]:
        dpkg_query = module.get_bin_path("dpkg-query")
        seen = {}
        if dpkg_query:
            # rc is 1 when a package is unknown; what it printed for the others still holds.
            _rc, out, _err = module.run_command(
                [dpkg_query, "-W", "-f", "${Package}\t${db:Status-Abbrev}\n", "--"]
                + params["packages"]
            )
            seen = parse_dpkg(out)
        for name in params["packages"]:
            packages[name] = seen.get(name, False) if dpkg_query else None
            if not packages[name]:
                differ.append(
                    f"package {name}: "
                    + ("not installed" if dpkg_query else "cannot be checked without dpkg-query")
                )

    module.exit_json(
        changed=False,
        in_place=not differ,
        differ=differ,
        files=files,
        units=units,
        packages=packages,
    )


if __name__ == "__main__":
    main()
