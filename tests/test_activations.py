"""The activation catalog against independent references: sympy at 50 digits, PyTorch's own
functions and modules, torch autograd and finite differences. Parametrized over the registry,
so a new entry is tested (and must have a sympy reference) the moment it is registered."""

from __future__ import annotations

import dataclasses
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.overrides import TorchFunctionMode

import gradsight as gs
from gradsight.activations import REGISTRY, from_function, from_module, is_inplace_call
from gradsight.errors import GradsightError

X = sp.Symbol("x", real=True)
A, B = sp.symbols("a b", real=True)
SELU_ALPHA = sp.Float("1.6732632423543772848170429916717", 40)
SELU_SCALE = sp.Float("1.0507009873554804934193349852946", 40)


def _f(value: float) -> sp.Float:
    return sp.Float(value, 50)  # the exact binary value of the double the library uses


def _sigmoid(z):
    return 1 / (1 + sp.exp(-z))


def _relu_like(pos, neg):
    return sp.Piecewise((pos, X > 0), (neg, True))


# The oracle: written from the papers, independent of the implementation.
REFERENCES = {
    "relu": lambda p: _relu_like(X, 0),
    "leaky_relu": lambda p: _relu_like(X, _f(p["negative_slope"]) * X),
    "prelu": lambda p: _relu_like(X, _f(p["init"]) * X),
    "elu": lambda p: _relu_like(X, _f(p["alpha"]) * (sp.exp(X) - 1)),
    "selu": lambda p: SELU_SCALE * _relu_like(X, SELU_ALPHA * (sp.exp(X) - 1)),
    "sigmoid": lambda p: _sigmoid(X),
    "tanh": lambda p: sp.tanh(X),
    "softplus": lambda p: (
        sp.Piecewise(
            (X, _f(p["beta"]) * X > _f(p["threshold"])),
            (sp.log(1 + sp.exp(_f(p["beta"]) * X)) / _f(p["beta"]), True),
        )
        if math.isfinite(p["threshold"])
        else sp.log(1 + sp.exp(_f(p["beta"]) * X)) / _f(p["beta"])
    ),
    "gelu": lambda p: (
        X * (1 + sp.erf(X / sp.sqrt(2))) / 2
        if p["approximate"] == "none"
        else X / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (X + sp.Rational(44715, 10**6) * X**3)))
    ),
    "silu": lambda p: X * _sigmoid(X),
    "swish": lambda p: X * _sigmoid(_f(p["beta"]) * X),
    "mish": lambda p: X * sp.tanh(sp.log(1 + sp.exp(X))),
    "relu2": lambda p: _relu_like(X**2, 0),
}
GATED_INNER = {"reglu": "relu", "geglu": "gelu", "swiglu": "silu"}

# parameter settings beyond the defaults (every registered name is also tested with defaults)
VARIANTS = {
    "leaky_relu": [
        {"negative_slope": 0.2},
        {"negative_slope": -0.5},
        {"negative_slope": 0.2, "derivative_at_zero": 0.7},
    ],
    "prelu": [{"init": 0.1}],
    "elu": [{"alpha": 0.5}, {"alpha": 2.0}, {"alpha": 0.5, "derivative_at_zero": 0.3}],
    "selu": [{"derivative_at_zero": 1.0}],
    "softplus": [{"beta": 2.0, "threshold": 10.0}, {"beta": 0.5, "threshold": math.inf}],
    "gelu": [{"approximate": "tanh"}],
    "swish": [{"beta": 1.702}, {"beta": 0.5}],
    "geglu": [{"approximate": "tanh"}],
    "relu": [{"derivative_at_zero": 1.0}],
}

NAMES = gs.activations.names()
PLAIN = [n for n in NAMES if not REGISTRY[n].inner]
GATED = [n for n in NAMES if REGISTRY[n].inner]


def _cases(names):
    out = []
    for n in names:
        out.append(pytest.param(n, {}, id=n))
        for i, v in enumerate(VARIANTS.get(n, [])):
            label = ",".join(f"{k}={v[k]}" for k in v)
            out.append(pytest.param(n, v, id=f"{n}[{label}]" if label else f"{n}-{i}"))
    return out


POINTS = np.array(
    [-1000, -700, -100, -37, -20.5, -10, -3, -1.5, -1, -0.5, -1e-3, -1e-8, 0.0,
     1e-8, 1e-3, 0.5, 1, 1.5, 3, 10, 19.9, 20.5, 37, 100, 700, 1000],
    dtype=np.float64,
)  # fmt: skip


def test_references_cover_the_registry():
    assert set(REFERENCES) | set(GATED_INNER) == set(NAMES)
    assert set(VARIANTS) <= set(NAMES)


def _mp(expr, points):
    fn = sp.lambdify(X, expr, modules="mpmath")
    # 1 - tanh(1000)^2 ~ 1e-869: the reference needs that many digits to see it
    with mpmath.workdps(1000):
        return [fn(mpmath.mpf(float(x))) for x in points]


