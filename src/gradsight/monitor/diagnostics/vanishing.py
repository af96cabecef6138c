"""vanishing_gradients: the gradient reaching the early sites is a tiny fraction of what the
last site receives.

    ratio_i = grad_rms(site i) / grad_rms(last site)       (RMS: comparable across widths)

Sites with ratio < 1e-2 are named (warning; < 1e-4 critical). Needs >= 3 sites with a gradient.
A He-initialised deep ReLU MLP keeps ratio ~ 1 and a Xavier tanh MLP ~ 0.4 at depth 20; a
20-layer sigmoid MLP falls to ~1e-16 (sigmoid' <= 1/4 per layer).
"""

from __future__ import annotations

from dataclasses import replace

from gradsight.activations import activation
from gradsight.monitor.diagnostics.base import RELU_HE, Context, Diagnostic, SettingRemedy, severity
from gradsight.monitor.records import Finding

WARN, CRIT = 1e-2, 1e-4


class Vanishing(Diagnostic):
    name = "vanishing"
    kind = "vanishing_gradients"
    needs = ("layers",)
    setting_remedies = (
        replace(RELU_HE, when={"activation.saturates": True}),
        SettingRemedy("He init", set={"init": "he"}, when={"activation.saturates": False}),
        SettingRemedy("add residual connections", set={"residual": True}, when={"residual": False}),
    )

    def check(self, ctx: Context) -> list[Finding]:
        layers = ctx.with_gradients()
        if len(layers) < 3:
            return []
        ref = layers[-1]
        ratios = {s.name: s.grad_rms / ref.grad_rms for s in layers[:-1]}
        low = [s for s in layers[:-1] if ratios[s.name] < WARN]
        if not low:
            return []
        worst = min(ratios[s.name] for s in low)
        sev = severity(worst, WARN, CRIT, larger_is_worse=False) or "warning"
        if any(activation(s.activation).saturates for s in low):  # sigmoid, tanh
            remedy = (
                "switch the hidden activations to ReLU-family ones (nn.ReLU / nn.GELU) with He "
                "init: torch.nn.init.kaiming_normal_(layer.weight, nonlinearity='relu'); or add "
                "residual connections / normalisation (nn.LayerNorm) between layers"
            )
        else:
            remedy = (
                "initialise for the activation: torch.nn.init.kaiming_normal_(layer.weight, "
                "nonlinearity='relu') for ReLU-family, torch.nn.init.xavier_uniform_(layer.weight, "
                "gain=torch.nn.init.calculate_gain('tanh')) for tanh; or add residual connections "
                "/ normalisation (nn.LayerNorm, nn.BatchNorm1d)"
            )
        return [
            Finding(
                kind=self.kind,
                layers=tuple(s.name for s in low),
                severity=sev,
                message=(
                    f"{len(low)} of {len(layers)} sites get less than {WARN:g}x the gradient of the "
                    f"last site ({ref.name}); the earliest gets {ratios[layers[0].name]:.2e}x: "
                    "early layers barely learn."
                ),
                evidence={
                    "reference_site": ref.name,
                    "reference_grad_rms": ref.grad_rms,
                    "ratio_to_reference": {s.name: ratios[s.name] for s in low},
                    "mean_derivative": {s.name: s.mean_derivative for s in low},
                    "threshold": WARN,
                },
                remedy=remedy,
                step=ctx.step,
            )
        ]
