"""A plain multilayer perceptron with a named initialisation scheme.

``MLP(in_features, out_features, depth, width, activation, init, bias_init)`` is

    x → [Linear(·, width) → f] × depth → Linear(width, out_features) → logits

so ``depth`` counts hidden layers (each with its own activation module) and the network has
``depth + 1`` Linear layers. Weights of every Linear layer follow ``init``; with fan-in
``n_in`` and fan-out ``n_out``:

=================  ===============================================  ====================
init               weights                                          σ_w² = n_in·Var(W)
=================  ===============================================  ====================
pytorch_default    U(−1/√n_in, 1/√n_in)  (kaiming_uniform, a=√5)    1/3
xavier             N(0, 2/(n_in + n_out))  (Glorot & Bengio 2010)   1 when n_in = n_out
he                 N(0, 2/n_in)  (He et al. 2015)                   2
lecun              N(0, 1/n_in)                                     1
orthogonal         a random orthogonal matrix (gain 1)              1 when n_in = n_out
=================  ===============================================  ====================

Biases: ``bias_init=None`` keeps PyTorch's U(−1/√n_in, 1/√n_in) under ``pytorch_default`` and
zeros under every other init; a float sets every bias to that constant (e.g. 0.1 to keep
ReLU units alive at the start). :meth:`MLP.variances` gives the (σ_w², σ_b²) pair per layer
that mean-field theory (:mod:`gradsight.theory`) takes.

>>> m = MLP(64, 10, depth=3, width=32, activation="tanh", init="xavier")
>>> m(torch.zeros(5, 64)).shape
torch.Size([5, 10])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gradsight.errors import GradsightError, unknown_choice

INITS: tuple[str, ...] = ("pytorch_default", "xavier", "he", "lecun", "orthogonal")


def resolve_activation(activation: Any) -> Any:
    """A catalog :class:`gradsight.Activation` from a name, or the object itself; elementwise
    only (a gated form f(a)·b halves the width, which these layer stacks do not model)."""
    if isinstance(activation, str):
        from gradsight.activations import activation as catalog_activation

        act = catalog_activation(activation)
    elif hasattr(activation, "module"):
        act = activation
    else:
        raise GradsightError(
            f"activation must be a catalog name or a gradsight Activation, got {activation!r}"
        )
    if getattr(act, "is_gated", False):
        raise GradsightError(
            f"activation {getattr(act, 'name', act)!r} is gated (f(a)·b halves the width); the lab's "
            "MLP and CNN take elementwise activations such as 'relu', 'gelu' or 'silu'"
        )
    return act


def check_init(init: str) -> str:
    """Return ``init`` when it is one of :data:`INITS`, else raise with a did-you-mean hint."""
    if init not in INITS:
        raise unknown_choice("init", init, INITS)
    return init


def weight_variance(init: str, fan_in: int, fan_out: int) -> float:
    """σ_w² = fan_in · Var(W) of one Linear layer under ``init`` (table in the module docstring)."""
    check_init(init)
    if init == "pytorch_default":
        return 1.0 / 3.0
    if init == "xavier":
        return fan_in * 2.0 / (fan_in + fan_out)
    if init == "he":
        return 2.0
    if init == "lecun":
        return 1.0
    # orthogonal with gain 1: rows (or columns) are orthonormal, so each entry has variance
    # 1/max(fan_in, fan_out)
    return fan_in / max(fan_in, fan_out)


def init_linear(
    layer: nn.Module, init: str, bias_init: float | None, generator: torch.Generator | None = None
) -> None:
    """Initialise ``layer`` in place under ``init`` and ``bias_init`` (see the module docstring).

    ``layer`` is an ``nn.Linear``, or an ``nn.Conv1d``/``nn.Conv2d`` treated as a Linear layer of
    fan-in C_in·k and fan-out C_out·k (k: the kernel's size).
    """
    check_init(init)
    weight = layer.weight  # (C_out, C_in) or (C_out, C_in, k...)
    receptive = math.prod(weight.shape[2:])
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    with torch.no_grad():
        if init == "pytorch_default":
            bound = 1.0 / math.sqrt(fan_in)
            weight.uniform_(-bound, bound, generator=generator)
            if layer.bias is not None and bias_init is None:
                layer.bias.uniform_(-bound, bound, generator=generator)
        elif init == "orthogonal":
            # QR of a Gaussian matrix with the sign fix of torch.nn.init.orthogonal_, on the
            # weight seen as (C_out, C_in·k)
            rows, cols = weight.shape[0], fan_in
            flat = torch.randn(
                max(rows, cols), min(rows, cols), generator=generator, dtype=weight.dtype
            )
            q, r = torch.linalg.qr(flat)
            q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
            weight.copy_((q if rows >= cols else q.T).view_as(weight))
        else:
            std = math.sqrt(weight_variance(init, fan_in, fan_out) / fan_in)
            weight.normal_(0.0, std, generator=generator)
        if layer.bias is not None:
            if bias_init is not None:
                layer.bias.fill_(float(bias_init))
            elif init != "pytorch_default":
                layer.bias.zero_()


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units with a catalog activation, then a linear head.

    Args:
        in_features: input dimension D.
        out_features: number of outputs (classes).
        depth: number of hidden layers (≥ 1).
        width: units per hidden layer.
        activation: catalog name (``"relu"``) or a :class:`gradsight.Activation`.
        init: one of :data:`INITS` (default ``"pytorch_default"``).
        bias_init: None (init's default) or a constant for every bias.
        seed: when given, initialisation draws from its own generator (reproducible, and leaves
            torch's global RNG untouched).

    Shape: (B, D) → (B, out_features).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        depth: int,
        width: int,
        activation: Any = "relu",
        init: str = "pytorch_default",
        bias_init: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1 or in_features < 1 or out_features < 1:
            raise GradsightError(
                f"MLP needs depth, width, in_features, out_features >= 1; got depth={depth!r}, "
                f"width={width!r}, in_features={in_features!r}, out_features={out_features!r}"
            )
        self.init = check_init(init)
        self.act = resolve_activation(activation)
        self.bias_init = bias_init
        self.depth, self.width = depth, width
        dims = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(depth))
        self.acts = nn.ModuleList(self.act.module() for _ in range(depth))
        self.out = nn.Linear(width, out_features)
        self.reset_parameters(seed)

    @property
    def activation_name(self) -> str:
        return str(getattr(self.act, "name", self.act))

    def linears(self) -> list[nn.Linear]:
        """Every Linear layer, input to output (``depth + 1`` of them)."""
        return [*self.hidden, self.out]

    def reset_parameters(self, seed: int | None = None) -> None:
        """Re-draw every weight and bias under the model's ``init`` and ``bias_init``."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        for layer in self.linears():
            init_linear(layer, self.init, self.bias_init, gen)

    def variances(self) -> list[tuple[float, float]]:
        """(σ_w², σ_b²) of every Linear layer, for mean-field theory.

        σ_b² is the variance of one bias entry: 1/(3·fan_in) under PyTorch's default uniform
        bias, 0 for a constant bias (a constant b adds b² to the second moment, which theory
        treats as σ_b² = b² — exact for the length map, a fine approximation elsewhere).
        """
        out = []
        for layer in self.linears():
            fan_out, fan_in = layer.weight.shape
            sw2 = weight_variance(self.init, fan_in, fan_out)
            if self.bias_init is not None:
                sb2 = float(self.bias_init) ** 2
            elif self.init == "pytorch_default":
                sb2 = 1.0 / (3.0 * fan_in)
            else:
                sb2 = 0.0
            out.append((sw2, sb2))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear, act in zip(self.hidden, self.acts, strict=True):
            x = act(linear(x))  # (B, width)
        return self.out(x)  # (B, out_features)

    def forward_with_preactivations(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the pre-activations h_1 … h_depth (each (B, width)), kept in the graph so
        that ``h.retain_grad()`` or ``torch.autograd.grad`` can read ∂L/∂h_l."""
        hs = []
        for linear, act in zip(self.hidden, self.acts, strict=True):
            h = linear(x)  # (B, width)
            hs.append(h)
            x = act(h)
        return self.out(x), hs
