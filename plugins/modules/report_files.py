#!/usr/bin/python
# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the action plugin hardened.vllm.report_files (it runs on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: report_files
short_description: Write report files in a directory on the controller
version_added: 0.3.0
description:
  - Writes each of O(files) into the directory O(dest) on the controller, creating the
    directory (mode C(0755)) when it is missing. Each file is replaced in one step (a reader
    sees the old report or the new one) with mode C(0644), and only when its content differs.
  - It runs in the controller's own process, whichever host the task runs for; nothing is sent
    to any host. One task writes every file, where a delegated M(ansible.builtin.copy) starts a
    module run per file.
  - Used by hardened.vllm.verify for C(exposure.json), C(exposure-matrix.txt) and
    C(http-matrix.txt).
author:
  - hardened.vllm maintainers (@hardened-vllm)
options:
  dest:
    description: The directory on the controller.
    type: path
    required: true
  files:
    description: File names (no directory part) and their content.
    type: dict
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Changes no host; the report on the controller is written in check mode too.
  connection:
    support: none
  delegation:
    support: none
    details: Always runs on the controller.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Write the verdict and the matrix on the controller
  hardened.vllm.report_files:
    dest: "{{ playbook_dir }}/exposure-report"
    files:
      exposure.json: "{{ report | to_nice_json }}\n"
      exposure-matrix.txt: "{{ findings | hardened.vllm.probe_matrix }}"
  run_once: true
"""

RETURN = r"""
dest:
  description: The directory the files are in.
  returned: always
  type: str
  sample: /srv/ansible/exposure-report
written:
  description: The files that were written (the others already had this content).
  returned: always
  type: list
  elements: str
  sample: [/srv/ansible/exposure-report/exposure.json]
"""
