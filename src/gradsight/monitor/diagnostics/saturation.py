"""saturation: sigmoid/tanh-like units whose mean derivative over the window is below 1 % of
its maximum; they are pinned to a flat tail and pass almost no gradient.

A site with saturated_fraction >= 0.25 is named (warning; >= 0.5 critical).
"""

from __future__ import annotations

from gradsight.monitor.diagnostics.base import Context, Diagnostic, severity, sites_have
from gradsight.monitor.records import Finding

WARN, CRIT = 0.25, 0.5


class Saturation(Diagnostic):
    name = "saturation"
    kind = "saturation"

    def check(self, ctx: Context) -> list[Finding]:
        bad = [
            s
            for s in ctx.layers
            if s.saturated_fraction == s.saturated_fraction and s.saturated_fraction >= WARN
        ]
        if not bad:
            return []
        worst = max(s.saturated_fraction for s in bad)
        return [
            Finding(
                kind=self.kind,
                layers=tuple(s.name for s in bad),
                severity=severity(worst, WARN, CRIT) or "warning",
                message=(
                    f"{sites_have(len(bad))} at least {WARN:.0%} saturated units (up to "
                    f"{worst:.1%}): their derivative is below 1% of its maximum."
                ),
                evidence={
                    "saturated_fraction": {s.name: s.saturated_fraction for s in bad},
                    "mean_derivative": {s.name: s.mean_derivative for s in bad},
                    "threshold": WARN,
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
