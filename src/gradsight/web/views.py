"""What the page draws, computed from a training run: one JSON-safe snapshot per view update.

- ``layers``   per activation site, from the monitor's report (the numbers users get)
- ``theory``   the mean-field gradient profile (:func:`gradsight.theory.gradient_profile`) at
               initialisation, anchored at the measured norm of the last hidden layer:
               pred_l = ‖∂L/∂y_depth‖ · Π_{k=l+1}^{depth} √(σ_w² E[f'(h_k)²]),  h_k ~ N(0, q_k)
- ``units``    per layer one character per unit over a slice of the training set at this step
               (up to 256 samples; fewer for big nets, see runs.UNITS_VALUES), by the
               monitor's rules: ``d`` dead (non-saturating activations: f'(z) = 0 for every
               sample), ``s`` saturated (saturating activations: mean f'(z) < 1 % of sup|f'|),
               ``a`` alive
- ``hist``     per layer a histogram of the pre-activations z over the same samples, HIST_BINS
               equal bins on [−max|z|, max|z|]
- ``surface``  2-D data: the predicted class and its probability on a G × G grid
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gradsight import theory
from gradsight.monitor.records import json_safe, layer_fields  # json_safe: as Report.to_dict
from gradsight.monitor.sites import SATURATED

SURFACE_GRID = 32  # cells per side of the decision surface
HIST_BINS = 32
LAYER_KEYS = tuple(f.name for f in layer_fields("view"))  # LayerStats fields the page receives


def theory_profile(net: Any, x_train: torch.Tensor) -> dict[str, Any]:
    """``{"ratio": [depth floats] | None, "reason": str}``: ratio_l = Π_{k=l+1}^{depth} √χ_k
    (so ratio_depth = 1), or None with the reason theory does not apply."""
    cfg = net.cfg
    kinds = {(n, tuple(sorted(p.items()))) for n, p in zip(cfg.layer_names(), cfg.layer_params(), strict=True)}
    if cfg.residual or cfg.layer_norm:
        return {"ratio": None, "reason": "mean-field theory here is for plain nets "
                "(no residual connections, no LayerNorm)"}  # fmt: skip
    if len(kinds) != 1:
        return {"ratio": None, "reason": "mean-field theory here needs one activation "
                "(with the same parameters) for every layer"}  # fmt: skip
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
    return [json_safe({k: getattr(s, k) for k in LAYER_KEYS}) for s in report.layers]


@torch.no_grad()
def unit_and_hist(net: Any, x: torch.Tensor) -> tuple[list[str], list[dict[str, Any]]]:
    """Unit states and pre-activation histograms per hidden layer over ``x`` (B, D).

    All layers at once: one f' call per distinct activation on the stacked z (L, B, W)."""
    z = torch.stack(net.preactivations(x))  # (L, B, W)
    d = torch.empty_like(z)
    groups: dict[Any, list[int]] = {}
    for i, act in enumerate(net.acts_catalog):
        groups.setdefault(act, []).append(i)
    for act, rows in groups.items():
        d[rows] = act.derivative(z[rows])
    acts = net.acts_catalog
    saturating = torch.tensor([bool(a.saturates) for a in acts])  # (L,)
    bound = torch.tensor([float(a.derivative_bound or 1.0) for a in acts], dtype=d.dtype)  # (L,)
    # as the monitor: a saturating unit with f' = 0 is saturated, never dead
    sat = d.abs().mean(dim=1) < SATURATED * bound[:, None]  # (L, W)
    dead = (d == 0).all(dim=1)  # (L, W)
    code = torch.full(sat.shape, ord("a"), dtype=torch.uint8)
    code[saturating[:, None] & sat] = ord("s")
    code[~saturating[:, None] & dead] = ord("d")
    units = [bytes(row).decode("ascii") for row in code.numpy()]
    finite = torch.isfinite(z)
    lim = torch.where(finite, z.abs(), torch.zeros_like(z)).amax(dim=(1, 2)).clamp_min(1e-3)  # (L,)
    pos = ((z / lim[:, None, None] + 1.0) * (HIST_BINS / 2)).floor().clamp(0, HIST_BINS - 1)
    layer = torch.arange(len(acts))[:, None, None].expand_as(z)
    flat = (layer * HIST_BINS + torch.nan_to_num(pos).long())[finite]
    counts = torch.bincount(flat, minlength=len(acts) * HIST_BINS).view(len(acts), HIST_BINS)
    hists = [{"lo": -float(m), "hi": float(m), "counts": c.tolist()} for m, c in zip(lim, counts, strict=True)]
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
