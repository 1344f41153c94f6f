#!/usr/bin/env bash
# What failed in one Molecule log, in a few lines, for the end of `make test`'s output (CI shows
# only its last lines; the whole log stays in .build/molecule/):
#   tests/digest.sh LOG [MAX_LINES]
# For each molecule step that failed (a converge, then the destroy molecule runs after it),
# prints the step, then the last task that failed before it: its name, host and the first lines
# of its error (without the source excerpt Ansible prints under "Origin:"). Expected failures
# earlier in a step (rescued, ignored) come before the one that stopped it, so the last one is it.
set -uo pipefail

[ $# -ge 1 ] || { echo "usage: tests/digest.sh LOG [MAX_LINES]" >&2; exit 2; }
log=$1
max=${2:-24}
[ -r "$log" ] || { echo "no log at $log"; exit 0; }

# Molecule colours its output and frames each playbook's lines with "  │ ".
sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^  │ \{0,1\}//' "$log" | awk -v max="$max" '
  /^TASK \[/ { task = $0; taskline = 1; next }
  taskline && /^  / && !/^  [^ ]/ { next }
  taskline && /^  [^ ]/ && task !~ /\]( \*+)?$/ { task = task " " substr($0, 3); next }
  { taskline = 0 }
  /^\[ERROR\]: / { n++; err[n] = $0; name[n] = task; inerr = 1; next }
  inerr && /^Origin:/ { inerr = 0; next }
  inerr && /^  / { err[n] = err[n] "\n" $0; next }
  inerr { inerr = 0 }
  n && host[n] == "" && match($0, /^(fatal|failed): \[[^]]*\]/) {
    host[n] = substr($0, RSTART, RLENGTH)
  }
  /Executed: Failed/ { steps++; step[steps] = $0; last[steps] = n }
  function show(k,    lines, count, i) {
    sub(/ \*+$/, "", name[k])
    print name[k] (host[k] != "" ? " " host[k] : "")
    count = split(err[k], lines, "\n")
    for (i = 1; i <= count && i <= max; i++) print lines[i]
    if (count > max) print "  ... (" count - max " more lines in the log)"
  }
  END {
    if (steps == 0 && n == 0) { print "(no failed step and no task error in the log)"; exit }
    if (steps == 0) { show(n); exit }
    for (s = 1; s <= steps; s++) {
      print step[s]
      # The error belongs to this step only if it came after the previous failed step.
      if (last[s] > (s > 1 ? last[s - 1] : 0)) show(last[s])
      else print "(no task error in this step)"
    }
  }'
