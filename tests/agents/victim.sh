#!/usr/bin/env bash
# The victim of tests/agents/hostile.py: it keeps a secret ($VICTIM_TOKEN) in its
# worktree and its output, commits work in progress, waits for the test to put a
# `release` file in its worktree (at most 120 s), then makes its ready commit.
set -euo pipefail
cd "$COCODE_REPO_PATH"
echo "$VICTIM_TOKEN" > secret.txt  # never committed: only its worktree holds it
echo "victim: my secret is $VICTIM_TOKEN"
echo wip > wip.txt
git add wip.txt
git commit -q -m "victim: work in progress"
for _ in $(seq 1200); do [ -e release ] && break; sleep 0.1; done
rm -f release
echo done > done.txt
git add done.txt
git commit -q -m "victim: done" -m "$COCODE_READY_MARKER"
echo "victim: ready"
