"""Lessons: one preset run per claim of the explainer and per follow-up interview question.

Each lesson is a run config (the page's URL query), two or three sentences, the lab claim it
illustrates and the finding the monitor is expected to show. The lab's verdict is read from a
``results.json`` written by ``gradsight lab`` (``gradsight serve --results PATH``); without one
the lesson says that no lab result is available and which command makes one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Lesson:
    id: str  # URL-safe name (?lesson=ID)
    title: str
    text: str  # two or three sentences
    claim: str  # the lab claim id (gradsight.lab registry) whose verdict is shown
    config: dict[str, Any]  # run-config fields (the rest take their defaults)
    compare: dict[str, Any] | None = None  # fields that differ in the second run (compare mode)
    expect: str | None = None  # the finding kind the monitor should show
    hide: tuple[str, ...] = field(default_factory=tuple)  # control groups hidden by the lesson


# the dead-ReLU setup: the dead-ReLU lesson and the two lessons that compare a remedy with it
# (Leaky ReLU, GELU) train on the same data, seed and large learning rate
SPIRAL_LARGE_LR: dict[str, Any] = {"dataset": "spiral", "depth": 4, "width": 64, "init": "he",
                                   "optimizer": "sgd", "lr": 0.5, "steps": 300}  # fmt: skip

LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "sigmoid_depth20", "Sigmoid at depth 20: the signal fades",
        "Every sigmoid layer multiplies the backward signal by f'(z) ≤ 1/4. Twenty of them leave "
        "the first layers almost no gradient: the strip on the left falls by orders of magnitude, "
        "as mean-field theory predicts, and the early layers stop learning.",
        "sigmoid_vanishes_20_layers",
        {"dataset": "circles", "activation": "sigmoid", "depth": 20, "width": 32,
         "init": "xavier", "lr": 0.5, "steps": 300},
        expect="vanishing_gradients",
    ),
    Lesson(
        "relu_depth20", "ReLU with He init keeps the signal through 20 layers",
        "ReLU's derivative is exactly 1 where a unit is on, and He init (σ_w² = 2) makes up for "
        "the half that is off. The gradient strip stays flat across depth.",
        "relu_reaches_20_layers",
        {"dataset": "circles", "activation": "relu", "depth": 20, "width": 32, "init": "he",
         "lr": 0.05, "steps": 300},
        compare={"activation": "sigmoid", "init": "xavier"},
    ),
    Lesson(
        "dead_relu_large_lr", "A large learning rate kills ReLU units",
        "One big step can push a unit's bias so far negative that it is off for every input; its "
        "derivative is then 0 everywhere and no gradient can bring it back. Watch the valve map "
        "turn black, then try the remedies: a smaller learning rate, Leaky ReLU, or reviving.",
        "dead_neurons.large_lr_kills",
        {**SPIRAL_LARGE_LR, "activation": "relu"},
        expect="dead_units",
    ),
    Lesson(
        "leaky_relu_remedy", "Leaky ReLU keeps a way back",
        "Leaky ReLU's derivative is negative_slope instead of 0 on the negative side, so a unit "
        "pushed off still receives gradient. Same data, seed and learning rate as the dead-ReLU "
        "lesson, side by side.",
        "dead_neurons.remedies_prevent",
        {**SPIRAL_LARGE_LR, "activation": "leaky_relu", "activation_params": {"negative_slope": 0.1}},
        compare={"activation": "relu", "activation_params": {}},
    ),
    Lesson(
        "he_vs_xavier", "He vs Xavier at depth 30",
        "Xavier init keeps σ_w² ≈ 1, right for tanh but too small for ReLU, which zeroes half "
        "its inputs: the forward signal and the gradient shrink by √(1/2) per layer. He init "
        "(σ_w² = 2) keeps them flat.",
        "he2015.he_trains_xavier_stalls",
        {"dataset": "digits", "activation": "relu", "depth": 30, "width": 64, "init": "he",
         "lr": 0.02, "steps": 300},
        compare={"init": "xavier"},
    ),
    Lesson(
        "saturated_tanh", "Large weights saturate tanh",
        "With σ_w² = 12 (Xavier's is about 1) a quarter to two fifths of the tanh pre-activations "
        "in every layer sit on the flat tails, where f'(z) is below 1 % of its maximum, and the "
        "valve is about a fifth open (E[f'] ≈ 0.2, where Xavier init keeps it near 0.95): the "
        "monitor raises a saturation finding. Watch the histogram's z sit out where f' (dashed) "
        "is nearly zero, then apply its remedy (Xavier init) and see the valve open.",
        "large_weights_saturate_sigmoid_tanh",
        {"dataset": "xor", "activation": "tanh", "depth": 6, "width": 64, "init": "sigma_w2",
         "weight_var": 12.0, "lr": 0.05, "steps": 300},
    ),
    Lesson(
        "gelu_transformers", "Why transformers use GELU",
        "GELU is smooth and its derivative is never exactly 0 for z < 0, so units are not "
        "silenced the way ReLU's are; gated forms (SwiGLU) go further. Compare GELU and ReLU at "
        "the same large learning rate.",
        "llm_ffn.gated_beat_plain",
        {**SPIRAL_LARGE_LR, "activation": "gelu"},
        compare={"activation": "relu"},
    ),
    Lesson(
        "relu_derivative", "ReLU's derivative at 0",
        "ReLU is not differentiable at 0; PyTorch uses ReLU'(0) = 0. The derivative explorer "
        "shows f and f' from the catalog and the from-scratch relu_backward beside autograd.",
        "derivatives.relu_derivative",
        {"activation": "relu"},
        hide=("network", "data"),
    ),
)


def by_id() -> dict[str, Lesson]:
    return {lesson.id: lesson for lesson in LESSONS}


def load_verdicts(path: str | Path | None) -> dict[str, dict[str, Any]] | None:
    """``{claim id: claim}`` from a lab ``results.json``, or None when there is none."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        return {c["id"]: c for c in doc.get("claims", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def lessons_json(verdicts: dict[str, dict[str, Any]] | None, source: str | None) -> list[dict]:
    """Every lesson with its lab verdict (or a note that no lab result is available)."""
    out = []
    for lesson in LESSONS:
        item = asdict(lesson)
        claim = (verdicts or {}).get(lesson.claim)
        if claim is None:
            why = "no lab results loaded" if verdicts is None else f"no result for {lesson.claim!r}"
            item["verdict"] = {"verdict": None, "note": f"{why}; run `gradsight lab --quick` and "
                               "start `gradsight serve --results report/results.json`"}  # fmt: skip
        else:
            item["verdict"] = {"verdict": claim.get("verdict"), "claim": claim.get("claim"),
                               "explanation": claim.get("explanation", ""),
                               "command": claim.get("command", ""), "source": source}  # fmt: skip
        out.append(item)
    return out
