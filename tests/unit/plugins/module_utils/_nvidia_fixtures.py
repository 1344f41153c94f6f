# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by the nvidia unit tests: fixture paths and a sysfs tree from a recording."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia"
_LINE = re.compile(
    r"^/sys/bus/pci/devices/(?P<dev>[^/]+)/(?P<attr>vendor|device|class|subsystem_vendor|subsystem_device|driver):"
    r"(?P<value>.*)$"
)


def fixture(name):
    return (FIXTURES / name).read_text()


def sysfs_from_recording(recording, root):
    """Rebuild /sys/bus/pci/devices under `root` from a `grep -H .` recording (see README)."""
    for line in fixture(f"pci/{recording}.txt").splitlines():
        match = _LINE.match(line)
        assert match, f"unexpected line in {recording}: {line!r}"
        device = root / match["dev"]
        device.mkdir(parents=True, exist_ok=True)
        if match["attr"] == "driver":
            (device / "driver").symlink_to(f"../../../bus/pci/drivers/{match['value']}")
        else:
            (device / match["attr"]).write_text(match["value"] + "\n")
    return root


def sysfs_layout(name, root):
    """Unpack the constructed sysfs layout sysfs/<name>.tar (see sysfs/build.py) under `root`."""
    with tarfile.open(FIXTURES / "sysfs" / f"{name}.tar") as archive:
        # Python 3.11.4+ and Debian 12's 3.11.2 (which backports the filters only from its
        # security updates) differ: filter only where tarfile has it; the archive is ours.
        if hasattr(tarfile, "tar_filter"):
            archive.extractall(root, filter="tar")
        else:  # pragma: no cover - older 3.11
            archive.extractall(root)
    return root
