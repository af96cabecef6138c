"""Diagnostics: small objects that turn statistics into Findings.

A diagnostic says its ``name``, the ``kind`` of finding it makes, what it ``needs`` of the
Context ("layers", "history", "params", "events"; it is shown only those) and
``check(ctx) -> list[Finding]``. All run whenever findings are built: at each logged step
when there are sinks, and for every report. Each lives in its own module here and registers
itself by subclassing :class:`Diagnostic`: adding one touches one file.
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
        out.extend(diag.check(ctx.restricted(diag.needs)))
    return sorted(out, key=lambda f: SEVERITY_ORDER.get(f.severity, 3))


__all__ = ["REGISTRY", "Context", "Diagnostic", "run"]
