"""Experiment ``training_speed``: the comparison and verdict logic with planted step counts."""

from __future__ import annotations

import pytest

from gradsight.lab.experiments import training_speed as ts


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([100, 120, 110], [300, None, 250], "a"),  # every a seed beats every b seed
        ([300, 400, 350], [100, 120, 110], "b"),
        ([100, 300, 200], [150, 250, 200], "tie"),  # seed ranges overlap
        ([None, None], [None, None], "neither"),
        # censored: a seed that never reached the target is slower than any that did
        ([100, None], [None, None], "a"),
        ([150, 200, None], [None, None, None], "a"),  # 2 of 3 vs 0 of 3: a faster, not a tie
        ([None, None, None], [150, 200, None], "b"),
        ([100, None, None], [150, 160, 170], "tie"),  # a once and early, b always and later
        ([100, 110, None], [150, 160, None], "a"),  # same count reached, ranges apart
        ([100, 200], [None, None], "a"),
    ],
    ids=["a-all", "b-all", "overlap", "neither", "1of2-vs-0", "2of3-vs-0", "0-vs-2of3",
         "early-once-vs-always", "same-count-apart", "a-only"],
)
def test_compare(a, b, expected):
    assert ts.compare(a, b) == expected


def test_best_lr_prefers_fewest_median_steps_then_more_reached():
    assert ts.best_lr({0.01: [None, None, None], 0.1: [200, 220, 180], 1.0: [100, None, None]}) == 0.1
    assert ts.best_lr({0.01: [None, None], 0.1: [None, None]}) == 0.01  # ties: smaller lr
    assert ts.best_lr({0.01: [100, None, 300], 0.1: [None, 100, None]}) == 0.01


def test_median_steps_counts_never_reached_as_infinite():
    assert ts.median_steps([100, None, None]) == float("inf")
    assert ts.median_steps([100, 200, None]) == 200


def test_speed_verdict_flips_with_planted_outcomes():
    assert ts.speed_verdict({"s1": "a", "s2": "a"})[0] == "supported"
    assert ts.speed_verdict({"s1": "b", "s2": "tie"})[0] == "refuted"
    verdict, text = ts.speed_verdict({"s1": "a", "s2": "b", "s3": "tie", "s4": "neither"})
    assert verdict == "nuanced"
    assert "ReLU faster in s1" in text and "sigmoid faster in s2" in text
    assert "no clear difference in s3" in text and "Neither reached the target in: s4" in text


def test_speed_verdict_ignores_settings_where_neither_trained():
    assert ts.speed_verdict({"s1": "a", "s2": "neither"})[0] == "supported"
    verdict, text = ts.speed_verdict({"s1": "neither"})
    assert verdict == "nuanced" and "any setting" in text


def test_matched_init():
    assert ts.matched_init("sigmoid") == "xavier"
    assert ts.matched_init("tanh") == "xavier"
    assert ts.matched_init("relu") == "he"
    assert ts.matched_init("gelu") == "he"


def test_quick_grid_still_settles_the_claim():
    # relu and sigmoid, both optimizers, at least 3 seeds, at least two depths
    assert {"relu", "sigmoid"} <= set(ts.QUICK.activations)
    assert set(ts.QUICK.optimizers) == {"momentum", "adam"}
    assert ts.QUICK.seeds >= 3 and len(ts.QUICK.depths) >= 2
    assert set(ts.FULL.depths) == {5, 10, 20} and set(ts.FULL.datasets) == {"digits", "mnist1d"}
    assert len(ts.FULL.activations) == 7
