"""The one Activation type, the parameter machinery and the registry every other part reads.

A catalog entry is a :class:`Spec`: the formula f and its derivative f' (written once against
the NumPy/torch primitives of ``_ops``), LaTeX for both, parameters with PyTorch's names and
defaults, the kink convention, and how to build the equivalent ``torch.nn.Module``.
:func:`activation` turns a name and parameters into an :class:`Activation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradsight.activations import _ops
from gradsight.errors import GradsightError, unknown_choice

Formula = Callable[[Any, Any, Mapping[str, Any]], Any]  # (ops, x, params) -> array


@dataclass(frozen=True)
class Param:
    """One parameter of a catalog entry."""

    name: str
    default: Any  # None: derived from the other parameters (say how in ``doc``)
    doc: str
    choices: tuple[str, ...] | None = None  # a string choice instead of a number
    positive: bool = False  # must be > 0
    nonzero: bool = False  # must be != 0

    def coerce(self, owner: str, value: Any, *, from_text: bool = False) -> Any:
        """The validated value, or a GradsightError that quotes it and says what is allowed."""
        if self.choices is not None:
            if value not in self.choices:
                raise unknown_choice(f"{owner} {self.name}", value, self.choices)
            return value
        number = value
        if from_text and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = value
        if isinstance(number, bool) or not isinstance(
            number, (int, float, np.integer, np.floating)
        ):
            raise GradsightError(f"{owner} parameter {self.name} must be a number, got {value!r}")
        number = float(number)
        if math.isnan(number):
            raise GradsightError(f"{owner} parameter {self.name} must not be nan, got {value!r}")
        if self.positive and not number > 0:
            raise GradsightError(f"{owner} parameter {self.name} must be > 0, got {value!r}")
        if self.nonzero and number == 0:
            raise GradsightError(f"{owner} parameter {self.name} must be nonzero, got {value!r}")
        if math.isinf(number) and self.name != "threshold":
            raise GradsightError(f"{owner} parameter {self.name} must be finite, got {value!r}")
        return number


DERIVATIVE_AT_ZERO = "derivative_at_zero"


@dataclass(frozen=True)
class Spec:
    """A catalog entry. Registered once; everything else (CLI, plots, tests) reads it."""

    name: str
    summary: str  # one line
    formula: str  # f(x) as short plain text (unicode), for tables and plot titles
    math: str  # the formula as plain text, piecewise with cases, f and f' side by side
    formula_latex: str
    derivative_latex: str
    f: Formula | None = None  # None only for gated forms, which evaluate through ``inner``
    df: Formula | None = None
    params: tuple[Param, ...] = ()
    # PyTorch's f'(0) for functions with a kink at 0; present => a ``derivative_at_zero`` param
    kink: Callable[[Mapping[str, Any]], float] | None = None
    # params -> (ops, y, params) -> f'(x) from the output y = f(x), or None where y is ambiguous
    output_df: Callable[[Mapping[str, Any]], Formula | None] | None = None
    # params -> an equivalent native nn.Module, or None when gradsight's own module is needed
    native_module: Callable[[Mapping[str, Any]], Any] | None = None
    # params -> (y, out=None) -> f'(x) from the output in one torch kernel, or None (see _fast)
    torch_output_df: Callable[[Mapping[str, Any]], Callable[..., Any] | None] | None = None
    # params -> (g, x) -> g * f'(x) by PyTorch's own backward kernel written over g, or None
    # where there is none or its kink convention differs from params' (see _fast)
    torch_backward: Callable[[Mapping[str, Any]], Callable[..., Any] | None] | None = None
    inner: str | None = None  # gated forms: the plain activation applied to the first half
    derivative_keeps_nan: bool = True  # False: df maps nan to a number and the core masks it
    reference: str = ""
    example: str = ""

    def all_params(self) -> tuple[Param, ...]:
        if self.inner is not None:
            return REGISTRY[self.inner].all_params()
        if self.kink is None:
            return self.params
        return (
            *self.params,
            Param(
                DERIVATIVE_AT_ZERO,
                None,
                "f'(0) at the kink; default: PyTorch's value",
            ),
        )


REGISTRY: dict[str, Spec] = {}


def register(spec: Spec) -> Spec:
    """Add ``spec`` to the catalog (names are unique)."""
    if spec.name in REGISTRY:
        raise GradsightError(f"activation {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


def names() -> list[str]:
    """Every registered activation name, in catalog order.

    >>> names()[:3]
    ['relu', 'leaky_relu', 'prelu']
    """
    return list(REGISTRY)


def _spec(name: str) -> Spec:
    if not isinstance(name, str) or name not in REGISTRY:
        raise unknown_choice("activation", name, REGISTRY)
    return REGISTRY[name]


def resolve_params(spec: Spec, given: Mapping[str, Any], *, from_text: bool = False) -> dict:
    """Validated parameters with defaults filled in, in declaration order."""
    declared = {p.name: p for p in spec.all_params()}
    for key in given:
        if key not in declared:
            if not declared:
                raise GradsightError(f"activation {spec.name!r} takes no parameters, got {key!r}")
            raise unknown_choice(f"{spec.name} parameter", key, declared)
    params: dict[str, Any] = {}
    for p in declared.values():
        if p.name in given and given[p.name] is not None:
            params[p.name] = p.coerce(spec.name, given[p.name], from_text=from_text)
        else:
            params[p.name] = p.default
    if spec.inner is None and spec.kink is not None and params[DERIVATIVE_AT_ZERO] is None:
        params[DERIVATIVE_AT_ZERO] = float(spec.kink(params))
    if spec.inner is not None and REGISTRY[spec.inner].kink is not None:
        if params[DERIVATIVE_AT_ZERO] is None:
            params[DERIVATIVE_AT_ZERO] = float(REGISTRY[spec.inner].kink(params))
    return params


def parse_params(name: str, items: Iterable[str]) -> dict[str, Any]:
    """Parameters of ``name`` from ``"key=value"`` strings (the CLI's ``--param``).

    >>> parse_params("leaky_relu", ["negative_slope=0.2"])
    {'negative_slope': 0.2, 'derivative_at_zero': 0.2}
    """
    spec = _spec(name)
    given: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise GradsightError(f"parameter must look like key=value, got {item!r}")
        given[key.strip()] = value.strip()
    return resolve_params(spec, given, from_text=True)


# ---------------------------------------------------------------------------------------------
# evaluation: NumPy arrays and torch tensors in, the same kind, dtype and shape out


def _numpy_in(x: Any) -> tuple[np.ndarray, np.dtype]:
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64), np.dtype(np.float64)
    if arr.dtype.kind != "f":
        raise GradsightError(
            f"activations take real numbers, got an array of dtype {str(arr.dtype)!r}"
        )
    if arr.dtype.itemsize < 4:  # float16: compute in float32, hand back float16
        return arr.astype(np.float32), arr.dtype
    return arr, arr.dtype


def _torch_in(x: Any) -> tuple[Any, Any]:
    import torch

    if x.is_complex():
        raise GradsightError(f"activations take real numbers, got a tensor of dtype {x.dtype}")
    if not x.is_floating_point():
        dtype = torch.get_default_dtype()
        return x.to(dtype), dtype
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float(), x.dtype
    return x, x.dtype


def _finish_numpy(out: Any, dtype: np.dtype, scalar: bool) -> Any:
    out = np.asarray(out, dtype=dtype)
    return out[()] if scalar else out


class Activation:
    """An activation function f with its exact derivative f', from the catalog.

    Build one with :func:`gradsight.activation`. ``act(x)`` and ``act.derivative(x)`` take a
    NumPy array (or number) or a torch tensor and return the same kind, dtype and shape;
    integer inputs come back as floats. On tensors ``act(x)`` is differentiable and its autograd
    derivative is ``act.derivative(x)`` exactly, kink convention included.

    >>> import gradsight as gs
    >>> act = gs.activation("relu")
    >>> act([-1.0, 0.0, 2.0]), act.derivative([-1.0, 0.0, 2.0])
    (array([0., 0., 2.]), array([0., 0., 1.]))
    """

    is_gated = False

    def __init__(self, spec: Spec, params: Mapping[str, Any]) -> None:
        self._spec = spec
        self._params = dict(params)

    # -- identity --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The catalog name, e.g. ``'leaky_relu'``."""
        return self._spec.name

    @property
    def params(self) -> dict[str, Any]:
        """Resolved parameters (defaults filled in), a fresh dict."""
        return dict(self._params)

    @property
    def summary(self) -> str:
        """One line saying what the function is."""
        return self._spec.summary

    @property
    def doc(self) -> str:
        """The catalog entry as text: summary, formula with cases, parameters, example."""
        return describe(self._spec)

    def _key(self) -> tuple:
        return (self.name, tuple(sorted(self._params.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Activation) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self._params.items())
        return f"Activation({self.name!r}{args})"

    def __reduce__(self) -> tuple:
        # pickled by name and parameters (the spec holds functions): torch.save, DDP, deepcopy
        return (_rebuild, (self.name, self._params))

    # -- math ------------------------------------------------------------------------------
    def _kink_differs(self) -> bool:
        """Whether f' must be overwritten at x == 0: the formula's own value there is not the
        chosen convention (for PyTorch's conventions it is, and that pass is skipped)."""
        if "_kink_pass" not in self.__dict__:
            spec, p = self._spec, self._params
            natural = float(spec.df(_ops.NUMPY, np.zeros(1), p)[0]) if spec.kink else 0.0
            self._kink_pass = spec.kink is not None and natural != p[DERIVATIVE_AT_ZERO]
        return self._kink_pass

    def _formula(self, ops: Any, x: Any, which: str) -> Any:
        spec, p = self._spec, self._params
        if which == "f":
            return ops.like(spec.f(ops, x, p), x)  # every f gives nan for nan by itself
        out = ops.like(spec.df(ops, x, p), x)  # x's dtype before the kink value goes in
        if self._kink_differs():
            out = ops.where(x == 0, p[DERIVATIVE_AT_ZERO], out)
        if not spec.derivative_keeps_nan:
            out = ops.where(ops.isnan(x), x, out)  # nan in, nan out
        return out

    def _apply(self, x: Any, which: str) -> Any:
        if _ops.is_tensor(x):
            xt, dtype = _torch_in(x)
            if which == "f":
                from gradsight.activations import _torch

                out = _torch.apply(self, xt)
            else:
                out = self._formula(_ops.torch_ops(), xt, which)
            return out.to(dtype)
        arr, dtype = _numpy_in(x)
        return _finish_numpy(self._formula(_ops.NUMPY, arr, which), dtype, arr.ndim == 0)

    def __call__(self, x: Any) -> Any:
        """f(x), elementwise. ``x``: array, number or tensor of any shape."""
        return self._apply(x, "f")

    def derivative(self, x: Any) -> Any:
        """f'(x), elementwise, with the kink convention ``derivative_at_zero`` at x == 0."""
        return self._apply(x, "df")

    @property
    def output_derivative(self) -> Callable[[Any], Any] | None:
        """A callable ``y -> f'(x)`` computed from the output ``y = f(x)``, or None.

        Present where the output determines the derivative (relu, leaky_relu and prelu with a
        slope >= 0, elu with alpha >= 0, selu, sigmoid, tanh, softplus, relu2); this is what an
        in-place activation leaves behind. At y == 0 relu cannot tell x == 0 from x < 0 and
        answers 0, as PyTorch's own backward does.
        """
        if self._spec.output_df is None:
            return None
        formula = self._spec.output_df(self._params)
        if formula is None:
            return None
        p = self._params

        def from_output(y: Any) -> Any:
            if _ops.is_tensor(y):
                yt, dtype = _torch_in(y)
                ops = _ops.torch_ops()
                return ops.where(ops.isnan(yt), yt, formula(ops, yt, p)).to(dtype)
            arr, dtype = _numpy_in(y)
            out = np.where(np.isnan(arr), arr, formula(_ops.NUMPY, arr, p))
            return _finish_numpy(out, dtype, arr.ndim == 0)

        from_output.__doc__ = f"f'(x) of {self!r} from its output y = f(x)."
        return from_output

    @property
    def fast_output_derivative(self) -> Callable[..., Any] | None:
        """``(y, out=None) -> f'(x)`` on torch tensors from the output y = f(x), in as few
        kernels as the entry allows (one for relu, sigmoid, tanh), written into ``out`` where
        given; no NaN masking. None where ``output_derivative`` is None. For hot loops."""
        from gradsight.activations import _fast

        return _fast.output_derivative(self)

    @property
    def fast_derivative(self) -> Callable[..., Any]:
        """``(x, out=None) -> f'(x)`` on torch tensors: PyTorch's own backward kernel with a
        unit gradient where the entry declares one for these parameters (its kink convention),
        else the catalog formula with ``derivative_at_zero`` at x == 0; no NaN masking. Gated
        forms: f'(a) of the inner function. For hot loops."""
        from gradsight.activations import _fast

        return _fast.derivative(self)

    # -- properties (computed numerically from f and f', cached per name and params) -------
    def _props(self) -> Any:
        from gradsight.activations import _properties

        return _properties.of(self)

    @property
    def derivative_bound(self) -> float:
        """sup |f'(x)| over the real line, computed numerically (``inf`` when unbounded)."""
        return self._props().derivative_bound

    @property
    def derivative_at_zero(self) -> float:
        """f'(0): the kink convention for relu-like functions (PyTorch's by default)."""
        return float(self.derivative(np.float64(0.0)))

    @property
    def is_monotonic(self) -> bool:
        """f never changes direction (f' keeps one sign everywhere)."""
        return self._props().is_monotonic

    @property
    def is_smooth(self) -> bool:
        """f is continuously differentiable: f' has no jump (no kink), measured at 0."""
        return self._props().is_smooth

    @property
    def saturates(self) -> bool:
        """f' -> 0 in both tails: large inputs of either sign pass (almost) no gradient."""
        return self._props().saturates

    @property
    def can_die(self) -> bool:
        """f' is exactly 0 on a whole half-line (relu, relu2; not leaky_relu, elu): a unit whose
        pre-activations all land there gets no gradient, so nothing can move it back -- it dies."""
        return self._props().can_die

    @property
    def rectifier(self) -> bool:
        """f is linear for x < 0 and steeper for x > 0 (relu, leaky_relu, prelu, relu2; reglu
        through its gate): the family He initialisation (gain sqrt 2) was derived for."""
        return self._props().rectifier

    @property
    def zero_centered(self) -> bool:
        """The mean output for a standard normal input is 0: E[f(z)] = 0, z ~ N(0, 1)."""
        return self._props().zero_centered

    @property
    def formula(self) -> str:
        """f as short plain text, e.g. ``'max(0, x)'``."""
        return self._spec.formula

    @property
    def formula_latex(self) -> str:
        """f(x) in LaTeX."""
        return self._spec.formula_latex

    @property
    def derivative_latex(self) -> str:
        """f'(x) in LaTeX."""
        return self._spec.derivative_latex

    # -- torch -----------------------------------------------------------------------------
    def module(self) -> Any:
        """An equivalent ``torch.nn.Module``: PyTorch's own where it matches exactly
        (``nn.ReLU``, ``nn.GELU(approximate=...)`` ...), else gradsight's (``Swish`` with a
        learnable beta, ``ActivationModule`` for relu2 or a non-default kink convention)."""
        from gradsight.activations import _torch

        return _torch.module_for(self)


class GatedActivation(Activation):
    """A gated linear unit ``f(a) * b`` (Shazeer 2020): reglu, geglu, swiglu.

    ``act(a, b) = f(a) * b`` with f = ``act.inner``; ``act.derivative(a, b)`` returns both
    partials ``(df/da, df/db) = (f'(a) * b, f(a))`` (a and b broadcast together). Its module
    splits the last dimension in halves, ``a, b = x.chunk(2, dim=-1)``, and returns
    ``f(a) * b``: an input of width 2n gives an output of width n.

    >>> import gradsight as gs
    >>> g = gs.activation("reglu")
    >>> g([-1.0, 2.0], [3.0, 3.0])
    array([0., 6.])
    """

    is_gated = True

    @property
    def inner(self) -> Activation:
        """The plain activation f applied to the first half."""
        if "_inner" not in self.__dict__:
            self._inner = activation(self._spec.inner, **self._params)
        return self._inner

    def _pair(self, a: Any, b: Any) -> tuple[Any, Any, Callable[[Any], Any]]:
        if _ops.is_tensor(a) != _ops.is_tensor(b):
            raise GradsightError(
                f"{self.name} takes a and b of the same kind, got {type(a).__name__!r} "
                f"and {type(b).__name__!r}"
            )
        if _ops.is_tensor(a):
            (at, dtype), (bt, _) = _torch_in(a), _torch_in(b)
            return at, bt, lambda out: out.to(dtype)
        (aa, dtype), (bb, _) = _numpy_in(a), _numpy_in(b)
        scalar = aa.ndim == 0 and bb.ndim == 0
        return aa, bb, lambda out: _finish_numpy(out, dtype, scalar)

    def __call__(self, a: Any, b: Any = None) -> Any:  # type: ignore[override]
        """f(a) * b elementwise (broadcasting a against b)."""
        if b is None:
            raise GradsightError(
                f"{self.name} is gated: call it as act(a, b) = {self._spec.inner}(a) * b; "
                f"act.module() splits one input in halves along the last dimension"
            )
        a, b, done = self._pair(a, b)
        return done(self.inner(a) * b)

    def derivative(self, a: Any, b: Any = None) -> tuple[Any, Any]:  # type: ignore[override]
        """(df/da, df/db) = (f'(a) * b, f(a)), both of the broadcast shape of a and b."""
        if b is None:
            raise GradsightError(
                f"{self.name} is gated: its derivative takes (a, b) and returns (df/da, df/db)"
            )
        a, b, done = self._pair(a, b)
        inner = self.inner
        fa, dfa = inner._apply(a, "f"), inner.derivative(a)
        da = dfa * b
        if _ops.is_tensor(da):
            db = fa.expand(da.shape).clone()
        else:
            db = np.broadcast_to(fa, np.shape(da)).copy()
        return done(da), done(db)

    @property
    def output_derivative(self) -> None:
        """None: f(a) * b does not determine a."""
        return None

    @property
    def derivative_at_zero(self) -> float:
        """The inner function's f'(0), i.e. df/da at a == 0 per unit b."""
        return self.inner.derivative_at_zero

    def _props(self) -> Any:
        # properties of a gated form are those of its inner f (df/da per unit b)
        return self.inner._props()


def activation(name: str, **params: Any) -> Activation:
    """The catalog activation ``name`` with ``params`` (PyTorch's names and defaults).

    Unknown names and bad parameters raise :class:`~gradsight.errors.GradsightError`
    quoting the value, listing what is allowed and suggesting the closest.

    >>> import gradsight as gs
    >>> gs.activation("leaky_relu", negative_slope=0.2)
    Activation('leaky_relu', negative_slope=0.2, derivative_at_zero=0.2)
    >>> gs.activation("rellu")
    Traceback (most recent call last):
    ...
    gradsight.errors.GradsightError: unknown activation 'rellu'; did you mean 'relu'? known: ...
    """
    spec = _spec(name)
    resolved = resolve_params(spec, params)
    cls = GatedActivation if spec.inner is not None else Activation
    return cls(spec, resolved)


def _rebuild(name: str, params: Mapping[str, Any]) -> Activation:
    return activation(name, **params)


def describe(spec: Spec) -> str:
    """A catalog entry as docstring text (used for ``act.doc`` and the module docstring)."""
    lines = [f"{spec.name}: {spec.summary}", "", spec.math.strip("\n")]
    params = spec.all_params()
    if params:
        lines += ["", "Parameters:"]
        for p in params:
            default = "derived" if p.default is None else repr(p.default)
            lines.append(f"    {p.name} = {default}: {p.doc}")
    if spec.reference:
        lines += ["", f"Reference: {spec.reference}"]
    if spec.example:
        lines += ["", spec.example.strip("\n")]
    return "\n".join(lines)
