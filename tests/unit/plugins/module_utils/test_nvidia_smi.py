# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nvidia-smi and /proc/driver/nvidia/version parsers, on constructed fixtures (see README)."""

from __future__ import annotations

import pytest
from _nvidia_fixtures import fixture

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_smi as smi


def test_query_csv_without_header_or_units():
    gpus = smi.parse_query_csv(fixture("smi-query-hgx-h100.csv"))
    assert len(gpus) == 8
    assert gpus[0] == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-00000000-1111-4000-8000-000000000000",
        "pci_bus_id": "00000000:18:00.0",
        "driver_version": "580.95.05",
        "compute_cap": "9.0",
        "memory_total": 81559,
        "persistence_mode": "Enabled",
    }
    assert [g["index"] for g in gpus] == list(range(8))


def test_query_csv_with_header_units_and_absent_values():
    gpus = smi.parse_query_csv(fixture("smi-query-header-units.csv"))
    assert [g["compute_cap"] for g in gpus] == ["8.9", "7.5"]
    assert gpus[0]["memory_total"] == 46068
    assert gpus[1]["memory_total"] is None and gpus[1]["persistence_mode"] is None


def test_query_csv_reports_a_short_row():
    with pytest.raises(smi.ParseError, match="row 1 has 3 values for 8 fields"):
        smi.parse_query_csv("0, NVIDIA H100, GPU-1\n")


def test_query_csv_empty_output_means_no_gpus():
    assert smi.parse_query_csv("\n") == []


def test_xml_hgx():
    log = smi.parse_smi_xml(fixture("smi-q-x-hgx-h100.xml"))
    assert (log["driver_version"], log["cuda_version"], log["attached_gpus"]) == (
        "580.95.05",
        "13.0",
        2,
    )
    first, second = log["gpus"]
    assert first["architecture"] == "Hopper" and first["memory_total"] == 81559
    assert (first["fabric_state"], first["fabric_status"]) == ("Completed", "Success")
    assert (second["fabric_state"], second["fabric_status"]) == ("In Progress", None)


def test_xml_without_fabric_section():
    log = smi.parse_smi_xml(fixture("smi-q-x-pcie-old-driver.xml"))
    assert log["cuda_version"] == "12.2"
    assert log["gpus"][0]["fabric_state"] is None


@pytest.mark.parametrize(
    ("text", "message"), [("<nope", "does not parse"), ("<log/>", "expected <nvidia_smi_log>")]
)
def test_xml_errors(text, message):
    with pytest.raises(smi.ParseError, match=message):
        smi.parse_smi_xml(text)


def test_proc_version_flavours():
    assert smi.parse_proc_version(fixture("proc-version-open.txt")) == {
        "version": "580.95.05",
        "flavor": "open",
    }
    assert smi.parse_proc_version(fixture("proc-version-proprietary.txt")) == {
        "version": "535.261.03",
        "flavor": "proprietary",
    }
    with pytest.raises(smi.ParseError):
        smi.parse_proc_version("nouveau")
