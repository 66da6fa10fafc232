"""The `cocode` command line: parse, call the library, print. Nothing else lives here.

Every failure the user can cause ends as one line on stderr and an exit code
(2 for bad config or usage), never a traceback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import msgspec

from cocode.errors import CocodeError, ConfigError, EXIT_INTERRUPTED
from cocode.paths import Paths, find_repo_root

PROFILE_ENV = "COCODE_PERFORMANCE_PROFILE"


class Env:
    """What every command may need, resolved lazily so `--help` needs no repository."""

    def __init__(self, directory: str | None, profile: str | None) -> None:
        self.directory = directory
        self.profile = profile
        self._paths: Paths | None = None
        self._config = None

    @property
    def paths(self) -> Paths:
        if self._paths is None:
            self._paths = Paths(find_repo_root(self.directory))
        return self._paths

    @property
    def config(self):
        if self._config is None:
            from cocode.config import load_config

            self._config = load_config(
                self.relative(self.paths.config), self.profile, builtin_agents=_builtin_agents()
            )
        return self._config

    def relative(self, path: Path) -> Path:
        try:
            return path.relative_to(Path.cwd())
        except ValueError:
            return path


def _builtin_agents() -> tuple[str, ...]:
    try:
        from cocode.jobs.agents import PRESETS
    except ImportError:
        return ()
    return tuple(PRESETS)


class CocodeGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CocodeError as err:
            click.echo(f"cocode: {err.message}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)


pass_env = click.make_pass_decorator(Env)


def print_json(obj) -> None:
    click.echo(msgspec.json.encode(obj).decode())


@click.group(cls=CocodeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "directory", metavar="DIR", help="Run as if started in DIR (like git -C).")
@click.option(
    "--performance-profile", "profile", envvar=PROFILE_ENV, metavar="NAME",
    help="Use this profile's limits over the config file's (low, medium, high).",
)
@click.version_option(package_name="cocode")
@click.pass_context
def main(ctx: click.Context, directory: str | None, profile: str | None) -> None:
    """Run several coding agents on one issue at once."""
    ctx.obj = Env(directory, profile)


# -- set-up ---------------------------------------------------------------------------


@main.command()
@pass_env
def init(env: Env) -> None:
    """Write a commented .cocode/config.yaml and keep .cocode/ out of git."""
    from cocode.config import init_config

    path, created = init_config(env.paths.root)
    click.echo(f"{'wrote' if created else 'kept existing'} {env.relative(path)}")


# -- services ---------------------------------------------------------------------------


@main.command()
@click.option("--detach", "-d", is_flag=True, help="Start in the background; return once all are ready.")
@click.option("--timeout", default=20.0, show_default=True, help="Seconds --detach waits for readiness.")
@click.option("--metrics-port", type=int, metavar="PORT",
              help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics.")
@pass_env
def up(env: Env, detach: bool, timeout: float, metrics_port: int | None) -> None:
    """Start the bus and every service, and supervise them."""
    from cocode import client, supervisor

    env.config  # a bad config stops here, before anything starts
    if metrics_port is not None:
        from cocode.cli.resources import metrics_port_env

        metrics_port_env(metrics_port)  # the monitor inherits it
    pid = client.running_pid(env.paths)
    if pid:
        raise CocodeError(f"cocode is already running in {env.paths.root} (pid {pid}); `cocode down` stops it")
    if not detach:
        started = time.monotonic()
        sup = supervisor.Supervisor(env.paths)
        click.echo(f"cocode: supervising {len(supervisor.SERVICES)} services in {env.paths.root} (Ctrl-C stops)", err=True)
        code = sup.run()
        if sup.startup_failed:
            raise CocodeError(f"start-up failed: {sup.startup_failed}")
        click.echo(f"cocode: stopped after {time.monotonic() - started:.1f}s", err=True)
        sys.exit(code)
    elapsed = supervisor.start_detached(env.paths, env.profile, timeout)
    click.echo(f"cocode: all services ready in {elapsed * 1000:.0f} ms")
    for name, address in env.paths.endpoints().items():
        click.echo(f"  {name:<11} {address}")


@main.command()
@click.option("--timeout", default=30.0, show_default=True)
@pass_env
def down(env: Env, timeout: float) -> None:
    """Stop every service gracefully; no process and no socket file remain."""
    from cocode import supervisor

    pid, leftovers = supervisor.stop(env.paths, timeout)
    if pid:
        # It gives up its lock just before it exits: return only once it has exited.
        import psutil

        deadline = time.monotonic() + 5
        try:
            while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
                time.sleep(0.02)
        except psutil.NoSuchProcess:
            pass
        click.echo("cocode: stopped")
    else:
        extra = f" (stopped {len(leftovers)} leftover services)" if leftovers else ""
        click.echo(f"cocode: was not running{extra}")


@main.command()
@click.argument("name")
@pass_env
def service(env: Env, name: str) -> None:
    """Run one service in the foreground (what the Procfile lines call)."""
    from cocode.launcher import run_service

    sys.exit(run_service(env.directory, name, env.profile))


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_env
def ps(env: Env, as_json: bool) -> None:
    """The services: pid, state, uptime, restarts."""
    from cocode import client

    reply = client.request(env.paths, "ps") if client.running_pid(env.paths) else None
    rows = reply["services"] if reply else []
    if as_json:
        print_json([{k: r[k] for k in ("name", "pid", "state", "uptime_s", "restarts")} for r in rows])
        return
    if not reply:
        click.echo("cocode is not running here; `cocode up` starts it")
        return
    click.echo(f"{'NAME':<10} {'PID':>7} {'STATE':<9} {'UPTIME':>9} {'RESTARTS':>8}")
    for r in rows:
        click.echo(
            f"{r['name']:<10} {r['pid'] or '-':>7} {r['state']:<9} {r['uptime_s']:>8.1f}s {r['restarts']:>8}"
            + (f"  {r['reason']}" if r.get("reason") else "")
        )


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_env
def endpoints(env: Env, as_json: bool) -> None:
    """The socket addresses; `subscribe` is where dashboards connect a SUB socket."""
    eps = env.paths.endpoints()
    if as_json:
        print_json(eps)
    else:
        for k, v in eps.items():
            click.echo(f"{k:<11} {v}")


# -- reading the log ----------------------------------------------------------------------


@main.command()
@click.option("--since", default=0, metavar="SEQ", help="Only events after this seq.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events.")
@click.option("--type", "types", multiple=True, metavar="T", help="Only events of this type (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--archived", is_flag=True, help="Also the events compaction moved to .cocode/archive/.")
@pass_env
def events(env: Env, since: int, follow: bool, types: tuple[str, ...], as_json: bool,
           archived: bool = False) -> None:
    """Print the event log."""
    from cocode.core import events as ev
    from cocode import client, render

    for t in types:
        if t not in ev.EVENT_TYPES:
            raise ConfigError(f"unknown event type {t!r} (known: {', '.join(sorted(ev.EVENT_TYPES))})")
    show = render.event_json_line if as_json else render.event_line
    if archived:
        from cocode.cli.resources import archived_then_live

        stream = archived_then_live(env.paths, since, follow, set(types) or None)
    else:
        stream = client.events(env.paths, after=since, follow=follow, types=set(types) or None)
    for event in stream:
        click.echo(show(event))


@main.command()
@click.option("--verify", is_flag=True, help="Also fold from scratch and compare.")
@pass_env
def replay(env: Env, verify: bool) -> None:
    """Fold the log into state (from the latest snapshot); --verify compares with a full fold."""
    from cocode.core import eventlog
    from cocode.core import state as st

    conn = eventlog.open_for_reading(env.paths.db)
    t0 = time.perf_counter()
    snap = eventlog.load_state(conn)
    t1 = time.perf_counter()
    click.echo(f"state at seq {snap.seq} from snapshot + tail in {(t1 - t0) * 1000:.0f} ms "
               f"({len(snap.jobs)} jobs, {len(snap.services)} services)")
    if verify:
        full = eventlog.load_state(conn, use_snapshot=False)
        t2 = time.perf_counter()
        click.echo(f"full fold of seq 1..{full.seq} in {(t2 - t1) * 1000:.0f} ms")
        if st.encode_state(full) != st.encode_state(snap):
            raise CocodeError("replay --verify: the snapshot-based state differs from a full fold")
        click.echo("verify: identical")


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 if schemas/ is stale.")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None)
def schema(check: bool, directory: Path | None) -> None:
    """Write (or --check) the JSON Schema of events and wire messages in schemas/."""
    from cocode.core import schema as sch

    target = directory or sch.default_dir()
    if check:
        stale = sch.stale_files(target)
        if stale:
            raise CocodeError(f"{target} is stale ({', '.join(stale)}); run `cocode schema` to regenerate")
        click.echo(f"{target} is up to date")
    else:
        for path in sch.write(target):
            click.echo(f"wrote {path}")


@main.group()
def bench() -> None:
    """Benchmarks that print same-run ratios against a baseline."""


@bench.command("jobs")
@click.option("--jobs", "count", default=15, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_jobs(count: int, as_json: bool) -> None:
    """Submit->exec against bare `git worktree add`, ready latency, watch cost, dispatch time."""
    from cocode.bench import jobs as bench_jobs_mod

    result = bench_jobs_mod.run(jobs=count, progress=not as_json)
    if as_json:
        print_json(result)
    else:
        click.echo(bench_jobs_mod.report(result))


@bench.command("events")
@click.option("--count", default=200_000, show_default=True)
@click.option("--producers", default=2, show_default=True)
@click.option("--rate", default=1000, show_default=True, help="Events/s for the latency phase.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def bench_events(env: Env, count: int, producers: int, rate: int, as_json: bool) -> None:
    """Throughput and latency of the real append path, against raw SQLite."""
    from cocode.bench import events as bench_ev

    result = bench_ev.run(env.paths, count=count, producers=producers, rate=rate, progress=not as_json)
    if as_json:
        print_json(result)
    else:
        click.echo(bench_ev.report(result))


# -- jobs -----------------------------------------------------------------------------------


def _require_running(env: Env) -> None:
    from cocode import client

    if not client.is_running(env.paths):
        raise client.not_running(env.paths)


@main.command()
@click.option("--issue-file", type=click.Path(path_type=Path), help="Read the issue from a file.")
@click.option("--text", help="The issue text itself.")
@click.option("--issue", "issue_ref", metavar="NUMBER|URL", help="A GitHub issue, through `gh`.")
@click.option("--issue-number", type=int, help="COCODE_ISSUE_NUMBER for a local issue (default 0).")
@click.option("--agent", "agent_names", multiple=True, metavar="NAME", help="An agent to run (repeatable).")
@click.option("--priority", default=0, show_default=True, help="Higher runs first (-100..100).")
@click.option("--complexity", default="simple", type=click.Choice(["simple", "medium", "complex"]),
              show_default=True)
@click.option("--timeout", type=int, help="Base timeout in seconds for each run (1..3600).")
@click.option("--base", default="HEAD", show_default=True, help="The commit the agents start from.")
@click.option("--force", is_flag=True, help="Go on although the repository is over max_repo_size_mb.")
@click.option("--sparse", multiple=True, metavar="PATH", help="Sparse checkout of PATH (monorepos).")
@click.option("--wait", is_flag=True, help="Show progress until every run is final; exit 0 if any is ready.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def submit(env: Env, issue_file, text, issue_ref, issue_number, agent_names, priority, complexity,
           timeout, base, force, sparse, wait, as_json) -> None:
    """Queue one issue for one or more agents."""
    from cocode.jobs import submit as sub

    sources = [x for x in (issue_file, text, issue_ref) if x is not None]
    if len(sources) != 1:
        raise ConfigError("give exactly one of --issue-file PATH, --text TEXT or --issue NUMBER|URL")
    if issue_file is not None:
        issue = sub.issue_from_file(issue_file)
    elif text is not None:
        issue = sub.issue_from_text(text)
    else:
        issue = sub.issue_from_github(issue_ref, env.paths.root)
    names = sub.resolve_agents(agent_names, env.config)
    event, warnings = sub.build_job(
        env.paths, env.config, issue, names, priority=priority, complexity=complexity,
        timeout=timeout, base=base, force=force, sparse=sparse, issue_number=issue_number,
    )
    _require_running(env)
    for w in warnings:
        click.echo(f"cocode: warning: {w}", err=True)
    _append_and_wait(env, event)
    if as_json:
        print_json({"job": event.job, "base_sha": event.base_sha, "runs": [
            {"agent": a, "state": "queued", "branch": f"cocode/{event.job}/{a}",
             "worktree": str(env.paths.worktrees / f"{event.job}-{a}")} for a in names]})
    else:
        click.echo(f"job {event.job}: {len(names)} run(s) queued ({', '.join(names)}) from {event.base_sha[:12]}")
    if wait:
        final = _watch(env, event.job, stream=not as_json)
        sys.exit(0 if any(r.state == "ready" for r in final.runs.values()) else 1)


def _append_and_wait(env: Env, event) -> None:
    from cocode.client import append_one

    append_one(env.paths, event)


def _watch(env: Env, job_id: str, stream: bool = True, timeout: float | None = None):
    from cocode import client, render
    from cocode.jobs import watch

    state = client.current_state(env.paths)
    job = state.jobs.get(job_id)
    printer = None
    if stream:
        agents = job.agents if job else []
        printer = watch.LinePrinter(lambda line: click.echo(line), sys.stdout.isatty(), agents)

    def on_event(event) -> None:
        line = render.run_event_summary(event) if stream and event.agent else None
        if line:
            click.echo(f"{printer.prefix(event.agent)} -- {line}")

    state = watch.watch_job(env.paths, job_id, state, on_event, printer, timeout=timeout)
    job = state.jobs[job_id]
    if stream:
        click.echo(render.status_table([job]))
    return job


@main.command()
@click.argument("job_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_env
def status(env: Env, job_id: str | None, as_json: bool) -> None:
    """Jobs and their runs; without JOB every job, the queue in dispatch order."""
    from cocode import client, render
    from cocode.core import state as st

    state = client.current_state(env.paths)
    if job_id:
        job = state.jobs.get(job_id)
        if job is None:
            raise CocodeError(f"no job {job_id!r}; `cocode status` lists them")
        if as_json:
            print_json(render.job_json(job))
        else:
            click.echo(render.status_table([job]))
        return
    queue_order = {}
    for i, (job, run) in enumerate(st.queued_runs(state)):
        queue_order.setdefault(job.job, i)
    jobs = sorted(state.jobs.values(), key=lambda j: (j.state == "done", queue_order.get(j.job, -1), j.seq))
    if as_json:
        print_json([render.job_json(j) for j in jobs])
    else:
        click.echo(render.status_table(jobs))
        for w in state.warnings[-3:]:
            click.echo(f"warning: {w.message}")


@main.command()
@click.argument("job_id")
@click.argument("agent", required=False)
@click.option("--no-wait", is_flag=True, help="Return once the request is recorded.")
@pass_env
def cancel(env: Env, job_id: str, agent: str | None, no_wait: bool) -> None:
    """Stop a job's runs (SIGTERM, 5 s, SIGKILL); their work is kept."""
    from cocode.core import events as ev
    from cocode import client, render

    state = client.current_state(env.paths)
    job = state.jobs.get(job_id)
    if job is None:
        raise CocodeError(f"no job {job_id!r}; `cocode status` lists them")
    if agent and agent not in job.runs:
        raise CocodeError(f"job {job_id} has no agent {agent!r} (it has {', '.join(job.agents)})")
    _require_running(env)
    _append_and_wait(env, ev.CancelRequested(job=job_id, agent=agent or ""))
    if no_wait:
        click.echo(f"cancel of {job_id}{'/' + agent if agent else ''} recorded")
        return
    state = _wait_runs(env, job_id, [agent] if agent else job.agents)
    click.echo(render.status_table([state.jobs[job_id]]))


