"""The catalog: every activation with f and f' a line apart.

Each formula takes ``(ops, x, p)``: the NumPy or torch primitives, the input and the resolved
parameters. Formulas are written to be exact in float64 (to ~1e-15 relative) and never to
overflow, in either branch of a ``where``: e.g. tanh' is 4t/(1+t)^2 with t = exp(-2|x|), not
1 - tanh(x)^2, which is 0 instead of 1.7e-17 at x = 20.

The kink convention (``derivative_at_zero``) is applied by the core at x == 0 exactly, so the
f' formulas below may pick either side there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gradsight.activations._core import DERIVATIVE_AT_ZERO, Param, Spec, register
from gradsight.activations._ops import SQRT_2, SQRT_2PI

P = Mapping[str, Any]

# SELU's constants (Klambauer et al. 2017), as torch.nn.SELU spells them
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_TANH_K = math.sqrt(2.0 / math.pi)
GELU_TANH_C = 0.044715


def _nn() -> Any:
    from torch import nn

    return nn


def _gs_torch() -> Any:
    from gradsight.activations import _torch

    return _torch


def _aten() -> Any:
    import torch

    return torch.ops.aten


def _torch() -> Any:
    import torch

    return torch


def _one_minus_square(y, out=None):
    return _torch().addcmul(y.new_ones(()), y, y, value=-1, out=out)  # tanh': 1 - y*y


# --- relu ------------------------------------------------------------------------------------
def _relu(ops, x, p):
    return ops.relu(x)


def _relu_d(ops, x, p):
    return ops.step(x)  # 1 for x > 0, else 0


def _relu_out(p):
    return lambda ops, y, p: ops.step(y)


register(
    Spec(
        name="relu",
        formula="max(0, x)",
        summary="Rectified linear unit: passes positives, zeroes negatives.",
        math="""
    relu(x)  = x  if x > 0,  0 if x <= 0
    relu'(x) = 1  if x > 0,  0 if x < 0,  derivative_at_zero if x == 0  (PyTorch: 0)
""",
        formula_latex=r"\max(0, x)",
        derivative_latex=r"\begin{cases} 1 & x > 0 \\ 0 & x < 0 \\ c_0 & x = 0 \end{cases}",
        f=_relu,
        df=_relu_d,
        derivative_keeps_nan=False,
        kink=lambda p: 0.0,
        output_df=_relu_out,
        torch_output_df=lambda p: lambda y, out=None: _torch().sign(y, out=out),  # y >= 0
        torch_backward=lambda p: (
            (lambda g, x: _aten().threshold_backward.grad_input(g, x, 0, grad_input=g))
            if p[DERIVATIVE_AT_ZERO] == 0.0
            else None
        ),
        native_module=lambda p: _nn().ReLU() if p[DERIVATIVE_AT_ZERO] == 0.0 else None,
        reference="Nair & Hinton 2010; Glorot, Bordes & Bengio 2011",
        example=""">>> gs.activation("relu").derivative([-1.0, 0.0, 2.0])
array([0., 0., 1.])""",
    )
)


# --- leaky relu and prelu ----------------------------------------------------------------------
def _slope_f(key):
    def f(ops, x, p):
        return ops.where(x > 0, x, p[key] * x)

    def df(ops, x, p):
        s = p[key]
        return s + (1.0 - s) * ops.step(x)  # 1 for x > 0, s otherwise

    def out(p):
        s, c = p[key], p[DERIVATIVE_AT_ZERO]
        if s < 0:
            return None  # y > 0 comes from x > 0 and from x < 0
        if s == 0:
            return _relu_out(p)
        if c == s:  # PyTorch's convention: y == 0 falls on the slope side by itself
            return lambda ops, y, p: s + (1.0 - s) * ops.step(y)
        return lambda ops, y, p: ops.where(y == 0, c, s + (1.0 - s) * ops.step(y))

    return f, df, out


_leaky_f, _leaky_d, _leaky_out = _slope_f("negative_slope")
register(
    Spec(
        name="leaky_relu",
        formula="x if x > 0, a·x otherwise",
        summary="Leaky ReLU: a small fixed slope for negatives keeps gradient flowing.",
        math="""
    leaky_relu(x)  = x  if x > 0,  negative_slope * x if x <= 0
    leaky_relu'(x) = 1  if x > 0,  negative_slope if x < 0,
                     derivative_at_zero if x == 0  (PyTorch: negative_slope)
