"""Running one service process: find the repository, read the config, hand over.

Shared by `cocode service NAME`, the supervisor's light start-up path and its
forked first start (forkstart.py, which reads the config once for all seven);
errors end as one line on stderr and an exit code, like every cocode command.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from cocode.errors import CocodeError, ConfigError
from cocode import envnames
from cocode.paths import Paths, find_repo_root

SERVICE_NAMES = ("bus", "store", "scheduler", "worker", "logs", "monitor", "checks")


def run_service(directory: str | None, name: str, profile: str | None = None) -> int:
    try:
        if name not in SERVICE_NAMES:
            raise ConfigError(f"unknown service {name!r} (choose {', '.join(SERVICE_NAMES)})")
        paths = Paths(find_repo_root(directory))
        return run_loaded(paths, load_service_config(paths, profile), name)
    except CocodeError as err:
        print(f"cocode: {err.message}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


def load_service_config(paths: Paths, profile: str | None = None):
    """The config every service runs with (the profile from the environment when
    none is given); raises CocodeError on a bad one."""
    return load_repo_config(paths, profile or os.environ.get(envnames.PERFORMANCE_PROFILE) or None)


def load_repo_config(paths: Paths, profile: str | None, shown: Path | None = None):
    """This repository's config with `profile` applied, the one way every process
    reads it; `shown`: the file's name in error messages (the command line gives it
    relative to where it runs)."""
    from cocode.configload import load_config

    return load_config(shown or paths.config, profile, builtin_agents=_builtin_agents())


def run_loaded(paths: Paths, config, name: str) -> int:
    """Run service `name` with a config already read; raises CocodeError."""
    paths.ensure_private_dirs()
    module = importlib.import_module(f"cocode.services.{name}")
    return module.main(paths, config)


def _builtin_agents() -> tuple[str, ...]:
    from cocode.jobs.agents import PRESETS

    return tuple(PRESETS)
