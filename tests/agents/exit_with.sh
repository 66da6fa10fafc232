#!/usr/bin/env bash
# Exits with the code given as $1 (ADR-003: 1 error, 2 bad config, 3 missing
# dependency, ...) without any commit, after saying why on stderr.
set -euo pipefail
cd "$COCODE_REPO_PATH"
echo "exit_with: giving up with exit code $1" >&2
exit "$1"
