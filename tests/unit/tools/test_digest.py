# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/digest.sh: what `make test` prints last about a failed Molecule scenario.

The log below has the shape of CI's disaggregated run of 2026-12-07 (molecule's ANSI colours and
"  │ " frame, its CRITICAL/ERROR lines): converge failed, then the destroy molecule runs after a
failure failed too. The destroy part is CI's own text; both steps must be named, each with the
task that failed in it, the first one above all (it is the cause)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "tests" / "digest.sh"
RED, DIM, OFF = "\x1b[31m", "\x1b[2m", "\x1b[0m"


def framed(*lines):
    return "".join(f"  {DIM}│{OFF} {RED}{line}{OFF}\n" for line in lines)


CONVERGE = framed(
    "TASK [Wait until vLLM answers /health (up to 1200 s)] ******************",
    "ok: [pd-decode]",
    "TASK [hardened.vllm.vllm : Start vLLM] **********************************",
    "[ERROR]: Task failed: Module failed: Unable to start service",
    "  hardened-vllm.service: Job for hardened-vllm.service failed.",
    "Origin: /work/roles/vllm/tasks/service.yml:12:3",
    "",
    "12 - name: Start vLLM",
    'fatal: [pd-prefill]: FAILED! => {"changed": false}',
) + (
    "CRITICAL Ansible return code was 2, command was: ansible-playbook converge.yml\n"
    f"{RED}ERROR   {OFF} disaggregated ➜ converge: Executed: Failed\n"
)
DESTROY = framed(
    "TASK [Remove the containers] *********************************************",
    "[ERROR]: Task failed: Module failed: Container pd-prefill exited with code",
    "  125 when deleteed",
    "Origin: /check/work/main/molecule/firewall/destroy.yml:6:7",
    'failed: [localhost] (item=pd-prefill) => {"msg": "given PIDs did not die within timeout"}',
    "changed: [localhost] => (item=pd-decode)",
) + (
    "CRITICAL Ansible return code was 2, command was: ansible-playbook destroy.yml\n"
    "ERROR    disaggregated ➜ destroy: Executed: Failed\n"
)


def digest(tmp_path, text, *args):
    log = tmp_path / "scenario.log"
    log.write_text(text, encoding="utf-8")
    run = subprocess.run(
        ["bash", str(SCRIPT), str(log), *args], capture_output=True, text=True, check=True
    )
    return run.stdout.splitlines()


def test_both_failed_steps_each_with_its_own_task(tmp_path):
    assert digest(tmp_path, CONVERGE + DESTROY) == [
        "ERROR    disaggregated ➜ converge: Executed: Failed",
        "TASK [hardened.vllm.vllm : Start vLLM] fatal: [pd-prefill]",
        "[ERROR]: Task failed: Module failed: Unable to start service",
        "  hardened-vllm.service: Job for hardened-vllm.service failed.",
        "ERROR    disaggregated ➜ destroy: Executed: Failed",
        "TASK [Remove the containers] failed: [localhost]",
        "[ERROR]: Task failed: Module failed: Container pd-prefill exited with code",
        "  125 when deleteed",
    ]


def test_a_step_without_a_task_error_says_so(tmp_path):
    lines = digest(tmp_path, CONVERGE + "ERROR    disaggregated ➜ verify: Executed: Failed\n")
    assert lines[-2:] == [
        "ERROR    disaggregated ➜ verify: Executed: Failed",
        "(no task error in this step)",
    ]


def test_long_errors_are_cut(tmp_path):
    many = framed("TASK [x] ***", "[ERROR]: first", *[f"  line {i}" for i in range(30)])
    lines = digest(tmp_path, many, "5")
    assert lines == [
        "TASK [x]",
        "[ERROR]: first",
        *[f"  line {i}" for i in range(4)],
        "  ... (26 more lines in the log)",
    ]


def test_no_log_and_an_empty_log(tmp_path):
    missing = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "absent.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 0 and "no log at" in missing.stdout
    assert digest(tmp_path, "nothing here\n") == ["(no failed step and no task error in the log)"]