""",
        formula_latex=r"\begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}",
        derivative_latex=r"\begin{cases} 1 & x > 0 \\ a & x < 0 \\ c_0 & x = 0 \end{cases}",
        f=_leaky_f,
        df=_leaky_d,
        derivative_keeps_nan=False,
        params=(Param("negative_slope", 0.01, "slope a for x < 0"),),
        kink=lambda p: p["negative_slope"],
        output_df=_leaky_out,
        torch_backward=lambda p: (
            (
                lambda g, x: _aten().leaky_relu_backward.grad_input(
                    g, x, float(p["negative_slope"]), False, grad_input=g
                )
            )
            if p[DERIVATIVE_AT_ZERO] == p["negative_slope"]
            else None
        ),
        native_module=lambda p: (
            _nn().LeakyReLU(p["negative_slope"])
            if p[DERIVATIVE_AT_ZERO] == p["negative_slope"]
            else None
        ),
        reference="Maas, Hannun & Ng 2013",
        example=""">>> gs.activation("leaky_relu", negative_slope=0.1)([-2.0, 3.0])
array([-0.2,  3. ])""",
    )
)

_prelu_f, _prelu_d, _prelu_out = _slope_f("init")


def _prelu_module(p):
    if p[DERIVATIVE_AT_ZERO] != p["init"]:
        from gradsight.errors import GradsightError

        raise GradsightError(
            "prelu's module is torch.nn.PReLU, whose f'(0) is its learned slope; "
            f"derivative_at_zero={p[DERIVATIVE_AT_ZERO]!r} cannot be honoured there"
        )
    return _nn().PReLU(num_parameters=1, init=p["init"])


register(
    Spec(
        name="prelu",
        formula="x if x > 0, a·x otherwise (a learned)",
        summary="Parametric ReLU: like leaky ReLU, but the negative slope is learned.",
        math="""
    prelu(x)  = x  if x > 0,  a * x if x <= 0        (a starts at init and is learned)
    prelu'(x) = 1  if x > 0,  a if x < 0,  derivative_at_zero if x == 0  (PyTorch: a)
    d prelu / d a = 0 if x > 0,  x if x <= 0
""",
        formula_latex=r"\begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}",
        derivative_latex=r"\begin{cases} 1 & x > 0 \\ a & x < 0 \\ c_0 & x = 0 \end{cases}",
        f=_prelu_f,
        df=_prelu_d,
        derivative_keeps_nan=False,
        params=(Param("init", 0.25, "the slope a (the module's initial learned slope)"),),
        kink=lambda p: p["init"],
        output_df=_prelu_out,
        native_module=_prelu_module,
        reference="He, Zhang, Ren & Sun 2015",
        example=""">>> gs.activation("prelu").module()
PReLU(num_parameters=1)""",
    )
)


# --- elu and selu ------------------------------------------------------------------------------
def _elu(ops, x, p):
    return ops.where(x > 0, x, p["alpha"] * ops.expm1(ops.minimum(x, 0.0)))


def _elu_d(ops, x, p):
    return ops.where(x > 0, 1.0, p["alpha"] * ops.exp(ops.minimum(x, 0.0)))


def _elu_out(p):
    alpha, c = p["alpha"], p[DERIVATIVE_AT_ZERO]
    if alpha < 0:
        return None  # y > 0 comes from x > 0 and from x < 0
    if alpha == 0:
        return _relu_out(p)
    # x < 0: y = alpha (e^x - 1), so f'(x) = alpha e^x = y + alpha (= alpha = PyTorch's c at 0)
    if c == alpha:
        return lambda ops, y, p: ops.where(y > 0, 1.0, y + alpha)
    return lambda ops, y, p: ops.where(y > 0, 1.0, ops.where(y == 0, c, y + alpha))


register(
    Spec(
        name="elu",
        formula="x if x > 0, α(eˣ − 1) otherwise",
        summary="Exponential linear unit: smooth negative part saturating at -alpha.",
        math="""
    elu(x)  = x  if x > 0,  alpha * (exp(x) - 1) if x <= 0
    elu'(x) = 1  if x > 0,  alpha * exp(x) if x < 0,
              derivative_at_zero if x == 0  (PyTorch: alpha; no kink when alpha == 1)
