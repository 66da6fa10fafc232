#!/usr/bin/env bash
# A hostile agent (issue 11, defect 4): it tries, without doing harm, what a
# malicious agent would do from its worktree, and commits what it could do as
# report.txt (one `attack: possible|blocked` line each), then commits ready.
# Probes only: it tests access, it does not corrupt the log or move branches it
# could reach (a created probe ref is deleted again).
set -uo pipefail
cd "$COCODE_REPO_PATH"
root=$(cd ../../.. && pwd)   # <root>/.cocode/worktrees/<run>
report() { if [ "$2" = 0 ]; then echo "$1: possible"; else echo "$1: blocked"; fi >> report.txt; }
: > report.txt
[ -e "$root/.cocode/events.db" ] && [ -w "$root/.cocode/events.db" ]; report write_log $?
[ -S "$root/.cocode/run/store.ipc" ]; report reach_store $?
others=$(ls "$root/.cocode/worktrees" 2>/dev/null | grep -vx "$(basename "$PWD")" | head -1)
[ -n "$others" ] && ls "$root/.cocode/worktrees/$others" >/dev/null 2>&1; report read_other_worktree $?
ls "$root/.cocode/logs/"*.log >/dev/null 2>&1; report read_logs $?
# A ref in the repository itself (a run's own clone's refs are its own to write).
if git -C "$root" update-ref refs/heads/hostile-probe HEAD 2>/dev/null; then
  git -C "$root" update-ref -d refs/heads/hostile-probe; report forge_ref 0
else report forge_ref 1; fi
f=$(ls "$root" 2>/dev/null | head -1)
[ -n "$f" ] && [ -w "$root/$f" ]; report write_main_checkout $?
[ -w "$root/.git/config" ]; report write_git_config $?   # hooks set there would run outside
[ "$HOME" = "${REAL_HOME:-/nonexistent}" ]; report real_home $?
# A daemon: its own session, its own process group, cwd /. It must not outlive the run.
( setsid bash -c "cd /; exec sleep 1000.$((16#$COCODE_JOB_ID))" </dev/null >/dev/null 2>&1 & )
git add report.txt
git commit -q -m "hostile: report" -m "$COCODE_READY_MARKER"
