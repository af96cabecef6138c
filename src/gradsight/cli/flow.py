"""`gradsight flow`: per-layer gradient norms at initialization with theory beside them."""

from __future__ import annotations

from gradsight.cli.app import app  # noqa: F401
