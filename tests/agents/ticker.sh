#!/usr/bin/env bash
# A steady agent: prints `tick I of N` once a second for N seconds ($1, default 25),
# then makes its ready commit. Used to pause the worker under a run that keeps
# writing: every tick must reach the log, and the run must end ready.
set -euo pipefail
cd "$COCODE_REPO_PATH"
n="${1:-25}"
for i in $(seq "$n"); do
  echo "tick $i of $n"
  sleep 1
done
echo "ticked $n times" > ticks.txt
git add ticks.txt
git commit -q -m "feat: ticked $n times" -m "$COCODE_READY_MARKER"
echo "ticker: done"
