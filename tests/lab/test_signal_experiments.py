"""The gradient-flow, saturation and born-dead experiments: verdicts follow from measurement.

Each runs its quick mode (gradient_flow on a reduced activation list) and is checked for what
a report relies on: rows, figures, a scale, claims whose verdict agrees with their evidence,
the regenerating command, and progress reported to the end.
"""

from __future__ import annotations

import json

import pytest

from gradsight.lab.experiments import born_dead, gradient_flow, saturation
from gradsight.lab.registry import VERDICTS


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, str]] = []

    def __call__(self, done: int, total: int, message: str = "") -> None:
        self.calls.append((done, total, message))


def _check_common(result, name: str, progress: Recorder) -> None:
    assert (
        result.name == name
        and result.quick
        and result.command == f"gradsight lab --only {name} --quick"
    )
    assert result.rows and result.figures and result.scale
    assert all(f.svg.lstrip().startswith("<?xml") or "<svg" in f.svg[:500] for f in result.figures)
    assert progress.calls and progress.calls[-1][0] == progress.calls[-1][1]
    json.dumps(result.to_dict(with_figures=False))
    for c in result.claims:
        assert (
            c.verdict in VERDICTS and c.command == result.command and c.evidence and c.explanation
        )


def test_born_dead_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    progress = Recorder()
    result = born_dead.run(True, progress)
    _check_common(result, "born_dead", progress)
    (claim,) = result.claims
    assert claim.source == "Lu et al. 2019"
    ev = claim.evidence
    # the verdict is computed: supported exactly when formula and Monte Carlo agree, the dead
    # fraction grows with depth, and width 2 is mostly dead at depth 50
    expected = (
        ev["formula_vs_monte_carlo_max_z"] <= 4.5
        and ev["monotone_in_depth"]
        and ev["born_dead_width_2_depth_50"] >= 0.9
    )
    assert (claim.verdict == "supported") == expected
    # 1 − (1 − 2^−13)^50 < 1 % ≤ 1 − (1 − 2^−12)^50
    assert ev["width_for_under_1pct_at_depth_50"] == 13
    row = next(r for r in result.rows if r["width"] == 2 and r["depth"] == 10)
    assert row["formula"] == pytest.approx(1 - 0.75**10, abs=1e-4)


@pytest.mark.parametrize(
    ("layer", "average", "verdict"),
    [(0.015, 0.006, "supported"), (0.079, 0.006, "nuanced"), (0.04, 0.03, "nuanced"),
     (0.2, 0.1, "refuted")],
    ids=["every-layer", "average-only", "roughly", "neither"],
)
def test_saturation_is_judged_per_layer(layer: float, average: float, verdict: str) -> None:
    assert saturation.per_layer_verdict(layer, average)[0] == verdict


def test_saturation_quick() -> None:
    progress = Recorder()
    result = saturation.run(True, progress)
    _check_common(result, "saturation", progress)
    by_id = {c.id: c for c in result.claims}
    theory_claim = by_id["saturation_theory_predicts_measurement"]
    err = theory_claim.evidence["max_abs_error_single_layer"]  # judged per layer, as claimed
    avg = theory_claim.evidence["max_abs_error_layer_average"]
    assert theory_claim.verdict == (
        "supported" if err <= 0.02 else "nuanced" if err <= 0.05 or avg <= 0.02 else "refuted"
    )
    rows = {(r["activation"], r["sigma_w"]): r for r in result.rows}
    # tiny weights: no saturation; huge weights: most tanh units saturated (theory ≈ 0.85 at σ_w = 16)
    assert (
        rows[("tanh", 0.5)]["measured_mean"] < 0.01 and rows[("tanh", 16.0)]["measured_mean"] > 0.7
    )


def test_gradient_flow_quick_on_two_activations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gradient_flow, "ACTIVATIONS", ("sigmoid", "relu"))
    progress = Recorder()
    result = gradient_flow.run(True, progress)
    _check_common(result, "gradient_flow", progress)
    by_id = {c.id: c for c in result.claims}
    vanish, reach = by_id["sigmoid_vanishes_20_layers"], by_id["relu_reaches_20_layers"]
    ks = [vanish.evidence[f"{i}_vanish_after_layers"] for i in ("pytorch_default", "xavier")]
    if all(k is not None and 5 <= k <= 6 for k in ks):
        assert vanish.verdict == "supported"
    elif all(k is not None for k in ks):
        assert vanish.verdict == "nuanced"
    else:
        assert vanish.verdict == "refuted"
    reached = [
        0.01 <= reach.evidence[f"{i}_first_over_last"] <= 100 for i in ("pytorch_default", "he")
    ]
    assert reach.verdict == {2: "supported", 1: "nuanced", 0: "refuted"}[sum(reached)]
    # the physics, not just the bookkeeping: ReLU with He init is critical (√χ₁ = 1) while
    # PyTorch's default init gives √(1/6)
    assert reach.evidence["he_theory_sqrt_chi1"] == pytest.approx(1.0)
    assert reach.evidence["pytorch_default_theory_sqrt_chi1"] == pytest.approx(0.4082, abs=1e-4)
