"""A memory-hungry agent: it commits partial work, then grows its memory to HOG_MB.

Environment (all optional):
  HOG_MB          how much to allocate in all (default 300), in 10 MB steps
  HOG_STEP_S      pause between steps (default 0.02)
  HOG_IGNORE_TERM "1": ignore SIGTERM (only SIGKILL stops it)
  HOG_GATE        wait until this file exists before allocating
  HOG_WHERE       "self" (default), "child" (a child process allocates), or
                  "escaped" (a process that left the session, orphaned, allocates)
  HOG_STAMPS      a directory: writes `crossed-PID` (time.time() when this process's
                  RSS first went over HOG_LIMIT_MB), `allocated-PID` (all of it
                  touched) and `term-PID` (SIGTERM arrived)
  HOG_LIMIT_MB    the limit the test set, for the `crossed` stamp
It never gets ready: it sleeps until it is stopped.
"""

import os
import signal
import subprocess
import sys
import time

STAMPS = os.environ.get("HOG_STAMPS")


def stamp(name: str) -> None:
    if STAMPS:
        with open(os.path.join(STAMPS, f"{name}-{os.getpid()}"), "w") as f:
            f.write(repr(time.time()))


def on_term(signum, frame):
    stamp("term")
    if os.environ.get("HOG_IGNORE_TERM") != "1":
        sys.exit(143)


def allocate() -> None:
    signal.signal(signal.SIGTERM, on_term)
    gate = os.environ.get("HOG_GATE")
    while gate and not os.path.exists(gate):
        time.sleep(0.05)
    total = int(os.environ.get("HOG_MB", "300"))
    step = float(os.environ.get("HOG_STEP_S", "0.02"))
    limit = int(os.environ.get("HOG_LIMIT_MB", "0")) * 1024 * 1024
    page = os.sysconf("SC_PAGE_SIZE")
    blocks, crossed = [], False
    for _ in range(total // 10):
        blocks.append(bytearray(10 * 1024 * 1024))
        blocks[-1][::page] = b"x" * len(range(0, len(blocks[-1]), page))  # touched: resident
        if limit and not crossed:
            with open("/proc/self/statm") as f:
                if int(f.read().split()[1]) * page > limit:
                    crossed = True
                    stamp("crossed")
        time.sleep(step)
    stamp("allocated")
    print(f"hog {os.getpid()}: holding {total} MB", flush=True)
    while True:
        time.sleep(1)


def main() -> None:
    where = os.environ.get("HOG_WHERE", "self")
    if len(sys.argv) > 1 and sys.argv[1] == "--allocate":
        allocate()
        return
    os.chdir(os.environ["COCODE_REPO_PATH"])
    with open("partial.txt", "a") as f:
        f.write(f"partial work by {os.environ['COCODE_AGENT_NAME']}\n")
    subprocess.run(["git", "add", "partial.txt"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", "wip: before allocating"], check=True)
    print(f"hog: committed, allocating {os.environ.get('HOG_MB', '300')} MB ({where})", flush=True)
    if where == "self":
        allocate()
    elif where == "child":
        child = subprocess.Popen([sys.executable, __file__, "--allocate"])
        signal.signal(signal.SIGTERM, on_term)
        child.wait()
    else:  # escaped: setsid, and the middle process exits so it is orphaned
        subprocess.run(["setsid", "sh", "-c", f"'{sys.executable}' '{__file__}' --allocate >/dev/null 2>&1 &"],
                       check=True)
        signal.signal(signal.SIGTERM, on_term)
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
