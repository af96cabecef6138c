"""Dead-unit resampling: give units that have been dead over the window a fresh start.

For each site with dead units and a known incoming weight layer (the Linear / Conv whose output
feeds the site, possibly through BatchNorm / LayerNorm / Dropout):

    W[u]  <- random direction with the mean norm of the live rows of W   (rows u: dead units)
    b[u]  <- 0
    norm layers in between: weight[u] <- 1, bias[u] <- 0, running_mean[u] <- 0, running_var[u] <- 1
    optimizer state of those parameters (momentum, Adam's exp_avg / exp_avg_sq): [u] <- 0

Everything else, bit for bit, stays as it was. Gated sites are skipped (their unit is a pair of
rows). The window is cleared so revived units are judged afresh.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _unit_dim(module: nn.Module) -> int:
    """The dim of ``weight`` that indexes output units."""
    if type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers."):
        return 1  # HF GPT-2's Conv1D stores (in, out)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 1
    return 0


def _zero_state(optimizer: Any, p: torch.Tensor, units: torch.Tensor, dim: int) -> None:
    if optimizer is None:
        return
    state = optimizer.state.get(p)
    if not state:
        return
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.shape == p.shape:
            value.index_fill_(dim, units.to(value.device), 0)


@torch.no_grad()
def revive(monitor: Any, optimizer: Any | None) -> dict[str, list[int]]:
    revived: dict[str, list[int]] = {}
    for site, units in monitor._window.dead_units().items():
        if site.act.is_gated or not site.chain:
            continue
        *between, (layer_name, layer) = site.chain
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, torch.Tensor):
            continue
        dim = _unit_dim(layer)
        if weight.shape[dim] != site.units:
            continue
        units = units.to(weight.device)
        rows = weight.movedim(dim, 0).reshape(weight.shape[dim], -1)  # (C, fan_in) view
        alive = torch.ones(rows.shape[0], dtype=torch.bool, device=weight.device)
        alive[units] = False
        norm = rows[alive].norm(dim=1).mean() if bool(alive.any()) else None
        fresh = torch.randn(len(units), rows.shape[1], device=weight.device, dtype=weight.dtype)
        if norm is None or not torch.isfinite(norm) or norm == 0:
            norm = torch.tensor((2.0 / rows.shape[1]) ** 0.5 * rows.shape[1] ** 0.5)
        fresh = fresh / fresh.norm(dim=1, keepdim=True).clamp_min(1e-12) * norm
        new = weight.movedim(dim, 0).clone()
        new.reshape(new.shape[0], -1)[units] = fresh
        weight.copy_(new.movedim(0, dim))
        _zero_state(optimizer, weight, units, dim)
        bias = getattr(layer, "bias", None)
        if isinstance(bias, torch.Tensor) and bias.shape[0] == site.units:
            bias.index_fill_(0, units, 0.0)
            _zero_state(optimizer, bias, units, 0)
        for _, mod in between:
            w = getattr(mod, "weight", None)
            b = getattr(mod, "bias", None)
            if isinstance(w, torch.Tensor) and w.ndim == 1 and w.shape[0] == site.units:
                w.index_fill_(0, units, 1.0)
                _zero_state(optimizer, w, units, 0)
            if isinstance(b, torch.Tensor) and b.ndim == 1 and b.shape[0] == site.units:
                b.index_fill_(0, units, 0.0)
                _zero_state(optimizer, b, units, 0)
            rm = getattr(mod, "running_mean", None)
            rv = getattr(mod, "running_var", None)
            if isinstance(rm, torch.Tensor) and rm.shape[0] == site.units:
                rm.index_fill_(0, units, 0.0)
            if isinstance(rv, torch.Tensor) and rv.shape[0] == site.units:
                rv.index_fill_(0, units, 1.0)
        revived[site.name] = [int(u) for u in units.tolist()]
    if revived:
        monitor._window.reset()
    return revived
