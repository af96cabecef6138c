"""exploding_gradients: the gradient grows on its way down, or jumps over time.

depth:  ratio_i = grad_rms(site i) / grad_rms(last site) > 1e2 (warning; > 1e4 critical)
time:   a site's grad_norm at the last logged step > 1e2 x its median over the (up to 32)
        earlier logged steps, when there are >= 4 (warning; > 1e4 critical)
"""

from __future__ import annotations

import math
import statistics

from gradsight.monitor.diagnostics.base import LOWER_LR, Context, Diagnostic, severity
from gradsight.monitor.records import Finding

WARN, CRIT = 1e2, 1e4
HISTORY = 32  # earlier logged steps compared against
REMEDY = (
    "lower the learning rate or add warm-up (torch.optim.lr_scheduler.LinearLR(opt, "
    "start_factor=0.01, total_iters=500)), clip gradients "
    "(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)), and initialise for the "
    "activation (torch.nn.init.kaiming_normal_(w, nonlinearity='relu') rather than larger)"
)


class Exploding(Diagnostic):
    name = "exploding"
    kind = "exploding_gradients"
    needs = ("layers", "history")
    setting_remedies = (LOWER_LR,)

    def check(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        layers = ctx.with_gradients()
        if len(layers) >= 3:
            ref = layers[-1]
            ratios = {s.name: s.grad_rms / ref.grad_rms for s in layers[:-1]}
            high = [s for s in layers[:-1] if ratios[s.name] > WARN]
            if high:
                worst = max(ratios[s.name] for s in high)
                out.append(
                    Finding(
                        kind=self.kind,
                        layers=tuple(s.name for s in high),
                        severity=severity(worst, WARN, CRIT) or "warning",
                        message=(
                            f"the gradient grows {worst:.3g}x from the last site ({ref.name}) "
                            f"down to {len(high)} earlier sites."
                        ),
                        evidence={
                            "reference_site": ref.name,
                            "ratio_to_reference": {s.name: ratios[s.name] for s in high},
                            "threshold": WARN,
                        },
                        remedy=REMEDY,
                        step=ctx.step,
                    )
                )
        if len(ctx.history) >= 5:
            last = {s.name: s.grad_norm for s in ctx.history[-1].layers}
            past_by_site: dict[str, list[float]] = {}
            for rec in ctx.history[-1 - HISTORY : -1]:
                for s in rec.layers:
                    if math.isfinite(s.grad_norm) and s.grad_norm > 0:
                        past_by_site.setdefault(s.name, []).append(s.grad_norm)
            jumps = {}
            for name, g in last.items():
                past = past_by_site.get(name, [])
                if len(past) >= 4 and math.isfinite(g):
                    med = statistics.median(past)
                    if g > WARN * med:
                        jumps[name] = g / med
            if jumps:
                worst = max(jumps.values())
                out.append(
                    Finding(
                        kind=self.kind,
                        layers=tuple(jumps),
                        severity=severity(worst, WARN, CRIT) or "warning",
                        message=(
                            f"the gradient at {len(jumps)} sites jumped to {worst:.3g}x its median "
                            f"over the earlier logged steps."
                        ),
                        evidence={"growth_over_median": jumps, "threshold": WARN},
                        remedy=REMEDY,
                        step=ctx.step,
                    )
                )
        return out