""",
        formula_latex=r"\begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases}",
        derivative_latex=r"\begin{cases} 1 & x > 0 \\ \alpha e^{x} & x < 0 \\ c_0 & x = 0 \end{cases}",
        f=_elu,
        df=_elu_d,
        params=(Param("alpha", 1.0, "the negative saturation value is -alpha"),),
        kink=lambda p: p["alpha"],
        output_df=_elu_out,
        torch_backward=lambda p: (
            (
                lambda g, x: _aten().elu_backward.grad_input(
                    g, float(p["alpha"]), 1, 1, False, x, grad_input=g
                )
            )
            if p[DERIVATIVE_AT_ZERO] == p["alpha"]
            else None
        ),
        native_module=lambda p: (
            _nn().ELU(p["alpha"]) if p[DERIVATIVE_AT_ZERO] == p["alpha"] else None
        ),
        reference="Clevert, Unterthiner & Hochreiter 2016",
        example=""">>> gs.activation("elu").derivative([-1.0, 0.0, 1.0])
array([0.36787944, 1.        , 1.        ])""",
    )
)


def _selu(ops, x, p):
    return SELU_SCALE * ops.where(x > 0, x, SELU_ALPHA * ops.expm1(ops.minimum(x, 0.0)))


def _selu_d(ops, x, p):
    return SELU_SCALE * ops.where(x > 0, 1.0, SELU_ALPHA * ops.exp(ops.minimum(x, 0.0)))


def _selu_out(p):
    c = p[DERIVATIVE_AT_ZERO]
    sa = SELU_SCALE * SELU_ALPHA
    if c == sa:  # PyTorch's convention: y + scale * alpha at y == 0
        return lambda ops, y, p: ops.where(y > 0, SELU_SCALE, y + sa)
    return lambda ops, y, p: ops.where(y > 0, SELU_SCALE, ops.where(y == 0, c, y + sa))


register(
    Spec(
        name="selu",
        formula="λ·(x if x > 0, α(eˣ − 1) otherwise)",
        summary="Scaled ELU: constants chosen so activations self-normalize to mean 0, var 1.",
        math="""
    selu(x)  = scale * x  if x > 0,  scale * alpha * (exp(x) - 1) if x <= 0
    selu'(x) = scale      if x > 0,  scale * alpha * exp(x) if x < 0,
               derivative_at_zero if x == 0  (PyTorch: scale * alpha = 1.7581)
    alpha = 1.6732632423543772, scale = 1.0507009873554805
""",
        formula_latex=r"\lambda \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases}",
        derivative_latex=r"\lambda \begin{cases} 1 & x > 0 \\ \alpha e^{x} & x < 0 \end{cases}, \quad f'(0) = c_0",
        f=_selu,
        df=_selu_d,
        kink=lambda p: SELU_SCALE * SELU_ALPHA,
        output_df=_selu_out,
        torch_backward=lambda p: (
            (
                lambda g, x: _aten().elu_backward.grad_input(
                    g, SELU_ALPHA, SELU_SCALE, 1, False, x, grad_input=g
                )
            )
            if p[DERIVATIVE_AT_ZERO] == SELU_SCALE * SELU_ALPHA
            else None
        ),
        native_module=lambda p: (
            _nn().SELU() if p[DERIVATIVE_AT_ZERO] == SELU_SCALE * SELU_ALPHA else None
        ),
        reference="Klambauer, Unterthiner, Mayr & Hochreiter 2017",
        example=""">>> gs.activation("selu")([1.0])
array([1.05070099])""",
    )
)


# --- sigmoid and tanh --------------------------------------------------------------------------
def _sigmoid(ops, x, p):
    return ops.sigmoid(x)


def _sigmoid_d(ops, x, p):
    return ops.sigmoid(x) * ops.sigmoid(-x)  # not s * (1 - s): 1 - s is 0 for x > 37


register(
    Spec(
        name="sigmoid",
        formula="σ(x) = 1 / (1 + e⁻ˣ)",
        summary="Logistic sigmoid: squashes to (0, 1); f' is at most 1/4.",
        math="""
    sigmoid(x)  = 1 / (1 + exp(-x))
    sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x)) = sigmoid(x) * sigmoid(-x)
""",
        formula_latex=r"\sigma(x) = \frac{1}{1 + e^{-x}}",
        derivative_latex=r"\sigma(x)\,(1 - \sigma(x))",
        f=_sigmoid,
        df=_sigmoid_d,
        output_df=lambda p: lambda ops, y, p: y * (1 - y),
        torch_output_df=lambda p: lambda y, out=None: _torch().addcmul(y, y, y, value=-1, out=out),
        native_module=lambda p: _nn().Sigmoid(),
        example=""">>> gs.activation("sigmoid").derivative([0.0])
