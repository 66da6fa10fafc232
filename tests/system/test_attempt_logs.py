"""A run's output across its attempts (issue 11): after a requeue (its worker was
killed) and a follow-up (`cocode say`), `cocode tail` and `cocode logs` show every
attempt in order with a separator line saying why it began, in text and in JSON
(an `attempt` on every line), live (-f), from the collector, and with cocode down."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

from support import (
    cocode, down, events, service_pid, sleeps_of, submit, wait_job, wait_until, runs_of,
)

FIRST = "resumable: first attempt committed, sleeping"
AGAIN = "resumable: found my earlier work, finishing"


def test_tail_and_logs_show_every_attempt_with_a_separator(jobs_repo, running):
    repo = jobs_repo
    job = submit(repo, "--agent", "resumable")
    wait_until(lambda: sleeps_of(job, "60"), 20, what="the first attempt's sleep")
    wait_until(lambda: FIRST in cocode(repo, "tail", job, timeout=30).stdout, 20, what="its line in the log")
    follower = subprocess.Popen([sys.executable, "-m", "cocode", "-C", str(repo), "tail", job, "-f", "-n", "5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        os.kill(service_pid(repo, "worker"), signal.SIGKILL)
        run = runs_of(wait_job(repo, job, timeout=40))["resumable"]
        assert (run["state"], run["attempt"]) == ("ready", 2), run
        live, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    (why,) = [e["reason"] for e in events(repo, "run_interrupted") if e["job"] == job]
    second = f"--- attempt 2 (requeued after {why}) ---"
    # Live: attempt 1's line, the separator (its cause from the events followed), attempt 2's.
    assert live.index(FIRST) < live.index(second) < live.index(AGAIN), live + err

    said = cocode(repo, "say", job, "resumable", "Check it once more.\nThen stop.", timeout=30)
    assert said.returncode == 0, said.stderr
    wait_job(repo, job, timeout=30, until=lambda j: runs_of(j)["resumable"]["attempt"] == 3 and j["state"] == "done")
    third = "--- attempt 3 (follow-up: Check it once more.) ---"

    def shown(text: str) -> list[str]:
        return [FIRST if line.startswith(FIRST) else line for line in text.splitlines()
                if line.startswith((FIRST, AGAIN, "--- attempt"))]

    expected = [FIRST, second, AGAIN, third, AGAIN]
    assert shown(cocode(repo, "tail", job, "-n", "100", check=True).stdout) == expected
    assert shown(cocode(repo, "logs", job, "resumable", check=True).stdout) == expected
    # The last line alone is of attempt 3, with nothing before it to set apart; two are not.
    assert cocode(repo, "tail", job, "-n", "1", check=True).stdout.splitlines() == [AGAIN]
    two = cocode(repo, "tail", job, "-n", "2", check=True).stdout.splitlines()
    assert len(two) == 3 and two[1:] == [third, AGAIN], two

    for args in (("tail", job, "-n", "100", "--json"), ("logs", job, "resumable", "--json")):
        objs = [json.loads(x) for x in cocode(repo, *args, check=True).stdout.splitlines()]
        marks = [(o["attempt"], o["cause"]) for o in objs if o.get("event") == "attempt"]
        assert marks == [(2, f"requeued after {why}"), (3, "follow-up: Check it once more.")], args
        lines = [(o["attempt"], o["line"]) for o in objs if "line" in o]
        assert [a for a, _ in lines] == sorted(a for a, _ in lines) and {a for a, _ in lines} == {1, 2, 3}, lines
        assert [(a, text[:len(FIRST)]) for a, text in lines if text.startswith((FIRST, AGAIN))] == [
            (1, FIRST), (2, AGAIN), (3, AGAIN)]
        assert all(o["offset"] >= (o["attempt"] - 1) << 40 for o in objs if "line" in o)

    down(repo)  # from the files alone, the same
    assert shown(cocode(repo, "tail", job, "-n", "100", check=True).stdout) == expected
    assert re.search(r"(?m)^--- attempt 3", cocode(repo, "logs", job, "resumable", check=True).stdout)
