"""saturation: a saturating activation (a catalog property: sigmoid, tanh) whose
pre-activations sit on its flat tails, where it passes almost no gradient.

A (sample, unit) pre-activation z is saturated when |f'(z)| < 1 % of sup|f'| (tanh: |z| > 2.99,
sigmoid: |z| > 5.99). Over the window, per site:

    saturated_fraction = #{saturated (sample, unit)} / #{(sample, unit)}
    opening            = E[f'(z)] / sup|f'|        (1: every z at the steepest point)

A site is saturated when

    saturated_fraction >= 1/4   (critical: >= 1/2)  -- the shares of closed gradient paths at
                                which dead units are reported too: a saturated pre-activation,
                                like a dead unit, passes (almost) no gradient back;
    or opening <= 1/4           (warning)           -- it passes at most a quarter of what the
                                activation can: pre-activations crowd the knee of f without
                                crossing the 1 % line (sigmoid outputs near 0.99, z ~ 5).

Healthy sites sit far from both: a Xavier-initialised tanh MLP has saturated_fraction < 0.04
and opening > 0.4, before and after training on digits; a PyTorch-default sigmoid MLP at init
0 and > 0.9.
"""

from __future__ import annotations

from gradsight.activations import activation
from gradsight.monitor.diagnostics.base import (
    RELU_HE,
    Context,
    Diagnostic,
    SettingRemedy,
    severity,
    sites_have,
)
from gradsight.monitor.records import Finding

WARN, CRIT = 0.25, 0.5  # saturated_fraction
OPENING = 0.25  # E[f'] / sup|f'| at or below it: saturated


def opening(name: str, mean_derivative: float) -> float:
    """E[f'] / sup|f'| of catalog activation ``name``: how open the valve is on average."""
    return mean_derivative / activation(name).derivative_bound


class Saturation(Diagnostic):
    name = "saturation"
    kind = "saturation"
    setting_remedies = (SettingRemedy("Xavier init", set={"init": "xavier"}), RELU_HE)

    def check(self, ctx: Context) -> list[Finding]:
        measured = [
            s
            for s in ctx.layers
            if activation(s.activation).saturates  # only saturating activations can saturate
            and s.saturated_fraction == s.saturated_fraction
            and s.mean_derivative == s.mean_derivative
        ]
        bad = [
            s
            for s in measured
            if s.saturated_fraction >= WARN or opening(s.activation, s.mean_derivative) <= OPENING
        ]
        if not bad:
            return []
        worst = max(s.saturated_fraction for s in bad)
        least = min(opening(s.activation, s.mean_derivative) for s in bad)
        return [
            Finding(
                kind=self.kind,
                layers=tuple(s.name for s in bad),
                severity=severity(worst, WARN, CRIT) or "warning",
                message=(
                    f"{sites_have(len(bad))} saturated units: up to {worst:.1%} of the "
                    "pre-activations sit on the flat tails (derivative below 1% of its maximum), "
                    f"and the valve is down to {least:.1%} open on average (E[f'] / max f'): "
                    "little gradient gets through."
                ),
                evidence={
                    "saturated_fraction": {s.name: s.saturated_fraction for s in bad},
                    "opening": {s.name: opening(s.activation, s.mean_derivative) for s in bad},
                    "mean_derivative": {s.name: s.mean_derivative for s in bad},
                    "threshold": WARN,
                    "opening_threshold": OPENING,
                },
                remedy=(
                    "shrink the pre-activations: Xavier init "
                    "(torch.nn.init.xavier_uniform_(w, gain=torch.nn.init.calculate_gain('tanh'))), "
                    "normalise the input of the layer (nn.LayerNorm), lower the learning rate; or "
                    "use a non-saturating activation (nn.ReLU, nn.GELU)"
                ),
                step=ctx.step,
            )
        ]
