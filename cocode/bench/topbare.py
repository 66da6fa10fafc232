"""`cocode bench top`'s bare Textual baseline, run in a process of its own:
`python -m cocode.bench.topbare ROOT TMP SECONDS` submits a 5-agent job to the
cocode running in ROOT (gated in TMP like the view's, bench/topbase.py), shows it
in a bare Textual app and prints its numbers as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import psutil

from cocode.bench import percentile
from cocode.bench.logs import AGENTS
from cocode.bench.top import WARM_UP_S, Probe, job_done, measure, start_streaming, submit, until
from cocode.bench.topbase import Gate, bare_app
from cocode.paths import Paths


async def bare_phase(paths, gate: Gate, seconds: float) -> dict:
    job = await asyncio.to_thread(submit, paths, AGENTS, "bench top: bare Textual baseline")
    probe, proc = Probe(), psutil.Process()
    app = bare_app(paths, job)
    app.on_visible = probe.pairs
    async with app.run_test(size=(160, 48)):
        await start_streaming(gate, job, AGENTS)
        probe.on = True
        m = await measure(proc, app, seconds - WARM_UP_S, probe)
        probe.on = False
        app.feed.running = False
    await until(lambda: not gate.missing(job, AGENTS) and job_done(paths, job), seconds + 60, "the bare stream's end")
    return {"bare_visible_p50_ms": round(percentile(probe.visible, 50), 2),
            "bare_visible_p99_ms": round(percentile(probe.visible, 99), 2),
            "bare_visible_samples": len(probe.visible),
            "bare_key_p50_ms": round(percentile(m["keys"], 50), 2),
            "bare_key_p99_ms": round(percentile(m["keys"], 99), 2),
            "bare_cpu_percent": round(m["cpu"], 1), "bare_rss_peak_mib": round(m["peak"] / 2**20, 1)}

def main() -> None:
    root, tmp, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(bare_phase(Paths(root), Gate(tmp, create=False), seconds))))


if __name__ == "__main__":
    main()