array([0.25])""",
    )
)


def _tanh(ops, x, p):
    return ops.tanh(x)


def _tanh_d(ops, x, p):
    t = ops.exp(-2.0 * ops.abs(x))  # sech^2 x = 4t / (1 + t)^2, exact in both tails
    return 4.0 * t / ops.square(1.0 + t)


register(
    Spec(
        name="tanh",
        formula="tanh(x)",
        summary="Hyperbolic tangent: squashes to (-1, 1), zero-centered.",
        math="""
    tanh(x)  = (exp(x) - exp(-x)) / (exp(x) + exp(-x))
    tanh'(x) = 1 - tanh(x)^2 = sech(x)^2
""",
        formula_latex=r"\tanh(x)",
        derivative_latex=r"1 - \tanh^2(x)",
        f=_tanh,
        df=_tanh_d,
        output_df=lambda p: lambda ops, y, p: 1 - ops.square(y),
        torch_output_df=lambda p: _one_minus_square,
        native_module=lambda p: _nn().Tanh(),
        example=""">>> gs.activation("tanh").derivative([0.0])
array([1.])""",
    )
)


# --- softplus ------------------------------------------------------------------------------------
def _softplus(ops, x, p):
    z = p["beta"] * x
    smooth = (ops.relu(z) + ops.log1p(ops.exp(-ops.abs(z)))) / p["beta"]
    return ops.where(z > p["threshold"], x, smooth)


def _softplus_d(ops, x, p):
    z = p["beta"] * x
    return ops.where(z > p["threshold"], 1.0, ops.sigmoid(z))


def _softplus_out(ops, y, p):
    # smooth branch: beta y = log(1 + e^{beta x}), so sigmoid(beta x) = 1 - exp(-beta y).
    # The linear branch (y = x) starts at beta y > threshold, and the smooth one reaches
    # threshold + log1p(e^-threshold): in that sliver y is ambiguous (PyTorch's switch jumps by
    # log1p(e^-threshold) / beta) and the smooth branch is assumed, off by at most e^-threshold.
    th = p["threshold"]
    z = p["beta"] * y
    return ops.where(z > th + math.log1p(math.exp(-th)), 1.0, -ops.expm1(-z))


register(
    Spec(
        name="softplus",
        formula="log(1 + e^(βx)) / β",
        summary="Softplus: a smooth ReLU, log(1 + exp(beta x)) / beta; linear above threshold.",
        math="""
    softplus(x)  = x  if beta * x > threshold,  log(1 + exp(beta * x)) / beta otherwise
    softplus'(x) = 1  if beta * x > threshold,  sigmoid(beta * x) otherwise
    (the switch to x is PyTorch's; threshold=inf gives the pure formula)
""",
        formula_latex=r"\frac{1}{\beta}\log\left(1 + e^{\beta x}\right)",
        derivative_latex=r"\sigma(\beta x)",
        f=_softplus,
        df=_softplus_d,
        params=(
            Param("beta", 1.0, "sharpness; larger is closer to relu", nonzero=True),
            Param("threshold", 20.0, "above beta * x > threshold, return x"),
        ),
        output_df=lambda p: _softplus_out,
        torch_backward=lambda p: lambda g, x: _aten().softplus_backward.grad_input(
            g, x, float(p["beta"]), float(p["threshold"]), grad_input=g
        ),
        native_module=lambda p: _nn().Softplus(beta=p["beta"], threshold=p["threshold"]),
        reference="Dugas et al. 2001",
        example=""">>> gs.activation("softplus")([0.0])
array([0.69314718])""",
    )
)


# --- gelu ------------------------------------------------------------------------------------------
def _gelu(ops, x, p):
    if p["approximate"] == "tanh":
        return x * ops.sigmoid(2.0 * _gelu_u(ops, x))  # 0.5 (1 + tanh u) = sigmoid(2u)
    return x * 0.5 * ops.erfc(-x / SQRT_2)  # x Phi(x); erfc keeps the left tail exact


def _gelu_d(ops, x, p):
    if p["approximate"] == "tanh":
        xc = ops.clip(x, -1e4, 1e4)  # beyond, sigmoid(2u) is 0 or 1 and x^3 would overflow
        s = ops.sigmoid(2.0 * _gelu_u(ops, xc))
        du = GELU_TANH_K * (1.0 + 3.0 * GELU_TANH_C * ops.square(xc))
        return s + 2.0 * xc * s * ops.sigmoid(-2.0 * _gelu_u(ops, xc)) * du
    return 0.5 * ops.erfc(-x / SQRT_2) + x * ops.exp(-0.5 * ops.square(x)) / SQRT_2PI


def _gelu_u(ops, x):
    xc = ops.clip(x, -1e4, 1e4)
    return GELU_TANH_K * (xc + GELU_TANH_C * xc * ops.square(xc))


register(
    Spec(
        name="gelu",
        formula="x·Φ(x)",
        summary="Gaussian error linear unit: x weighted by the normal CDF, x * Phi(x).",
        math="""
    approximate="none":  gelu(x)  = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
                         gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    approximate="tanh":  gelu(x)  = x * (1 + tanh(u)) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3)
                         gelu'(x) = (1 + tanh u) / 2 + x (1 - tanh^2 u) u' / 2,
                                    u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
