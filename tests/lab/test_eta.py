"""The lab's time estimate: typical times scaled by the pace so far (fake timings only)."""

from __future__ import annotations

import pytest

from gradsight.errors import GradsightError
from gradsight.lab import registry
from gradsight.lab.eta import PRIOR_S, Estimate, describe


def test_before_anything_ran_the_estimate_is_the_sum_of_typical_times():
    est = Estimate({"a": 10.0, "b": 100.0, "c": 40.0})
    assert est.total == est.remaining() == 150.0 and est.pace == 1.0


def test_the_pace_of_finished_experiments_scales_what_is_left():
    est = Estimate({"a": 100.0, "b": 100.0, "c": 50.0}, prior_s=0.0)
    est.finish("a", 200.0)  # twice as slow as typical
    assert est.pace == 2.0 and est.remaining() == 2.0 * 150.0
    est.finish("b", 50.0)  # then twice as fast: 250 s for 200 typical
    assert est.pace == pytest.approx(1.25) and est.remaining() == pytest.approx(62.5)
    est.finish("c", 10.0)
    assert est.remaining() == 0.0 and not est.left


def test_the_prior_keeps_a_tiny_slow_experiment_from_tripling_the_estimate():
    est = Estimate({"tiny": 1.0, "big": 600.0})
    est.finish("tiny", 3.0)  # 3x its typical time, but only 2 s late
    assert est.pace == pytest.approx((3.0 + PRIOR_S) / (1.0 + PRIOR_S))
    assert 600.0 < est.remaining() < 650.0
    plain = Estimate({"tiny": 1.0, "big": 600.0}, prior_s=0.0)
    plain.finish("tiny", 3.0)
    assert plain.remaining() == pytest.approx(1800.0)


def test_a_failed_experiment_is_not_waited_for_and_does_not_set_the_pace():
    est = Estimate({"a": 100.0, "b": 100.0}, prior_s=0.0)
    est.finish("a", 1.0, completed=False)  # failed after 1 s
    assert est.pace == 1.0 and est.remaining() == 100.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda e: e.finish("nope", 1.0), "experiment 'nope' is not part of this estimate; known: a"),
        (lambda e: (e.finish("a", 1.0), e.finish("a", 1.0)), "'a' was already marked finished"),
        (lambda e: e.finish("a", -1.0), "seconds must be >= 0, got -1.0"),
    ],
)
def test_errors(call, match):
    with pytest.raises(GradsightError, match=match):
        call(Estimate({"a": 5.0}))


def test_bad_typical_times_are_refused():
    with pytest.raises(GradsightError, match=r"typical times must be >= 0 seconds, got \{'a': -1.0\}"):
        Estimate({"a": -1.0})
    with pytest.raises(GradsightError, match=r"typical_s must be \(quick seconds, full seconds\)"):
        registry.experiment("x", "X", 1, typical_s=(1.0, -2.0))


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.4, "about 0 s"), (42.4, "about 42 s"), (89.4, "about 89 s"), (90.0, "about 2 min"),
     (149.0, "about 2 min"), (150.0, "about 3 min"), (2220.0, "about 37 min")],
)
def test_describe(seconds, words):
    assert describe(seconds) == words


def test_every_registered_experiment_carries_measured_typical_times():
    for exp in registry.registered():
        assert exp.typical_quick_s is not None and exp.typical_full_s is not None, exp.name
        assert 0 < exp.typical_quick_s <= exp.typical_full_s, exp.name
        assert exp.typical_s(True) == exp.typical_quick_s and exp.typical_s(False) == exp.typical_full_s


def test_unmeasured_times_fall_back_to_the_quick_budget():
    exp = registry.Experiment("x", "X", lambda q, p: None, 1, 20.0)
    assert exp.typical_s(True) == 20.0 and exp.typical_s(False) == registry.FULL_OVER_QUICK * 20.0
