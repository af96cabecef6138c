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


SATURATED = 0.01  # a (sample, unit) with |f'(z)| < 1 % of sup|f'| passes ~no gradient
SCRATCH_MAX = 1 << 25  # elements: larger derivatives are allocated fresh
_SCRATCH = threading.local()  # per thread: {(dtype, device): flat buffer}
_SCRATCH_GROWN = [0]  # how many buffers were allocated so far, in any thread


def scratch_like(t: torch.Tensor) -> torch.Tensor | None:
    """A contiguous buffer of ``t``'s shape, shared by every site, for an elementwise
    derivative that is reduced at once: on a CPU a fresh allocation of a large tensor costs
    page faults (benchmarks/README.md). One buffer per thread, dtype and device. None off
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
    too (what that saves: benchmarks/README.md)."""

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
        self.out_deriv = None if self.act.is_gated else base.fast_output_derivative
        self.in_deriv = base.fast_derivative
        self._reducer: _Reducer | None = None
        bound = float(base.derivative_bound)
        self.bound = bound if bound < float("inf") else float("nan")
        self.saturates = bool(base.saturates)
        # f' below this is a saturated (sample, unit); None: the activation cannot saturate
        self.saturation_threshold = SATURATED * bound if self.saturates else None
        # |f'| where f' may be negative (a saturating activation that is not increasing)
        self._abs = self.saturates and not (base.is_monotonic and float(base.derivative(1.0)) > 0)
        # measure in the site's hook, not at the end of the forward: the tensor f' reads was
        # once changed in place before the end of the forward (buffer.py)
        self.eager = False

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

    def saturation_signs(self, d: torch.Tensor, overwrite: bool = False) -> torch.Tensor | None:
        """() float32 ``S = sum sign(|f'(z)| - thr)`` over the elements of ``d = f'(z)``, thr =
        1 % of sup|f'|: (not saturated) - (saturated), so the saturated (sample, unit) count is
        ``(d.numel() - S) / 2`` (an element exactly on the line counts half); None where the
        activation cannot saturate. Three float passes, not a comparison to bool and its sum
        (benchmarks/README.md). ``overwrite``: d is a buffer of ours that may serve as the work space."""
        thr = self.saturation_threshold
        if thr is None:
            return None
        w = d if overwrite else d.clone()
        if self._abs:
            w.abs_()
        return w.sub_(thr).sign_().sum(dtype=torch.float32)

    def unit_sums(
        self, x: torch.Tensor | None, y: torch.Tensor
    ) -> tuple[torch.Tensor, int, torch.Tensor | None]:
        """``per_unit_sum(derivative(x, y))`` and ``saturation_signs``: D (C,) float32, the
        samples per unit n, S (the saturated count is (n C - S) / 2). The common case (feature-last float tensor of
        the shape seen last) runs the :class:`_Reducer` built for that shape: one derivative
        kernel into a buffer fixed in advance, one matrix-vector product, and next to no
        Python."""
        fn, t = self._derivative_of(x, y)
        r = self._reducer
        if r is not None and r.fits(y):
            d = fn(t, r.out)
            D = torch.mv(r.mat if d is r.out else d.reshape(r.n, -1).t(), r.ones)
            return (D.float() if r.cast else D), r.n, self.saturation_signs(d, overwrite=d is not t)
        d = fn(t, scratch_like(t))
        D, n = self.per_unit_sum(d)
        self._reducer = self._build_reducer(y, n)
        return D, n, self.saturation_signs(d, overwrite=d is not t and d.data_ptr() != D.data_ptr())

    def _build_reducer(self, y: torch.Tensor, n: int) -> _Reducer | None:
        """For a feature-last float32/64 output of an elementwise activation; else None."""
        if self.act.is_gated or y.ndim < 2 or (self.channel_layout and y.ndim >= 3):
            return None
        if y.dtype not in (torch.float32, torch.float64) or n <= 0:
            return None
        return _Reducer(y, n)
