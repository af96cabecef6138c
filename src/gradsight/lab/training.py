"""A plain, reproducible training loop for the lab, with the monitor inside when asked.

``train(model, data, TrainConfig(...))`` runs minibatch cross-entropy training for a fixed
number of optimizer steps on batches drawn by :func:`gradsight.lab.data.batches` (seeded
permutations, so the ensemble trainer can be fed identical batches), evaluates every
``eval_every`` steps, and returns a :class:`TrainResult` whose ``history`` lists
:class:`EvalPoint` (step, seconds, train/test loss and accuracy). With ``watch=True`` the loop
runs inside ``gradsight.watch(model, every=watch_every)``: each evaluation also stores the
monitor's per-layer statistics (gradient norm, dead and saturated fraction, mean derivative)
and ``TrainResult.watch`` summarises the whole run (:class:`gradsight.lab.watching.WatchSummary`).

>>> from gradsight.lab import data, models
>>> ds = data.load("xor")
>>> net = models.MLP(2, 2, depth=2, width=16, activation="tanh", seed=0)
>>> res = train(net, ds, TrainConfig(steps=200, lr=0.1, eval_every=100))
>>> [p.step for p in res.history]
[0, 100, 200]
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gradsight.errors import GradsightError, unknown_choice
from gradsight.lab.data import Dataset, batches
from gradsight.lab.watching import WatchSummary, summarize
from gradsight.monitor.records import layer_fields

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step")
METRICS: tuple[str, ...] = ("train_acc", "test_acc", "train_loss", "test_loss")


@dataclass
class TrainConfig:
    steps: int = 500  # optimizer steps
    batch_size: int = 64  # samples per step (capped at the training-set size)
    lr: float = 0.05  # peak learning rate
    optimizer: str = "sgd"  # "sgd" (plain), "momentum" (SGD, momentum 0.9) or "adam"
    schedule: str = (
        "constant"  # "constant", "cosine" (to 0 at the last step), "step" (×0.1 at 50 % and 75 %)
    )
    weight_decay: float = 0.0  # L2 penalty passed to the optimizer
    seed: int = 0  # seeds the batch order (the model is initialised by its caller)
    eval_every: int = 50  # evaluate every this many steps (and at step 0 and the last step)
    eval_train_max: int = 2000  # train accuracy/loss on at most this many training samples
    watch: bool = False  # run inside gradsight.watch(model) and store per-layer statistics
    watch_every: int = 10  # with watch: the monitor measures every this many steps
    stop_at: float | None = None  # stop early once test accuracy reaches this value
    threads: int | None = 1  # torch intra-op threads while training (1 is fastest for the lab's
    #                          small models and fair on shared machines); None keeps torch's setting


@dataclass
class EvalPoint:
    step: int  # optimizer steps taken
    seconds: float  # wall time spent training so far (evaluation excluded)
    train_loss: float  # mean cross-entropy on (up to eval_train_max) training samples
    train_acc: float  # accuracy on the same samples
    test_loss: float  # mean cross-entropy on the test set
    test_acc: float  # accuracy on the test set
    layers: list[dict[str, Any]] | None = None  # monitor per-layer stats (watch=True only)


@dataclass
class TrainResult:
    history: list[EvalPoint]  # evaluations in step order
    config: TrainConfig  # the configuration that ran
    diverged: bool = False  # the loss became NaN/Inf; training stopped there
    extra: dict[str, Any] = field(default_factory=dict)  # free-form numbers a caller adds
    watch: WatchSummary | None = None  # what gradsight.watch saw (config.watch only)

    @property
    def final(self) -> EvalPoint:
        return self.history[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": [asdict(p) for p in self.history],
            "config": asdict(self.config),
            "diverged": self.diverged,
            "extra": self.extra,
            "watch": None if self.watch is None else self.watch.to_dict(),
        }


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate used for optimizer step ``step`` (0-based) under ``config.schedule``.

    constant: lr; cosine: lr·(1 + cos(π·step/steps))/2; step: lr·0.1^(#milestones passed),
    milestones at 50 % and 75 % of ``steps``.
    """
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(config.steps, 1)))
    if config.schedule == "step":
        passed = (step >= config.steps // 2) + (step >= (3 * config.steps) // 4)
        return config.lr * 0.1**passed
    raise unknown_choice("schedule", config.schedule, SCHEDULES)


def check_config(config: TrainConfig) -> None:
    """Raise GradsightError for an unknown optimizer/schedule or non-positive sizes."""
    if config.optimizer not in OPTIMIZERS:
        raise unknown_choice("optimizer", config.optimizer, OPTIMIZERS)
    if config.schedule not in SCHEDULES:
        raise unknown_choice("schedule", config.schedule, SCHEDULES)
    if (
        config.steps < 0
        or config.batch_size < 1
        or config.eval_every < 1
        or config.watch_every < 1
        or not config.lr >= 0
    ):
        raise GradsightError(
            "need steps >= 0, batch_size >= 1, eval_every >= 1, watch_every >= 1, lr >= 0; got "
            f"steps={config.steps!r}, batch_size={config.batch_size!r}, "
            f"eval_every={config.eval_every!r}, watch_every={config.watch_every!r}, lr={config.lr!r}"
        )


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count after."""
    if n is None:
        yield
        return
    if n < 1:
        raise GradsightError(f"threads must be >= 1 or None, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The torch optimizer named by ``config.optimizer``."""
    check_config(config)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    momentum = 0.9 if config.optimizer == "momentum" else 0.0
    return torch.optim.SGD(
        params, lr=config.lr, momentum=momentum, weight_decay=config.weight_decay
    )


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on (X, y)."""
    logits = model(X)  # (N, n_classes)
    loss = F.cross_entropy(logits, y).item()
    acc = (logits.argmax(dim=1) == y).double().mean().item()
    return loss, acc


def _layer_stats(monitor: Any) -> list[dict[str, Any]]:
    rep = monitor.report()
    return [{f.name: getattr(layer, f.name) for f in layer_fields()} for layer in rep.layers]


def train(model: nn.Module, data: Dataset, config: TrainConfig | None = None) -> TrainResult:
    """Train ``model`` on ``data`` with cross-entropy under ``config``; see the module docstring.

    The features are cast to the model's parameter dtype, so a ``model.double()`` trains in
    float64. Returns the evaluation history; stops early on a non-finite loss (``diverged``)
    or when test accuracy reaches ``config.stop_at``.
    """
    config = config or TrainConfig()
    check_config(config)
    with torch_threads(config.threads):
        return _train(model, data, config)


def _train(model: nn.Module, data: Dataset, config: TrainConfig) -> TrainResult:
    dtype = next(model.parameters()).dtype
    X_tr, y_tr = data.X_train.to(dtype), data.y_train
    X_te, y_te = data.X_test.to(dtype), data.y_test
    X_ev, y_ev = X_tr[: config.eval_train_max], y_tr[: config.eval_train_max]
    idx = batches(len(y_tr), config.batch_size, config.steps, config.seed)  # (steps, B)
    opt = make_optimizer(model.parameters(), config)

    history: list[EvalPoint] = []
    diverged = False
    elapsed = 0.0

    monitor_cm: Any = None
    if config.watch:
        import gradsight

        monitor_cm = gradsight.watch(model, every=config.watch_every)
    monitor = monitor_cm.__enter__() if monitor_cm is not None else None

    def record(step: int) -> EvalPoint:
        model.eval()
        tr_loss, tr_acc = evaluate(model, X_ev, y_ev)
        te_loss, te_acc = evaluate(model, X_te, y_te)
        model.train()
        layers = _layer_stats(monitor) if monitor is not None and step > 0 else None
        point = EvalPoint(step, elapsed, tr_loss, tr_acc, te_loss, te_acc, layers)
        history.append(point)
        return point

    try:
        record(0)
        model.train()
        for step in range(config.steps):
            start = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = lr_at(step, config)
            b = idx[step]  # (B,)
            loss = F.cross_entropy(model(X_tr[b]), y_tr[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if not torch.isfinite(loss):
                diverged = True
                elapsed += time.perf_counter() - start
                if monitor is not None:
                    monitor.step()
                record(step + 1)
                break
            opt.step()
            if monitor is not None:
                monitor.step()
            elapsed += time.perf_counter() - start
            done = step + 1
            if done % config.eval_every == 0 or done == config.steps:
                point = record(done)
                if config.stop_at is not None and point.test_acc >= config.stop_at:
                    break
    finally:
        if monitor_cm is not None:
            monitor_cm.__exit__(None, None, None)
    summary = summarize(monitor.report()) if monitor is not None else None
    return TrainResult(history=history, config=config, diverged=diverged, watch=summary)


def steps_to_target(
    history: list[EvalPoint] | TrainResult, target: float, metric: str = "test_acc"
) -> int | None:
    """The first evaluated step at which ``metric`` reaches ``target`` (≥ for accuracies,
    ≤ for losses), or None when it never does. Resolution is the evaluation interval.

    >>> h = [EvalPoint(0, 0.0, 2.3, 0.1, 2.3, 0.1), EvalPoint(50, 1.0, 0.5, 0.9, 0.6, 0.85)]
    >>> steps_to_target(h, 0.8)
    50
    """
    points = history.history if isinstance(history, TrainResult) else history
    if metric not in METRICS:
        raise unknown_choice("metric", metric, METRICS)
    for p in points:
        value = getattr(p, metric)
        if metric.endswith("acc") and value >= target:
            return p.step
        if metric.endswith("loss") and value <= target:
            return p.step
    return None


def seconds_to_target(
    history: list[EvalPoint] | TrainResult, target: float, metric: str = "test_acc"
) -> float | None:
    """Training seconds (evaluation excluded) at the step :func:`steps_to_target` returns."""
    points = history.history if isinstance(history, TrainResult) else history
    step = steps_to_target(points, target, metric)
    if step is None:
        return None
    return next(p.seconds for p in points if p.step == step)
