#!/usr/bin/env bash
# An agent the test holds back: it commits progress, then waits until the file
# $GATE_FILE exists (at most 25 s, then it fails with exit 1), then commits ready.
set -euo pipefail
cd "$COCODE_REPO_PATH"
echo "progress by $COCODE_AGENT_NAME" >> gate.txt
git add gate.txt
git commit -q -m "wip: before the gate"
echo "gate: waiting for $GATE_FILE"
for _ in $(seq 250); do
  if [ -e "$GATE_FILE" ]; then
    echo "done by $COCODE_AGENT_NAME" >> gate.txt
    git add gate.txt
    git commit -q -m "feat: through the gate" -m "$COCODE_READY_MARKER"
    echo "gate: passed"
    exit 0
  fi
  sleep 0.1
done
echo "gate: never opened" >&2
exit 1
