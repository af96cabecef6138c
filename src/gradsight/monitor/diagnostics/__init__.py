"""Diagnostics: small objects that turn statistics into Findings.

A diagnostic says its ``name``, the ``kind`` of finding it makes, what it ``needs``
("layers", "history", "events"), ``when`` it runs ("logged": at every logged step on the
window; "report": only when a report is built) and ``check(ctx) -> list[Finding]``. Each lives in
its own module here and registers itself by subclassing :class:`Diagnostic`: adding one
touches one file.
"""

from __future__ import annotations

import importlib
import pkgutil

from gradsight.monitor.diagnostics.base import REGISTRY, Context, Diagnostic
from gradsight.monitor.records import Finding

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def run(ctx: Context) -> list[Finding]:
    """Every registered diagnostic on ``ctx``; most severe first, then forward order."""
    out: list[Finding] = []
    for diag in REGISTRY:
        out.extend(diag.check(ctx))
    return sorted(out, key=lambda f: SEVERITY_ORDER.get(f.severity, 3))


__all__ = ["REGISTRY", "Context", "Diagnostic", "run"]