def _wait_runs(env: Env, job_id: str, agents: list[str], timeout: float = 30.0):
    from cocode import client

    state = client.current_state(env.paths)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.current_state(env.paths)
        if all(state.jobs[job_id].runs[a].final for a in agents):
            break
        time.sleep(0.1)
    return state


@main.command()
@click.argument("job_id")
@click.argument("agent")
@pass_env
def diff(env: Env, job_id: str, agent: str) -> None:
    """The diff of a run's branch against its base."""
    from cocode import client, gitops

    state = client.current_state(env.paths)
    job = state.jobs.get(job_id)
    if job is None or agent not in job.runs:
        raise CocodeError(f"no run {job_id}/{agent}; `cocode status` lists them")
    head = gitops.BranchWatcher(env.paths.root, f"cocode/{job_id}/{agent}").head()
    if head is None:
        raise CocodeError(f"run {job_id}/{agent} has no branch yet (state {job.runs[agent].state})")
    click.echo(gitops.diff_text(env.paths.root, job.base_sha, head), nl=False)


@main.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--timeout", default=60.0, show_default=True, help="Give up after this many seconds.")
@click.pass_context
def demo(ctx: click.Context, directory: Path | None, timeout: float) -> None:
    """Run the whole job on a sample repository with three built-in demo agents."""
    from cocode import demo as demo_mod
    from cocode.jobs import submit as sub
    from cocode.client import append_one

    directory = (directory or demo_mod.default_directory()).absolute()

    def submit_and_watch(paths, config):
        env = Env(str(paths.root), None)
        issue = sub.issue_from_text(demo_mod.ISSUE)
        event, _ = sub.build_job(paths, config, issue, demo_mod.DEMO_AGENTS)
        append_one(paths, event)
        click.echo(f"job {event.job}: {', '.join(demo_mod.DEMO_AGENTS)}")
        return _watch(env, event.job, stream=True, timeout=timeout)

    sys.exit(demo_mod.run(directory, click.echo, submit_and_watch))


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_env
def doctor(env: Env, as_json: bool) -> None:
    """Check git, agent binaries, gh, disk space and the services."""
    from cocode import doctor as doc

    checks = doc.run_checks(env.paths if _in_repo(env) else None, env.config if _in_repo(env) else None)
    if as_json:
        print_json([{"check": c.name, "ok": c.ok, "required": c.required, "detail": c.detail} for c in checks])
    else:
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
            click.echo(f"{mark} {c.name:<18} {c.detail}")
    sys.exit(0 if all(c.ok or not c.required for c in checks) else 1)


