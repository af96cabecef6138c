"""The `gradsight` command: thin edges that parse input and call the library.

Commands live by area: `activations.py` (activations, derivative, plot), `monitor.py`
(watch-demo), `flow.py` (flow), `lab.py` (lab). Importing a module registers its commands on `app`.
"""

from __future__ import annotations

import sys

from gradsight.cli import activations, flow, lab, monitor, serve, sweep  # noqa: F401  (registers commands)
from gradsight.cli.app import app, reflow_help
from gradsight.errors import GradsightError

reflow_help(app)


def main() -> None:
    """Entry point of the console script: GradsightError becomes a one-line message, exit 2."""
    try:
        app()
    except GradsightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
