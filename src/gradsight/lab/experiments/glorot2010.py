"""Experiment ``glorot2010``: Glorot & Bengio (2010), per-layer statistics at initialization.

Glorot & Bengio trained 5-hidden-layer tanh and sigmoid networks and looked at each layer's
activations and back-propagated gradients. With the "standard" initialization
W ~ U[−1/√n, 1/√n] (n·Var W = 1/3) the back-propagated gradients shrink layer by layer towards
the input (their Fig. 7, top) — in the linear regime each layer multiplies their variance by
n·Var W = 1/3. Their "normalized" initialization (Var W = 2/(n_in + n_out), now called Xavier)
keeps it near 1, so the gradient variance is about the same in every layer (Fig. 7, bottom).

We rebuild that at our scale: 5 hidden layers of width 256 on digits, zero biases as in the
paper, standard vs normalized init, tanh and sigmoid, a batch of 500 training images, several
seeds; per layer the standard deviation of the activations f(h) and of ∂L/∂h (the gradient
with respect to the pre-activation h, their ∂Cost/∂s). Mean-field theory's per-layer gradient
factor √χ₁ (:func:`gradsight.theory.chi1`) is printed beside the measurement. Our normalized
init draws from a Gaussian of the same variance rather than their uniform.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gradsight.lab.registry import (
    Claim,
    ExperimentResult,
    Figure,
    Progress,
    command_for,
    experiment,
)
from gradsight.lab.registry import (
    seeds as lab_seeds,
)

NAME = "glorot2010"
TITLE = "Glorot & Bengio 2010: per-layer statistics, standard vs normalized init"
SOURCE = "Glorot & Bengio 2010"
INITS = {"standard": "pytorch_default", "normalized": "xavier"}
SHRINK = 0.5  # standard init: bottom/top gradient std below this counts as shrinking
FLAT = (0.5, 2.0)  # normalized init: bottom/top within this band counts as flat


def glorot_verdict(ratio_standard: float, ratio_normalized: float) -> tuple[str, str]:
    """Verdict from the ratio std(∂L/∂h) of the lowest hidden layer over the highest.

    Standard init shrinking (ratio < 0.5) and normalized init flat (ratio in [0.5, 2]) →
    supported; standard not shrinking → refuted; otherwise (both shrink, or normalized is far
    from flat) → nuanced.

    >>> glorot_verdict(0.11, 0.9)[0]
    'supported'
    >>> glorot_verdict(0.9, 1.0)[0]
    'refuted'
    >>> glorot_verdict(0.11, 0.3)[0]
    'nuanced'
    """
    lo, hi = FLAT
    shrinks = ratio_standard < SHRINK
    flat = lo <= ratio_normalized <= hi
    text = (
        f"Lowest-over-highest hidden layer std of ∂L/∂h: {ratio_standard:.3g} with the standard "
        f"init, {ratio_normalized:.3g} with the normalized init."
    )
    if shrinks and flat:
        return "supported", text + " Gradients shrink toward the input under the standard init "\
            "and stay level under the normalized one, as the paper reports."
    if not shrinks:
        return "refuted", text + " The standard init did not shrink the gradients toward the input here."
    return "nuanced", text + " Both shrink toward the input, or the normalized init is far from "\
        "level: the paper's contrast holds only in part at our scale."


def layer_stats(model: Any, X: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per hidden layer: (std of activations f(h), std of ∂L/∂h) for one batch."""
    logits, hs = model.forward_with_preactivations(X)  # depth × (B, width)
    loss = F.cross_entropy(logits, y)
    grads = torch.autograd.grad(loss, hs)
    with torch.no_grad():
        acts = [float(act(h).std()) for act, h in zip(model.acts, hs, strict=True)]
    return acts, [float(g.std()) for g in grads]


def _figure(stats: dict[str, dict[str, Any]], depth: int) -> Figure:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    layers = np.arange(1, depth + 1)
    styles = {"standard": "--", "normalized": "-"}
    colors = {"tanh": "#4477aa", "sigmoid": "#cc6677"}
    for key, s in stats.items():
        act, init = key.split("/")
        a.plot(layers, s["act_std"], styles[init], color=colors[act], marker="o", label=key)
        b.semilogy(layers, s["grad_std"], styles[init], color=colors[act], marker="o", label=key)
    a.set_xlabel("hidden layer (1 = nearest the input)")
    a.set_ylabel("std of activations f(h)")
    a.set_title("Activations")
    b.set_xlabel("hidden layer (1 = nearest the input)")
    b.set_ylabel("std of ∂L/∂h (log)")
    b.set_title("Back-propagated gradients")
    b.legend(fontsize=8)
    fig.tight_layout()
    return Figure.from_matplotlib(
        fig,
        "Per-layer statistics at initialization (cf. Glorot & Bengio 2010, Figs. 6–7)",
        "Dashed: standard init U[−1/√n, 1/√n]; solid: normalized (Xavier). Means over seeds.",
    )


