"""dead_units: units whose derivative was 0 for every sample of the window (for the ReLU
family: output 0 for every sample). They get no gradient through those samples; they come back
only if the layers below move their pre-activations, or other inputs reach them. The message
says how many samples per unit the window held: early in training, with a small batch, a
rarely active unit can be zero for all of them without being dead on the data.

A site with dead_fraction >= 0.25 is named (warning; >= 0.5 critical). Deep He-initialised ReLU
nets on random inputs show up to ~0.2 in their last layers, which stays below the threshold.
"""

from __future__ import annotations

from gradsight.activations import activation
from gradsight.monitor.diagnostics.base import (
    LOWER_LR,
    Context,
    Diagnostic,
    SettingRemedy,
    severity,
    sites_have,
)
from gradsight.monitor.records import Finding

WARN, CRIT = 0.25, 0.5


def _samples(sites: list) -> str:
    """The window's samples per unit over ``sites``: one number, or the range."""
    lo, hi = min(s.samples for s in sites), max(s.samples for s in sites)
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


class DeadUnits(Diagnostic):
    name = "dead"
    kind = "dead_units"
    setting_remedies = (
        SettingRemedy("Leaky ReLU", set={"activation": "leaky_relu"}, when={"activation.can_die": True}),
        LOWER_LR,
        SettingRemedy("revive dead units", action="revive"),
    )

    def check(self, ctx: Context) -> list[Finding]:
        bad = [s for s in ctx.layers if s.dead_fraction == s.dead_fraction and s.dead_fraction >= WARN]
        if not bad:
            return []
        worst = max(s.dead_fraction for s in bad)
        can_die = any(activation(s.activation).can_die for s in bad)  # relu, relu2, reglu
        remedy = (
            "revive them now with mon.revive_dead(optimizer) (re-initialises their incoming "
            "weights and optimizer state); to prevent it, use nn.LeakyReLU(0.01) (or GELU), "
            "He init (torch.nn.init.kaiming_normal_(w, nonlinearity='relu'), bias 0) and a "
            "lower learning rate or warm-up"
            if can_die
            else "revive them with mon.revive_dead(optimizer); lower the learning rate, "
            "re-initialise the layer or normalise its input (nn.LayerNorm)"
        )
        return [
            Finding(
                kind=self.kind,
                layers=tuple(s.name for s in bad),
                severity=severity(worst, WARN, CRIT) or "warning",
                message=(
                    f"{sites_have(len(bad))} at least {WARN:.0%} dead units (up to {worst:.1%}): "
                    f"zero for every sample in the window ({_samples(bad)} per unit), they pass "
                    "no gradient."
                ),
                evidence={
                    "dead_fraction": {s.name: s.dead_fraction for s in bad},
                    "dead_units": {s.name: round(s.dead_fraction * s.units) for s in bad},
                    "units": {s.name: s.units for s in bad},
                    "samples_per_unit": {s.name: s.samples for s in bad},
                    "window_steps": {s.name: s.steps for s in bad},
                    "threshold": WARN,
                },
                remedy=remedy,
                step=ctx.step,
            )
        ]
