"""`gradsight` commands of the lab area."""

from __future__ import annotations

from gradsight.cli.app import app  # noqa: F401
