"""Experiment ``derivatives``: verdict functions with planted numbers, and the real checks."""

from __future__ import annotations

import numpy as np
import pytest

from gradsight.lab.experiments import derivatives as d


def test_relu_kink_verdict_supported_when_every_spelling_gives_zero():
    verdict, text = d.relu_kink_verdict(0.0, {"torch.relu": 0.0, "x * (x > 0)": 0.0})
    assert verdict == "supported"
    assert "every implementation" in text


def test_relu_kink_verdict_nuanced_when_spellings_disagree_at_zero():
    verdict, text = d.relu_kink_verdict(0.0, {"torch.relu": 0.0, "torch.clamp(x, min=0)": 1.0})
    assert verdict == "nuanced"
    assert "torch.clamp(x, min=0) gives 1" in text


@pytest.mark.parametrize(
    ("error", "at_zero", "fragment"),
    [
        (1e-3, {"torch.relu": 0.0}, "differs from the claim"),  # wrong away from the kink
        (0.0, {"torch.relu": 1.0}, "derivative 1.0 at x = 0"),  # framework convention differs
    ],
)
def test_relu_kink_verdict_refuted(error, at_zero, fragment):
    verdict, text = d.relu_kink_verdict(error, at_zero)
    assert verdict == "refuted"
    assert fragment in text


def test_bound_verdict_flips_when_a_maximum_exceeds_the_bound():
    assert d.bound_verdict({"sigmoid": 0.25, "tanh": 1.0}, {"sigmoid": 0.25, "tanh": 1.0})[0] == "supported"
    verdict, text = d.bound_verdict({"sigmoid": 0.26, "tanh": 1.0}, {"sigmoid": 0.25, "tanh": 1.0})
    assert verdict == "refuted" and "0.26" in text


def test_formula_verdict_tolerance():
    assert d.formula_verdict({"a": 1e-13})[0] == "supported"
    assert d.formula_verdict({"a": 1e-6})[0] == "refuted"
    assert d.formula_verdict({"a": float("nan")})[0] == "refuted"


def test_relu_spellings_differentiate_differently_at_zero():
    at0 = {k: float(d.autograd_derivative(f, np.array([0.0]))[0]) for k, f in d.relu_spellings().items()}
    assert at0["torch.relu"] == 0.0
    assert at0["torch.clamp(x, min=0)"] == 1.0
    assert at0["torch.maximum(x, 0)"] == 0.5


def test_checks_on_the_real_catalog():
    relu, _, _ = d.check_relu()
    assert relu.evidence["max_error_x_nonzero"] == 0.0
    assert relu.evidence["catalog_at_0"] == 0.0
    assert relu.evidence["catalog_at_0_with_derivative_at_zero_1"] == 1.0
    bounds, _, _ = d.check_bounds()
    assert bounds.verdict == "supported"
    assert bounds.evidence["max_derivative"]["sigmoid"] == pytest.approx(0.25, abs=1e-12)
    assert bounds.evidence["argmax_x"] == {"sigmoid": 0.0, "tanh": 0.0}
    neg, _, _ = d.check_negative_side()
    assert neg.verdict == "supported"
    assert neg.evidence["autograd_at_0"]["elu(0.5)"] == 0.5
    scratch, _, _ = d.check_scratch()
    assert scratch.verdict == "supported"
    assert scratch.evidence["max_error_backward"] == 0.0 and scratch.evidence["exact_zeros"] > 0
