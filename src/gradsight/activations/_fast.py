"""f' on torch tensors in as few kernels as a catalog entry allows, for hot loops (the monitor).

An entry may declare two fast forms next to its f and f' (see :class:`~._core.Spec`):

    torch_output_df(params) -> (y, out) -> f'(x) from y = f(x) in one kernel
                               (relu: sign(y), sigmoid: y - y*y, tanh: 1 - y*y)
    torch_backward(params)  -> (g, x) -> g * f'(x) by PyTorch's own backward kernel,
                               written over g (elementwise, so safe); None where there is
                               none or its kink convention differs from the entry's

``out`` is a tensor the result may be written into. Without a fast form the entry's own
formulas are used (``output_df`` / ``df`` with the kink convention at x == 0), minus the public
wrapper's NaN masking: two extra kernels a call, and a hot loop finds NaN by other means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Derivative = Callable[..., Any]  # (t, out=None) -> f'(x) as a tensor of t's shape


def output_derivative(act: Any) -> Derivative | None:
    """``(y, out=None) -> f'(x)`` from the output; None where the output does not determine
    f' (``act.output_derivative is None``)."""
    from gradsight.activations import _ops

    spec, params = act._spec, act._params
    if spec.output_df is None:
        return None
    formula = spec.output_df(params)
    if formula is None:
        return None
    if spec.torch_output_df is not None:
        fast = spec.torch_output_df(params)
        if fast is not None:
            return fast
    ops = _ops.torch_ops()
    return lambda y, out=None: formula(ops, y, params)


def derivative(act: Any) -> Derivative:
    """``(x, out=None) -> f'(x)``: PyTorch's backward kernel with a unit gradient where the
    entry declares one (two passes: fill, kernel), else the entry's formula with its kink
    convention at x == 0."""
    from gradsight.activations import _ops

    if act.is_gated:  # the valve of the gate: f'(a) of the inner function
        act = act.inner
    spec, params = act._spec, act._params
    kernel = spec.torch_backward(params) if spec.torch_backward is not None else None
    if kernel is not None:

        def by_kernel(x: Any, out: Any = None) -> Any:
            import torch

            g = out.fill_(1) if out is not None else torch.ones_like(x, memory_format=torch.contiguous_format)
            return kernel(g, x)

        return by_kernel
    ops, df = _ops.torch_ops(), spec.df
    at_zero = params.get("derivative_at_zero")
    if spec.kink is None or at_zero is None:
        return lambda x, out=None: df(ops, x, params)
    return lambda x, out=None: ops.where(x == 0, at_zero, df(ops, x, params))