@experiment(NAME, TITLE, order=70, quick_budget_s=8, typical_s=(1, 1))
def run(quick: bool, progress: Progress) -> ExperimentResult:
    """Measure per-layer activation and gradient spread at init; see the module docstring."""
    from gradsight import theory
    from gradsight.lab import data
    from gradsight.lab.models import MLP
    from gradsight.lab.training import torch_threads

    depth, width = 5, 256
    seeds = 3 if quick else 10
    ds = data.load("digits")
    X, y = ds.X_train[:500], ds.y_train[:500]
    stats: dict[str, dict[str, Any]] = {}
    rows = []
    total = 2 * len(INITS) * seeds
    done = 0
    measured: dict[tuple[str, str], tuple[list[list[float]], list[list[float]], float]] = {}
    with torch_threads(1):  # small matmuls: one thread avoids barrier stalls on shared cores
        for act in ("tanh", "sigmoid"):
            for label, init in INITS.items():
                acts, grads = [], []
                for seed in lab_seeds(seeds):
                    model = MLP(ds.n_features, ds.n_classes, depth=depth, width=width,
                                activation=act, init=init, bias_init=0.0, seed=seed)
                    a_std, g_std = layer_stats(model, X, y)
                    acts.append(a_std)
                    grads.append(g_std)
                    done += 1
                    progress(done, total, f"{act} {label}")
                measured[(act, label)] = (acts, grads, model.variances()[1][0])
    for act in ("tanh", "sigmoid"):
        for label in INITS:
            acts, grads, sw2 = measured[(act, label)]
            act_std = np.mean(acts, axis=0)
            grad_std = np.mean(grads, axis=0)
            sqrt_chi = math.sqrt(theory.chi1(act, sw2, 0.0))
            ratio = float(grad_std[0] / grad_std[-1])
            stats[f"{act}/{label}"] = {
                "act_std": act_std.tolist(), "grad_std": grad_std.tolist(),
                "grad_ratio_bottom_over_top": ratio,
                "theory_sqrt_chi1": sqrt_chi,
                "theory_ratio": sqrt_chi ** (depth - 1),
                "sigma_w2": sw2,
            }
            rows.append({
                "activation": act, "init": label, "sigma_w2": round(sw2, 4),
                **{f"grad_std_L{i + 1}": float(g) for i, g in enumerate(grad_std)},
                "bottom_over_top": ratio,
                "theory_bottom_over_top": sqrt_chi ** (depth - 1),
                **{f"act_std_L{i + 1}": float(v) for i, v in enumerate(act_std)},
            })
    std_r = stats["tanh/standard"]["grad_ratio_bottom_over_top"]
    norm_r = stats["tanh/normalized"]["grad_ratio_bottom_over_top"]
    verdict, text = glorot_verdict(std_r, norm_r)
    text += (
        f" Mean-field theory predicts {stats['tanh/standard']['theory_ratio']:.3g} and "
        f"{stats['tanh/normalized']['theory_ratio']:.3g} (per layer √χ₁ = "
        f"{stats['tanh/standard']['theory_sqrt_chi1']:.3f} and "
        f"{stats['tanh/normalized']['theory_sqrt_chi1']:.3f}). Sigmoid, for comparison: "
        f"{stats['sigmoid/standard']['grad_ratio_bottom_over_top']:.3g} (standard) and "
        f"{stats['sigmoid/normalized']['grad_ratio_bottom_over_top']:.3g} (normalized) — its "
        "derivative ≤ 1/4 shrinks gradients under either init."
    )
    claim = Claim(
        id="glorot2010.standard_init_shrinks_gradients",
        claim="With the standard initialization U[−1/√n, 1/√n], a 5-layer tanh network's "
        "back-propagated gradients shrink toward the input; the normalized initialization keeps "
        "them level across layers",
        verdict=verdict,  # type: ignore[arg-type]
        evidence={
            "tanh_standard_bottom_over_top": round(std_r, 4),
            "tanh_normalized_bottom_over_top": round(norm_r, 4),
            "theory_standard": round(stats["tanh/standard"]["theory_ratio"], 4),
            "theory_normalized": round(stats["tanh/normalized"]["theory_ratio"], 4),
            "sigmoid_standard_bottom_over_top": round(stats["sigmoid/standard"]["grad_ratio_bottom_over_top"], 4),
            "sigmoid_normalized_bottom_over_top": round(stats["sigmoid/normalized"]["grad_ratio_bottom_over_top"], 4),
            "depth": depth, "width": width, "seeds": seeds,
        },
        command=command_for(NAME, quick),
        explanation=text,
        source=SOURCE,
    )
    return ExperimentResult(
        name=NAME,
        title=TITLE,
        summary=(
            "Standard deviation of activations and of back-propagated gradients ∂L/∂h per hidden "
            "layer at initialization, for tanh and sigmoid under the standard and the normalized "
            "(Xavier) initialization, with mean-field theory beside it."
        ),
        command=command_for(NAME, quick),
        quick=quick,
        scale=(
            f"{depth} hidden layers of width {width} (the paper: 1,000) on digits, zero biases, one "
            f"batch of 500 training images, at initialization, mean of {seeds} seeds; the paper "
            "used Shapeset-3×2 and reports histograms during training."
        ),
        rows=rows,
        data={"stats": stats},
        figures=[_figure(stats, depth)],
        claims=[claim],
    )
