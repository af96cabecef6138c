"""What the page draws, computed from a training run: one JSON-safe snapshot per view update.

- ``layers``   per activation site, from the monitor's report (the numbers users get)
- ``theory``   the mean-field gradient profile (:func:`gradsight.theory.gradient_profile`) at
               initialisation, anchored at the measured norm of the last hidden layer:
               pred_l = ‖∂L/∂y_depth‖ · Π_{k=l+1}^{depth} √(σ_w² E[f'(h_k)²]),  h_k ~ N(0, q_k)
- ``units``    per layer one character per unit over the training set at this step, by the
               monitor's rules: ``d`` dead (non-saturating activations: f'(z) = 0 for every
               sample), ``s`` saturated (saturating activations: mean f'(z) < 1 % of sup|f'|),
               ``a`` alive
- ``hist``     per layer a histogram of the pre-activations z over the training set
- ``surface``  2-D data: the predicted class and its probability on a G × G grid
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gradsight import theory
from gradsight.monitor.records import _clean

SURFACE_GRID = 40  # cells per side of the decision surface
HIST_BINS = 32
SATURATED_REL = 0.01  # the monitor's saturation threshold: mean f' below 1 % of sup|f'|
LAYER_KEYS = ("name", "activation", "grad_norm", "dead_fraction", "saturated_fraction",
              "mean_derivative", "active_fraction", "units", "update_ratio")  # fmt: skip


def theory_profile(net: Any, x_train: torch.Tensor) -> dict[str, Any]:
    """``{"ratio": [depth floats] | None, "reason": str}``: ratio_l = Π_{k=l+1}^{depth} √χ_k
    (so ratio_depth = 1), or None with the reason theory does not apply."""
    cfg = net.cfg
    names = set(cfg.layer_names())
    if cfg.residual or cfg.layer_norm:
        return {"ratio": None, "reason": "mean-field theory here is for plain nets "
                "(no residual connections, no LayerNorm)"}  # fmt: skip
    if len(names) != 1:
        return {"ratio": None, "reason": "mean-field theory here needs one activation for every layer"}
    first_w, sw2, sb2 = net.variances()
    q1 = first_w * float(x_train.pow(2).mean()) + sb2
    try:
        p = theory.gradient_profile(net.acts_catalog[0], cfg.depth + 1, sw2, sb2, q1=q1)
    except Exception as exc:  # noqa: BLE001 - theory not applicable: say why, draw measurement
        return {"ratio": None, "reason": f"theory unavailable: {exc}"}
    ratio = [float(v) for v in p[1:]]  # (depth,)
    return {"ratio": ratio if all(math.isfinite(v) for v in ratio) else None,
            "reason": f"mean field at init: σ_w²={sw2:.3g}, σ_b²={sb2:.3g}, q₁={q1:.3g}"}  # fmt: skip


def layers_view(report: Any) -> list[dict[str, Any]]:
    return [_clean({k: getattr(s, k) for k in LAYER_KEYS}) for s in report.layers]


@torch.no_grad()
def unit_and_hist(net: Any, x: torch.Tensor) -> tuple[list[str], list[dict[str, Any]]]:
    """Unit states and pre-activation histograms per hidden layer over ``x`` (B, D)."""
    units, hists = [], []
    for z, act in zip(net.preactivations(x), net.acts_catalog, strict=True):  # z: (B, width)
        d = act.derivative(z)  # (B, width)
        state = np.full(z.shape[1], "a")
        if act.saturates:  # as the monitor: a saturating unit with f' = 0 is saturated, not dead
            sat = d.abs().mean(dim=0) < SATURATED_REL * float(act.derivative_bound)
            state[sat.numpy()] = "s"
        else:
            state[(d == 0).all(dim=0).numpy()] = "d"
        units.append("".join(state.tolist()))
        zf = z[torch.isfinite(z)]
        if zf.numel() == 0:
            hists.append({"lo": -1.0, "hi": 1.0, "counts": [0] * HIST_BINS})
            continue
        lim = float(max(zf.abs().max().item(), 1e-3))
        counts = torch.histc(zf, bins=HIST_BINS, min=-lim, max=lim)
        hists.append({"lo": -lim, "hi": lim, "counts": [int(c) for c in counts.tolist()]})
    return units, hists


@torch.no_grad()
def surface(net: Any, x: torch.Tensor) -> dict[str, Any]:
    """Predicted class and probability on a grid over the data's bounding box (2-D data)."""
    lo = (x.min(dim=0).values - 0.3).tolist()
    hi = (x.max(dim=0).values + 0.3).tolist()
    g = SURFACE_GRID
    xs = torch.linspace(lo[0], hi[0], g)
    ys = torch.linspace(lo[1], hi[1], g)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)  # (G², 2)
    prob = torch.softmax(net(grid.to(x.dtype)), dim=1)  # (G², C)
    conf, cls = prob.max(dim=1)
    conf = torch.nan_to_num(conf, nan=0.0)
    return {"lo": lo, "hi": hi, "n": g, "cls": cls.tolist(),
            "conf": [round(float(c), 3) for c in conf.tolist()]}  # fmt: skip


def points(x: torch.Tensor, y: torch.Tensor, limit: int = 800) -> list[list[float]]:
    """[x0, x1, label] rows of 2-D data, at most ``limit``."""
    return [[round(a, 4), round(b, 4), int(c)] for (a, b), c in zip(x[:limit].tolist(), y[:limit].tolist(), strict=True)]
