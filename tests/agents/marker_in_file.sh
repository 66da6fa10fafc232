#!/usr/bin/env bash
# An agent that gets the protocol wrong: it writes the ready marker into a file and
# commits with a message WITHOUT the marker, then exits 0. cocode must not call it
# ready: only a commit message counts (ADR-003).
set -euo pipefail

cd "$COCODE_REPO_PATH"
echo "$COCODE_READY_MARKER" > STATUS.txt
git add STATUS.txt
git commit -q -m "chore: write status file"
echo "done (but the marker is only in a file)"
