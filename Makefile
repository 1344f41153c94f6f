# hardened.vllm: tests and the local lab. `make test` is what CI runs (.ci/run).
# Every stage prints "stage NAME: N s" (tests/stage.sh); `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# Stages run in the order given and stop at the first failure, even under make -j.
.NOTPARALLEL:

REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
STAGE := $(REPO)/tests/stage.sh
COLLECTIONS := $(REPO)/.build/collections
LINK := $(COLLECTIONS)/ansible_collections/hardened/vllm
PY_DIRS := $(wildcard plugins tests bench)
SCENARIOS := $(sort $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
# Debian suites of the test node image (lab/image/build.sh SUITE). The scenarios in
# MATRIX_SCENARIOS run on each suite, the others on the first one only (nvidia_driver checks
# each suite's own driver packages: 535 on Debian 12, 550 on Debian 13). Other images (Ubuntu,
# RHEL: untested): HV_NODE_IMAGE=... molecule test -s NAME.
SUITES := bookworm trixie
MATRIX_SCENARIOS := firewall nvidia_driver verify
# The scenarios that start vLLM run first. LANE_ONE goes one after another in the first lane,
# the rest in the second (HV_MOLECULE_LANES=1: one lane, LANE_ONE first; tests/molecule.sh).
# Two vLLM scenarios side by side starve each other on 2 cores (multi_node's first completion
# beside disaggregated took over 120 s), so every vLLM scenario stays in the first lane.
# HV_MOLECULE_KEEP_GOING=1: go on after a failure.
HEAVY_SCENARIOS := multi_node disaggregated cluster
# ALONE runs after both lanes, with nothing beside it: in disaggregated, NIXL's UCX progress
# thread keeps one core busy in each engine (nixl 1.5.1 polls with no delay, idle or not), so
# on 2 cores the two engines starve whatever runs beside them. (Its slow transfers, 348-479 s
# alone or not, came from vLLM's own thread binding; the scenario turns it off, docs/plan.md,
# "What ran for real".)
ALONE := disaggregated
LANE_ONE := $(filter-out $(ALONE),$(HEAVY_SCENARIOS))

# The venv's tools first; hardened.vllm resolves through the link below, the collections
# bundled by PyPI's `ansible` package through the venv's site-packages.
export PATH := $(REPO)/.venv/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)

.PHONY: help setup image link lint sanity unit build-test molecule test lab lab-destroy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-12s %s\n", $$1, $$2 }'

setup: ## OS packages, podman settings and .venv (tests/setup.sh)
	@$(STAGE) setup bash tests/setup.sh

image: setup ## build the test node images (one per suite of SUITES) when their recipe changed (lab/image/)
	@$(STAGE) image bash -ec 'for suite in $(SUITES); do lab/image/build.sh "$$suite"; done'

link: ## make hardened.vllm resolvable: .build/collections/ansible_collections/hardened/vllm
	@mkdir -p $(dir $(LINK)) && ln -sfn $(REPO) $(LINK)

lint: setup link ## ansible-lint, yamllint, ruff, changelog (all run; the stage fails if any fails)
	@$(STAGE) lint bash -c '\
	  rc=0; \
	  ansible-lint || rc=1; \
	  yamllint --strict . || rc=1; \
	  ruff check $(PY_DIRS) || rc=1; \
	  ruff format --check $(PY_DIRS) || rc=1; \
	  bash tests/changelog.sh || rc=1; \
	  exit $$rc'

sanity: setup ## ansible-test sanity on a copy of the collection
	@$(STAGE) sanity bash tests/sanity/run.sh

unit: setup link ## pytest tests/unit ("no tests collected" fails)
	@$(STAGE) unit env PYTHONPATH=$(COLLECTIONS) pytest -q tests/unit

build-test: setup ## build the tarball, install it elsewhere, use it from outside the repo
	@$(STAGE) build-test bash tests/integration/build-test.sh

molecule: setup image link ## every Molecule scenario (tests/molecule.sh; MATRIX_SCENARIOS on every suite; two lanes, HV_MOLECULE_LANES=1: one)
	@test -n "$(SCENARIOS)" || { echo "no scenario under molecule/" >&2; exit 1; }
	@$(STAGE) molecule bash tests/molecule.sh "$(filter $(SCENARIOS),$(LANE_ONE))" \
	  "$(filter $(SCENARIOS),$(filter-out $(LANE_ONE) $(ALONE),$(HEAVY_SCENARIOS))) $(filter-out $(HEAVY_SCENARIOS) $(ALONE),$(SCENARIOS))" \
	  "$(MATRIX_SCENARIOS)" "$(SUITES)" "$(filter $(SCENARIOS),$(ALONE))"

test: ## everything CI checks, in order, stopping at the first failure
	@rm -f .build/stages.log .build/molecule/*.digest && mkdir -p .build
	@$(MAKE) --no-print-directory HV_STAGE_LOG=$(REPO)/.build/stages.log \
	  setup image lint sanity unit build-test molecule || \
	  { echo "make test stopped:"; sed 's/^/  /' .build/stages.log; \
	    ! compgen -G '.build/molecule/*.digest' >/dev/null || \
	      { echo "what failed (tests/digest.sh):"; sed 's/^/  /' .build/molecule/*.digest; }; \
	    exit 1; }
	@echo "all stages passed:" && sed 's/^/  /' .build/stages.log
	@echo "stages: $$(grep -c '^stage ' .build/stages.log) passed, 0 failed"

lab: setup image link ## bring up the local lab and run playbooks/site.yml on it (LAB_ARGS: extra ansible-playbook arguments)
	@$(STAGE) lab bash lab/lab.sh up $(LAB_ARGS)

lab-destroy: ## remove the lab's containers and network, nothing else
	@$(STAGE) lab-destroy bash lab/lab.sh destroy

clean: ## remove build outputs (.build); keeps .venv, .cache and the lab
	rm -rf .build
