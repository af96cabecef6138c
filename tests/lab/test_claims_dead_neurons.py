"""Experiment ``dead_neurons``: verdicts with planted numbers, the exact dead mask, the schedule."""

from __future__ import annotations

import pytest
import torch

from gradsight.lab.experiments import dead_neurons as dn
from gradsight.lab.models import MLP


def test_kill_verdict_judges_runs_that_train_both_ways():
    # planted: a learning rate that still trains and leaves 42 points more units dead, for good
    assert dn.kill_verdict({0.01: 0.03, 0.1: 0.45}, 0.95)[0] == "supported"
    verdict, text = dn.kill_verdict({0.01: 0.03, 0.1: 0.45}, 0.4)
    assert verdict == "nuanced" and "40% were still dead" in text
    assert dn.kill_verdict({0.01: 0.03, 0.1: 0.45}, None)[0] == "nuanced"
    # planted: the runs that train lose no units; the runs at lr 0.3 collapsed with 60 % dead
    # -- the collapsed runs' dead units must not make the claim "supported"
    verdict, text = dn.kill_verdict({0.01: 0.03, 0.1: 0.005}, 0.75, {0.3: (3, 3, 0.6)})
    assert verdict == "nuanced" and "3/3 at lr 0.3 (60% dead)" in text
    assert dn.kill_verdict({0.01: 0.03, 0.1: 0.10}, 1.0, {0.3: (0, 3, None)})[0] == "refuted"
    assert dn.kill_verdict({}, None, {0.3: (3, 3, 0.6)})[0] == "nuanced"


def test_remedy_verdict_flips():
    ok = {"leaky": 0.0, "he": 0.04, "warm": 0.035}
    assert dn.remedy_verdict(0.5, ok, floor=0.03)[0] == "supported"
    verdict, text, status = dn.remedy_verdict(0.5, {"leaky": None, "he": 0.5, "warm": 0.04}, floor=0.03)
    assert verdict == "nuanced"
    assert status == {"leaky": "fails to train", "he": "does not help", "warm": "prevents"}
    assert dn.remedy_verdict(0.5, {"leaky": None, "he": 0.5, "warm": 0.4}, floor=0.03)[0] == "refuted"
    assert dn.remedy_verdict(0.5, {"leaky": 0.2, "he": 0.5}, floor=0.03)[2]["leaky"] == "reduces"
    # a baseline that trains without losing units leaves nothing to prevent: no verdict either way
    verdict, text, _ = dn.remedy_verdict(0.04, ok, floor=0.03)
    assert verdict == "untestable" and "nothing to prevent" in text


def test_remedies_go_where_the_baseline_trains_and_loses_the_most_units():
    runs = {
        0.01: [_run(0.03, 0.95), _run(0.03, 0.94)],
        0.1: [_run(0.12, 0.9), _run(0.10, 0.92)],  # trains, loses units: here
        0.3: [_run(0.6, 0.09), _run(0.7, 0.1)],  # collapsed: never here
    }
    trained = dn.trained_dead_by_lr(runs)
    assert trained == pytest.approx({0.01: 0.03, 0.1: 0.11})
    assert dn.remedy_lr(trained, 0.01) == 0.1
    assert dn.remedy_lr({}, 0.01) == 0.01


def _run(dead: float, acc: float, diverged: bool = False) -> dn.Run:
    return dn.Run(steps=[0, 1], dead=[0.0, dead],
                  masks=[torch.tensor([False]), torch.tensor([dead > 0])], test_acc=acc,
                  diverged=diverged)


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


@pytest.mark.parametrize(("activation", "dead"), [("relu", True), ("relu2", True), ("leaky_relu", False), ("elu", False)])
def test_a_unit_stuck_below_zero_is_dead_only_where_the_derivative_is_zero(activation, dead):
    # the same planted unit (pre-activation -1 for every input): ReLU and relu2 pass it no
    # gradient; Leaky ReLU (f' = 0.01) and ELU (f' = e^-1) still do, so they have no dead unit
    model = MLP(3, 2, depth=1, width=4, activation=activation, seed=0)
    with torch.no_grad():
        model.hidden[0].weight[1].zero_()
        model.hidden[0].bias[1] = -1.0
    mask = dn.dead_mask(model, torch.randn(50, 3))
    assert bool(mask[1]) is dead
    assert bool(mask[1]) is model.act.can_die  # the count agrees with the catalog's property


def test_warmup_cosine_schedule():
    # the remedy arm's schedule: training.lr_at's warmup_cosine, warm-up over 30 % of the steps
    from gradsight.lab.training import TrainConfig, lr_at

    steps, peak = 100, 0.3
    cfg = TrainConfig(steps=steps, lr=peak, schedule="warmup_cosine", warmup=30)
    lrs = [lr_at(s, cfg) for s in range(steps)]
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


def test_summary_separates_runs_that_train_from_collapsed_and_diverged():
    a = dn.Run(steps=[0, 1, 2], dead=[0.0, 0.5, 0.5],
               masks=[torch.tensor([False, False]), torch.tensor([True, False]), torch.tensor([True, False])],
               test_acc=0.9)
    b = dn.Run(steps=[0], dead=[0.0], masks=[torch.tensor([False, False])], diverged=True)
    c = dn.Run(steps=[0, 1], dead=[0.0, 1.0], masks=[torch.tensor([False, False]), torch.tensor([True, True])],
               test_acc=0.1)
    row = dn.summary_row({"arm": "x"}, [a, b, c])
    assert row["dead_at_end"] == 0.75 and row["diverged"] == "1/3"
    assert row["trained"] == "1/3" and row["collapsed"] == "1/3"
    assert row["dead_at_end_trained"] == 0.5 and row["dead_at_end_collapsed"] == 1.0
    assert row["still_dead_of_mid_trained"] == 1.0
    assert dn.dead_if_trained(row) is None  # most seeds failed to train
    assert dn.dead_if_trained(dn.summary_row({}, [a, a, c])) == 0.5


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
