"""The `cocode` command line (the console script `cocode.__main__:main` comes here
after its fast paths): parse, call the library, print. Nothing else lives here.

cocode.cli.helpers holds the group `main` and what commands share; each command
module registers its commands on it when imported here, grouped by what they act
on. They import cocode.cli.helpers, never this package, so no circle can form.
"""

from cocode.cli import bench, eventlog, jobs, output, resources, review, services, top  # noqa: F401 (registers)
from cocode.cli.helpers import main

__all__ = ["main"]