def _in_repo(env: Env) -> bool:
    try:
        env.paths
        return True
    except CocodeError:
        return False


# metrics, clean, compact and `bench monitor` (issue 5) live in their own module.
from cocode.cli.resources import register as _register_resources  # noqa: E402

_register_resources(main, bench)


# -- agent output (issue 4) -------------------------------------------------------------------


@main.command("tail")
@click.argument("job_id")
@click.argument("agents", nargs=-1)
@click.option("-n", "--lines", type=int, default=None, metavar="N",
              help="Lines of backlog per agent (default: tui_log_lines, 2000).")
@click.option("-f", "--follow", is_flag=True, help="Then print live output until the runs end.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_env
def tail_cmd(env: Env, job_id: str, agents: tuple[str, ...], lines: int | None, follow: bool,
             as_json: bool) -> None:
    """A job's agent output: the last lines, then (-f) live, `agent |` prefixed for several."""
    from cocode.logs import tail as tail_mod

    n = env.config.limits.tui_log_lines if lines is None else lines
    if n < 0:
        raise ConfigError(f"-n {n}: give 0 or more lines")
    sys.exit(tail_mod.tail(env.paths, job_id, agents, n, follow, as_json))


@main.command("logs")
@click.argument("job_id")
@click.argument("agent")
@pass_env
def logs_cmd(env: Env, job_id: str, agent: str) -> None:
    """All retained output of one run, oldest first (rotated lz4 files, then the live file)."""
    from cocode.logs import tail as tail_mod

    sys.exit(tail_mod.print_logs(env.paths, job_id, agent))


@bench.command("logs")
@click.option("--seconds", default=10.0, show_default=True, help="How long the 5 agents write 1 MB/s each.")
@click.option("--mb", "total_mb", default=200, show_default=True, help="MB pushed through the collector.")
@click.option("--json", "as_json", is_flag=True)
def bench_logs(seconds: float, total_mb: int, as_json: bool) -> None:
    """agent -> `cocode tail` latency, collector throughput against `cat > file`, collector RSS."""
    from cocode.bench import logs as bench_logs_mod

    result = bench_logs_mod.run(seconds=seconds, total_mb=total_mb, progress=not as_json)
    if as_json:
        print_json(result)
    else:
        click.echo(bench_logs_mod.report(result))