def _check_close(got, want, what, rtol=1e-9, tiny=1e-300):
    """|got - want| <= rtol |want| (+ a subnormal floor); want is a list of mpf."""
    bad = []
    for x, g, w in zip(POINTS, got, want, strict=True):
        w = float(w)
        if not np.isfinite(g) or abs(g - w) > rtol * abs(w) + tiny:
            bad.append((float(x), float(g), w))
    assert not bad, f"{what}: (x, got, sympy) {bad[:5]}"


def _check_against_sympy(act, name, params):
    expr = REFERENCES[name](act.params)
    want_f, want_df = _mp(expr, POINTS), _mp(sp.diff(expr, X), POINTS)
    got_f, got_df = act(POINTS), act.derivative(POINTS)
    _check_close(got_f, want_f, f"{name} f")
    if REGISTRY[name].kink is not None:  # at 0 itself the convention rules: tested below
        keep = POINTS != 0
        got_df = np.where(keep, got_df, [float(w) for w in want_df])
    _check_close(got_df, want_df, f"{name} f'")


@pytest.mark.parametrize(("name", "params"), _cases(PLAIN))
def test_f_and_derivative_match_sympy_in_float64(name, params):
    _check_against_sympy(gs.activation(name, **params), name, params)


def test_the_sympy_check_catches_a_planted_wrong_derivative():
    spec = REGISTRY["sigmoid"]
    wrong = dataclasses.replace(spec, df=lambda ops, x, p: ops.sigmoid(x) * (1 - ops.sigmoid(-x)))
    with pytest.raises(AssertionError, match="sigmoid f'"):
        _check_against_sympy(gs.Activation(wrong, {}), "sigmoid", {})
    # and an overflow: softplus written the naive way is inf at x = 1000
    naive = dataclasses.replace(
        REGISTRY["softplus"], f=lambda ops, x, p: np.log1p(np.exp(np.minimum(x, 700.0)))
    )
    with pytest.raises(AssertionError, match="softplus f"):
        _check_against_sympy(gs.Activation(naive, {"beta": 1.0, "threshold": 20.0}), "softplus", {})


@pytest.mark.parametrize(("name", "params"), _cases(GATED))
def test_gated_partials_match_sympy(name, params):
    act = gs.activation(name, **params)
    inner = act.inner
    assert inner.name == GATED_INNER[name] and inner.params == act.params
    expr = REFERENCES[GATED_INNER[name]](inner.params).subs(X, A) * B
    a = POINTS[POINTS != 0] if REGISTRY[inner.name].kink else POINTS  # a == 0: the kink test
    b = np.resize([2.0, -0.5, 3.0, 1.5, -2.0, 0.25], a.shape)
    got = (act(a, b), *act.derivative(a, b))
    for fn, values in zip((expr, sp.diff(expr, A), sp.diff(expr, B)), got, strict=True):
        f = sp.lambdify((A, B), fn, modules="mpmath")
        with mpmath.workdps(1000):
            want = [
                float(f(mpmath.mpf(float(ai)), mpmath.mpf(float(bi))))
                for ai, bi in zip(a, b, strict=True)
            ]
        np.testing.assert_allclose(values, want, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("name", PLAIN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_finite_wherever_the_true_value_is(name, dtype):
    act = gs.activation(name)
    x = POINTS.astype(dtype)
    y, dy = act(x), act.derivative(x)
    assert y.dtype == dtype and dy.dtype == dtype and y.shape == x.shape
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dy))
    # float32 is the float64 answer rounded (to a few ulps; subnormals underflow)
    np.testing.assert_allclose(y, act(POINTS), rtol=4e-6, atol=1e-37)
    np.testing.assert_allclose(dy, act.derivative(POINTS), rtol=4e-6, atol=1e-37)
    yt, dyt = act(torch.from_numpy(x)), act.derivative(torch.from_numpy(x))
    assert torch.isfinite(yt).all() and torch.isfinite(dyt).all()


@pytest.mark.parametrize(
    ("name", "x", "f", "df"),
    [
        ("softplus", 1000.0, 1000.0, 1.0),
        ("sigmoid", -1000.0, 0.0, 0.0),
        ("sigmoid", -100.0, 3.720075976020836e-44, 3.720075976020836e-44),
        ("tanh", 20.0, 1.0, 1.6993417021166356e-17),
        ("elu", -1000.0, -1.0, 0.0),
        ("mish", -1000.0, -0.0, 0.0),
        ("mish", -30.0, -2.807286890651921e-12, -2.7137106609633923e-12),
        ("gelu", -30.0, -1.4720141781444561e-196, -4.4160316907084944e-195),
        ("relu", 0.0, 0.0, 0.0),
        ("sigmoid", 0.0, 0.5, 0.25),
        ("gelu", 0.0, 0.0, 0.5),
        ("relu2", 3.0, 9.0, 6.0),
    ],
    ids=lambda v: str(v),
)
def test_exact_known_values(name, x, f, df):
    """Values from mpmath at 60 digits (the tails are where naive formulas give 0, inf or nan)."""
    act = gs.activation(name)
    assert act(np.float64(x)) == pytest.approx(f, rel=1e-12, abs=0)
    assert act.derivative(np.float64(x)) == pytest.approx(df, rel=1e-12, abs=0)


