"""The training loop: it learns, it is reproducible, schedules and targets are exact."""

from __future__ import annotations

import dataclasses
import math

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
    assert mon.kwargs == {"every": 5, "window": 8, "check_nonfinite": True}
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


# ------------------------------------------------------------------ the one loop: fit


# lr at steps (0, 1, 2, 5, 9) of a 10-step run at peak lr 1.0, worked out by hand from
# lr_at's formulas (warm-up 2 steps; the floor schedule ends at 0.1 at the last step, 9)
_HALF_COS = [0.5 * (1 + math.cos(math.pi * t)) for t in (3 / 8, 7 / 8)]
SCHEDULE_VALUES = {
    "constant": [1.0, 1.0, 1.0, 1.0, 1.0],
    "cosine": [0.5 * (1 + math.cos(math.pi * s / 10)) for s in (0, 1, 2, 5, 9)],
    "step": [1.0, 1.0, 1.0, 0.1, 0.01],
    "warmup_cosine": [0.5, 1.0, 1.0, *_HALF_COS],
    "warmup_cosine_floor": [
        0.5, 1.0, 1.0, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 3 / 7)), 0.1,
    ],
}


@pytest.mark.parametrize("schedule", training.SCHEDULES)
def test_every_schedule_at_known_steps(schedule: str) -> None:
    cfg = TrainConfig(steps=10, lr=1.0, schedule=schedule, warmup=2, min_lr_frac=0.1)
    got = [lr_at(s, cfg) for s in (0, 1, 2, 5, 9)]
    assert got == pytest.approx(SCHEDULE_VALUES[schedule], rel=1e-12)


def test_the_two_warmup_cosines_differ_only_in_where_the_cosine_ends() -> None:
    # dead_neurons' cosine reaches 0 one step past the last; llm_ffn's reaches its floor at the
    # last step: with no floor they still differ after the warm-up, and never before
    a = TrainConfig(steps=10, lr=1.0, schedule="warmup_cosine", warmup=2)
    b = dataclasses.replace(a, schedule="warmup_cosine_floor")
    assert [lr_at(s, a) for s in range(2)] == [lr_at(s, b) for s in range(2)]
    assert lr_at(9, b) == 0.0 < lr_at(9, a)


def test_adamw_decays_matrices_only_with_the_configured_betas() -> None:
    net = MLP(64, 10, depth=2, width=8, seed=0)
    opt = training.make_optimizer(
        net.parameters(), TrainConfig(optimizer="adamw", lr=0.01, weight_decay=0.1, betas=(0.8, 0.9))
    )
    assert isinstance(opt, torch.optim.AdamW)
    decay, plain = opt.param_groups
    assert {id(p) for p in decay["params"]} == {id(p) for p in net.parameters() if p.dim() == 2}
    assert {id(p) for p in plain["params"]} == {id(p) for p in net.parameters() if p.dim() == 1}
    assert (decay["weight_decay"], plain["weight_decay"]) == (0.1, 0.0)
    assert decay["betas"] == plain["betas"] == (0.8, 0.9) and decay["lr"] == 0.01


def _grad_norm(model: torch.nn.Module) -> float:
    return float(torch.stack([p.grad.norm() for p in model.parameters()]).norm())


@pytest.mark.parametrize("clip", [None, 0.05], ids=["no-clip", "clip"])
def test_fit_clips_the_global_gradient_norm(digits: data.Dataset, clip: float | None) -> None:
    net = MLP(64, 10, depth=2, width=16, activation="relu", seed=0)
    cfg = TrainConfig(steps=8, lr=0.05, grad_clip=clip, eval_every=8)
    norms: list[float] = []
    fit = training.fit(
        net,
        lambda s: torch.nn.functional.cross_entropy(net(digits.X_train[:64]), digits.y_train[:64]),
        training.make_optimizer(net.parameters(), cfg),
        cfg,
        on_step=lambda loop: norms.append(_grad_norm(net)),  # the gradients the update used
    )
    assert fit.step == 8 and len(norms) == 8
    if clip is None:
        assert min(norms) > 0.05  # so the clipped run below really is clipped
    else:
        assert max(norms) == pytest.approx(0.05, rel=1e-4)


