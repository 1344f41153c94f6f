# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The driver/CUDA compatibility rule."""

from __future__ import annotations

import pytest

from ansible_collections.hardened.vllm.plugins.module_utils import _nvidia_compat as compat


@pytest.mark.parametrize(
    ("driver", "cuda"),
    [
        ("590.44.01", "13.1"),
        ("595.71.05", "13.1"),  # newer than the table: the newest CUDA it knows
        ("580.95.05", "13.0"),
        ("580.65.06", "13.0"),
        ("580.65.05", "12.9"),
        ("575.57.08", "12.9"),
        ("570.172.08", "12.8"),
        ("565.57.01", "12.6"),
        ("550.163.01", "12.4"),
        ("535.261.03", "12.2"),
        ("535.54.02", "12.1"),
        ("525.60.13", "12.0"),
        ("470.256.02", "11.4"),
        ("450.36.05", None),
    ],
)
def test_cuda_max_for_driver(driver, cuda):
    assert compat.cuda_max_for_driver(driver) == cuda


def test_vllm_default_cu130_needs_580():
    assert compat.cuda_compat("580.65.06", "cu130")["supported"]
    verdict = compat.cuda_compat("575.57.08", "cu130")
    assert not verdict["supported"]
    assert not verdict["minor_version_compat"]  # 13.x minor compat starts at 580 too
    assert "needs >= 580" in verdict["reason"]


def test_cu129_native_from_575_and_minor_compat_from_525():
    assert compat.cuda_compat("575.51.03", "12.9")["native"]
    old = compat.cuda_compat("535.261.03", "cu129")
    assert (old["supported"], old["native"], old["minor_version_compat"]) == (False, False, True)
    assert "minor_version_compat=true" in old["reason"]
    allowed = compat.cuda_compat("535.261.03", "cu129", minor_version_compat=True)
    assert allowed["supported"] and allowed["reason"] == "minor-version compatibility"
    too_old = compat.cuda_compat("520.61.05", "12.9", minor_version_compat=True)
    assert not too_old["supported"] and "needs >= 525.60.13" in too_old["reason"]


def test_cuda_newer_than_the_table_is_never_native():
    verdict = compat.cuda_compat("595.71.05", "13.2")
    assert not verdict["native"] and verdict["minor_version_compat"]


@pytest.mark.parametrize("bad", ["", "580", "abc", "5800.1.2.3.4", "580.x"])
def test_bad_driver_versions_are_refused(bad):
    with pytest.raises(ValueError, match="driver version"):
        compat.cuda_compat(bad if bad != "580" else "580.", "12.9")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("cu130", (13, 0)), ("cu129", (12, 9)), ("12.9.1", (12, 9)), ("cu1210", (12, 10))],
)
def test_parse_cuda(text, parsed):
    assert compat.parse_cuda(text) == parsed


def test_parse_cuda_refuses_a_major_alone():
    with pytest.raises(ValueError, match="needs a major and a minor"):
        compat.parse_cuda("12")


def test_select_cuda_build_picks_the_newest_supported():
    builds = ["cu128", "cu130", "cu129"]
    assert compat.select_cuda_build("580.95.05", builds) == "cu130"
    assert compat.select_cuda_build("575.57.08", builds) == "cu129"
    assert compat.select_cuda_build("570.26", builds) == "cu128"
    assert compat.select_cuda_build("535.261.03", builds) is None
    assert compat.select_cuda_build("535.261.03", builds, minor_version_compat=True) == "cu129"
