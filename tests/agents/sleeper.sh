#!/usr/bin/env bash
# A slow agent that never gets ready: it commits partial work, leaves a child
# behind that ignores SIGTERM (`sleep 1000.N`), then sleeps itself (`sleep 999.N`).
# N is the job id in decimal, so a test can find both processes by their argv.
# $1 (default 1) is how many lines the partial commit adds.
# Used for timeouts, cancel and worker crashes: whatever stops it must take the
# whole process group, the stubborn child included.
set -euo pipefail
cd "$COCODE_REPO_PATH"
n=$((16#$COCODE_JOB_ID))
for i in $(seq "${1:-1}"); do echo "partial work $i by $COCODE_AGENT_NAME"; done >> partial.txt
git add partial.txt
git commit -q -m "wip: partial work"
echo "sleeper: committed partial work, now sleeping (marker $n)"
( trap '' TERM; exec sleep "1000.$n" ) &
sleep "999.$n"
echo "sleeper: woke up, which should never happen"
