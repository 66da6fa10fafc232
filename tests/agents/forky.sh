#!/usr/bin/env bash
# An agent that spreads out: 20 sleeps in its process group, 5 that left its
# session with setsid (still its children), and 2 orphaned out of both (their
# parent exits). All sleep `6NN.N` seconds, N the job id in decimal, so a test
# finds them by argv. It never gets ready.
set -euo pipefail
cd "$COCODE_REPO_PATH"
n=$((16#$COCODE_JOB_ID))
for _ in $(seq 20); do sleep "600.$n" & done
for _ in $(seq 5); do setsid sleep "601.$n" & done
setsid sh -c "sleep 602.$n & sleep 602.$n &"
echo "forky: spread out (marker $n)"
sleep "603.$n"
