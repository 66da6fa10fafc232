"""Commands that act on the services: `init`, `up`, `down`, `service`, `ps`,
`endpoints` and `doctor`. They parse, call the supervisor, client or doctor, and print.
"""

from __future__ import annotations

import sys

import click

from cocode.cli.helpers import Env, main, pass_env, print_json
from cocode.errors import ConfigError
from cocode.updown import START_TIMEOUT


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_env
def init(env: Env, as_json: bool) -> None:
    """Write a commented .cocode/config.yaml and keep .cocode/ out of git."""
    from cocode.configfile import init_config

    path, created = init_config(env.paths.root)
    if as_json:
        print_json({"config": str(path), "created": created})
    else:
        click.echo(f"{'wrote' if created else 'kept existing'} {env.relative(path)}")


@main.command()
@click.option("--detach", "-d", is_flag=True, help="Start in the background; return once all are ready.")
@click.option("--timeout", default=START_TIMEOUT, show_default=True, help="Seconds --detach waits for readiness.")
@click.option("--metrics-port", type=int, metavar="PORT",
              help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics.")
@click.option("--json", "as_json", is_flag=True, help="With --detach: the start-up as one object.")
@pass_env
def up(env: Env, detach: bool, timeout: float, metrics_port: int | None, as_json: bool) -> None:
    """Start the bus and every service, and supervise them."""
    from cocode import supervisor, updown

    if as_json and not detach:
        raise ConfigError("--json needs --detach (in the foreground `up` runs until Ctrl-C)")
    if metrics_port is not None:
        from cocode.resources.http import metrics_port_env

        metrics_port_env(metrics_port)  # the monitor inherits it
    if detach:  # the same function `python -m cocode up --detach` runs without click
        sys.exit(updown.up_command(env.directory, env.profile, timeout, as_json,
                                   check_config=lambda paths: env.config))
    env.config  # a bad config stops here, before anything starts
    updown.refuse_second(env.paths)
    sys.exit(supervisor.run_foreground(env.paths))


@main.command()
@click.option("--timeout", default=30.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_env
def down(env: Env, timeout: float, as_json: bool) -> None:
    """Stop every service gracefully; no process and no socket file remain."""
    from cocode import updown

    pid, leftovers = updown.stop(env.paths, timeout)
    if as_json:
        print_json({"was_running": bool(pid), "pid": pid or None, "leftovers": list(leftovers)})
    elif pid:
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
    from cocode import client, lock

    reply = client.request(env.paths, "ps") if lock.running_pid(env.paths) else None
    rows = reply["services"] if reply else []
    if as_json:
        print_json([{k: r[k] for k in ("name", "pid", "state", "uptime_s", "restarts")} for r in rows])
        return
    if not reply:
        click.echo("cocode is not running here; `cocode up` starts it")
        return
    from cocode import style

    rows = [[r["name"], r["pid"] or "-", r["state"], f"{r['uptime_s']:.1f}s", r["restarts"], r.get("reason") or ""]
            for r in rows]
    styles = [["bold", "", SERVICE_STYLES.get(r[2], "")] for r in rows]
    table = style.table(["NAME", "PID", "STATE", "UPTIME", "RESTARTS", "REASON"], rows, env.colour, styles,
                        right=("PID", "UPTIME", "RESTARTS"), width=env.width)
    click.echo(table, color=env.colour)


SERVICE_STYLES = {"ready": "green", "starting": "cyan", "backoff": "yellow", "failed": "bold red", "stopped": "yellow"}


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


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_env
def doctor(env: Env, as_json: bool) -> None:
    """Check git, agent binaries, gh, disk space and the services."""
    from cocode import doctor as doc

    checks = doc.run_checks(env.paths if env.in_repo else None, env.config if env.in_repo else None)
    if as_json:
        print_json([{"check": c.name, "ok": c.ok, "required": c.required, "detail": c.detail} for c in checks])
    else:
        from cocode import style

        marks = [("ok", "green") if c.ok else (("FAIL", "bold red") if c.required else ("warn", "yellow"))
                 for c in checks]
        rows = [[mark, c.name, c.detail] for (mark, _), c in zip(marks, checks)]
        table = style.table(["", "CHECK", "DETAIL"], rows, env.colour, [[s] for _, s in marks], header=False)
        click.echo(table, color=env.colour)
    sys.exit(0 if all(c.ok or not c.required for c in checks) else 1)
