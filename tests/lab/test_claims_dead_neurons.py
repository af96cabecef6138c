"""Experiment ``dead_neurons``: verdicts with planted numbers, the exact dead mask, the schedule."""

from __future__ import annotations

import math

import pytest
import torch

from gradsight.lab.experiments import dead_neurons as dn
from gradsight.lab.models import MLP


def test_kill_verdict_flips():
    assert dn.kill_verdict({0.01: 0.03, 0.3: 0.65}, 1.0)[0] == "supported"
    verdict, text = dn.kill_verdict({0.01: 0.03, 0.3: 0.65}, 0.4)
    assert verdict == "nuanced" and "40%" in text
    assert dn.kill_verdict({0.01: 0.03, 0.3: 0.65}, None)[0] == "nuanced"
    assert dn.kill_verdict({0.01: 0.03, 0.3: 0.10}, 1.0)[0] == "refuted"  # rise 7 points < 10


def test_remedy_verdict_flips():
    ok = {"leaky": 0.0, "he": 0.04, "warm": 0.035}
    assert dn.remedy_verdict(0.5, ok, floor=0.03)[0] == "supported"
    verdict, text, status = dn.remedy_verdict(0.5, {"leaky": None, "he": 0.5, "warm": 0.04}, floor=0.03)
    assert verdict == "nuanced"
    assert status == {"leaky": "diverged", "he": "does not help", "warm": "prevents"}
    assert dn.remedy_verdict(0.5, {"leaky": None, "he": 0.5, "warm": 0.4}, floor=0.03)[0] == "refuted"
    assert dn.remedy_verdict(0.5, {"leaky": 0.2, "he": 0.5}, floor=0.03)[2]["leaky"] == "reduces"
    verdict, text, _ = dn.remedy_verdict(0.04, ok, floor=0.03)
    assert verdict == "nuanced" and "little to prevent" in text


def test_killing_lr_is_the_smallest_that_kills():
    dead = {0.01: [0.03, 0.03], 0.1: [0.02, None], 0.15: [0.45, None], 0.3: [0.6, 0.7]}
    assert dn.killing_lr(dead) == 0.15
    assert dn.killing_lr({0.01: [0.03], 0.1: [0.05]}) == 0.1  # nothing kills: largest that trained
    assert dn.killing_lr({0.01: [None], 0.1: [None]}) == 0.01


def test_dead_mask_finds_a_planted_dead_unit():
    model = MLP(3, 2, depth=2, width=4, activation="relu", seed=0)
    with torch.no_grad():
        model.hidden[0].weight[1].zero_()
        model.hidden[0].bias[1] = -1.0  # unit 1 of layer 1: pre-activation -1 for every input
        model.hidden[1].weight[2].zero_()
        model.hidden[1].bias[2] = 0.0  # exactly 0 everywhere: dead too, since ReLU'(0) = 0
        model.hidden[0].bias[0] = 100.0  # alive for these inputs
    X = torch.randn(50, 3)
    mask = dn.dead_mask(model, X)
    assert mask.shape == (8,)
    assert mask[1] and mask[4 + 2]
    assert not mask[0]


def test_warmup_cosine_schedule():
    steps, peak = 100, 0.3
    lrs = [dn.warmup_cosine(s, steps, peak, 0.3) for s in range(steps)]
    assert lrs[0] == pytest.approx(peak / 30)
    assert lrs[29] == pytest.approx(peak)
    assert max(lrs) == pytest.approx(peak)
    assert lrs[-1] < 0.01 * peak
    assert all(b <= a + 1e-12 for a, b in zip(lrs[29:], lrs[30:], strict=False))


def test_train_one_records_checkpoints_and_divergence():
    from gradsight.lab import data

    ds = data.load("xor")
    setup = dn.Setup(lrs=(0.1,), bias_inits=(None,), seeds=1, steps=40, depth=2, width=8,
                     batch_size=32, check_every=10)
    run = dn.train_one(ds, setup, lr=0.1, seed=0)
    assert run.steps == [0, 10, 20, 30, 40]
    assert len(run.masks) == 5 and run.masks[0].shape == (16,)
    assert not run.diverged and 0.0 <= run.test_acc <= 1.0
    blown = dn.train_one(ds, setup, lr=1e30, seed=0)
    assert blown.diverged


def test_summary_leaves_out_diverged_runs():
    a = dn.Run(steps=[0, 1, 2], dead=[0.0, 0.5, 0.5],
               masks=[torch.tensor([False, False]), torch.tensor([True, False]), torch.tensor([True, False])],
               test_acc=0.5)
    b = dn.Run(steps=[0], dead=[0.0], masks=[torch.tensor([False, False])], diverged=True)
    row = dn._summary({"arm": "x"}, [a, b])
    assert row["dead_at_end"] == 0.5 and row["diverged"] == "1/2"
    assert row["still_dead_of_mid"] == 1.0
    assert dn._dead_or_none(row) == 0.5
    assert dn._dead_or_none({"diverged": "2/3", "dead_at_end": 0.1}) is None
    assert dn._dead_or_none({"diverged": "0/1", "dead_at_end": math.nan}) is None


def test_the_monitors_dead_fraction_agrees_with_the_full_set_count():
    """A settled case whose batch is the whole training set: the monitor's window (f' = 0 for
    every sample of its last 8 logged batches) and the experiment's full-set count at the end
    must name the same units, layer by layer."""
    from gradsight.lab import data
    from gradsight.lab.training import torch_threads

    ds = data.load("digits")
    small = data.Dataset(ds.X_train[:64], ds.y_train[:64], ds.X_test, ds.y_test, 10, "digits64")
    setup = dn.Setup(lrs=(0.3,), bias_inits=(None,), seeds=2, steps=300, depth=3, width=32,
                     batch_size=64, check_every=100)
    with torch_threads(1):
        runs = [dn.train_one(small, setup, lr=0.3, seed=s) for s in range(2)]
    for run in runs:
        assert not run.diverged and run.dead[-1] > 0.3  # something to agree about
        per_layer = run.masks[-1].view(setup.depth, setup.width).float().mean(dim=1).tolist()
        assert [la["dead_fraction"] for la in run.watch.layers] == pytest.approx(per_layer, abs=1e-12)
        assert run.monitor_dead == pytest.approx(run.dead[-1], abs=1e-6)
        assert "dead_units" in run.watch.findings
    agreement = dn.monitor_agreement(runs)
    assert agreement["runs"] == 2 and agreement["max_abs_difference"] < 1e-6
