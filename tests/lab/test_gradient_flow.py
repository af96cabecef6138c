"""Theory against measurement at initialization: per-layer gradient decay of wide nets.

Tolerance. For width N the squared signal ‖δ_l‖² of one sample is a sum over N units, so each
layer's factor fluctuates by O(1/√N) around √χ₁ and the log of the product over L layers
wanders like a random walk, σ ≈ √(L·2/N) (Hanin 2018). Over the batch these fluctuations are
shared (one weight draw), so we average 3 networks. At N = 384, L = 12 that gives
σ(log ratio) ≈ 0.25/√3 ≈ 0.14 over 10 layers, i.e. ~1.5 % per layer. We allow 4 % on the
per-layer factor (about 2.5σ) — and show that a planted wrong σ_w² is rejected by the same bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradsight import theory
from gradsight.errors import GradsightError
from gradsight.lab import data
from gradsight.lab.experiments.gradient_flow import VANISH, measure_flow

TOL = 0.04  # relative, on the per-layer decay factor (see module docstring)


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


@pytest.mark.parametrize(
    ("activation", "init", "sw2"),
    [
        ("tanh", "pytorch_default", 1 / 3),
        ("sigmoid", "xavier", 1.0),
        ("relu", "xavier", 1.0),
        ("relu", "he", 2.0),
    ],
)
def test_measured_decay_matches_sqrt_chi1(
    digits: data.Dataset, activation: str, init: str, sw2: float
) -> None:
    m = measure_flow(activation, 12, init, width=384, data=digits, batch=128, seeds=3)
    assert m.weight_var == pytest.approx(sw2)
    measured = m.decay_factor()
    predicted = m.decay_factor(m.theory_delta)
    assert measured == pytest.approx(predicted, rel=TOL)
    # at these settings the net sits at (or converges fast to) the fixed point, so the
    # prediction is √χ₁ itself
    assert predicted == pytest.approx(math.sqrt(m.chi1), rel=0.02)


def test_relu_he_chi1_is_one_and_gradients_do_not_decay(digits: data.Dataset) -> None:
    m = measure_flow("relu", 12, "he", width=384, data=digits, batch=128, seeds=3)
    assert m.chi1 == pytest.approx(1.0, abs=1e-12)
    assert m.decay_factor() == pytest.approx(1.0, rel=TOL)
    assert m.vanish_depth() is None


def test_a_planted_wrong_weight_variance_is_rejected(digits: data.Dataset) -> None:
    # the net is xavier (σ_w² = 1); telling theory σ_w² = 2 (He) predicts √(0.101) = 0.318
    # per layer for sigmoid instead of 0.236 — far outside the tolerance
    m = measure_flow(
        "sigmoid", 12, "xavier", width=384, data=digits, batch=128, seeds=3, weight_var=2.0
    )
    assert abs(m.decay_factor() / m.decay_factor(m.theory_delta) - 1) > 3 * TOL


def test_sigmoid_20_layers_vanish_and_per_layer_table(digits: data.Dataset) -> None:
    m = measure_flow("sigmoid", 20, "pytorch_default", width=128, data=digits, batch=64)
    rows = m.table()
    assert [r["layer"] for r in rows] == list(range(1, 21))
    assert rows[-1]["ratio"] == pytest.approx(1.0)  # anchored at the last layer
    k = m.vanish_depth()
    assert k is not None and m.relative_weight_grad[m.depth - 1 - k] < VANISH
    assert np.all(m.relative_weight_grad[m.depth - k :] >= VANISH)
    # σ_w² = 1/3: χ₁ ≈ 0.02, so 20 layers shrink the signal by ~√0.02^19 ≈ 1e-16
    assert m.delta[0] / m.delta[-1] < 1e-12


def test_profile_from_q1_reproduces_fixed_point_profile_when_started_there() -> None:
    q = theory.q_star("sigmoid", 1.0, 0.0)
    np.testing.assert_allclose(
        theory.gradient_profile("sigmoid", 8, 1.0, 0.0, q1=q),
        theory.gradient_profile("sigmoid", 8, 1.0, 0.0),
        rtol=1e-9,
    )
    many = theory.gradient_profile("sigmoid", 8, 1.0, 0.0, q1=np.array([q, q]))
    assert many.shape == (2, 8)


def test_bad_arguments(digits: data.Dataset) -> None:
    with pytest.raises(GradsightError, match="unknown init 'xavir'; did you mean 'xavier'"):
        measure_flow("tanh", 3, "xavir", data=digits)
    with pytest.raises(GradsightError, match="depth=0"):
        measure_flow("tanh", 0, data=digits)
