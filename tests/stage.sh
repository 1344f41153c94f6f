#!/usr/bin/env bash
# Run one stage of the test suite and print its wall time:
#   tests/stage.sh NAME COMMAND [ARG...]   ->   "stage NAME: 12.3 s" (or "... FAILED (exit 2)")
# With HV_STAGE_LOG set, the line is appended to that file too (make test prints them all).
set -uo pipefail

[ $# -ge 2 ] || { echo "usage: tests/stage.sh NAME COMMAND [ARG...]" >&2; exit 2; }
name=$1
shift
start=$EPOCHREALTIME
"$@"
rc=$?
line=$(awk -v a="$start" -v b="$EPOCHREALTIME" -v n="$name" 'BEGIN { printf "stage %s: %.1f s", n, b - a }')
[ $rc -eq 0 ] || line+=" FAILED (exit $rc)"
echo "$line"
[ -z "${HV_STAGE_LOG:-}" ] || echo "$line" >>"$HV_STAGE_LOG"
exit $rc
