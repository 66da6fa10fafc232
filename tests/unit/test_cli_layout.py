"""The command line's shape: command modules import cocode.cli.helpers, never the
package, so no import circle runs through cocode/cli (deferred imports count); and
`import cocode.cli` stays light and registers every command."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from support import ROOT

CLI = ROOT / "cocode" / "cli"
PACKAGES = {"cocode": ROOT / "cocode", "cocode.services": ROOT / "services"}


def _modules() -> dict[str, object]:
    mods = {}
    for pkg, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            mods[".".join((pkg, *rel))] = path
    return mods


def _imports(name: str, path, mods) -> set[str]:
    """Every cocode module `path` imports, at its top or inside a function."""
    found = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            # `from a import b` imports a, and a.b when b is a module.
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in mods and m != name}


def test_command_modules_import_helpers_not_the_package():
    mods = _modules()
    commands = [m for m in mods if m.startswith("cocode.cli.")]
    assert "cocode.cli.helpers" in commands and len(commands) >= 6, commands
    for name in commands:
        imported = _imports(name, mods[name], mods)
        assert "cocode.cli" not in imported, f"{name} imports the cocode.cli package"
        if name == "cocode.cli.helpers":
            assert not {m for m in imported if m.startswith("cocode.cli.")}, imported


def test_no_import_circle_through_the_cli():
    # Unlike a check that skips package/submodule edges, this one counts them:
    # `__init__` importing a command module that imports `__init__` is a circle.
    mods = _modules()
    graph = {name: _imports(name, path, mods) for name, path in mods.items()}
    circles, state, stack = [], {}, []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                circles.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for name in sorted(mods):
        if name not in state:
            visit(name)
    through_cli = [" -> ".join(c) for c in circles if any(m.startswith("cocode.cli") for m in c)]
    assert not through_cli, through_cli


def test_import_is_light_and_registers_every_command():
    code = (
        "import json, sys\n"
        "from cocode.cli import main\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('zmq', 'pygit2', 'sqlite_utils', 'psutil', 'lz4', 'yaml', 'rich', 'textual')"
        " or m.startswith(('cocode.bench', 'cocode.client', 'cocode.core', 'cocode.jobs')))\n"
        "print(json.dumps({'heavy': heavy, 'commands': sorted(main.commands),"
        " 'bench': sorted(main.commands['bench'].commands)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["heavy"] == [], "`cocode --help` would load these: " + ", ".join(got["heavy"])
    assert got["commands"] == sorted([
        "bench", "cancel", "check", "clean", "compact", "compare", "demo", "diff", "doctor", "down",
        "endpoints", "events", "init", "logs", "metrics", "pick", "ps", "replay", "say", "schema", "service",
        "status", "submit", "tail", "top", "up",
    ])
    assert got["bench"] == ["all", "checks", "compare", "events", "jobs", "logs", "monitor", "plot", "profiles", "sandbox",
                            "scenario", "top", "up", "watch"]


def test_every_job_and_agent_argument_completes():
    """A JOB or AGENT argument without shell_complete completes nothing on TAB (as `say`
    did): every command's job and agent parameters name their completion callback."""
    from cocode.cli import main
    from cocode.cli.complete import complete_agent, complete_job, complete_run_agent

    wanted = {"job_id": complete_job, "agent": complete_run_agent, "agents": complete_run_agent,
              "other": complete_run_agent, "agent_names": complete_agent}
    seen, missing = set(), []
    for name, cmd in main.commands.items():
        for param in cmd.params:
            if param.name in wanted:
                seen.add(name)
                if param._custom_shell_complete is not wanted[param.name]:
                    missing.append(f"{name} {param.name.upper()}")
    assert not missing, f"no completion for: {', '.join(missing)}"
    assert {"cancel", "check", "compare", "diff", "logs", "pick", "say", "status", "submit", "tail"} <= seen
