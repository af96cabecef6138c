"""gradsight: make the learning signal of neural networks visible.

The public face, re-exports only::

    import gradsight as gs
    act = gs.activation("relu"); act.derivative(x)
    with gs.watch(model) as mon: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradsight import activations
from gradsight.activations import Activation, activation
from gradsight.errors import GradsightError

if TYPE_CHECKING:
    from gradsight.monitor import Finding, LayerStats, Monitor, Report, watch

__version__ = "0.1.0"

# the monitor is imported on first use: it needs torch._dynamo (its hooks must stay out of
# torch.compile's graphs), about a second of import that `gradsight activations` need not pay
_MONITOR_NAMES = frozenset({"Finding", "LayerStats", "Monitor", "Report", "watch"})


def __getattr__(name: str) -> Any:
    if name in _MONITOR_NAMES:
        from gradsight import monitor

        return getattr(monitor, name)
    raise AttributeError(f"module 'gradsight' has no attribute {name!r}")

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
