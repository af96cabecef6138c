"""The training loop: it learns, it is reproducible, schedules and targets are exact."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gradsight.errors import GradsightError
from gradsight.lab import data, training
from gradsight.lab.models import MLP
from gradsight.lab.training import EvalPoint, TrainConfig, lr_at, steps_to_target, train
from gradsight.monitor import LayerStats


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


def test_training_learns_digits(digits: data.Dataset) -> None:
    net = MLP(64, 10, depth=2, width=64, activation="relu", init="he", seed=0)
    res = train(net, digits, TrainConfig(steps=300, lr=0.1, eval_every=100))
    assert [p.step for p in res.history] == [0, 100, 200, 300]
    assert res.history[0].test_acc < 0.3  # chance is 0.1
    assert res.final.test_acc > 0.9 and not res.diverged
    assert res.final.seconds > 0 and res.history[0].seconds == 0.0


def test_same_seed_same_result(digits: data.Dataset) -> None:
    runs = [
        train(
            MLP(64, 10, 2, 32, "tanh", seed=1), digits, TrainConfig(steps=50, eval_every=25, seed=7)
        )
        for _ in range(2)
    ]
    assert [p.train_loss for p in runs[0].history] == [p.train_loss for p in runs[1].history]


def test_divergence_is_detected_and_stops(digits: data.Dataset) -> None:
    net = MLP(64, 10, 3, 64, "relu", init="he", seed=0)
    res = train(net, digits, TrainConfig(steps=200, lr=1e6, eval_every=50))
    assert res.diverged and res.final.step < 200


def test_stop_at_target(digits: data.Dataset) -> None:
    net = MLP(64, 10, 2, 64, "relu", init="he", seed=0)
    res = train(net, digits, TrainConfig(steps=1000, lr=0.1, eval_every=10, stop_at=0.8))
    assert res.final.test_acc >= 0.8 and res.final.step < 1000
    assert steps_to_target(res, 0.8) == res.final.step


def test_lr_schedules_exact_values() -> None:
    cfg = TrainConfig(steps=100, lr=1.0, schedule="cosine")
    assert (
        lr_at(0, cfg) == 1.0
        and lr_at(50, cfg) == pytest.approx(0.5)
        and lr_at(100, cfg) == pytest.approx(0.0)
    )
    step = TrainConfig(steps=100, lr=1.0, schedule="step")
    assert [lr_at(s, step) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )


def test_steps_to_target_and_seconds() -> None:
    h = [
        EvalPoint(0, 0.0, 2.3, 0.1, 2.3, 0.1),
        EvalPoint(50, 1.0, 0.9, 0.7, 1.0, 0.6),
        EvalPoint(100, 2.0, 0.4, 0.95, 0.5, 0.9),
    ]
    assert steps_to_target(h, 0.6) == 50
    assert steps_to_target(h, 0.9) == 100
    assert steps_to_target(h, 0.99) is None
    assert steps_to_target(h, 0.95, metric="train_acc") == 100
    assert steps_to_target(h, 1.0, metric="test_loss") == 50
    assert training.seconds_to_target(h, 0.9) == 2.0


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (TrainConfig(optimizer="adma"), "unknown optimizer 'adma'; did you mean 'adam'"),
        (TrainConfig(schedule="cosin"), "did you mean 'cosine'"),
        (TrainConfig(batch_size=0), "batch_size=0"),
        (TrainConfig(lr=-1.0), "lr=-1.0"),
    ],
)
def test_bad_config(cfg: TrainConfig, match: str, digits: data.Dataset) -> None:
    with pytest.raises(GradsightError, match=match):
        train(MLP(64, 10, 1, 8, seed=0), digits, cfg)


def test_bad_metric() -> None:
    with pytest.raises(GradsightError, match="unknown metric 'acc'"):
        steps_to_target([], 0.5, metric="acc")


def test_torch_threads_sets_and_restores_the_thread_count() -> None:
    # the one context manager every experiment uses to run on one thread
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with training.torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"), training.torch_threads(other):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before  # restored on an exception too
    with training.torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(GradsightError, match=r"threads must be >= 1 or None, got 0"):
        with training.torch_threads(0):
            pass


def test_float64_model_trains_in_float64(digits: data.Dataset) -> None:
    net = MLP(64, 10, 1, 16, "tanh", seed=0).double()
    res = train(net, digits, TrainConfig(steps=5, eval_every=5))
    assert next(net.parameters()).dtype == torch.float64 and len(res.history) == 2


class _FakeMonitor:
    """Stands in for gradsight.watch to pin the loop's side of the contract: one ``step()``
    per optimizer step, after backward, and ``report().layers`` read at each evaluation."""

    def __init__(self, model, **kwargs) -> None:
        self.model, self.steps, self.entered, self.exited = model, 0, False, False
        self.kwargs = kwargs
        self.grads_seen: list[bool] = []

    def __enter__(self):
        self.entered = True
        return self

    def __exit__(self, *exc) -> None:
        self.exited = True

    def step(self) -> None:
        self.steps += 1
        self.grads_seen.append(all(p.grad is not None for p in self.model.parameters()))

    def report(self):
        layer = LayerStats(
            name="acts.0",
            activation="relu",
            grad_norm=float(self.steps),
            dead_fraction=0.0,
            saturated_fraction=0.0,
            mean_derivative=0.5,
            active_fraction=1.0,
        )
        finding = type("Finding", (), {"kind": "dead_units"})
        return type(
            "Report", (), {"layers": [layer], "findings": [finding], "history": [], "errors": []}
        )


def test_watch_runs_the_loop_inside_the_monitor(
    digits: data.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradsight

    made: list[_FakeMonitor] = []
    monkeypatch.setattr(
        gradsight,
        "watch",
        lambda model, **kw: made.append(_FakeMonitor(model, **kw)) or made[-1],
        raising=False,
    )
    res = train(
        MLP(64, 10, 1, 8, "relu", seed=0),
        digits,
        TrainConfig(steps=30, eval_every=10, watch=True, watch_every=5),
    )
    (mon,) = made
    assert mon.kwargs == {"every": 5}
    assert mon.entered and mon.exited and mon.steps == 30 and all(mon.grads_seen)
    assert res.watch is not None and res.watch.findings == ["dead_units"]
    assert res.watch.layers[0]["grad_norm"] == 30.0
    assert res.history[0].layers is None  # nothing observed before the first step
    assert [p.layers[0]["grad_norm"] for p in res.history[1:]] == [10.0, 20.0, 30.0]
    assert list(res.history[1].layers[0]) == [f.name for f in dataclasses.fields(LayerStats)]


def test_watch_with_the_real_monitor_reports_a_planted_dead_layer(digits: data.Dataset) -> None:
    net = MLP(64, 10, depth=2, width=32, activation="relu", init="he", seed=0)
    with torch.no_grad():
        net.hidden[0].bias.fill_(-100.0)  # every unit of the first layer is negative on every input
    res = train(net, digits, TrainConfig(steps=20, lr=0.0, eval_every=10, watch=True))
    layers = {layer["name"]: layer for layer in res.final.layers}
    assert layers["acts.0"]["dead_fraction"] == 1.0 and layers["acts.0"]["activation"] == "relu"
    healthy = train(
        MLP(64, 10, 2, 32, "relu", init="he", seed=0),
        digits,
        TrainConfig(steps=20, eval_every=10, watch=True),
    )
    assert {layer["name"]: layer for layer in healthy.final.layers}["acts.0"]["dead_fraction"] < 0.5
