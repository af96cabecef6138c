"""Elementwise backends: the catalog's formulas are written once against these two namespaces.

Each namespace offers the handful of numerically careful primitives the formulas need
(a stable logistic, ``erfc``, ``exp``/``expm1``/``log1p`` ...). Formulas never evaluate an
expression that overflows, even in the branch of a ``where`` that is discarded: NumPy would warn
and autograd would turn the discarded ``inf`` into a ``nan`` gradient.

torch is imported lazily, so ``gradsight.activations`` on NumPy arrays never pays for it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

_erfc_scalar = np.frompyfunc(math.erfc, 1, 1)


class NumpyOps:
    """NumPy primitives. Arrays are computed in their own floating dtype."""

    name = "numpy"

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        return np.where(cond, a, b)

    exp = staticmethod(np.exp)
    expm1 = staticmethod(np.expm1)
    log1p = staticmethod(np.log1p)
    tanh = staticmethod(np.tanh)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    square = staticmethod(np.square)
    isnan = staticmethod(np.isnan)

    @staticmethod
    def relu(x: Any) -> Any:
        return np.maximum(x, 0)

    @staticmethod
    def minimum(x: Any, v: float) -> Any:
        return np.minimum(x, v)

    @staticmethod
    def full_like(x: Any, value: float) -> Any:
        return np.full_like(x, value)

    @staticmethod
    def step(x: Any) -> Any:
        """1 where x > 0, else 0 (nan stays nan), in x's dtype."""
        return np.heaviside(x, 0.0)

    @staticmethod
    def like(out: Any, x: Any) -> Any:
        """``out`` as an array of x's shape and dtype."""
        return np.broadcast_to(np.asarray(out, dtype=x.dtype), np.shape(x))

    @staticmethod
    def clip(x: Any, lo: float, hi: float) -> Any:
        return np.clip(x, lo, hi)

    @staticmethod
    def erfc(x: Any) -> Any:
        # libm's erfc is correctly rounded to ~1 ulp over the whole line, tails included
        x = np.asarray(x)
        return np.asarray(_erfc_scalar(x), dtype=x.dtype)

    @staticmethod
    def sigmoid(x: Any) -> Any:
        e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class TorchOps:
    """torch primitives; every one is differentiable."""

    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.exp = torch.exp
        self.expm1 = torch.expm1
        self.log1p = torch.log1p
        self.tanh = torch.tanh
        self.sqrt = torch.sqrt
        self.abs = torch.abs
        self.square = torch.square
        self.isnan = torch.isnan
        self.relu = torch.relu
        self.erfc = torch.special.erfc
        self.sigmoid = torch.sigmoid  # computed stably by PyTorch in both tails

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        torch = self.torch
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            # two Python numbers make a float32 tensor: 0.01 would lose its last 9 digits
            if float(np.float32(a)) != a or float(np.float32(b)) != b:
                a = torch.tensor(a, dtype=torch.float64, device=cond.device)
        return torch.where(cond, a, b)

    def full_like(self, x: Any, value: float) -> Any:
        return self.torch.full_like(x, value)

    def step(self, x: Any) -> Any:
        """1 where x > 0, else 0 (nan -> 0: callers mask nan), in x's dtype.

        sign + clamp is ~3x faster than ``(x > 0).to(dtype)`` or ``where(x > 0, 1., 0.)``."""
        return self.torch.clamp(self.torch.sign(x), min=0)

    def like(self, out: Any, x: Any) -> Any:
        """``out`` in x's dtype (a where() of two exact numbers comes back float32)."""
        return out if out.dtype == x.dtype else out.to(x.dtype)

    def minimum(self, x: Any, v: float) -> Any:
        return self.torch.clamp(x, max=v)

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        return self.torch.clamp(x, lo, hi)


NUMPY = NumpyOps()
_torch_ops: TorchOps | None = None


def torch_ops() -> TorchOps:
    """The torch namespace, created on first use."""
    global _torch_ops
    if _torch_ops is None:
        _torch_ops = TorchOps()
    return _torch_ops


def is_tensor(x: object) -> bool:
    """True for a torch.Tensor, without importing torch when it was never imported."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


SQRT_2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2.0 * math.pi)
