#!/usr/bin/env bash
# An agent that counts how many of its kind are alive at once. While it lives it
# keeps a file named after its run in $ACTIVE_DIR; midway it appends the number
# of such files to $ACTIVE_DIR.max. Then it commits ready and exits.
set -euo pipefail
cd "$COCODE_REPO_PATH"
me="$ACTIVE_DIR/$COCODE_JOB_ID-$COCODE_AGENT_NAME"
touch "$me"
sleep 0.3
shopt -s nullglob
alive=("$ACTIVE_DIR"/*)  # a glob, not ls: files may vanish while it reads them
echo "${#alive[@]}" >> "$ACTIVE_DIR.max"
sleep 0.3
echo "$COCODE_AGENT_NAME" > counted.txt
git add counted.txt
git commit -q -m "counted" -m "$COCODE_READY_MARKER"
rm -f "$me"
