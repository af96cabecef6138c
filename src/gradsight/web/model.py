"""The playground's network: an MLP with per-layer catalog activations, optional residual
connections and LayerNorm, built from a :class:`~gradsight.web.config.RunConfig`.

    h_l = W_l x_{l-1} + b_l                      (l = 1 … depth)
    z_l = LayerNorm(h_l)   if layer_norm else h_l
    x_l = x_{l-1} + f_l(z_l)   if residual and l > 1 else f_l(z_l)
    logits = W_out x_depth + b_out

Activation modules sit at ``acts.{l-1}``, so the monitor names the sites ``"acts.0"`` …
Weights follow the lab's named inits (:func:`gradsight.lab.models.init_linear`), or
N(0, weight_var / fan_in) with zero biases for ``init="sigma_w2"``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gradsight import activations
from gradsight.lab.models.mlp import init_linear, weight_variance
from gradsight.web.config import SIGMA_INIT, RunConfig


def layer_activations(cfg: RunConfig) -> list[activations.Activation]:
    """The catalog activation of each hidden layer, with that layer's parameters
    (:meth:`RunConfig.layer_params`: per-layer ones when given, else the run's for layers of
    the main activation and the catalog defaults for the others)."""
    return [activations.activation(n, **p) for n, p in zip(cfg.layer_names(), cfg.layer_params(), strict=True)]


class PlayNet(nn.Module):
    """Shape: (B, in_features) → (B, n_classes)."""

    def __init__(self, cfg: RunConfig, in_features: int, n_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.acts_catalog = layer_activations(cfg)
        dims = [in_features] + [cfg.width] * cfg.depth
        self.hidden = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(cfg.depth))
        # no Identity stand-ins: the monitor links each site to the Linear that feeds it
        # (through LayerNorm when there is one), which dead-unit revival needs
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.width) for _ in range(cfg.depth if cfg.layer_norm else 0))
        self.acts = nn.ModuleList(a.module() for a in self.acts_catalog)
        self.out = nn.Linear(cfg.width, n_classes)
        gen = torch.Generator().manual_seed(cfg.seed)
        for layer in [*self.hidden, self.out]:
            if cfg.init == SIGMA_INIT:
                with torch.no_grad():
                    std = math.sqrt(cfg.weight_var / layer.weight.shape[1])
                    layer.weight.normal_(0.0, std, generator=gen)
                    layer.bias.zero_()
            else:
                init_linear(layer, cfg.init, None, gen)

    def _z(self, i: int, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden[i](x)  # (B, width)
        return self.norms[i](h) if self.cfg.layer_norm else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, act in enumerate(self.acts):
            y = act(self._z(i, x))  # (B, width)
            x = x + y if self.cfg.residual and i > 0 else y
        return self.out(x)  # (B, n_classes)

    @torch.no_grad()
    def preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """z_1 … z_depth (each (B, width)): the inputs of the activations, no graph."""
        zs = []
        for i, act in enumerate(self.acts):
            z = self._z(i, x)
            zs.append(z)
            y = act(z)
            x = x + y if self.cfg.residual and i > 0 else y
        return zs

    def variances(self) -> tuple[float, float, float]:
        """(σ_w² of the first layer, σ_w² of hidden-to-hidden layers, σ_b²), for mean-field theory."""
        cfg, w = self.cfg, self.cfg.width
        if cfg.init == SIGMA_INIT:
            return cfg.weight_var, cfg.weight_var, 0.0
        first = weight_variance(cfg.init, self.hidden[0].weight.shape[1], w)
        sb2 = 1.0 / (3.0 * w) if cfg.init == "pytorch_default" else 0.0
        return first, weight_variance(cfg.init, w, w), sb2
