"""Where the project and its test agents are, the real agent CLIs a test may need,
and the time bound of a heavy test."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the project
AGENTS_DIR = ROOT / "tests" / "agents"  # small real agent scripts
# The real agent CLIs, pinned: `.ci/run` installs them here (npm install --prefix .ci/node).
CLI_BIN = ROOT / ".ci" / "node" / "node_modules" / ".bin"
CLI_INSTALL = "npm install --prefix .ci/node @anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0"

# pytest-timeout's 60 s (pyproject) bounds every test; one that takes over ~10 s alone
# gets 180 s: room for a machine loaded three-fold, still bounded.
heavy = pytest.mark.timeout(180)


def agent_cli(name: str) -> str:
    """The directory holding the real `name` CLI (.ci/node first, then PATH); skips
    the test, saying how to install it, when there is none."""
    found = shutil.which(name, path=f"{CLI_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        pytest.skip(f"the real `{name}` CLI is not installed; `{CLI_INSTALL}` (bash .ci/run does it)")
    return str(Path(found).parent)


def agent_module(name: str) -> ModuleType:
    """A Python agent script in tests/agents/, loaded as a module (for its expected output)."""
    spec = importlib.util.spec_from_file_location(name, AGENTS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
