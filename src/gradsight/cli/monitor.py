"""`gradsight` commands of the monitor area."""

from __future__ import annotations

from gradsight.cli.app import app  # noqa: F401