# --- torch ---------------------------------------------------------------------------------------
GRID = torch.cat(
    [
        torch.linspace(-40, 40, 801, dtype=torch.float64),
        torch.tensor([0.0, 1e-8, -1e-8, -1000.0, 1000.0], dtype=torch.float64),
    ]
)


@pytest.mark.parametrize(("name", "params"), _cases(PLAIN))
def test_autograd_of_f_is_the_derivative(name, params):
    act = gs.activation(name, **params)
    x = GRID.clone().requires_grad_()
    (g,) = torch.autograd.grad(act(x).sum(), x)
    torch.testing.assert_close(g, act.derivative(GRID), rtol=0, atol=0)


@pytest.mark.parametrize(("name", "params"), _cases(PLAIN))
def test_backward_agrees_with_finite_differences(name, params):
    act = gs.activation(name, **params)
    x = torch.tensor([-3.1, -0.7, -0.01, 0.013, 0.9, 2.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(act, (x,))
    assert torch.autograd.gradgradcheck(act, (x,))


@pytest.mark.parametrize(("name", "params"), _cases(PLAIN))
def test_module_matches_f_and_derivative(name, params):
    act = gs.activation(name, **params)
    m = act.module().double()
    # learned parameters (prelu's slope, swish's beta) are float32 numbers inside the module
    back = from_module(m)
    assert back.name == act.name
    for k, v in act.params.items():
        assert back.params[k] == (v if isinstance(v, str) else pytest.approx(v, rel=1e-7))
    x = GRID.clone().requires_grad_()
    y = m(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(y, back(GRID), rtol=1e-12, atol=1e-14)
    # PyTorch's leaky_relu backward rounds the slope to float32 even for double tensors
    rtol = 3e-8 if name == "leaky_relu" else 1e-9
    torch.testing.assert_close(g, back.derivative(GRID), rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int64])
@pytest.mark.parametrize("name", NAMES)
def test_torch_in_torch_out_same_dtype_and_shape(name, dtype):
    act = gs.activation(name)
    x = torch.arange(-6, 6).reshape(3, 2, 2).to(dtype)
    want = dtype if dtype.is_floating_point else torch.get_default_dtype()
    if act.is_gated:
        outs = [act(x, x), *act.derivative(x, -x)]
    else:
        outs = [act(x), act.derivative(x)]
    for out in outs:
        assert isinstance(out, torch.Tensor) and out.dtype == want and out.shape == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_numpy_in_numpy_out(name):
    act = gs.activation(name)
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    outs = [act(x, x), *act.derivative(x, x)] if act.is_gated else [act(x), act.derivative(x)]
    for out in outs:
        assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (3, 4)
    scalar = act(1.5, 2.0) if act.is_gated else act(1.5)
    assert np.ndim(scalar) == 0


@pytest.mark.parametrize(("name", "params"), _cases(PLAIN))
def test_nan_in_nan_out(name, params):
    """A nan input is never laundered into a number (the monitor traces nan to its origin)."""
    act = gs.activation(name, **params)
    x = np.array([np.nan, -1.0, 0.0, 2.0])
    outs = [
        act(x),
        act.derivative(x),
        act(torch.from_numpy(x)),
        act.derivative(torch.from_numpy(x)),
    ]
    if act.output_derivative is not None:
        outs += [act.output_derivative(x), act.output_derivative(torch.from_numpy(x))]
    for out in outs:
        assert np.isnan(np.asarray(out)).tolist() == [True, False, False, False]


@pytest.mark.parametrize(("name", "params"), _cases(GATED))
def test_gated_autograd_and_module(name, params):
    act = gs.activation(name, **params)
    a = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    ga, gb = torch.autograd.grad(act(a, b).sum(), (a, b))
    da, db = act.derivative(a.detach(), b.detach())
    torch.testing.assert_close(ga, da, rtol=0, atol=0)
    torch.testing.assert_close(gb, db, rtol=0, atol=0)
    m = act.module()
    x = torch.cat([a, b], dim=-1).detach()  # (5, 8) -> (5, 4)
    y = m(x)
    assert y.shape == (5, 4)
    torch.testing.assert_close(y, act(a.detach(), b.detach()), rtol=1e-12, atol=1e-14)
    assert from_module(m) == act
    with pytest.raises(GradsightError, match=r"must be even, got an input of shape \(5, 7\)"):
        m(x[:, :7])


def test_gated_forms_are_inner_times_gate():
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    g = torch.full_like(x, 2.0)
    torch.testing.assert_close(gs.activation("reglu")(x, g), F.relu(x) * 2)
    torch.testing.assert_close(gs.activation("geglu")(x, g), F.gelu(x) * 2)
    torch.testing.assert_close(gs.activation("swiglu")(x, g), F.silu(x) * 2)
    with pytest.raises(GradsightError, match=r"swiglu is gated: call it as act\(a, b\)"):
        gs.activation("swiglu")(x)
    with pytest.raises(GradsightError, match="same kind"):
        gs.activation("swiglu")(x, g.numpy())


# --- kinks ---------------------------------------------------------------------------------------
PYTORCH_F_PRIME_AT_ZERO = {  # measured with torch autograd on torch 2.13
    "relu": 0.0,
    "leaky_relu": 0.01,
    "prelu": 0.25,
    "elu": 1.0,
    "selu": 1.0507009873554805 * 1.6732632423543772,
}


def test_kinked_entries_are_exactly_those_with_a_convention():
    assert {n for n in PLAIN if REGISTRY[n].kink} == set(PYTORCH_F_PRIME_AT_ZERO)


@pytest.mark.parametrize("name", sorted(PYTORCH_F_PRIME_AT_ZERO))
def test_default_kink_convention_is_pytorchs(name):
    act = gs.activation(name)
    assert act.derivative_at_zero == pytest.approx(PYTORCH_F_PRIME_AT_ZERO[name], rel=1e-15)
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(act.module().double()(x).sum(), x)
    assert g.tolist() == pytest.approx([act.derivative_at_zero] * 3, rel=1e-15)


@pytest.mark.parametrize("name", sorted(PYTORCH_F_PRIME_AT_ZERO))
def test_chosen_kink_convention_is_honoured_everywhere(name):
    act = gs.activation(name, derivative_at_zero=0.5)
    assert act.params["derivative_at_zero"] == 0.5
    assert act.derivative(np.zeros(2)).tolist() == [0.5, 0.5]
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(act(x).sum(), x)
    assert g.tolist() == [0.5, 0.5]
    if name != "prelu":  # nn.PReLU cannot, and says so (below)
        (g,) = torch.autograd.grad(act.module()(x).sum(), x)
        assert g.tolist() == [0.5, 0.5]
    # one step away from 0, nothing changed
    assert (
        act.derivative(np.array([1e-300]))[0]
        == gs.activation(name).derivative(np.array([1e-300]))[0]
    )


def test_relu_prime_at_zero_one_and_prelu_module_refuses_a_foreign_convention():
    assert gs.activation("relu", derivative_at_zero=1.0).derivative(0.0) == 1.0
    assert gs.activation("relu").derivative(0.0) == 0.0
    with pytest.raises(GradsightError, match="derivative_at_zero=0.5 cannot be honoured"):
        gs.activation("prelu", derivative_at_zero=0.5).module()


# --- learned parameters --------------------------------------------------------------------------
def test_prelu_module_slope_gradient_is_exact():
    m = gs.activation("prelu", init=0.3).module().double()
    x = torch.tensor([-2.0, -0.5, 0.0, 1.5, 3.0], dtype=torch.float64)
    y = m(x)
    y.backward(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64))
    # d/da of a x for x <= 0 is x: 1*(-2) + 2*(-0.5) + 3*0 = -3
    assert m.weight.grad.item() == -3.0
    m.weight.data.fill_(0.7)
    assert from_module(m) == gs.activation("prelu", init=0.699999988079071) or from_module(
        m
    ).params["init"] == pytest.approx(0.7)


def test_swish_module_beta_gradient_is_exact():
    m = gs.activation("swish", beta=1.5).module().double()
    assert isinstance(m.beta, nn.Parameter)
    x = torch.tensor([-2.0, -0.3, 0.4, 2.5], dtype=torch.float64, requires_grad=True)
    m(x).sum().backward()
    s = torch.sigmoid(1.5 * x.detach())
    torch.testing.assert_close(
        m.beta.grad, (x.detach() ** 2 * s * (1 - s)).sum(), rtol=1e-14, atol=0
    )
    torch.testing.assert_close(
        x.grad, gs.activation("swish", beta=1.5).derivative(x.detach()), rtol=1e-14, atol=0
    )
    with torch.no_grad():
        m.beta.fill_(1.702)
    assert from_module(m) == gs.activation("swish", beta=1.702)


# --- properties ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "bound"),
    [
        ("sigmoid", {}, 0.25),
        ("tanh", {}, 1.0),
        ("relu", {}, 1.0),
        ("gelu", {}, 1.12890414519),  # Phi(sqrt 2) + sqrt 2 phi(sqrt 2)
        ("silu", {}, 1.09983932013),
        ("swish", {"beta": 3.0}, 1.09983932013),  # beta only rescales x
        ("leaky_relu", {"negative_slope": -2.0}, 2.0),
        ("selu", {}, 1.75809934085),
        ("relu2", {}, math.inf),
        ("swiglu", {}, 1.09983932013),
    ],
)
def test_derivative_bound_is_measured(name, params, bound):
    assert gs.activation(name, **params).derivative_bound == pytest.approx(bound, rel=1e-11)


