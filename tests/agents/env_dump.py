"""An agent that reports what it was given: its environment, its working directory
and the text of its issue file, as JSON in the file named by $DUMP_FILE (outside
the repository). It then commits the ready marker like a well-behaved agent."""

import json
import os
import subprocess
import sys

body_file = os.environ.get("COCODE_ISSUE_BODY_FILE", "")
try:
    with open(body_file, encoding="utf-8") as f:
        body = f.read()
except OSError as err:
    body = f"<unreadable: {err}>"

report = {"env": dict(os.environ), "cwd": os.getcwd(), "body": body, "argv": sys.argv}
dump = os.environ["DUMP_FILE"].replace("{job}", os.environ.get("COCODE_JOB_ID", "nojob"))
with open(dump + ".tmp", "w", encoding="utf-8") as f:
    json.dump(report, f)
os.replace(dump + ".tmp", dump)

with open("ENV_SEEN.txt", "w") as f:
    f.write("seen\n")
subprocess.run(["git", "add", "ENV_SEEN.txt"], check=True)
subprocess.run(["git", "commit", "-q", "-m", "env dumped", "-m", os.environ["COCODE_READY_MARKER"]], check=True)
print("env_dump: done", flush=True)