""",
        formula_latex=r"x\,\Phi(x)",
        derivative_latex=r"\Phi(x) + x\,\varphi(x)",
        f=_gelu,
        df=_gelu_d,
        params=(
            Param(
                "approximate",
                "none",
                "'none' for the exact x Phi(x), 'tanh' for the tanh approximation",
                choices=("none", "tanh"),
            ),
        ),
        torch_backward=lambda p: lambda g, x: _aten().gelu_backward.grad_input(
            g, x, approximate=p["approximate"], grad_input=g
        ),
        native_module=lambda p: _nn().GELU(approximate=p["approximate"]),
        reference="Hendrycks & Gimpel 2016",
        example=""">>> gs.activation("gelu").derivative_bound
1.1289...""",
    )
)


# --- silu, swish, mish -----------------------------------------------------------------------------
def _swish(ops, x, p):
    return x * ops.sigmoid(p["beta"] * x)


def _swish_d(ops, x, p):
    bx = p["beta"] * x
    return ops.sigmoid(bx) * (1.0 + bx * ops.sigmoid(-bx))


def _silu_backward(g, x):
    return _aten().silu_backward.grad_input(g, x, grad_input=g)


register(
    Spec(
        name="silu",
        formula="x·σ(x)",
        summary="Sigmoid linear unit: x * sigmoid(x) (Swish with beta = 1).",
        math="""
    silu(x)  = x * sigmoid(x)
    silu'(x) = sigmoid(x) * (1 + x * (1 - sigmoid(x)))
""",
        formula_latex=r"x\,\sigma(x)",
        derivative_latex=r"\sigma(x)\,\bigl(1 + x\,(1 - \sigma(x))\bigr)",
        f=lambda ops, x, p: _swish(ops, x, {"beta": 1.0}),
        df=lambda ops, x, p: _swish_d(ops, x, {"beta": 1.0}),
        torch_backward=lambda p: _silu_backward,
        native_module=lambda p: _nn().SiLU(),
        reference="Hendrycks & Gimpel 2016; Elfwing, Uchibe & Doya 2018",
        example=""">>> gs.activation("silu").derivative_bound
1.0998...""",
    )
)

register(
    Spec(
        name="swish",
        formula="x·σ(βx)",
        summary="Swish: x * sigmoid(beta x); its module learns beta.",
        math="""
    swish(x)  = x * sigmoid(beta * x)
    swish'(x) = s + beta * x * s * (1 - s),   s = sigmoid(beta * x)
    d swish / d beta = x^2 * s * (1 - s)
""",
        formula_latex=r"x\,\sigma(\beta x)",
        derivative_latex=r"\sigma(\beta x)\,\bigl(1 + \beta x\,(1 - \sigma(\beta x))\bigr)",
        f=_swish,
        df=_swish_d,
        params=(Param("beta", 1.0, "gate sharpness (learned in the module)"),),
        torch_backward=lambda p: _silu_backward if p["beta"] == 1.0 else None,
        native_module=lambda p: _gs_torch().Swish(beta=p["beta"]),
        reference="Ramachandran, Zoph & Le 2017",
        example=""">>> gs.activation("swish", beta=1.702)([1.0])
