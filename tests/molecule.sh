#!/usr/bin/env bash
# Every Molecule scenario (make molecule, make test), in two lanes side by side (the default:
# HV_MOLECULE_LANES=2) or one after another in one lane (HV_MOLECULE_LANES=1, output on the
# terminal too):
#   tests/molecule.sh "FIRST LANE" "SECOND LANE" "MATRIX SCENARIOS" "SUITES" ["ALONE"]
# The Makefile puts the scenarios that start vLLM in the first lane (LANE_ONE), the light ones in
# the second: vLLM's start-up leaves the controller idle for minutes, and no two scenarios
# share a container, network or port (each has its own names and subnet). MATRIX
# scenarios run once per suite, the others on the first suite only. Each scenario's output goes to
# .build/molecule/SCENARIO-SUITE.log (the stage line names it); a lane stops at its first failure,
# the other lane starts nothing new after it (HV_MOLECULE_KEEP_GOING=1: both lanes go on, to see
# every failure), and each failed scenario's log tail is printed (and a digest of what failed,
# tests/digest.sh, which make test prints last). ALONE scenarios run last, one at a time, with
# nothing beside them (a lane's failure stops them too).
set -uo pipefail

[ $# -eq 4 ] || [ $# -eq 5 ] || {
  echo "usage: tests/molecule.sh FIRST SECOND MATRIX SUITES [ALONE]" >&2
  exit 2
}
first=$1 second=$2 matrix=$3 suites=$4 alone=${5:-}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
logs=$repo/.build/molecule
stop=$logs/.failed
mkdir -p "$logs"
rm -f "$stop" "$logs"/*.log "$logs"/*.digest

lane() {
  local scenario suite log rc
  for scenario in "$@"; do
    for suite in $suites; do
      [ -e "$stop" ] && [ "${HV_MOLECULE_KEEP_GOING:-}" != 1 ] && return 1
      log=$logs/$scenario-$suite.log
      if [ "${HV_MOLECULE_LANES:-2}" = 1 ]; then
        HV_NODE_IMAGE=localhost/hardened-vllm-node:$suite \
          "$repo/tests/stage.sh" "molecule-$scenario-$suite" molecule test -s "$scenario" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
      else
        HV_NODE_IMAGE=localhost/hardened-vllm-node:$suite \
          "$repo/tests/stage.sh" "molecule-$scenario-$suite" molecule test -s "$scenario" >"$log" 2>&1
        rc=$?
        tail -n 1 "$log"
      fi
      if [ "$rc" -ne 0 ]; then
        echo "$scenario-$suite" >>"$stop"
        [ "${HV_MOLECULE_KEEP_GOING:-}" = 1 ] || return 1
      fi
      case " $matrix " in *" $scenario "*) ;; *) break ;; esac
    done
  done
}

if [ "${HV_MOLECULE_LANES:-2}" = 1 ]; then
  # shellcheck disable=SC2086  # the lists are word lists
  lane $first $second
  rc=$?
else
  # shellcheck disable=SC2086
  lane $first &
  first_pid=$!
  # shellcheck disable=SC2086
  lane $second &
  second_pid=$!
  rc=0
  wait "$first_pid" || rc=1
  wait "$second_pid" || rc=1
fi
# The ALONE scenarios run after both lanes, with nothing beside them.
if [ -n "$alone" ]; then
  # shellcheck disable=SC2086
  lane $alone || rc=1
fi
if [ -e "$stop" ]; then
  while read -r failed; do
    echo "===== $failed failed; the last 400 lines of .build/molecule/$failed.log:"
    tail -n 400 "$logs/$failed.log"
    # What failed, in a few lines: make test prints it last (CI shows only the end).
    { echo "$failed:"; bash "$repo/tests/digest.sh" "$logs/$failed.log"; } >"$logs/$failed.digest"
  done <"$stop"
  exit 1
fi
exit "$rc"
