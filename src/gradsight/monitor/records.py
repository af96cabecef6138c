"""The records a monitor produces: per-site LayerStats, per-layer ParamStats, Findings.

Plain dataclasses with ``to_dict``; everything a user sees in a report, a JSONL line, a
TensorBoard scalar or the HTML page is one of these.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "critical")
KINDS = ("vanishing_gradients", "exploding_gradients", "dead_units", "saturation", "non_finite")


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become the strings 'nan', 'inf', '-inf'."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one activation site over a window of observed steps.

    name               site name: module path (``"blocks.0.mlp.act"``) or functional
                       (``"blocks.0/gelu#0"``)
    activation         catalog name of the activation (``"relu"``, ``"gelu"`` ...)
    grad_norm          ||dLoss/dy||_2 of the site output y, per step (median over the window)
    dead_fraction      fraction of units with f'(z) = 0 for every sample in the window; for the
                       relu family that is "output zero for every sample" (saturating
                       activations report such units as saturated, never dead)
    saturated_fraction fraction of units whose mean derivative over the window is below 1 % of
                       sup|f'| (only for saturating activations: sigmoid, tanh; else 0)
    mean_derivative    E[f'(z)] over all samples and units in the window: how open the valve is
    active_fraction    fraction of units whose mean derivative is at least 1 % of sup|f'|
    grad_rms           grad_norm / sqrt(number of elements): comparable across widths
    backward_seen      False when no backward reached the site in the window (forward-only
                       steps): grad_norm and grad_rms are then NaN, and read "no backward seen"
                       in ``to_dict`` and the report table
    units              units of the site (channels for conv-shaped outputs, else last dim)
    samples            samples per unit seen in the window (batch x spatial positions x steps)
    steps              observed steps in the window
    incoming           the layer whose output feeds the site (``"3"``, ``"blocks.0.fc"``) or None
    weight_grad_norm   ||dLoss/dW|| of the incoming layer's parameters (last observed step)
    update_ratio       ||W_after - W_before|| / ||W_before|| of the incoming layer's parameters,
                       measured from the optimizer step that followed the last observed backward
    step               the last step whose data is included

    Under torch.distributed (DDP, FSDP) every number covers all ranks' samples, and gradients
    are those of the loss the optimizer follows -- the mean of the ranks' losses -- so N
    processes report what one process reports on the same global batch:
    grad_norm = sqrt(sum over ranks r of ||dL_r/dy_r||^2) / N (see monitor/distributed.py).
    """

    name: str
    activation: str
    grad_norm: float
    dead_fraction: float
    saturated_fraction: float
    mean_derivative: float
    active_fraction: float
    grad_rms: float = math.nan
    backward_seen: bool = True
    units: int = 0
    samples: int = 0
    steps: int = 0
    incoming: str | None = None
    weight_grad_norm: float | None = None
    update_ratio: float | None = None
    step: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = _clean(asdict(self))
        if not self.backward_seen:
            out["grad_norm"] = out["grad_rms"] = NO_BACKWARD
        return out


NO_BACKWARD = "no backward seen"  # what gradient statistics read when no backward reached a site


@dataclass(frozen=True)
class ParamStats:
    """One parameterized layer (a module owning parameters) at one observed step.

    grad_norm     sqrt(sum over its parameters of ||grad||^2) after the backward
    weight_norm   sqrt(sum of ||W||^2) at the end of the backward (before the optimizer step)
    update_ratio  ||delta W|| / ||W||, delta W measured across the optimizer step (None when no
                  optimizer step of this layer was seen); tensors above 4096 entries are
                  measured on 4096 evenly strided entries
    """

    name: str
    grad_norm: float
    weight_norm: float
    update_ratio: float | None
    step: int

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


@dataclass(frozen=True)
class Finding:
    """A diagnosis: what is wrong, where, how sure, the numbers behind it, and what to do.

    kind      one of ``KINDS``
    layers    the site (or module) names it concerns, in forward order
    severity  ``"info"`` < ``"warning"`` < ``"critical"``
    message   one plain-language sentence
    evidence  the numbers, JSON-safe
    remedy    a concrete fix, with the exact call where there is one
    step      the step at which it was (last) diagnosed
    """

    kind: str
    layers: tuple[str, ...]
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""
    step: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = list(self.layers)
        return _clean(out)

    def __str__(self) -> str:
        where = ", ".join(self.layers[:4]) + (" ..." if len(self.layers) > 4 else "")
        return f"[{self.severity}] {self.kind} at {where}: {self.message} Remedy: {self.remedy}"