array([0.84579...])""",
    )
)


def _mish_parts(ops, x):
    """tanh(softplus(x)) and sech^2(softplus(x)), exact and overflow-free on both sides.

    With w = exp(-|x|) (one exp serves both sides), tanh(softplus(x)) = N / (N + D) where
    (N, D) = (w (w + 2), 2) for x <= 0 and (1 + 2w, 2 w^2) for x > 0 (numerator and
    denominator of ((1 + e^x)^2 - 1) / ((1 + e^x)^2 + 1) rescaled), and
    sech^2 = 1 - tanh^2 = D (2N + D) / (N + D)^2: no cancellation anywhere.
    """
    w = ops.exp(-ops.abs(x))
    pos = x > 0
    n = ops.where(pos, 1.0 + 2.0 * w, w * (w + 2.0))
    d = ops.where(pos, 2.0 * ops.square(w), 2.0)
    s = n + d
    return n / s, d * (2.0 * n + d) / ops.square(s)


def _mish(ops, x, p):
    return x * _mish_parts(ops, x)[0]


def _mish_d(ops, x, p):
    tanh_sp, sech2_sp = _mish_parts(ops, x)
    return tanh_sp + x * sech2_sp * ops.sigmoid(x)


register(
    Spec(
        name="mish",
        formula="x·tanh(softplus(x))",
        summary="Mish: x * tanh(softplus(x)), smooth and non-monotonic.",
        math="""
    mish(x)  = x * tanh(softplus(x)),  softplus(x) = log(1 + exp(x))
    mish'(x) = tanh(sp) + x * sech^2(sp) * sigmoid(x),  sp = softplus(x)
""",
        formula_latex=r"x \tanh\bigl(\log(1 + e^{x})\bigr)",
        derivative_latex=r"\tanh(\mathrm{sp}(x)) + x\,\mathrm{sech}^2(\mathrm{sp}(x))\,\sigma(x)",
        f=_mish,
        df=_mish_d,
        native_module=lambda p: _nn().Mish(),
        reference="Misra 2019",
        example=""">>> gs.activation("mish")([1.0])
array([0.86509839])""",
    )
)


# --- squared relu ----------------------------------------------------------------------------------
register(
    Spec(
        name="relu2",
        formula="max(0, x)²",
        summary="Squared ReLU (Primer): relu(x)^2; f' = 2 relu(x) is unbounded.",
        math="""
    relu2(x)  = x^2  if x > 0,  0 if x <= 0
    relu2'(x) = 2x   if x > 0,  0 if x <= 0   (continuous: no kink convention needed)
""",
        formula_latex=r"\max(0, x)^2",
        derivative_latex=r"2 \max(0, x)",
        f=lambda ops, x, p: ops.square(ops.relu(x)),
        df=lambda ops, x, p: 2.0 * ops.relu(x),
        output_df=lambda p: lambda ops, y, p: 2.0 * ops.sqrt(ops.relu(y)),
        reference="So et al. 2021, Primer",
        example=""">>> gs.activation("relu2").derivative([-1.0, 3.0])
array([0., 6.])""",
    )
)


# --- gated linear units ----------------------------------------------------------------------------
def _gated(name: str, inner: str, example_out: str) -> Spec:
    # no f / df of its own: GatedActivation evaluates through the inner entry
    return Spec(
        name=name,
        formula=f"{inner}(a)·b",
        summary=f"Gated linear unit with {inner}: {inner}(a) * b; the module splits x in halves.",
        math=f"""
    {name}(a, b) = {inner}(a) * b
    d/da = {inner}'(a) * b,   d/db = {inner}(a)
    module: a, b = x.chunk(2, dim=-1); return {inner}(a) * b   # (..., 2n) -> (..., n)
""",
        formula_latex=rf"\mathrm{{{inner}}}(a) \odot b",
        derivative_latex=rf"\frac{{\partial}}{{\partial a}} = \mathrm{{{inner}}}'(a)\,b,\quad "
        rf"\frac{{\partial}}{{\partial b}} = \mathrm{{{inner}}}(a)",
        inner=inner,
        reference="Shazeer 2020, GLU Variants Improve Transformer",
        example=f""">>> gs.activation("{name}")([1.0], [2.0])  # {inner}(1) * 2
{example_out}""",
    )


register(_gated("reglu", "relu", "array([2.])"))
register(_gated("geglu", "gelu", "array([1.68268949])"))
register(_gated("swiglu", "silu", "array([1.46211716])"))
