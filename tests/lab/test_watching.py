"""Watched training in the lab: each ensemble member's monitor reports what a plain watched loop
of that member alone reports, and watching never changes what is trained (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from gradsight.lab import data, ensemble
from gradsight.lab.ensemble import train_ensemble
from gradsight.lab.models import MLP
from gradsight.lab.training import TrainConfig, train
from gradsight.lab.watching import WatchSummary, findings_count, pooled_median

NUMBERS = ("dead_fraction", "saturated_fraction", "grad_norm", "mean_derivative",
           "weight_grad_norm", "update_ratio")


@pytest.fixture(scope="module")
def digits64() -> data.Dataset:
    return data.load("digits").to(torch.float64)


def _net(seed: int, activation: str = "relu") -> MLP:
    return MLP(64, 10, depth=3, width=24, activation=activation, init="he", seed=seed).double()


def _assert_same_sites(a: list[dict], b: list[dict]) -> None:
    assert [r["name"] for r in a] == [r["name"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra["units"] == rb["units"] and ra["activation"] == rb["activation"]
        for key in NUMBERS:
            if rb[key] is None:
                assert ra[key] is None, (ra["name"], key)
            else:
                assert ra[key] == pytest.approx(rb[key], rel=1e-9, abs=1e-12), (ra["name"], key)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_each_member_reports_what_its_plain_watched_loop_reports(
    digits64: data.Dataset, activation: str
) -> None:
    cfg = TrainConfig(steps=30, batch_size=32, optimizer="momentum", eval_every=15,
                      watch=True, watch_every=4)
    lrs, seeds = [0.01, 0.1, 0.6], [3, 4, 5]
    ens = train_ensemble([_net(k, activation) for k in range(3)], digits64, cfg, lrs=lrs, seeds=seeds)
    for k in range(3):
        single = train(_net(k, activation), digits64,
                       TrainConfig(**{**cfg.__dict__, "lr": lrs[k], "seed": seeds[k]}))
        a, b = ens[k].watch, single.watch
        assert a is not None and b is not None
        assert a.logged_steps == b.logged_steps == 8  # steps 0, 4, ..., 28
        assert a.findings == b.findings and a.errors == b.errors == []
        _assert_same_sites(a.layers, b.layers)
        _assert_same_sites(a.start, b.start)
        assert a.layers[0]["update_ratio"] is not None  # the mirrored update was measured
    # the members differ: the summaries are each member's own
    assert len({ens[k].watch.layers[-1]["grad_norm"] for k in range(3)}) == 3


def _final_params(monkeypatch: pytest.MonkeyPatch, models: list[MLP], ds: data.Dataset,
                  cfg: TrainConfig, lrs: list[float]) -> tuple[dict[str, torch.Tensor], list]:
    """Train and return the stacked parameters the trainer updated in place, and the results."""
    captured: list[dict[str, torch.Tensor]] = []
    real = ensemble.stack_module_state

    def spy(ms):
        params, buffers = real(ms)
        captured.append(params)
        return params, buffers

    monkeypatch.setattr(ensemble, "stack_module_state", spy)
    runs = train_ensemble(models, ds, cfg, lrs=lrs)
    monkeypatch.setattr(ensemble, "stack_module_state", real)
    (params,) = captured
    return {n: p.detach().clone() for n, p in params.items()}, runs


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_watching_does_not_change_the_trained_parameters(
    digits64: data.Dataset, monkeypatch: pytest.MonkeyPatch, optimizer: str
) -> None:
    cfg = TrainConfig(steps=25, batch_size=32, optimizer=optimizer, weight_decay=1e-3,
                      eval_every=5, watch_every=3)
    lrs = [0.01, 0.05] if optimizer == "momentum" else [1e-3, 1e-2]
    plain, runs_plain = _final_params(monkeypatch, [_net(0), _net(1)], digits64, cfg, lrs)
    cfg_w = TrainConfig(**{**cfg.__dict__, "watch": True})
    watched, runs_watched = _final_params(monkeypatch, [_net(0), _net(1)], digits64, cfg_w, lrs)
    assert all(torch.equal(plain[n], watched[n]) for n in plain)  # bit for bit
    assert all(r.watch is None for r in runs_plain) and all(r.watch for r in runs_watched)
    for a, b in zip(runs_plain, runs_watched, strict=True):
        assert [p.test_loss for p in a.history] == [p.test_loss for p in b.history]
    # and the spy sees a real difference when the training does differ
    other, _ = _final_params(monkeypatch, [_net(0), _net(1)], digits64, cfg, [lrs[0], 1.01 * lrs[1]])
    assert not torch.equal(other["out.weight"], plain["out.weight"])


def test_plain_training_is_unchanged_by_watching(digits64: data.Dataset) -> None:
    a, b = _net(0), _net(0)
    cfg = TrainConfig(steps=25, batch_size=32, optimizer="adam", lr=1e-2, eval_every=25)
    train(a, digits64, cfg)
    train(b, digits64, TrainConfig(**{**cfg.__dict__, "watch": True, "watch_every": 2}))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_a_diverging_member_reports_non_finite_like_its_plain_loop(digits64: data.Dataset) -> None:
    cfg = TrainConfig(steps=12, batch_size=32, eval_every=6, watch=True, watch_every=5)
    ens = train_ensemble([_net(0), _net(1)], digits64, cfg, lrs=[1e8, 0.05])
    single = train(_net(0), digits64, TrainConfig(**{**cfg.__dict__, "lr": 1e8}))
    assert ens[0].diverged and single.diverged
    assert "non_finite" in single.watch.findings
    assert ens[0].watch.findings == single.watch.findings
    assert ens[0].watch.logged_steps == single.watch.logged_steps
    assert not ens[1].diverged and "non_finite" not in ens[1].watch.findings


def _summary(dead: list[float], units: list[int], findings: list[str]) -> WatchSummary:
    rows = [{"name": f"acts.{i}", "activation": "relu", "units": u, "dead_fraction": d,
             "saturated_fraction": 0.0, "grad_norm": 1.0, "mean_derivative": 0.5 - d / 2,
             "weight_grad_norm": None, "update_ratio": None}
            for i, (d, u) in enumerate(zip(dead, units, strict=True))]
    return WatchSummary(layers=rows, start=rows, findings=findings, logged_steps=3)


def test_pooled_weights_sites_by_units() -> None:
    s = _summary([0.5, 0.0, 1.0], [10, 30, 0], ["dead_units"])  # a 0-unit site counts for nothing
    assert s.pooled("dead_fraction") == pytest.approx(5 / 40)
    assert s.pooled("update_ratio") != s.pooled("update_ratio")  # nan: nobody reported it
    other = _summary([0.25, 0.25, 0.25], [10, 30, 5], [])
    assert pooled_median([s, other, None], "dead_fraction") == pytest.approx((0.125 + 0.25) / 2)
    assert findings_count([s, other, s]) == {"dead_units": 2}
    with pytest.raises(Exception, match="at must be 'end' or 'start', got 'middle'"):
        s.pooled("dead_fraction", at="middle")


def test_compact_and_to_dict_round_and_keep_order() -> None:
    s = _summary([1 / 3, 0.0], [3, 3], ["dead_units"])
    c = s.compact(digits=3)
    assert c["sites"] == ["acts.0", "acts.1"] and c["dead"] == [0.333, 0.0]
    assert c["mean_derivative_start"] == [0.333, 0.5] and c["findings"] == ["dead_units"]
    d = s.to_dict(digits=None)
    assert d["layers"][0]["dead_fraction"] == 1 / 3 and math.isclose(s.pooled("dead_fraction"), 1 / 6)
