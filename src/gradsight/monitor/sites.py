"""Activation sites: where a monitor measures, how a site is named, what a unit is.

A site is one activation in the model: a module (``nn.ReLU``, an HF ``GELUActivation``, a
gradsight ``GatedActivationModule``) named by its path in ``named_modules()``, or a functional
call (``F.gelu``, ``torch.tanh``, ``x.relu()``) named ``"<module path>/<activation>#<k>"``,
k counting that activation's calls within one call of the module's forward.

A unit is a channel for conv-shaped outputs (N, C, ...) that follow a convolution, a
normalisation or a pooling layer, and a feature along the last dimension otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# ops / modules after which a >= 3-d tensor is laid out (N, C, spatial...)
CONV_LIKE_OPS = frozenset(
    {
        "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d", "batch_norm", "instance_norm", "group_norm", "max_pool1d",
        "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
        "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
        "adaptive_max_pool2d", "max_pool2d_with_indices", "_conv_forward",
    }
)  # fmt: skip
CONV_LIKE_MODULES: tuple[type, ...] = (
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)
# layers between a weight layer and the activation that keep units aligned, for revive_dead
PASS_THROUGH: tuple[type, ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.Dropout,
    nn.Identity,
)


SCRATCH_MAX = 1 << 25  # elements: larger derivatives are allocated fresh
_SCRATCH = threading.local()  # per thread: {(dtype, device): flat buffer}
_SCRATCH_GROWN = [0]  # how many buffers were allocated so far, in any thread


def scratch_like(t: torch.Tensor) -> torch.Tensor | None:
    """A contiguous buffer of ``t``'s shape, shared by every site, for an elementwise
    derivative that is reduced at once: on a CPU a fresh allocation of a large tensor costs
    page faults -- for an (64, 32, 32, 32) conv output the allocation cost more than the
    derivative and the reduction together. One buffer per thread, dtype and device. None off
    the CPU (the CUDA caching allocator reuses memory already) and above SCRATCH_MAX elements."""
    n = t.numel()
    if t.device.type != "cpu" or n > SCRATCH_MAX or n == 0:
        return None
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        buffers = _SCRATCH.buffers = {}
    key = (t.dtype, t.device)
    buf = buffers.get(key)
    if buf is None or buf.numel() < n:
        buf = buffers[key] = torch.empty(n, dtype=t.dtype, device=t.device)
        _SCRATCH_GROWN[0] += 1
    return buf[:n].view(t.shape)


class _Reducer:
    """``D = f'(t).view(n, C).T @ ones(n)`` for one shape, dtype and device of a feature-last
    output, everything but the two kernels decided once: the derivative goes into a view of
    this thread's scratch buffer taken when the reducer was built (valid while no buffer has
    been allocated since), and the matrix-vector product reads it through a view built then
    too. In a warm loop this halves the cost of a (128, 256) site: 18 -> 9.7 us, the kernels
    alone 9.2 us."""

    __slots__ = ("shape", "dtype", "device", "thread", "grown", "out", "mat", "ones", "n", "cast")

    def __init__(self, t: torch.Tensor, n: int) -> None:
        self.shape, self.dtype, self.device, self.n = t.shape, t.dtype, t.device, n
        self.thread, self.out = threading.get_ident(), scratch_like(t)
        self.grown = _SCRATCH_GROWN[0]
        self.mat = self.out.view(n, -1).t() if self.out is not None else None
        self.ones = torch.ones(n, dtype=t.dtype, device=t.device)
        self.cast = t.dtype != torch.float32

    def fits(self, y: torch.Tensor) -> bool:
        return (
            y.shape == self.shape
            and y.dtype == self.dtype
            and self.grown == _SCRATCH_GROWN[0]
            and self.thread == threading.get_ident()
            and y.device == self.device
        )


def _fast_output_derivative(act: Any) -> Any:
    """(y, out=None) -> f'(x) from the catalog's own output formula, without the public
    wrapper's NaN masking (two extra kernels per call; the monitor finds NaN by other means).
    Falls back to the public ``act.output_derivative`` when the catalog's internals are not
    there. ``out`` is a place the result may be written to (the one-kernel forms use it)."""
    public = act.output_derivative
    if public is None:
        return None
    # the common ones in one kernel each (the catalog's formulas take two or three):
    # relu's output is >= 0, so sign(y) is its step; sigmoid: y - y*y; tanh: 1 - y*y
    fallback = lambda y, out=None: public(y)  # noqa: E731
    name = getattr(act, "name", None)
    if name == "relu":
        return lambda y, out=None: torch.sign(y, out=out)
    if name == "sigmoid":
        return lambda y, out=None: torch.addcmul(y, y, y, value=-1, out=out)
    if name == "tanh":
        return lambda y, out=None: torch.addcmul(y.new_ones(()), y, y, value=-1, out=out)
    try:
        from gradsight.activations import _ops

        formula = act._spec.output_df(act._params)
        ops, params = _ops.torch_ops(), act._params
    except (AttributeError, ImportError, TypeError):
        return fallback
    if formula is None:
        return fallback
    return lambda y, out=None: formula(ops, y, params)


def _fast_derivative(act: Any) -> Any:
    """(x, out=None) -> f'(x) from the catalog's formula with its kink convention at x == 0
    (PyTorch's by default), without the NaN masking; falls back to ``act.derivative``.
    ``out`` is not used (the formulas take several kernels)."""
    fallback = lambda x, out=None: act.derivative(x)  # noqa: E731
    try:
        from gradsight.activations import _ops

        spec, params = act._spec, act._params
        df, kink = spec.df, spec.kink
        ops = _ops.torch_ops()
        at_zero = params.get("derivative_at_zero")
    except (AttributeError, ImportError):
        return fallback
    if df is None:
        return fallback
    if kink is None or at_zero is None:
        return lambda x, out=None: df(ops, x, params)
    return lambda x, out=None: ops.where(x == 0, at_zero, df(ops, x, params))


_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)  # alpha, scale


def _same(params: dict[str, Any], **want: Any) -> bool:
    return all(params.get(k, v) == v for k, v in want.items())


def _kernel_derivative(act: Any) -> Callable[..., torch.Tensor] | None:
    """(x, out=None) -> f'(x) by PyTorch's own backward kernel with a unit gradient,
    ``aten.<op>_backward.grad_input(g, x, ..., grad_input=g)`` with ``g = ones_like(x)`` (the
    result written over the unit gradient: elementwise, so safe): the derivative autograd
    uses, its kink convention included, in two passes (the catalog's formulas take four to
    eight for GELU). None for activations without such a kernel or with a kink convention
    other than PyTorch's."""
    name, p = getattr(act, "name", None), getattr(act, "_params", None)
    if p is None:
        return None
    a = torch.ops.aten
    kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    if name == "relu" and _same(p, derivative_at_zero=0.0):
        kernel = lambda g, x: a.threshold_backward.grad_input(g, x, 0, grad_input=g)  # noqa: E731
    elif name == "leaky_relu" and p.get("derivative_at_zero") == p.get("negative_slope"):
        slope = float(p["negative_slope"])
        kernel = lambda g, x: a.leaky_relu_backward.grad_input(g, x, slope, False, grad_input=g)  # noqa: E731
    elif name == "elu" and p.get("derivative_at_zero") == p.get("alpha"):
        alpha = float(p["alpha"])
        kernel = lambda g, x: a.elu_backward.grad_input(g, alpha, 1, 1, False, x, grad_input=g)  # noqa: E731
    elif name == "selu" and _same(p, derivative_at_zero=_SELU[0] * _SELU[1]):
        kernel = lambda g, x: a.elu_backward.grad_input(g, *_SELU, 1, False, x, grad_input=g)  # noqa: E731
    elif name == "gelu" and p.get("approximate") in ("none", "tanh"):
        approx = p["approximate"]
        kernel = lambda g, x: a.gelu_backward.grad_input(g, x, approximate=approx, grad_input=g)  # noqa: E731
    elif name == "silu" or (name == "swish" and _same(p, beta=1.0)):
        kernel = lambda g, x: a.silu_backward.grad_input(g, x, grad_input=g)  # noqa: E731
    elif name == "softplus":
        beta, threshold = float(p["beta"]), float(p["threshold"])
        kernel = lambda g, x: a.softplus_backward.grad_input(g, x, beta, threshold, grad_input=g)  # noqa: E731
    if kernel is None:
        return None

    def derivative(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        g = out.fill_(1) if out is not None else torch.ones_like(x, memory_format=torch.contiguous_format)
        return kernel(g, x)

    return derivative


def functional_name(module_path: str, act_name: str, k: int) -> str:
    """``"blocks.0/gelu#0"``; a call made by the root module's own forward is ``"gelu#0"``."""
    return f"{module_path}/{act_name}#{k}" if module_path else f"{act_name}#{k}"


@dataclass(eq=False)
class Site:
    """One activation site. ``index`` is its position in forward order."""

    index: int
    name: str
    act: Any  # gradsight Activation (GatedActivation for gated modules)
    kind: str  # "module" | "functional"
    module: nn.Module | None = None
    channel_layout: bool = False  # units along dim 1 for >= 3-d outputs
    inplace: bool = False
    units: int | None = None
    incoming: str | None = None  # the weight layer feeding the site
    chain: list[tuple[str, nn.Module]] = field(default_factory=list)  # site -> incoming

    def __post_init__(self) -> None:
        base = self.act.inner if self.act.is_gated else self.act
        self.base = base  # the elementwise activation whose derivative is the valve
        self.out_deriv = None if self.act.is_gated else _fast_output_derivative(base)
        self.in_deriv = _kernel_derivative(base) or _fast_derivative(base)
        self._reducer: _Reducer | None = None
        bound = float(base.derivative_bound)
        self.bound = bound if bound < float("inf") else float("nan")
        self.saturates = bool(base.saturates)
        self.eager = False  # measure in the site's hook, not at the end of the forward

    def reads(self, x: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor | None:
        """The tensor :meth:`derivative` reads: the output where f' is a function of it,
        else the input."""
        return y if self.out_deriv is not None else x

    @property
    def activation_name(self) -> str:
        return self.act.name

    def reduce_dims(self, ndim: int) -> tuple[int, ...]:
        """The dims summed over to get one number per unit."""
        if ndim <= 1:
            return (0,) if ndim == 1 else ()
        if self.channel_layout and ndim >= 3:
            return (0, *range(2, ndim))
        return tuple(range(ndim - 1))

    def unit_count(self, shape: torch.Size) -> int:
        if len(shape) == 0:
            return 1
        if self.channel_layout and len(shape) >= 3:
            return int(shape[1])
        return int(shape[-1])

    def _derivative_of(self, x: torch.Tensor | None, y: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """(the f' function, the detached tensor it reads): the output where f' is a function
        of it, else the input; for gated sites the gate half of the input."""
        if self.act.is_gated:
            if x is None:
                raise ValueError(f"site {self.name!r}: gated activation needs its input")
            return self.in_deriv, x.detach().chunk(2, dim=-1)[0]  # (..., n)
        if self.out_deriv is not None:
            return self.out_deriv, y.detach()
        if x is None:
            raise ValueError(f"site {self.name!r}: no input to take the derivative of")
        return self.in_deriv, x.detach()

    def derivative(
        self, x: torch.Tensor | None, y: torch.Tensor, scratch: bool = False
    ) -> torch.Tensor:
        """f'(z) elementwise for the site's units (no autograd graph). Gated sites: the valve
        of the gate, f'(a) with ``a, b = x.chunk(2, -1)``. ``scratch``: the result may live
        in the shared buffer of :func:`scratch_like` (valid until the next such call)."""
        fn, t = self._derivative_of(x, y)
        return fn(t, scratch_like(t) if scratch else None)

    def per_unit_sum(self, d: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(sum over samples of f'(z) per unit, samples per unit): the one reduction per site
        from which dead, saturated, active fractions and the mean derivative all follow."""
        dims = self.reduce_dims(d.ndim)
        if d.ndim == 0:
            return d.reshape(1).to(torch.float32, copy=True), 1  # d may be the shared scratch
        units = self.unit_count(d.shape)
        total = d.sum(dim=dims, dtype=torch.float32) if dims else d.float()  # (C,)
        return total, d.numel() // max(units, 1)

    def unit_sums(self, x: torch.Tensor | None, y: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``per_unit_sum(derivative(x, y))``: D (C,) float32 and the samples per unit. The
        common case (feature-last float tensor of the shape seen last) runs the
        :class:`_Reducer` built for that shape: one derivative kernel into a buffer fixed in
        advance, one matrix-vector product, and next to no Python."""
        r = self._reducer
        if r is not None and r.fits(y):
            fn, t = self._derivative_of(x, y)
            d = fn(t, r.out)
            D = torch.mv(r.mat if d is r.out else d.reshape(r.n, -1).t(), r.ones)
            return (D.float() if r.cast else D), r.n
        D, n = self.per_unit_sum(self.derivative(x, y, scratch=True))
        self._reducer = self._build_reducer(y, n)
        return D, n

    def _build_reducer(self, y: torch.Tensor, n: int) -> _Reducer | None:
        """For a feature-last float32/64 output of an elementwise activation; else None."""
        if self.act.is_gated or y.ndim < 2 or (self.channel_layout and y.ndim >= 3):
            return None
        if y.dtype not in (torch.float32, torch.float64) or n <= 0:
            return None
        return _Reducer(y, n)