def test_fit_calls_back_in_order_and_stops_on_a_nonfinite_loss(digits: data.Dataset) -> None:
    net = MLP(64, 10, depth=1, width=8, seed=0)
    cfg = TrainConfig(steps=10, lr=0.01, eval_every=4)
    events: list[tuple[str, int, bool]] = []
    snapshot: list[torch.Tensor] = []

    def loss_at(step: int) -> torch.Tensor:
        snapshot[:] = [p.detach().clone() for p in net.parameters()]
        loss = torch.nn.functional.cross_entropy(net(digits.X_train[:32]), digits.y_train[:32])
        return loss * float("nan") if step == 6 else loss  # planted: step 6 (0-based) diverges

    loop = training.fit(
        net, loss_at, training.make_optimizer(net.parameters(), cfg), cfg,
        on_step=lambda lp: events.append(("step", lp.step, lp.diverged)),
        on_eval=lambda lp: events.append(("eval", lp.step, lp.diverged)),
    )  # fmt: skip
    assert events == [
        ("eval", 0, False),
        *[("step", s, False) for s in (1, 2, 3, 4)],
        ("eval", 4, False),
        ("step", 5, False),
        ("step", 6, False),
        ("eval", 7, True),  # the diverging step is evaluated once, with the flag set
    ]
    assert loop.diverged and loop.step == 7 and not loop.stopped
    # no update from the non-finite step: the weights are those it started from
    assert all(torch.equal(a, b) for a, b in zip(snapshot, net.parameters(), strict=True))


def test_fit_watches_from_watch_start_with_the_real_monitor(digits: data.Dataset) -> None:
    net = MLP(64, 10, depth=2, width=16, activation="relu", seed=0)
    cfg = TrainConfig(steps=12, lr=0.05, eval_every=12)
    seen: list[bool] = []
    loop = training.fit(
        net,
        lambda s: torch.nn.functional.cross_entropy(net(digits.X_train[:64]), digits.y_train[:64]),
        training.make_optimizer(net.parameters(), cfg),
        cfg,
        watch=training.Watch(every=1, window=4, start=8),
        on_step=lambda lp: seen.append(lp.monitor is not None),
    )
    assert seen == [False] * 8 + [True] * 4
    rep = loop.monitor.report()
    assert loop.monitor.closed and rep.meta["steps"] == 4 and rep.meta["window"] == 4
    assert [la.name for la in rep.layers] == ["acts.0", "acts.1"]


def test_every_lab_trial_trains_through_fit_inside_gradsight_watch(
    digits: data.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train(), dead_neurons' runs and llm_ffn's forms: the learning rate of every step comes
    from training.lr_at (only fit calls it) and each run is watched by gradsight.watch."""
    import gradsight
    from gradsight.lab.experiments import dead_neurons, llm_ffn_trial
    from gradsight.lab.text import load_corpus

    real_watch, real_lr_at = gradsight.watch, training.lr_at
    watched: list[int] = []
    lr_calls: list[int] = []

    def counting_watch(model, **kw):
        watched.append(kw["every"])
        return real_watch(model, **kw)

    monkeypatch.setattr(gradsight, "watch", counting_watch)
    monkeypatch.setattr(training, "lr_at", lambda s, c: lr_calls.append(s) or real_lr_at(s, c))

    train(MLP(64, 10, 1, 8, seed=0), digits, TrainConfig(steps=6, eval_every=3, watch=True))
    assert (watched, lr_calls) == ([10], list(range(6)))
    setup = dead_neurons.Setup(lrs=(0.1,), bias_inits=(None,), seeds=1, steps=6, check_every=3)
    for kw in ({}, {"schedule": "warmup_cosine"}, {"revive": True}):
        watched.clear(), lr_calls.clear()
        run = dead_neurons.train_one(digits, setup, lr=0.1, seed=0, **kw)
        assert (watched, lr_calls) == ([1 if kw.get("revive") else 10], list(range(6)))
        assert run.steps == [0, 3, 6] and run.watch is not None
    watched.clear(), lr_calls.clear()
    tiny = llm_ffn_trial.Recipe(d_model=16, n_layers=1, n_heads=2, context=16, batch_size=4, steps=6,
                          warmup=2, eval_every=6, val_windows=4, eval_batch=4, flow_steps=4)
    _, form = llm_ffn_trial.train_form(load_corpus(), "relu", tiny, seed=0)
    assert (watched, lr_calls) == ([1], list(range(6))) and form.grad_flow
