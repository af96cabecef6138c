"""The stethoscope: ``gradsight.watch(model)`` diagnoses gradient flow, dead and saturated units
and NaN origins in any PyTorch training.

    >>> import gradsight as gs
    >>> with gs.watch(model) as mon:           # doctest: +SKIP
    ...     for xb, yb in loader:
    ...         loss_fn(model(xb), yb).backward(); opt.step(); opt.zero_grad()
    ...         mon.step()
    >>> rep = mon.report(); print(rep)          # doctest: +SKIP

Depends on numpy and torch only (and ``gradsight.activations`` for what each activation is).
"""

from __future__ import annotations

from gradsight.monitor._util import GradsightWarning
from gradsight.monitor.monitor import Monitor, watch
from gradsight.monitor.records import Finding, LayerStats, ParamStats
from gradsight.monitor.report import Report, StepRecord
from gradsight.monitor.sinks import ConsoleSink, JSONLSink, Sink, TensorBoardSink
from gradsight.monitor.wandb_sink import WandbSink

__all__ = [
    "ConsoleSink",
    "Finding",
    "GradsightWarning",
    "JSONLSink",
    "LayerStats",
    "Monitor",
    "ParamStats",
    "Report",
    "Sink",
    "StepRecord",
    "TensorBoardSink",
    "WandbSink",
    "watch",
]
