#!/usr/bin/env bash
# What failed in one Molecule log, in a few lines, for the end of `make test`'s output (CI shows
# only its last lines; the whole log stays in .build/molecule/):
#   tests/digest.sh LOG [MAX_LINES]
# Prints the molecule step that failed, then the last task that failed: its name and the first
# lines of its error (without the source excerpt Ansible prints under "Origin:"). Expected
# failures earlier in the log (rescued, ignored) come before the one that stopped the run, so
# the last one is it.
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
  /Executed: Failed/ { step = $0 }
  END {
    if (step != "") print step
    if (n == 0) { print "(no task error in the log)"; exit }
    sub(/ \*+$/, "", name[n])
    print name[n] (host[n] != "" ? " " host[n] : "")
    k = split(err[n], lines, "\n")
    for (i = 1; i <= k && i <= max; i++) print lines[i]
    if (k > max) print "  ... (" k - max " more lines in the log)"
  }'