def test_gelu_bound_matches_its_closed_form():
    s = math.sqrt(2.0)
    closed = 0.5 * math.erfc(-1.0) + s * math.exp(-1.0) / math.sqrt(2 * math.pi)
    assert gs.activation("gelu").derivative_bound == pytest.approx(closed, rel=1e-11)


# name: (monotonic, smooth, saturates, zero_centered, can_die, rectifier)
PROPERTIES = {
    "relu": (True, False, False, False, True, True),
    "leaky_relu": (True, False, False, False, False, True),
    "prelu": (True, False, False, False, False, True),
    "elu": (True, True, False, False, False, False),
    "selu": (True, False, False, True, False, False),
    "sigmoid": (True, True, True, False, False, False),
    "tanh": (True, True, True, True, False, False),
    "softplus": (True, True, False, False, False, False),
    "gelu": (False, True, False, False, False, False),
    "silu": (False, True, False, False, False, False),
    "swish": (False, True, False, False, False, False),
    "mish": (False, True, False, False, False, False),
    "relu2": (True, True, False, False, True, True),
    "reglu": (True, False, False, False, True, True),
    "geglu": (False, True, False, False, False, False),
    "swiglu": (False, True, False, False, False, False),
}


@pytest.mark.parametrize("name", NAMES)
def test_properties(name):
    act = gs.activation(name)
    got = (act.is_monotonic, act.is_smooth, act.saturates, act.zero_centered, act.can_die, act.rectifier)
    assert got == PROPERTIES[name]
    assert act.formula_latex and act.derivative_latex
    assert act.is_gated == (name in GATED)


