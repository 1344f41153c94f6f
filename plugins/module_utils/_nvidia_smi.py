# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers for what the NVIDIA driver tells about itself (pure functions, stdlib only).

- nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv[,noheader][,nounits]
- nvidia-smi -q -x  (XML, root element nvidia_smi_log)
- /proc/driver/nvidia/version (which kernel module is loaded, open or proprietary)

Every parser takes text and returns plain data, so a recording from a real node can be
dropped into tests/unit/fixtures/nvidia/ and tested as it is.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET

QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "driver_version",
    "compute_cap",
    "memory.total",
    "persistence_mode",
)

# nvidia-smi prints these for fields a GPU or driver does not have.
_ABSENT = {"[N/A]", "N/A", "[Not Supported]", "Not Supported", "[Unknown Error]", ""}
_UNIT = re.compile(r"\s*\[[^\]]*\]$")
_PROC_VERSION = re.compile(
    r"NVRM version:\s+NVIDIA UNIX\s+(?P<desc>.*?Kernel Module(?: for \S+)?)\s+"
    r"(?P<version>\d+\.\d+(?:\.\d+)?)"
)


class ParseError(ValueError):
    """The text is not in the format the parser expects."""


def _value(text):
    text = text.strip()
    return None if text in _ABSENT else text


def _mib(text):
    """'81559 MiB' or '81559' -> 81559; None for absent values."""
    value = _value(text or "")
    if value is None:
        return None
    number = value.split()[0]
    try:
        return int(float(number))
    except ValueError:
        raise ParseError(f"memory value {text!r} is not a number of MiB") from None


def _gpu_row(row):
    gpu = {key: _value(val) for key, val in row.items()}
    if gpu.get("index") is not None:
        gpu["index"] = int(gpu["index"])
    if "memory.total" in gpu:
        gpu["memory.total"] = _mib(row["memory.total"])
    return {key.replace(".", "_"): val for key, val in gpu.items()}


def parse_query_csv(text, fields=QUERY_FIELDS):
    """Rows of `nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` as dicts.

    With a header the columns are read from it (units such as ' [MiB]' dropped); without
    one they are `fields` in order. Keys use '_' for '.' (pci.bus_id -> pci_bus_id).
    """
    rows = [
        r for r in csv.reader(io.StringIO(text), skipinitialspace=True) if any(c.strip() for c in r)
    ]
    if not rows:
        return []
    header = [_UNIT.sub("", col.strip()) for col in rows[0]]
    if header and header[0] == fields[0] and set(header) <= set(fields) | {"index"}:
        columns, rows = header, rows[1:]
    else:
        columns = list(fields)
    gpus = []
    for number, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise ParseError(
                f"nvidia-smi CSV row {number} has {len(row)} values for {len(columns)} fields "
                f"({', '.join(columns)}): {row!r}"
            )
        gpus.append(_gpu_row(dict(zip(columns, row, strict=True))))
    return gpus


def _text(element, path):
    found = element.find(path)
    return None if found is None or found.text is None else _value(found.text)


def parse_smi_xml(text):
    """The parts of `nvidia-smi -q -x` the roles use: driver, CUDA version and each GPU."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ParseError(f"nvidia-smi XML does not parse: {exc}") from None
    if root.tag != "nvidia_smi_log":
        raise ParseError(f"nvidia-smi XML root is <{root.tag}>, expected <nvidia_smi_log>")
    gpus = []
    for gpu in root.findall("gpu"):
        gpus.append(
            {
                "pci_bus_id": gpu.get("id"),
                "name": _text(gpu, "product_name"),
                "architecture": _text(gpu, "product_architecture"),
                "uuid": _text(gpu, "uuid"),
                "persistence_mode": _text(gpu, "persistence_mode"),
                "memory_total": _mib(_text(gpu, "fb_memory_usage/total")),
                "fabric_state": _text(gpu, "fabric/state"),
                "fabric_status": _text(gpu, "fabric/status"),
            }
        )
    attached = _text(root, "attached_gpus")
    return {
        "driver_version": _text(root, "driver_version"),
        "cuda_version": _text(root, "cuda_version"),
        "attached_gpus": int(attached) if attached is not None else len(gpus),
        "gpus": gpus,
    }


def parse_proc_version(text):
    """/proc/driver/nvidia/version -> {'version': '580.95.05', 'flavor': 'open'|'proprietary'}."""
    match = _PROC_VERSION.search(text or "")
    if not match:
        raise ParseError("no 'NVRM version: NVIDIA UNIX ... Kernel Module <version>' line")
    flavor = "open" if "Open Kernel Module" in match.group("desc") else "proprietary"
    return {"version": match.group("version"), "flavor": flavor}
