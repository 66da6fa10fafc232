#!/usr/bin/env bash
# An agent that survives being interrupted: on its first attempt it commits
# "wip: attempt 1" and then sleeps (`sleep 60.N`, N = job id in decimal) until
# something kills it; run again in the same worktree, it finds that commit and
# finishes with a ready commit. While it sleeps its working directory is a
# subdirectory of the worktree, as an agent's often is.
set -euo pipefail
cd "$COCODE_REPO_PATH"
n=$((16#$COCODE_JOB_ID))
if [ -n "$(git log --format=%h --grep='^wip: attempt 1$')" ]; then
  echo "resumable: found my earlier work, finishing"
  echo "finished" >> resumable.txt
  git add resumable.txt
  git commit -q -m "fix: finished after a restart" -m "$COCODE_READY_MARKER"
  exit 0
fi
echo "started" >> resumable.txt
git add resumable.txt
git commit -q -m "wip: attempt 1"
echo "resumable: first attempt committed, sleeping (marker $n)"
mkdir -p build
cd build
sleep "60.$n"
