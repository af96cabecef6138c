"""Experiment ``cost``: table and verdict logic fed injected timings (no wall-clock asserts)."""

from __future__ import annotations

import pytest

from gradsight.lab.experiments import cost


def test_quartiles():
    assert cost.quartiles([4.0, 1.0, 3.0, 2.0, 5.0]) == (2.0, 3.0, 4.0)
    assert cost.quartiles([7.0]) == (7.0, 7.0, 7.0)


def test_paired_ratios_are_per_round():
    times = {"relu": [1.0, 2.0], "tanh": [3.0, 4.0]}
    assert cost.paired_ratios(times, "relu") == {"relu": [1.0, 1.0], "tanh": [3.0, 2.0]}


def test_paired_ratios_need_equal_rounds():
    with pytest.raises(ValueError):
        cost.paired_ratios({"relu": [1.0, 2.0], "tanh": [3.0]}, "relu")


def test_summarize_orders_cheapest_first_and_scales_to_copy():
    n = 1000
    times = {
        "copy": [1e-6, 1e-6, 1e-6],
        "relu": [2e-6, 2e-6, 2e-6],
        "tanh": [8e-6, 6e-6, 10e-6],
        "sigmoid": [4e-6, 4e-6, 4e-6],
    }
    rows = cost.summarize(times, n)
    assert [r["op"] for r in rows] == ["copy", "relu", "sigmoid", "tanh"]
    by = {r["op"]: r for r in rows}
    assert by["relu"]["x_copy"] == pytest.approx(2.0)
    assert by["tanh"]["x_relu"] == pytest.approx(4.0)
    assert by["tanh"]["ns_per_element"] == pytest.approx(8.0)
    assert (by["tanh"]["x_relu_q25"], by["tanh"]["x_relu_q75"]) == pytest.approx((3.5, 4.5))


def _ratios(sig, tanh, gelu):
    return {"sigmoid": sig, "tanh": tanh, "gelu": gelu}


def test_cost_verdict_supported_when_every_rival_is_reliably_slower():
    verdict, text, ev = cost.cost_verdict(_ratios([2.0, 2.2, 1.9], [5.0, 6.0, 7.0], [3.0, 2.5, 3.5]))
    assert verdict == "supported"
    assert ev["status"] == {"sigmoid": "costlier", "tanh": "costlier", "gelu": "costlier"}
    assert ev["tanh_over_relu"] == 6.0


def test_cost_verdict_nuanced_when_one_rival_is_within_noise():
    verdict, text, ev = cost.cost_verdict(_ratios([0.8, 1.2, 1.0, 0.9], [5.0] * 4, [3.0] * 4))
    assert verdict == "nuanced"
    assert ev["status"]["sigmoid"] == "within noise"
    assert "not than sigmoid (within noise)" in text


def test_cost_verdict_refuted_when_relu_is_never_cheaper():
    verdict, _, ev = cost.cost_verdict(_ratios([0.5] * 3, [1.0] * 3, [0.9, 1.1, 1.0]))
    assert verdict == "refuted"
    assert ev["status"]["sigmoid"] == "cheaper"


def test_cost_verdict_needs_every_rival():
    with pytest.raises(ValueError, match="gelu"):
        cost.cost_verdict({"sigmoid": [2.0], "tanh": [2.0]})


def test_measure_structure_is_interleaved_and_complete():
    t = cost.measure(["relu", "tanh"], 256, rounds=3)
    assert set(t) == {"forward", "forward_backward"}
    for phase in t.values():
        assert set(phase) == {"copy", "relu", "tanh", "linear256"}
        assert all(len(v) == 3 and min(v) > 0 for v in phase.values())


def test_activation_names_leave_out_gated_forms():
    names = cost.activation_names(quick=False)
    assert "relu" in names and "gelu" in names
    assert not {"swiglu", "geglu", "reglu"} & set(names)
    assert cost.activation_names(quick=True) == list(cost.QUICK_ACTIVATIONS)
