"""Experiment ``explainer``: the explainer's figures that no experiment can check.

The explainer backs its story with business and accuracy figures ("$100K → $15K" in training
cost, "65 % → 94 %" in accuracy) that name no model, data set, hardware, price or baseline. A
number like that cannot be re-measured. The two ``untestable`` verdicts here are a judgement,
not a computation: we read the explainer and recorded, in :data:`FIGURES`, that it states none
of the parts of :data:`REQUIRED_SETTING`; nothing is measured, and the verdict follows from that
reading alone. The reasons are given with each, and what the lab measures instead is listed
beside it.
"""

from __future__ import annotations

from typing import Any

from gradsight.lab.registry import Claim, ExperimentResult, Progress, command_for, experiment

NAME = "explainer"

# what a figure must state before anyone can re-measure it
REQUIRED_SETTING: tuple[str, ...] = (
    "model", "data set", "baseline activation", "training budget", "hardware or price",
)


def testability_verdict(stated: dict[str, bool]) -> tuple[str, str]:
    """``untestable`` when any part of :data:`REQUIRED_SETTING` is unstated, else ``nuanced``
    (testable in principle, but not at the lab's scale).

    >>> testability_verdict({k: False for k in REQUIRED_SETTING})[0]
    'untestable'
    """
    missing = [k for k in REQUIRED_SETTING if not stated.get(k, False)]
    if missing:
        return "untestable", "The figure does not state its " + ", ".join(missing) + "."
    return "nuanced", "The setting is stated, but re-measuring it is beyond a laptop-scale lab."


FIGURES: list[dict[str, Any]] = [
    {
        "id": "explainer.dollar_figures",
        "claim": 'The explainer\'s dollar figures (e.g. "$100K → $15K" of training cost after '
        "switching to ReLU)",
        "stated": {k: False for k in REQUIRED_SETTING},
        "instead": "The lab measures what such savings would be built from: steps and seconds to "
        "a target accuracy per activation (training_speed) and each activation's "
        "forward+backward cost beside a memory copy and a Linear layer (cost).",
        "related": ["training_speed", "cost"],
    },
    {
        "id": "explainer.accuracy_figures",
        "claim": 'The explainer\'s accuracy figures (e.g. "65 % → 94 %" after switching to ReLU)',
        "stated": {k: False for k in REQUIRED_SETTING},
        "instead": "The lab measures accuracies reached per activation, depth, init and optimizer "
        "on digits and MNIST-1D (training_speed), whether deep ReLU nets train at all under "
        "Xavier vs He init (he2015), and ReLU vs tanh CNN speed (krizhevsky2012).",
        "related": ["training_speed", "he2015", "krizhevsky2012"],
    },
]


@experiment(NAME, "The explainer's untestable figures", order=90, quick_budget_s=1,
             typical_s=(0.1, 0.1))
def run(quick: bool, progress: Progress) -> ExperimentResult:
    """Record, with reasons, the explainer's figures that cannot be re-measured."""
    claims = []
    rows = []
    for i, fig in enumerate(FIGURES):
        verdict, why = testability_verdict(fig["stated"])
        missing = [k for k in REQUIRED_SETTING if not fig["stated"][k]]
        claims.append(
            Claim(
                id=fig["id"],
                claim=fig["claim"],
                verdict=verdict,  # type: ignore[arg-type]
                evidence={"missing_setting": missing, "related_experiments": fig["related"]},
                command=command_for(NAME, quick),
                explanation=f"Our judgement from reading the explainer, not a measurement: {why} "
                f"Without them there is nothing to re-run, so no measurement can confirm or "
                f"refute it. {fig['instead']}",
            )
        )
        rows.append({"figure": fig["claim"], "verdict": verdict, "missing": ", ".join(missing),
                     "measured instead in": ", ".join(fig["related"])})
        progress(i + 1, len(FIGURES), fig["id"])
    return ExperimentResult(
        name=NAME,
        title="The explainer's untestable figures",
        summary="Figures the explainer quotes without the setting that produced them. They are "
        "listed so that the report says plainly what it cannot check, and points to what it "
        "measures instead.",
        command=command_for(NAME, quick),
        quick=quick,
        scale="No measurement: a judgement, from reading the explainer, of what each figure "
        "leaves unstated.",
        rows=rows,
        claims=claims,
    )