@pytest.mark.parametrize(
    ("name", "params", "can_die"),
    [
        ("leaky_relu", {"negative_slope": 0.0}, True),  # a leaky relu with no leak is a relu
        ("leaky_relu", {"negative_slope": 1e-6}, False),
        ("prelu", {"init": 0.0}, True),
        ("elu", {"alpha": 0.0}, True),
    ],
    ids=["leaky-0", "leaky-1e-6", "prelu-0", "elu-0"],
)
def test_can_die_follows_the_parameters(name, params, can_die):
    assert gs.activation(name, **params).can_die is can_die


def test_elu_is_smooth_only_when_alpha_is_one():
    assert gs.activation("elu", alpha=1.0).is_smooth
    assert not gs.activation("elu", alpha=2.0).is_smooth


# --- output derivative ---------------------------------------------------------------------------
def _from_output_cases():
    out = []
    for n, params in [(c.values[0], c.values[1]) for c in _cases(PLAIN)]:
        act = gs.activation(n, **params)
        if act.output_derivative is not None:
            out.append(pytest.param(n, params, id=f"{n}{params or ''}"))
    return out


def test_output_derivative_is_offered_exactly_where_the_output_determines_it():
    have = {n for n in NAMES if gs.activation(n).output_derivative is not None}
    assert have == {
        "relu",
        "leaky_relu",
        "prelu",
        "elu",
        "selu",
        "sigmoid",
        "tanh",
        "softplus",
        "relu2",
    }
    assert gs.activation("leaky_relu", negative_slope=-0.5).output_derivative is None
    assert gs.activation("elu", alpha=-1.0).output_derivative is None


@pytest.mark.parametrize(("name", "params"), _from_output_cases())
def test_output_derivative_equals_the_derivative(name, params):
    act = gs.activation(name, **params)
    x = np.linspace(-8, 8, 1601)  # contains 0 exactly
    if name == "relu":
        # relu's y == 0 cannot tell x == 0 from x < 0: the output rule gives 0 there
        assert act.output_derivative(np.float64(0.0)) == 0.0
        x = x[x != 0]
    got = act.output_derivative(act(x))
    np.testing.assert_allclose(got, act.derivative(x), rtol=1e-6, atol=1e-9)
    xt = torch.from_numpy(x)
    torch.testing.assert_close(
        act.output_derivative(act(xt)), act.derivative(xt), rtol=1e-6, atol=1e-9
    )


def test_relu_output_derivative_is_pytorchs_inplace_backward():
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    y = x.clone()
    F.relu(y, inplace=True).sum().backward()
    act = gs.activation("relu")
    assert act.output_derivative(F.relu(x.detach())).tolist() == x.grad.tolist() == [0.0, 0.0, 1.0]


@settings(max_examples=200, deadline=None)
@given(st.floats(-500, 500, allow_nan=False), st.sampled_from(NAMES))
def test_derivative_is_the_slope_of_f(x, name):
    act = gs.activation(name)
    if act.is_gated:
        act = act.inner
    if abs(x) < 1e-4:
        x = 1e-4 if x >= 0 else -1e-4  # the kink is tested on its own
    h = 1e-6 * max(1.0, abs(x))
    fd = (act(x + h) - act(x - h)) / (2 * h)
    assert act.derivative(x) == pytest.approx(fd, rel=1e-5, abs=1e-7)


# --- recognising PyTorch ---------------------------------------------------------------------------
MODULES = [
    (nn.ReLU(), "relu", {}),
    (nn.ReLU(inplace=True), "relu", {}),
    (nn.LeakyReLU(0.2), "leaky_relu", {"negative_slope": 0.2}),
    (nn.PReLU(init=0.1), "prelu", {"init": pytest.approx(0.1)}),
    (nn.ELU(alpha=0.5), "elu", {"alpha": 0.5}),
    (nn.SELU(), "selu", {}),
    (nn.Sigmoid(), "sigmoid", {}),
    (nn.Tanh(), "tanh", {}),
    (nn.Softplus(beta=2.0, threshold=5.0), "softplus", {"beta": 2.0, "threshold": 5.0}),
    (nn.GELU(), "gelu", {"approximate": "none"}),
    (nn.GELU(approximate="tanh"), "gelu", {"approximate": "tanh"}),
    (nn.SiLU(), "silu", {}),
    (nn.Mish(), "mish", {}),
]


