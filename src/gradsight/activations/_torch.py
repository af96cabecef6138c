"""The torch side of the catalog: an autograd Function whose backward is the catalog's f',
and the nn.Modules gradsight adds (``ActivationModule``, ``Swish``, ``GatedActivationModule``).

Imported only when a tensor or a module is asked for.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradsight.activations import _ops
from gradsight.errors import GradsightError


class _CatalogFunction(torch.autograd.Function):
    """y = f(x) with backward g * f'(x), f' from the catalog (kink convention included).

    The backward is written with differentiable torch ops, so double backward works, and
    ``generate_vmap_rule`` lets ``torch.func`` (vmap, grad) use it.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, act: Any) -> torch.Tensor:
        return act._formula(_ops.torch_ops(), x, "f")

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, act = inputs
        ctx.save_for_backward(x)
        ctx.act = act

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ctx.act._formula(_ops.torch_ops(), x, "df"), None


def apply(act: Any, x: torch.Tensor) -> torch.Tensor:
    """f(x) on a floating tensor; differentiable through the catalog's f'."""
    if torch.is_grad_enabled():
        return _CatalogFunction.apply(x, act)
    return act._formula(_ops.torch_ops(), x, "f")


class ActivationModule(nn.Module):
    """Any catalog activation as an ``nn.Module``: ``forward(x) = act(x)``, shape preserved.

    >>> from gradsight import activation
    >>> ActivationModule(activation("relu2"))
    ActivationModule(relu2)
    """

    def __init__(self, act: Any) -> None:
        super().__init__()
        self.activation = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x)

    def extra_repr(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.activation.params.items())
        return self.activation.name + (f", {args}" if args else "")


class Swish(nn.Module):
    """Swish with a learnable beta: ``forward(x) = x * sigmoid(beta * x)``, shape preserved.

    d/dx = s + beta x s (1 - s), d/dbeta = x^2 s (1 - s) with s = sigmoid(beta x), both exact
    under autograd. ``beta`` is an ``nn.Parameter`` (a scalar) unless ``learnable=False``.

    >>> Swish(beta=1.0)
    Swish(beta=1.0, learnable=True)
    """

    def __init__(self, beta: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        value = torch.tensor(float(beta))
        if learnable:
            self.beta = nn.Parameter(value)
        else:
            self.register_buffer("beta", value)
        self.learnable = learnable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta.to(x.dtype)
        return x * torch.sigmoid(beta * x)

    def extra_repr(self) -> str:
        return f"beta={float(self.beta.detach())!r}, learnable={self.learnable}"


class GatedActivationModule(nn.Module):
    """A gated linear unit as a module: split the last dimension in halves and gate.

    ``a, b = x.chunk(2, dim=-1); return f(a) * b`` with f the inner activation
    (relu for reglu, gelu for geglu, silu for swiglu). Shape: (..., 2n) -> (..., n).

    >>> from gradsight import activation
    >>> activation("swiglu").module()(torch.ones(4, 6)).shape
    torch.Size([4, 3])
    """

    def __init__(self, act: Any) -> None:
        super().__init__()
        self.activation = act
        self.inner = act.inner.module()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        if n % 2:
            raise GradsightError(
                f"{self.activation.name} splits the last dimension in halves; it must be even, "
                f"got an input of shape {tuple(x.shape)}"
            )
        a, b = x.chunk(2, dim=-1)  # (..., n/2) each
        return self.inner(a) * b  # (..., n/2)

    def extra_repr(self) -> str:
        return self.activation.name


def module_for(act: Any) -> nn.Module:
    """The module of a catalog activation (see ``Activation.module``)."""
    if act.is_gated:
        return GatedActivationModule(act)
    spec = act._spec
    if spec.native_module is not None:
        native = spec.native_module(act._params)
        if native is not None:
            return native
    return ActivationModule(act)
