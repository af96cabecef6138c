"""gradsight: make the learning signal of neural networks visible.

The public face, re-exports only::

    import gradsight as gs
    act = gs.activation("relu"); act.derivative(x)
    with gs.watch(model) as mon: ...
"""

from __future__ import annotations

from gradsight import activations
from gradsight.activations import Activation, activation
from gradsight.errors import GradsightError
from gradsight.monitor import Finding, LayerStats, Monitor, Report, watch

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Finding",
    "GradsightError",
    "LayerStats",
    "Monitor",
    "Report",
    "activation",
    "activations",
    "watch",
]
