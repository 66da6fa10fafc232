#!/usr/bin/env bash
# An agent whose branch moves in the ways the worker's ready detection must not miss
# nor misread ($1 picks one):
#   burst    four commits at once: wip, wip, the ready commit, one more after it;
#   amend    a ready commit, then at once amended (a new ready commit replaces it);
#   switch   a ready commit on another branch, then back, then the real ready commit;
#   restart  commits wip, then sleeps until stopped; run again, it exits without a
#            commit if its ready commit is there (made while cocode was down).
set -euo pipefail
cd "$COCODE_REPO_PATH"
mode="$1"
n=$((16#$COCODE_JOB_ID))
commit() { echo "$1" >> moves.txt; git add moves.txt; git commit -q -m "$@"; }
case "$mode" in
  burst)
    commit "wip: one"
    commit "wip: two"
    commit "feat: ready" -m "$COCODE_READY_MARKER"
    commit "chore: after ready" ;;
  amend)
    commit "feat: first try" -m "$COCODE_READY_MARKER"
    echo "amended" >> moves.txt
    git add moves.txt
    git commit -q --amend -m "feat: second try" -m "$COCODE_READY_MARKER" ;;
  switch)
    mine="$(git symbolic-ref --short HEAD)"
    git checkout -q -b "side-$n"
    commit "side: not this run's" -m "$COCODE_READY_MARKER"
    git checkout -q "$mine"
    commit "feat: ready on the run's branch" -m "$COCODE_READY_MARKER" ;;
  restart)
    if [ -n "$(git log --format=%h --grep='^feat: made while cocode was down$')" ]; then
      echo "ready_moves: my ready commit is there"
      exit 0
    fi
    commit "wip: attempt 1"
    sleep "60.$n" ;;
esac
echo "ready_moves: $mode done"
