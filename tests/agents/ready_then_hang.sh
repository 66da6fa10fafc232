#!/usr/bin/env bash
# An agent that commits ready and then does not exit (`sleep 999.N`, N = the job
# id in decimal): cocode must record it ready and stop it after the grace period.
# Run again on a branch that already has its ready commit, it has nothing left to
# do and exits 0 at once.
set -euo pipefail
cd "$COCODE_REPO_PATH"
n=$((16#$COCODE_JOB_ID))
if [[ "$(git log -1 --format=%B)" == *"$COCODE_READY_MARKER"* ]]; then
  echo "ready_then_hang: already done"
  exit 0
fi
echo "done by $COCODE_AGENT_NAME" > hang.txt
git add hang.txt
git commit -q -m "fix: done, but lingering" -m "$COCODE_READY_MARKER"
echo "ready_then_hang: committed ready, now lingering (marker $n)"
sleep "999.$n"