@pytest.mark.parametrize(
    ("module", "name", "params"),
    MODULES,
    ids=lambda v: repr(v) if isinstance(v, nn.Module) else None,
)
def test_from_module_recognises_pytorch_modules(module, name, params):
    act = from_module(module)
    assert act is not None and act.name == name
    for k, v in params.items():
        assert act.params[k] == v
    x = torch.linspace(-5, 5, 41)
    torch.testing.assert_close(act(x), module(x.clone()), rtol=2e-6, atol=1e-6)


def test_from_module_returns_none_for_other_modules():
    assert from_module(nn.Linear(2, 2)) is None
    assert from_module(nn.ReLU6()) is None
    assert from_module(nn.PReLU(num_parameters=3)) is None

    class MyReLU(nn.ReLU):
        def forward(self, x):
            return x

    assert from_module(MyReLU()) is None


HF = {  # class name in transformers.activations -> (name, params)
    "GELUActivation": ("gelu", {}),
    "NewGELUActivation": ("gelu", {"approximate": "tanh"}),
    "GELUTanh": ("gelu", {"approximate": "tanh"}),
    "FastGELUActivation": ("gelu", {"approximate": "tanh"}),
    "AccurateGELUActivation": ("gelu", {"approximate": "tanh"}),
    "QuickGELUActivation": ("swish", {"beta": 1.702}),
    "SiLUActivation": ("silu", {}),
    "MishActivation": ("mish", {}),
    "ReLUSquaredActivation": ("relu2", {}),
}


@pytest.fixture(scope="module")
def hf_activations():
    return pytest.importorskip("transformers.activations")


@pytest.mark.parametrize("cls_name", sorted(HF))
def test_from_module_recognises_hugging_face_activations(hf_activations, cls_name):
    module = getattr(hf_activations, cls_name)()
    name, params = HF[cls_name]
    act = from_module(module)
    assert act == gs.activation(name, **params)
    x = torch.linspace(-6, 6, 121, dtype=torch.float64)
    torch.testing.assert_close(act(x), module(x), rtol=1e-9, atol=1e-11)


def test_hugging_face_lookalikes_outside_transformers_are_not_trusted(hf_activations):
    assert from_module(hf_activations.ClippedGELUActivation(-10, 10)) is None
    assert from_module(hf_activations.LinearActivation()) is None
    NewGELUActivation = type("NewGELUActivation", (nn.Module,), {"forward": lambda self, x: x})
    assert from_module(NewGELUActivation()) is None


def _t():
    return torch.tensor([-1.5, 0.0, 2.0])


FUNCTIONAL = [
    # (label, call on x, expected name, expected params, in-place)
    ("F.relu", lambda x: F.relu(x), "relu", {}, False),
    ("F.relu(inplace)", lambda x: F.relu(x, inplace=True), "relu", {}, True),
    ("torch.relu", lambda x: torch.relu(x), "relu", {}, False),
    ("Tensor.relu", lambda x: x.relu(), "relu", {}, False),
    ("torch.relu_", lambda x: torch.relu_(x), "relu", {}, True),
    ("Tensor.relu_", lambda x: x.relu_(), "relu", {}, True),
    ("F.relu_", lambda x: F.relu_(x), "relu", {}, True),
    ("F.leaky_relu", lambda x: F.leaky_relu(x), "leaky_relu", {"negative_slope": 0.01}, False),
    (
        "F.leaky_relu(0.2)",
        lambda x: F.leaky_relu(x, 0.2),
        "leaky_relu",
        {"negative_slope": 0.2},
        False,
    ),
    (
        "F.leaky_relu(slope=)",
        lambda x: F.leaky_relu(x, negative_slope=0.3),
        "leaky_relu",
        {"negative_slope": 0.3},
        False,
    ),
    (
        "F.leaky_relu(inplace)",
        lambda x: F.leaky_relu(x, 0.2, True),
        "leaky_relu",
        {"negative_slope": 0.2},
        True,
    ),
    ("F.leaky_relu_", lambda x: F.leaky_relu_(x, 0.2), "leaky_relu", {"negative_slope": 0.2}, True),
    ("F.elu", lambda x: F.elu(x, alpha=0.5), "elu", {"alpha": 0.5}, False),
    ("F.elu_", lambda x: F.elu_(x, 2.0), "elu", {"alpha": 2.0}, True),
    ("F.selu", lambda x: F.selu(x), "selu", {}, False),
    ("torch.selu", lambda x: torch.selu(x), "selu", {}, False),
    ("torch.sigmoid", lambda x: torch.sigmoid(x), "sigmoid", {}, False),
    ("Tensor.sigmoid", lambda x: x.sigmoid(), "sigmoid", {}, False),
    ("F.sigmoid", lambda x: F.sigmoid(x), "sigmoid", {}, False),
    ("Tensor.sigmoid_", lambda x: x.sigmoid_(), "sigmoid", {}, True),
    ("torch.special.expit", lambda x: torch.special.expit(x), "sigmoid", {}, False),
    ("torch.tanh", lambda x: torch.tanh(x), "tanh", {}, False),
    ("Tensor.tanh", lambda x: x.tanh(), "tanh", {}, False),
    ("F.tanh", lambda x: F.tanh(x), "tanh", {}, False),
    ("Tensor.tanh_", lambda x: x.tanh_(), "tanh", {}, True),
    ("F.softplus", lambda x: F.softplus(x), "softplus", {"beta": 1.0, "threshold": 20.0}, False),
    (
        "F.softplus(2, 10)",
        lambda x: F.softplus(x, 2.0, 10.0),
        "softplus",
        {"beta": 2.0, "threshold": 10.0},
        False,
    ),
    (
        "F.softplus(beta=)",
        lambda x: F.softplus(x, beta=3.0),
        "softplus",
        {"beta": 3.0, "threshold": 20.0},
        False,
    ),
    ("F.gelu", lambda x: F.gelu(x), "gelu", {"approximate": "none"}, False),
    (
        "F.gelu(tanh)",
        lambda x: F.gelu(x, approximate="tanh"),
        "gelu",
        {"approximate": "tanh"},
        False,
    ),
    ("F.silu", lambda x: F.silu(x), "silu", {}, False),
    ("F.silu(inplace)", lambda x: F.silu(x, inplace=True), "silu", {}, True),
    ("F.mish", lambda x: F.mish(x), "mish", {}, False),
]


