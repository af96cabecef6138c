"""The stethoscope: ``gradsight.watch(model)`` diagnoses gradient flow, dead and saturated units
and NaN origins in any PyTorch training.

    >>> import torch, gradsight as gs
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> with gs.watch(model, every=1) as mon:
    ...     for _ in range(3):
    ...         xb, yb = torch.randn(16, 4), torch.randint(0, 2, (16,))
    ...         torch.nn.functional.cross_entropy(model(xb), yb).backward()
    ...         opt.step(); opt.zero_grad()
    ...         mon.step()
    >>> rep = mon.report()
    >>> [(ls.name, ls.activation, ls.units, ls.samples, ls.dead_fraction) for ls in rep.layers]
    [('1', 'tanh', 8, 48, 0.0)]
    >>> rep.findings
    []

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
