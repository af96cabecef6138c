"""Mean-field theory against closed forms, an independent mpmath reference, and Monte Carlo."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from gradsight import theory
from gradsight.errors import GradsightError


class Linear:
    """A duck-typed activation f(x) = a·x: the length map is q ↦ σ_w² a² q + σ_b² exactly."""

    name = "linear"

    def __init__(self, a: float = 1.0) -> None:
        self.a = a

    def __call__(self, x):
        return self.a * np.asarray(x)

    def derivative(self, x):
        return np.full_like(np.asarray(x, dtype=np.float64), self.a)


@pytest.mark.parametrize("q", [0.01, 1.0, 7.5])
def test_gaussian_expectation_matches_moments(q: float) -> None:
    assert theory.gaussian_expectation(lambda h: h**2, q) == pytest.approx(q, rel=1e-13)
    assert theory.gaussian_expectation(lambda h: h**4, q) == pytest.approx(3 * q**2, rel=1e-12)
    # a kink at 0: E[relu(h)^2] = q/2 exactly because 0 is a quadrature endpoint
    assert theory.gaussian_expectation(lambda h: np.maximum(h, 0) ** 2, q) == pytest.approx(
        q / 2, rel=1e-13
    )
    assert theory.gaussian_expectation(lambda h: (h > 0) * 1.0, q) == pytest.approx(0.5, abs=1e-13)


def test_relu_at_he_variance_is_exactly_critical() -> None:
    assert theory.chi1("relu", 2.0, 0.0) == pytest.approx(1.0, abs=1e-12)
    mf = theory.mean_field("relu", 2.0, 0.0)
    assert mf.phase == "critical" and mf.grad_factor == 1.0 and mf.depth_scale == math.inf


@pytest.mark.parametrize("weight_var", [0.5, 1.0, 1 / 3, 3.0])
def test_relu_chi1_is_half_the_weight_variance(weight_var: float) -> None:
    # E[relu'(h)^2] = P(h > 0) = 1/2 at every q, so χ₁ = σ_w²/2 whatever q* is
    assert theory.chi1("relu", weight_var, 0.0) == pytest.approx(weight_var / 2, rel=1e-11)


def test_leaky_relu_chi1_closed_form() -> None:
    slope = 0.01  # the catalog's default negative_slope, as in PyTorch
    assert theory.chi1("leaky_relu", 2.0, 0.0) == pytest.approx(2.0 * (1 + slope**2) / 2, rel=1e-11)


def test_tanh_at_unit_variance_without_bias_is_critical() -> None:
    assert theory.q_star("tanh", 1.0, 0.0) == 0.0
    assert theory.chi1("tanh", 1.0, 0.0) == pytest.approx(1.0, abs=1e-10)
    assert theory.mean_field("tanh", 1.0, 0.0).phase == "critical"


@pytest.mark.parametrize("weight_var", [0.25, 0.5, 0.9])
def test_tanh_ordered_phase_collapses_to_zero_with_chi1_equal_weight_var(weight_var: float) -> None:
    # q* = 0, so χ₁ = σ_w² · tanh'(0)² = σ_w²
    assert theory.q_star("tanh", weight_var, 0.0) == 0.0
    assert theory.chi1("tanh", weight_var, 0.0) == pytest.approx(weight_var, rel=1e-9)


def _mp_reference(f, fp, weight_var: float, bias_var: float) -> tuple[float, float]:
    """q* and χ₁ by mpmath quadrature over the real line and plain fixed-point iteration."""
    mpmath.mp.dps = 30

    def expect(g, q):
        s = mpmath.sqrt(q)
        return mpmath.quad(lambda z: g(s * z) * mpmath.npdf(z), [-mpmath.inf, 0, mpmath.inf])

    q = mpmath.mpf(1)
    for _ in range(500):
        q_new = weight_var * expect(lambda h: f(h) ** 2, q) + bias_var
        if abs(q_new - q) < mpmath.mpf(10) ** -25:
            break
        q = q_new
    return float(q), float(weight_var * expect(lambda h: fp(h) ** 2, q))


@pytest.mark.parametrize(("weight_var", "bias_var"), [(1.0, 0.0), (4.0, 0.1), (1 / 3, 1 / 768)])
def test_sigmoid_matches_independent_mpmath_reference(weight_var: float, bias_var: float) -> None:
    sig = lambda h: 1 / (1 + mpmath.exp(-h))  # noqa: E731
    q_ref, chi_ref = _mp_reference(sig, lambda h: sig(h) * (1 - sig(h)), weight_var, bias_var)
    assert theory.q_star("sigmoid", weight_var, bias_var) == pytest.approx(q_ref, rel=1e-9)
    assert theory.chi1("sigmoid", weight_var, bias_var) == pytest.approx(chi_ref, rel=1e-9)


def test_sigmoid_value_at_xavier() -> None:
    # pinned from the mpmath reference above: q* = 0.26468687518…, χ₁ = 0.0557207067697…
    mf = theory.mean_field("sigmoid", 1.0, 0.0)
    assert mf.q_star == pytest.approx(0.2646868751818894, rel=1e-9)
    assert mf.chi1 == pytest.approx(0.055720706769700465, rel=1e-9)
    assert mf.phase == "ordered"
    assert mf.depth_scale == pytest.approx(-1 / math.log(mf.chi1), rel=1e-12)


def test_tanh_chaotic_phase() -> None:
    mf = theory.mean_field("tanh", 2.0, 0.0)
    assert mf.phase == "chaotic" and mf.chi1 > 1
    assert mf.depth_scale == pytest.approx(1 / math.log(mf.chi1), rel=1e-12)


def test_duck_typed_linear_activation_has_closed_form_length_map() -> None:
    act = Linear(0.5)
    assert theory.length_map(act, 2.0, 3.0, 0.1) == pytest.approx(3.0 * 0.25 * 2.0 + 0.1, rel=1e-13)
    assert theory.chi1(act, 3.0, 0.1) == pytest.approx(0.75, rel=1e-13)
    # q ↦ 0.75 q + 0.1 has the fixed point 0.4
    assert theory.q_star(act, 3.0, 0.1) == pytest.approx(0.4, rel=1e-10)


def test_gradient_profile_at_fixed_point_is_geometric() -> None:
    chi = theory.chi1("sigmoid", 1.0, 0.0)
    prof = theory.gradient_profile("sigmoid", 6, 1.0, 0.0)
    np.testing.assert_allclose(prof, np.sqrt(chi) ** np.arange(5, -1, -1), rtol=1e-12)
    np.testing.assert_allclose(
        theory.gradient_profile("relu", 20, 2.0, 0.0), np.ones(20), rtol=1e-12
    )


def test_gradient_profile_from_q1_uses_layer_dependent_chi() -> None:
    # linear activation, σ_b² = 0: every layer has χ = σ_w² a² regardless of q
    prof = theory.gradient_profile(Linear(1.0), 4, 0.25, 0.0, q1=3.0)
    np.testing.assert_allclose(prof, [0.125, 0.25, 0.5, 1.0], rtol=1e-12)


@pytest.mark.parametrize("q", [0.5, 4.0, 25.0])
def test_saturation_fraction_closed_forms(q: float) -> None:
    # tanh'(h) = 1 − tanh²(h) < 0.01  ⇔  |h| > atanh(√0.99); sigmoid(h) = (1 + tanh(h/2))/2
    t = math.atanh(math.sqrt(0.99))
    assert theory.saturation_fraction("tanh", q) == pytest.approx(
        math.erfc(t / math.sqrt(2 * q)), abs=2e-6
    )
    assert theory.saturation_fraction("sigmoid", q) == pytest.approx(
        math.erfc(2 * t / math.sqrt(2 * q)), abs=2e-6
    )
    assert theory.saturation_fraction("relu", q) == pytest.approx(0.5, abs=1e-6)


def test_born_dead_formula_exact_values() -> None:
    assert theory.born_dead_probability(1, 1) == pytest.approx(0.5, abs=1e-15)
    assert theory.born_dead_probability(3, 1) == pytest.approx(1 - 0.5**3, abs=1e-15)
    assert theory.born_dead_probability(10, 2) == pytest.approx(1 - 0.75**10, abs=1e-15)
    p = theory.born_dead_probability(np.array([5, 10, 50]), 4)
    np.testing.assert_allclose(p, 1 - (15 / 16) ** np.array([5, 10, 50]), rtol=1e-13)


@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_born_dead_formula_agrees_with_monte_carlo(width: int) -> None:
    est = theory.born_dead_monte_carlo(max_depth=30, width=width, trials=3000, n_inputs=16, seed=1)
    formula = theory.born_dead_probability(np.arange(1, 31), width)
    # binomial standard error of the formula's p, 4.5σ over 30 correlated depths
    sigma = np.sqrt(formula * (1 - formula) / 3000) + 1e-12
    assert np.all(np.abs(est.point_dead - formula) <= 4.5 * sigma + 1e-3)
    # dead on every input implies dead on the first one; both only grow with depth
    assert np.all(est.domain_dead <= est.point_dead)
    assert np.all(np.diff(est.point_dead) >= 0) and np.all(np.diff(est.domain_dead) >= 0)


def test_born_dead_monte_carlo_catches_a_wrong_formula() -> None:
    # a planted fault: 2^{-(width+1)} per layer instead of 2^{-width} must be rejected
    est = theory.born_dead_monte_carlo(max_depth=20, width=2, trials=3000, seed=2)
    wrong = theory.born_dead_probability(np.arange(1, 21), 3)
    sigma = np.sqrt(wrong * (1 - wrong) / 3000)
    assert np.any(np.abs(est.point_dead - wrong) > 4.5 * sigma + 1e-3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: theory.chi1("rellu", 2.0, 0.0), "did you mean 'relu'"),
        (lambda: theory.chi1("relu", -1.0, 0.0), r"weight_var > 0 .* weight_var=-1.0"),
        (lambda: theory.chi1("relu", 2.0, -0.1), r"bias_var=-0.1"),
        (lambda: theory.chi1(object(), 2.0, 0.0), "catalog name or an object"),
        (lambda: theory.chi1("swiglu", 2.0, 0.0), "'swiglu' is gated"),
        (
            lambda: theory.gaussian_expectation(np.square, -1.0),
            "q must be finite and >= 0, got -1.0",
        ),
        (lambda: theory.born_dead_probability(0, 3), "depth and width must be >= 1"),
        (lambda: theory.gradient_profile("relu", 0, 2.0), "depth must be >= 1, got 0"),
    ],
)
def test_bad_input_raises_gradsight_error(call, match: str) -> None:
    with pytest.raises(GradsightError, match=match):
        call()


def test_q_star_special_cases() -> None:
    # ReLU at σ_w² = 2: the length map is the identity, every q is a fixed point
    assert theory.q_star("relu", 2.0, 0.0, q0=3.7) == 3.7
    # ReLU above 2 and leaky ReLU at 2 grow without bound (the latter by a factor 1.0001 a layer)
    assert theory.q_star("relu", 3.0, 0.0) == math.inf
    assert theory.q_star("leaky_relu", 2.0, 0.0) == math.inf
    # ... and χ₁ is still exact there, because it does not depend on q for ReLU
    assert theory.chi1("relu", 3.0, 0.0) == pytest.approx(1.5, rel=1e-11)
    # below 2 the signal dies out: q* = 0 and χ₁ = σ_w²/2 (not f'(0)² = 0)
    assert theory.q_star("relu", 1.0, 0.0) == 0.0
    assert theory.chi1("relu", 1.0, 0.0) == pytest.approx(0.5, rel=1e-11)


def test_q_sequence_follows_the_length_map() -> None:
    qs = theory.q_sequence(Linear(1.0), 1.0, 4, 2.0, 0.5)
    np.testing.assert_allclose(qs, [1.0, 2.5, 5.5, 11.5], rtol=1e-12)
