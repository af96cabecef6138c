"""Born dead: the probability that a deep, narrow ReLU network is dead at initialization
(Lu, Shin, Su & Karniadakis 2019, "Dying ReLU and Initialization"), formula vs Monte Carlo.

Setting: ``depth`` hidden ReLU layers of ``width`` units, zero biases, weights from a
symmetric continuous law (He normal). Two events are estimated by sampling networks:

- *point dead*: a fixed input x₀ meets an all-zero hidden layer, so the output at x₀ is a
  constant and no gradient from x₀ reaches any hidden weight. Its exact probability is
  1 − (1 − 2^{−width})^{depth} (:func:`gradsight.theory.born_dead_probability`);
- *born dead* on a sample of the domain: every one of ``n_inputs`` inputs drawn uniformly from
  [−1, 1]² is dead — the network is a constant function there, the event Lu et al. study.
  The formula is an upper bound for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradsight import theory
from gradsight.lab.registry import (
    Claim,
    ExperimentResult,
    Figure,
    Progress,
    command_for,
    experiment,
    seed_base,
)

NAME = "born_dead"


@experiment(
    NAME,
    "Born dead: deep narrow ReLU networks at initialization (Lu et al. 2019)",
    order=60,
    quick_budget_s=10.0,
    typical_s=(1, 91),
)
def run(quick: bool, progress: Progress) -> ExperimentResult:
    command = command_for(NAME, quick)
    widths = [1, 2, 3, 4, 6, 8] if quick else [1, 2, 3, 4, 5, 6, 8, 10]
    max_depth = 50 if quick else 100
    trials, n_inputs = (2000, 32) if quick else (20000, 64)
    report_depths = [d for d in (1, 2, 5, 10, 20, 50, 100) if d <= max_depth]
    estimates: dict[int, theory.BornDeadEstimate] = {}
    rows: list[dict[str, Any]] = []
    worst_z = 0.0
    for n, width in enumerate(widths):
        progress(n, len(widths), f"width {width}")
        est = theory.born_dead_monte_carlo(max_depth, width, trials, n_inputs, seed=width + 1000 * seed_base())
        estimates[width] = est
        formula = theory.born_dead_probability(np.arange(1, max_depth + 1), width)
        sigma = np.sqrt(formula * (1 - formula) / trials)
        z = np.abs(est.point_dead - formula) / np.maximum(sigma, 1.0 / trials)
        worst_z = max(worst_z, float(z.max()))
        for d in report_depths:
            rows.append(
                {
                    "width": width,
                    "depth": d,
                    "formula": round(float(formula[d - 1]), 4),
                    "monte_carlo_point": round(float(est.point_dead[d - 1]), 4),
                    "stderr": round(float(sigma[d - 1]), 4),
                    "monte_carlo_born_dead": round(float(est.domain_dead[d - 1]), 4),
                }
            )
    progress(len(widths), len(widths), "figures")

    narrow = widths[1] if len(widths) > 1 else widths[0]
    deep_narrow = float(estimates[narrow].domain_dead[-1])
    monotone = all(bool(np.all(np.diff(e.domain_dead) >= 0)) for e in estimates.values())
    # how wide must a net of depth max_depth be for the formula to stay under 1 %?
    safe_width = next(w for w in range(1, 64) if theory.born_dead_probability(max_depth, w) < 0.01)
    agrees = worst_z <= 4.5
    evidence = {
        "max_depth": max_depth,
        "trials": trials,
        "n_inputs": n_inputs,
        f"born_dead_width_{narrow}_depth_{max_depth}": round(deep_narrow, 4),
        f"born_dead_width_{widths[-1]}_depth_{max_depth}": round(
            float(estimates[widths[-1]].domain_dead[-1]), 4
        ),
        "formula_vs_monte_carlo_max_z": round(worst_z, 2),
        "monotone_in_depth": monotone,
        f"width_for_under_1pct_at_depth_{max_depth}": safe_width,
    }
    if agrees and monotone and deep_narrow >= 0.9:
        verdict = "supported"
        why = (
            f"the born-dead fraction grows with depth at every width and reaches {deep_narrow:.0%} for width "
            f"{narrow} at depth {max_depth}; the single-input formula 1 − (1 − 2^−N)^L matches Monte Carlo "
            f"(max deviation {worst_z:.1f} standard errors). The probability falls like L·2^−N with width: "
            f"width {safe_width} keeps it under 1 % at depth {max_depth}."
        )
    elif monotone and deep_narrow >= 0.5:
        verdict = "nuanced"
        why = (
            f"networks die with depth ({deep_narrow:.0%} at width {narrow}, depth {max_depth}) but the "
            f"formula deviates from Monte Carlo by up to {worst_z:.1f} standard errors"
        )
    else:
        verdict = "refuted"
        why = (
            f"only {deep_narrow:.0%} of width-{narrow} networks are born dead at depth {max_depth}"
        )
    claim = Claim(
        id="lu2019_born_dead",
        claim="A deep ReLU network with symmetric initialization is born dead with probability tending to 1 as depth grows at fixed width.",
        verdict=verdict,
        evidence=evidence,
        command=command,
        explanation=why,
        source="Lu et al. 2019",
    )
    return ExperimentResult(
        name=NAME,
        title="Born dead: deep narrow ReLU networks (Lu et al. 2019)",
        summary=(
            f"At depth {max_depth}, {deep_narrow:.0%} of width-{narrow} ReLU networks are constant on a "
            f"sample of {n_inputs} inputs at initialization; the exact single-input formula "
            f"1 − (1 − 2^−width)^depth matches Monte Carlo within {worst_z:.1f} standard errors."
        ),
        command=command,
        quick=quick,
        scale=(
            f"{trials} sampled zero-bias ReLU networks per width {widths}, depths 1–{max_depth}, "
            f"2 inputs features, {n_inputs} inputs per network for the born-dead event; numpy, no training."
        ),
        rows=rows,
        data={
            str(w): {
                "point_dead": e.point_dead.tolist(),
                "domain_dead": e.domain_dead.tolist(),
                "formula": np.asarray(
                    theory.born_dead_probability(np.arange(1, max_depth + 1), w)
                ).tolist(),
            }
            for w, e in estimates.items()
        },
        figures=_figures(estimates, max_depth),
        claims=[claim],
    )


def _figures(estimates: dict[int, theory.BornDeadEstimate], max_depth: int) -> list[Figure]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    depths = np.arange(1, max_depth + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (w, e) in enumerate(estimates.items()):
        c = colors[i % len(colors)]
        ax.plot(
            depths,
            theory.born_dead_probability(depths, w),
            "-",
            lw=1.2,
            color=c,
            label=f"width {w}",
        )
        ax.plot(depths, e.point_dead, "o", ms=2, color=c)
        ax.plot(depths, e.domain_dead, "x", ms=3, color=c, alpha=0.6)
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("probability dead at initialization")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    return [
        Figure.from_matplotlib(
            fig,
            "Probability of a dead ReLU network at initialization",
            "Lines: 1 − (1 − 2^−width)^depth (exact for one input); dots: Monte Carlo for one input; "
            "crosses: Monte Carlo for 'constant on every sampled input' (born dead).",
        )
    ]
