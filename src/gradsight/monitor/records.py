"""The records a monitor produces: per-site LayerStats, per-layer ParamStats, Findings.

Plain dataclasses with ``to_dict``; everything a user sees in a report, a JSONL line, a
TensorBoard scalar or the HTML page is one of these.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any

SEVERITIES = ("info", "warning", "critical")
KINDS = ("vanishing_gradients", "exploding_gradients", "dead_units", "saturation", "non_finite")


def json_safe(value: Any) -> Any:
    """JSON-safe: non-finite floats become the strings 'nan', 'inf', '-inf'."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _field(doc: str, label: str, default: Any = MISSING, *, percent: bool = False, table: bool = False,
           scalar: bool = False, view: bool = False) -> Any:  # fmt: skip
    """A LayerStats field with what every reader needs to know about it, said once: ``doc``
    (the docstring's line), ``label`` (a column header), ``percent`` (shown as a percentage),
    ``table`` (a column of the plain-text table), ``scalar`` (a TensorBoard scalar per site),
    ``view`` (sent to the playground page with every snapshot)."""
    meta = {"doc": doc, "label": label, "percent": percent, "table": table, "scalar": scalar, "view": view}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class LayerStats:
    name: str = _field(
        'site name: module path (``"blocks.0.mlp.act"``) or functional (``"blocks.0/gelu#0"``)',
        "site", table=True, view=True,
    )  # fmt: skip
    activation: str = _field('catalog name of the activation (``"relu"``, ``"gelu"`` ...)', "act", table=True, view=True)
    grad_norm: float = _field(
        "||dLoss/dy||_2 of the site output y, per step (median over the window)",
        "grad_norm", table=True, scalar=True, view=True,
    )  # fmt: skip
    dead_fraction: float = _field(
        "fraction of units with f'(z) = 0 for every sample in the window; for the relu family "
        'that is "output zero for every sample" (saturating activations report such units as '
        "saturated, never dead)",
        "dead", percent=True, table=True, scalar=True, view=True,
    )  # fmt: skip
    saturated_fraction: float = _field(
        "fraction of the window's (sample, unit) pre-activations z on the flat tails, "
        "#{|f'(z)| < 0.01 sup|f'|} / #{(sample, unit)} (tanh: |z| > 2.99, sigmoid: |z| > 5.99); "
        "0 for activations that cannot saturate (the catalog's ``saturates``). A site raises a "
        "``saturation`` finding when this is >= 1/4 (>= 1/2: critical), the shares at which dead "
        "units are reported, or when its opening E[f'] / sup|f'| (``mean_derivative`` over the "
        "activation's ``derivative_bound``) is <= 1/4",
        "saturated", percent=True, table=True, scalar=True, view=True,
    )  # fmt: skip
    mean_derivative: float = _field(
        "E[f'(z)] over all samples and units in the window: how open the valve is",
        "E[f']", table=True, scalar=True, view=True,
    )  # fmt: skip
    active_fraction: float = _field(
        "fraction of units whose mean derivative over the window is at least 1 % of sup|f'|",
        "active", percent=True, view=True,
    )  # fmt: skip
    grad_rms: float = _field("grad_norm / sqrt(number of elements): comparable across widths", "grad_rms", math.nan)
    backward_seen: bool = _field(
        "False when no backward reached the site in the window (forward-only steps): grad_norm "
        'and grad_rms are then NaN, and read "no backward seen" in ``to_dict`` and the report table',
        "backward", True,
    )  # fmt: skip
    units: int = _field("units of the site (channels for conv-shaped outputs, else last dim)", "units", 0, view=True)
    samples: int = _field("samples per unit seen in the window (batch x spatial positions x steps)", "samples", 0)
    steps: int = _field("observed steps in the window", "steps", 0)
    incoming: str | None = _field(
        'the layer whose output feeds the site (``"3"``, ``"blocks.0.fc"``) or None', "incoming", None
    )
    weight_grad_norm: float | None = _field(
        "||dLoss/dW|| of the incoming layer's parameters (last observed step)", "dL/dW", None
    )
    update_ratio: float | None = _field(
        "||W_after - W_before|| / ||W_before|| of the incoming layer's parameters, measured from "
        "the optimizer step that followed the last observed backward",
        "dW/W", None, table=True, view=True,
    )  # fmt: skip
    step: int = _field("the last step whose data is included", "step", 0)

    def to_dict(self) -> dict[str, Any]:
        out = json_safe(asdict(self))
        if not self.backward_seen:
            out["grad_norm"] = out["grad_rms"] = NO_BACKWARD
        return out


NO_BACKWARD = "no backward seen"  # what gradient statistics read when no backward reached a site


def layer_fields(tag: str | None = None) -> tuple[Field, ...]:
    """LayerStats' fields in declaration order; with ``tag`` (``"table"``, ``"scalar"``, ``"view"``) only
    those so marked. Every reader of LayerStats (sinks, HTML, the lab) takes its list here.

    >>> [f.name for f in layer_fields("scalar")]
    ['grad_norm', 'dead_fraction', 'saturated_fraction', 'mean_derivative']
    """
    return tuple(f for f in fields(LayerStats) if tag is None or f.metadata[tag])


LayerStats.__doc__ = "Statistics of one activation site over a window of observed steps.\n\n" + "\n".join(
    textwrap.fill(f.metadata["doc"], 100, initial_indent=f"{f.name:<19}", subsequent_indent=" " * 19)
    for f in fields(LayerStats)
) + (
    "\n\nUnder torch.distributed (DDP, FSDP) every number covers all ranks' samples, and gradients\n"
    "are those of the loss the optimizer follows -- the mean of the ranks' losses -- so N\n"
    "processes report what one process reports on the same global batch:\n"
    "grad_norm = sqrt(sum over ranks r of ||dL_r/dy_r||^2) / N (see monitor/distributed.py)."
)


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
        return json_safe(asdict(self))


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
        return json_safe(out)

    def __str__(self) -> str:
        where = ", ".join(self.layers[:4]) + (" ..." if len(self.layers) > 4 else "")
        return f"[{self.severity}] {self.kind} at {where}: {self.message} Remedy: {self.remedy}"