class _Recorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.found = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        hit = from_function(func, args, kwargs)
        if hit is not None:
            self.found.append((hit[0], hit[1], is_inplace_call(func, args, kwargs)))
        return func(*args, **kwargs)


@pytest.mark.parametrize(
    ("label", "call", "name", "params", "inplace"), FUNCTIONAL, ids=[c[0] for c in FUNCTIONAL]
)
def test_from_function_under_a_torch_function_mode(label, call, name, params, inplace):
    x = _t()
    with _Recorder() as rec:
        out = call(x)
    assert len(rec.found) == 1, rec.found  # seen once, not again through an inner call
    act, inp, seen_inplace = rec.found[0]
    assert act.name == name and inp is x and seen_inplace == inplace
    for k, v in params.items():
        assert act.params[k] == v
    x0 = _t()
    torch.testing.assert_close(act(x0), out, rtol=1e-6, atol=1e-7)


def test_from_function_ignores_everything_else():
    x = _t()
    assert from_function(torch.add, (x, x), {}) is None
    assert from_function(F.relu6, (x,), {}) is None
    assert from_function(print, (), {}) is None


# --- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: gs.activation("rellu"),
            r"unknown activation 'rellu'; did you mean 'relu'\? known: .*swiglu",
        ),
        (
            lambda: gs.activation("elu", alpah=1.0),
            r"unknown elu parameter 'alpah'; did you mean 'alpha'\? known: alpha, derivative_at_zero",
        ),
        (
            lambda: gs.activation("sigmoid", alpha=1.0),
            r"activation 'sigmoid' takes no parameters, got 'alpha'",
        ),
        (
            lambda: gs.activation("gelu", approximate="tanhh"),
            r"unknown gelu approximate 'tanhh'; did you mean 'tanh'\? known: none, tanh",
        ),
        (
            lambda: gs.activation("leaky_relu", negative_slope="0.1"),
            r"leaky_relu parameter negative_slope must be a number, got '0.1'",
        ),
        (lambda: gs.activation("elu", alpha=math.nan), r"must not be nan, got nan"),
        (
            lambda: gs.activation("softplus", beta=0.0),
            r"softplus parameter beta must be nonzero, got 0.0",
        ),
        (
            lambda: gs.activation("elu", alpha=math.inf),
            r"elu parameter alpha must be finite, got inf",
        ),
        (
            lambda: gs.activation("relu")(np.array(["a"])),
            r"activations take real numbers, got an array of dtype '<U1'",
        ),
        (
            lambda: gs.activations.parse_params("elu", ["alpha"]),
            r"parameter must look like key=value, got 'alpha'",
        ),
    ],
    ids=["name", "param", "no-params", "choice", "type", "nan", "beta0", "inf", "dtype", "parse"],
)
def test_errors_teach(call, message):
    with pytest.raises(GradsightError, match=message):
        call()


def test_parse_params_reads_text():
    assert gs.activations.parse_params("softplus", ["beta=2", "threshold=inf"]) == {
        "beta": 2.0,
        "threshold": math.inf,
    }
    assert gs.activations.parse_params("gelu", ["approximate=tanh"]) == {"approximate": "tanh"}


