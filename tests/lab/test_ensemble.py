"""The torch.func ensemble trainer equals the one-at-a-time loop (float64, same seeds, same batches)."""

from __future__ import annotations

import pytest
import torch

from gradsight.errors import GradsightError
from gradsight.lab import data
from gradsight.lab.ensemble import train_ensemble
from gradsight.lab.models import MLP
from gradsight.lab.training import TrainConfig, train


@pytest.fixture(scope="module")
def digits64() -> data.Dataset:
    return data.load("digits").to(torch.float64)


INITS = ["xavier", "he", "pytorch_default"]


def _net(seed: int, init: str) -> MLP:
    return MLP(64, 10, depth=3, width=24, activation="tanh", init=init, seed=seed).double()


@pytest.mark.parametrize(
    ("optimizer", "lrs", "schedule", "extra"),
    [
        ("sgd", [0.01, 0.05, 0.2], "constant", {}),
        ("momentum", [0.01, 0.02, 0.05], "cosine", {}),
        ("adam", [1e-3, 3e-3, 1e-2], "step", {}),
        ("momentum", [0.05, 0.1, 0.3], "warmup_cosine", {"warmup": 8, "grad_clip": 0.5}),
        (
            "adamw",
            [1e-3, 3e-3, 1e-2],
            "warmup_cosine_floor",
            {"warmup": 5, "min_lr_frac": 0.1, "betas": (0.9, 0.95), "grad_clip": 1.0},
        ),
    ],
    ids=["sgd", "momentum", "adam", "momentum-warmup-clip", "adamw-floor-clip"],
)
def test_ensemble_equals_one_at_a_time(
    digits64: data.Dataset, optimizer: str, lrs: list[float], schedule: str, extra: dict
) -> None:
    cfg = TrainConfig(
        steps=40,
        batch_size=32,
        optimizer=optimizer,
        schedule=schedule,
        weight_decay=1e-3,
        eval_every=20,
        **extra,
    )
    seeds = [5, 6, 7]
    ens = train_ensemble(
        [_net(s, i) for s, i in zip(range(3), INITS, strict=True)],
        digits64,
        cfg,
        lrs=lrs,
        seeds=seeds,
    )
    for k, (init, lr, seed) in enumerate(zip(INITS, lrs, seeds, strict=True)):
        single = train(
            _net(k, init), digits64, TrainConfig(**{**cfg.__dict__, "lr": lr, "seed": seed})
        )
        assert [p.step for p in ens[k].history] == [p.step for p in single.history] == [0, 20, 40]
        for a, b in zip(ens[k].history, single.history, strict=True):
            assert a.train_loss == pytest.approx(b.train_loss, rel=1e-10, abs=1e-12)
            assert a.test_loss == pytest.approx(b.test_loss, rel=1e-10, abs=1e-12)
            assert a.test_acc == b.test_acc
        assert ens[k].config.lr == lr and ens[k].config.seed == seed
    # the learning rates really differ per model: the three runs end in different places
    assert len({round(r.final.train_loss, 6) for r in ens}) == 3


def test_a_planted_wrong_learning_rate_is_caught(digits64: data.Dataset) -> None:
    cfg = TrainConfig(steps=20, batch_size=32, eval_every=20)
    ens = train_ensemble([_net(0, "he")], digits64, cfg, lrs=[0.05])
    wrong = train(_net(0, "he"), digits64, TrainConfig(**{**cfg.__dict__, "lr": 0.0501}))
    assert ens[0].final.train_loss != pytest.approx(wrong.final.train_loss, rel=1e-10, abs=1e-12)


def test_divergent_member_is_frozen_and_others_continue(digits64: data.Dataset) -> None:
    cfg = TrainConfig(steps=30, batch_size=32, eval_every=10)
    nets = [MLP(64, 10, 3, 24, "relu", init="he", seed=s).double() for s in range(2)]
    ens = train_ensemble(nets, digits64, cfg, lrs=[1e8, 0.05])
    assert ens[0].diverged and not ens[1].diverged
    assert ens[1].final.step == 30 and ens[1].final.test_acc > 0.5
    single = train(
        MLP(64, 10, 3, 24, "relu", init="he", seed=1).double(),
        digits64,
        TrainConfig(**{**cfg.__dict__, "lr": 0.05}),
    )
    assert ens[1].final.train_loss == pytest.approx(single.final.train_loss, rel=1e-10)


def test_models_are_not_modified(digits64: data.Dataset) -> None:
    net = _net(0, "he")
    before = [p.clone() for p in net.parameters()]
    train_ensemble([net], digits64, TrainConfig(steps=5, eval_every=5))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lrs": [0.1, 0.2]}, r"lrs needs one value per model \(1\), got 2"),
        ({"config": TrainConfig(stop_at=0.9)}, "does not support stop_at=0.9"),
        ({"config": TrainConfig(watch=True, watch_every=0)}, "watch_every >= 1"),
        ({"config": TrainConfig(optimizer="sdg")}, "did you mean 'sgd'"),
    ],
)
def test_errors(digits64: data.Dataset, kwargs: dict, match: str) -> None:
    with pytest.raises(GradsightError, match=match):
        train_ensemble([_net(0, "he")], digits64, **kwargs)


def test_architecture_mismatch(digits64: data.Dataset) -> None:
    other = MLP(64, 10, depth=3, width=16, activation="tanh", seed=0).double()
    with pytest.raises(GradsightError, match="does not share model 0's architecture"):
        train_ensemble([_net(0, "he"), other], digits64)


def test_models_differing_only_in_activation_are_refused(digits64: data.Dataset) -> None:
    # same parameters, different parameter-free activation: a single functional forward would
    # silently run model 0's activation for both
    tanh_net = MLP(64, 10, depth=2, width=16, activation="tanh", seed=0).double()
    relu_net = MLP(64, 10, depth=2, width=16, activation="relu", seed=0).double()
    with pytest.raises(GradsightError, match="modules differ: .*ReLU"):
        train_ensemble([tanh_net, relu_net], digits64)
