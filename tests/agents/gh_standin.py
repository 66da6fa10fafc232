#!/usr/bin/env python3
"""A recording stand-in for the GitHub CLI `gh`, put first on PATH by tests/system/
test_review.py: the real `gh` needs the network and an account, which tests here
cannot have. It checks the arguments it gets (exit 2 on anything unexpected, like
gh's own usage errors), records each call with its stdin to $GH_RECORD (JSON lines),
and answers as gh would:
  gh issue view N --json number,title,body,labels,url   -> the issue as JSON
  gh pr create --head B --base M --title T --body-file -  -> a PR URL on stdout
$GH_SLEEP makes it hang that many seconds first (a GitHub that never answers).
"""

import json
import os
import sys
import time

args = sys.argv[1:]
stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["GH_RECORD"], "a") as f:
    f.write(json.dumps({"args": args, "stdin": stdin, "cwd": os.getcwd()}) + "\n")
time.sleep(float(os.environ.get("GH_SLEEP", "0")))


def usage(why: str) -> None:
    sys.stderr.write(f"gh stand-in: {why}: {args}\n")
    sys.exit(2)


if args[:2] == ["issue", "view"]:
    if len(args) != 5 or args[3] != "--json" or not args[2].isdigit():
        usage("unexpected issue view arguments")
    n = int(args[2])
    print(json.dumps({"number": n, "title": "Fix add()", "body": "add(2, 2) returns 5.",
                      "labels": [], "url": f"https://github.com/example/calc/issues/{n}"}))
elif args[:2] == ["pr", "create"]:
    opts = dict(zip(args[2::2], args[3::2]))
    if sorted(opts) != ["--base", "--body-file", "--head", "--title"] or len(args) != 10:
        usage("unexpected pr create arguments")
    if opts["--body-file"] != "-" or not stdin.strip() or not opts["--title"]:
        usage("pr create needs a title and a body on stdin")
    print(f"https://github.com/example/calc/pull/{len(open(os.environ['GH_RECORD']).readlines())}")
else:
    usage("unexpected command")
