#!/usr/bin/env bash
# A minimal agent that follows the agent protocol of the original cocode (ADR-003,
# "Implementation Example / Minimal Agent (Bash)", found in dvelop42/cocode at
# docs/adrs/adr-003-agent-communication-protocol.md, commit f879544). Written anew
# to the same steps rather than copied: read the COCODE_* context, make a change,
# commit with the ready marker in the commit message.
set -euo pipefail

cd "$COCODE_REPO_PATH"
echo "[INFO] Working on issue #$COCODE_ISSUE_NUMBER"

issue_body=$(cat "$COCODE_ISSUE_BODY_FILE")
echo "[INFO] Issue has ${#issue_body} characters"

echo "// Fix for issue #$COCODE_ISSUE_NUMBER" >> fix.js

git add fix.js
git commit -q -m "fix: issue #$COCODE_ISSUE_NUMBER" -m "$COCODE_READY_MARKER"

echo "[INFO] Complete"