def test_identity_and_repr():
    a = gs.activation("leaky_relu", negative_slope=0.2)
    assert a == gs.activation("leaky_relu", negative_slope=0.2) != gs.activation("leaky_relu")
    assert len({a, gs.activation("leaky_relu", negative_slope=0.2)}) == 1
    assert repr(a) == "Activation('leaky_relu', negative_slope=0.2, derivative_at_zero=0.2)"
    assert a.params == {"negative_slope": 0.2, "derivative_at_zero": 0.2}
    a.params["negative_slope"] = 5.0  # a copy: the activation is unchanged
    assert a.params["negative_slope"] == 0.2
    assert "leaky_relu'(x)" in a.doc and "negative_slope = 0.01" in a.doc


def test_module_docstring_lists_the_whole_catalog():
    for name in NAMES:
        assert f"{name}: " in gs.activations.__doc__


def test_torch_func_transforms_work():
    act = gs.activation("gelu")
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    g = torch.func.vmap(torch.func.grad(lambda t: act(t)))(x)
    torch.testing.assert_close(g, act.derivative(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["relu2", "swiglu", "leaky_relu", "swish"])
def test_activations_and_their_modules_survive_pickling(name, tmp_path):
    import copy
    import pickle

    act = gs.activation(name)
    assert pickle.loads(pickle.dumps(act)) == act
    m = act.module()
    path = tmp_path / "m.pt"
    torch.save(m, path)
    back = torch.load(path, weights_only=False)
    x = torch.randn(3, 4)
    torch.testing.assert_close(back(x), m(x))
    torch.testing.assert_close(copy.deepcopy(m)(x), m(x))


@pytest.mark.parametrize("name", NAMES)
def test_torch_path_is_device_agnostic(name):
    """On the meta device any CPU tensor made inside would raise: a stand-in for CUDA."""
    act = gs.activation(name)
    x = torch.empty(4, 6, device="meta", requires_grad=True)
    y = act(x, x) if act.is_gated else act(x)
    y.sum().backward()
    assert y.device.type == "meta" and x.grad.device.type == "meta"
    assert act.module().to("meta")(x.detach()).device.type == "meta"


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=20), st.sampled_from(PLAIN)
)
def test_numpy_and_torch_paths_agree(xs, name):
    act = gs.activation(name)
    x = np.array(xs)
    t = torch.tensor(xs, dtype=torch.float64)
    np.testing.assert_allclose(act(x), act(t).numpy(), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(
        act.derivative(x), act.derivative(t).numpy(), rtol=1e-13, atol=1e-300
    )


def test_regression_torch_where_of_two_numbers_kept_float64_precision():
    """Bug found by test_numpy_and_torch_paths_agree: torch.where(cond, 1.0, 0.01) is a float32
    tensor, so leaky_relu'(x < 0) on float64 tensors was 0.009999999776 instead of 0.01."""
    act = gs.activation("leaky_relu", negative_slope=0.01)
    x = torch.tensor([-1.0, 0.0], dtype=torch.float64)
    assert act.derivative(x).tolist() == [0.01, 0.01]
    assert act.output_derivative(act(x)).tolist() == [0.01, 0.01]
    assert gs.activation("relu", derivative_at_zero=0.1).derivative(x).tolist() == [0.0, 0.1]


# --- fast torch derivatives (what the monitor runs) ----------------------------------------------
@pytest.mark.parametrize(("name", "params"), _cases(PLAIN))
def test_fast_derivative_equals_the_derivative_kink_included(name, params):
    act = gs.activation(name, **params)
    x = torch.as_tensor(POINTS)
    want = act.derivative(x)
    got = act.fast_derivative(x)
    # PyTorch's GELU kernel is ~1 % off where f' < 1e-20 (x < -10): the atol
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert got[POINTS == 0] == want[POINTS == 0]  # f'(0) is the entry's convention, exactly
    out = torch.empty_like(x)
    torch.testing.assert_close(act.fast_derivative(x, out), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "params"), _from_output_cases())
def test_fast_output_derivative_equals_the_output_derivative(name, params):
    act = gs.activation(name, **params)
    x = torch.as_tensor(POINTS)
    y = act(x)
    want = act.output_derivative(y)
    torch.testing.assert_close(act.fast_output_derivative(y), want, rtol=1e-9, atol=1e-12)
    out = torch.empty_like(y)
    torch.testing.assert_close(act.fast_output_derivative(y, out), want, rtol=1e-9, atol=1e-12)


def test_fast_output_derivative_is_offered_where_the_output_derivative_is():
    for name in NAMES:
        act = gs.activation(name)
        assert (act.fast_output_derivative is None) == (act.output_derivative is None), name


@pytest.mark.parametrize("name", GATED)
def test_fast_derivative_of_a_gated_form_is_its_gates_valve(name):
    act = gs.activation(name)
    a = torch.as_tensor(POINTS)
    torch.testing.assert_close(act.fast_derivative(a), act.inner.derivative(a), rtol=1e-12, atol=1e-12)


def test_a_foreign_kink_convention_is_honoured_by_the_fast_derivative():
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    assert gs.activation("relu", derivative_at_zero=1.0).fast_derivative(x).tolist() == [0.0, 1.0, 1.0]
    got = gs.activation("leaky_relu", negative_slope=0.1, derivative_at_zero=0.5).fast_derivative(x)
    assert got.tolist() == [0.1, 0.5, 1.0]
