"""non_finite: the first NaN/Inf of the forward and of the backward pass, with its origin:
the first op (in forward, resp. backward, order) whose output turned non-finite while its
inputs were finite. Made from the monitor's events, so it runs whenever findings are built."""

from __future__ import annotations

from gradsight.monitor.diagnostics.base import LOWER_LR, Context, Diagnostic
from gradsight.monitor.nonfinite import remedy_for
from gradsight.monitor.records import Finding

PHASE_TEXT = {
    "forward": "in the forward pass",
    "backward": "in the backward pass",
    "input": "in the model's input batch",
    "parameters": "in a parameter (set by an earlier optimizer step)",
    "loss": "in the gradient the loss sent into the model",
}


class NonFinite(Diagnostic):
    name = "non_finite"
    kind = "non_finite"
    needs = ("events",)
    setting_remedies = (LOWER_LR,)

    def check(self, ctx: Context) -> list[Finding]:
        out = []
        # causal order: the earliest (step, then forward before backward) comes first and
        # is the only one called "first"
        events = sorted(
            ((ev.step, order, ev) for order, key in enumerate(("forward", "backward")) if (ev := ctx.events.get(key))),
            key=lambda t: t[:2],
        )
        for _, _, ev in events:
            where = ev.site or "an unlocated op"
            module = f" (module {ev.module!r})" if ev.module else ""
            located = ev.site is not None
            out.append(
                Finding(
                    kind=self.kind,
                    layers=(ev.site,) if ev.site else (),
                    severity="critical",
                    message=(
                        ("first" if not out else "a later")
                        + f" non-finite value at step {ev.step} {PHASE_TEXT.get(ev.phase, ev.phase)}: "
                        + (f"it originates at {where}{module}." if located else "its origin could not be located.")
                        + (f" {ev.later_steps} later steps were non-finite too." if ev.later_steps else "")
                    ),
                    evidence={
                        "phase": ev.phase,
                        "step": ev.step,
                        "site": ev.site,
                        "module": ev.module,
                        "op": ev.op,
                        "later_steps": ev.later_steps,
                        **ev.evidence,
                    },
                    remedy=remedy_for(ev.op, ev.phase),
                    step=ev.step,
                )
            )
        return out
