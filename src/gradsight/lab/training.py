"""The lab's one training loop (:func:`fit`), its schedules, optimizers and configuration.

Every trial of the lab trains through :func:`fit`: a fixed number of optimizer steps, each
``set lr → loss → zero_grad → backward → (finite?) → clip → optimizer.step → monitor.step``,
with evaluations at step 0, every ``eval_every`` steps and the last step, inside
``gradsight.watch`` over the steps a :class:`Watch` names. The learning rate of every step comes
from :func:`lr_at` (one list of schedules: :data:`SCHEDULES`) and the optimizer from
:func:`make_optimizer` (:data:`OPTIMIZERS`), both read from one :class:`TrainConfig`; what an
experiment adds (its loss, its measurements, revival, timing) it adds through ``on_step`` and
``on_eval``.

``train(model, data, TrainConfig(...))``, the wrapper over :func:`fit` that most experiments
and the sweep use, runs minibatch cross-entropy training for a fixed
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gradsight.errors import GradsightError, unknown_choice
from gradsight.lab.data import Dataset, batches
from gradsight.lab.watching import WatchSummary, summarize
from gradsight.monitor.records import layer_fields

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam", "adamw")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step", "warmup_cosine", "warmup_cosine_floor")
METRICS: tuple[str, ...] = ("train_acc", "test_acc", "train_loss", "test_loss")


@dataclass(frozen=True)
class TrainConfig:
    """The training hyper-parameters of one run (the lab's only training configuration; an
    experiment that also fixes a model or data shape subclasses it, e.g. llm_ffn's ``Recipe``)."""

    steps: int = 500  # optimizer steps
    batch_size: int = 64  # samples per step (capped at the training-set size)
    lr: float = 0.05  # peak learning rate
    optimizer: str = "sgd"  # "sgd" (plain), "momentum" (SGD, momentum 0.9), "adam" or "adamw"
    #                         (AdamW: decoupled decay on matrices only, not on biases/norms)
    schedule: str = "constant"  # one of SCHEDULES; see lr_at
    weight_decay: float = 0.0  # L2 penalty (sgd, momentum, adam) or decoupled decay (adamw)
    seed: int = 0  # seeds the batch order (the model is initialised by its caller)
    eval_every: int = 50  # evaluate every this many steps (and at step 0 and the last step)
    eval_train_max: int = 2000  # train accuracy/loss on at most this many training samples
    watch: bool = False  # run inside gradsight.watch(model) and store per-layer statistics
    watch_every: int = 10  # with watch: the monitor measures every this many steps
    stop_at: float | None = None  # stop early once test accuracy reaches this value
    threads: int | None = 1  # torch intra-op threads while training (1 is fastest for the lab's
    #                          small models and fair on shared machines); None keeps torch's setting
    warmup: int = 0  # warmup_cosine / warmup_cosine_floor: linear warm-up over this many steps
    min_lr_frac: float = 0.0  # warmup_cosine_floor: the cosine ends at min_lr_frac * lr
    betas: tuple[float, float] = (0.9, 0.999)  # adam / adamw moment decay rates (torch defaults)
    grad_clip: float | None = None  # clip the global gradient norm to this before each update


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
    """The learning rate used for optimizer step ``step`` (0-based) under ``config.schedule``,
    with ``lr`` the peak, ``S`` = ``steps`` and ``W`` = ``warmup``:

    - constant: ``lr``;
    - cosine: ``lr·(1 + cos(π·step/S))/2`` (0 at step S, one past the last);
    - step: ``lr·0.1^k``, k the milestones passed, at 50 % and 75 % of S;
    - warmup_cosine: ``lr·(step+1)/W`` for step < W, then ``lr·(1 + cos(π·t))/2`` with
      ``t = (step−W)/max(1, S−W)`` (0 at step S, one past the last; dead_neurons' remedy);
    - warmup_cosine_floor: ``lr·(step+1)/W`` for step < W, then
      ``lo + (lr−lo)·(1 + cos(π·t))/2`` with ``lo = min_lr_frac·lr`` and
      ``t = (step−W)/max(1, S−1−W)`` (``lo`` at the last step S−1; llm_ffn's AdamW recipe).

    The two warm-up cosines differ only in where the cosine ends; both are kept as the
    experiments that use them recorded their results with them.

    >>> c = TrainConfig(steps=10, lr=1.0, schedule="warmup_cosine_floor", warmup=2, min_lr_frac=0.1)
    >>> [round(lr_at(s, c), 3) for s in (0, 1, 2, 9)]
    [0.5, 1.0, 1.0, 0.1]
    """
    lr, steps, warm = config.lr, config.steps, config.warmup
    if config.schedule == "constant":
        return lr
    if config.schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))
    if config.schedule == "step":
        passed = (step >= steps // 2) + (step >= (3 * steps) // 4)
        return lr * 0.1**passed
    if config.schedule in ("warmup_cosine", "warmup_cosine_floor") and step < warm:
        return lr * (step + 1) / warm
    if config.schedule == "warmup_cosine":
        t = (step - warm) / max(1, steps - warm)
        return lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if config.schedule == "warmup_cosine_floor":
        t = (step - warm) / max(1, steps - 1 - warm)  # 0 -> 1
        lo = config.min_lr_frac * lr
        return lo + 0.5 * (lr - lo) * (1.0 + math.cos(math.pi * t))
    raise unknown_choice("schedule", config.schedule, SCHEDULES)


def check_config(config: TrainConfig) -> None:
    """Raise GradsightError for an unknown optimizer/schedule or out-of-range settings."""
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
    if config.warmup < 0:
        raise GradsightError(f"warmup must be >= 0 steps, got {config.warmup!r}")
    if not 0.0 <= config.min_lr_frac <= 1.0:
        raise GradsightError(f"min_lr_frac must be in [0, 1], got {config.min_lr_frac!r}")
    if config.grad_clip is not None and not config.grad_clip > 0:
        raise GradsightError(f"grad_clip must be > 0 or None, got {config.grad_clip!r}")

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


def make_optimizer(params: Iterable[Any], config: TrainConfig) -> torch.optim.Optimizer:
    """The torch optimizer named by ``config.optimizer``, at ``config.lr``:

    sgd / momentum: ``SGD(momentum 0 / 0.9, weight_decay)``; adam: ``Adam(betas,
    weight_decay)`` (L2 on every parameter); adamw: ``AdamW(betas)`` with two parameter groups,
    matrices (``dim >= 2``) decayed by ``weight_decay`` and the rest (biases, norms) not.
    """
    check_config(config)
    if config.optimizer == "adamw":
        params = list(params)
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(
            [g for g in groups if g["params"]], lr=config.lr, betas=config.betas
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
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


# ------------------------------------------------------------------------------ the loop


@dataclass(frozen=True)
class Watch:
    """Which steps of a :func:`fit` run inside ``gradsight.watch`` and with which settings."""

    every: int = 10  # the monitor measures every this many steps
    window: int = 8  # logged steps over which it judges dead / saturated units
    check_nonfinite: bool = True  # locate the first NaN/Inf (every step)
    start: int = 0  # attach before this optimizer step (0: before the first evaluation too)


@dataclass
class Loop:
    """A :func:`fit` run as its callbacks see it, and as it returns."""

    step: int = 0  # optimizer steps taken (the step just finished, inside on_step)
    loss: torch.Tensor | None = None  # the training loss of that step (graph freed)
    seconds: float = 0.0  # wall time of the training steps so far (callbacks excluded)
    step_seconds: float = 0.0  # wall time of the last step, its monitor.step included
    diverged: bool = False  # the loss turned NaN/Inf at step ``step``; no update was applied
    stopped: bool = False  # on_eval asked to stop before ``steps``
    monitor: Any = None  # the gradsight.watch monitor once attached (closed after fit)


def fit(
    model: nn.Module,
    loss_at: Callable[[int], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    *,
    watch: Watch | None = None,
    on_step: Callable[[Loop], None] | None = None,
    on_eval: Callable[[Loop], bool | None] | None = None,
) -> Loop:
    """Run ``config.steps`` optimizer steps of ``model``; the lab's one training loop.

    Step ``s`` (0-based): every parameter group's lr ← :func:`lr_at` ``(s, config)``;
    ``loss = loss_at(s)`` (the forward pass; ``loss_at`` draws the batch);
    ``optimizer.zero_grad(set_to_none=True)``; ``loss.backward()``. A non-finite loss ends
    the run there (``diverged``; no update, the monitor still steps so it can locate the
    NaN/Inf, and ``on_eval`` is called once with ``Loop.diverged`` set). Otherwise the global
    gradient norm is clipped to ``config.grad_clip`` (when set), ``optimizer.step()``, the
    monitor steps, ``on_step(loop)`` runs, and at every ``eval_every``-th and the last step
    ``on_eval(loop)``; a True return stops the run. ``on_eval`` also runs before the first step.

    With ``watch``, ``gradsight.watch(model, every, window, check_nonfinite)`` is attached
    before step ``watch.start`` (before the step-0 evaluation when 0) and closed when the
    run ends; ``Loop.monitor`` holds it, for ``report()`` during or after the run. ``fit``
    leaves torch's thread count alone (:func:`train` applies ``config.threads``) and reads
    nothing of ``config`` but ``steps``, ``eval_every``, ``grad_clip`` and the schedule's fields.
    """
    check_config(config)
    if watch is not None and not 0 <= watch.start <= config.steps:
        raise GradsightError(f"Watch.start must be in [0, steps], got {watch.start!r}")
    loop = Loop()
    cm: Any = None

    def attach() -> None:
        nonlocal cm
        import gradsight

        cm = gradsight.watch(
            model, every=watch.every, window=watch.window, check_nonfinite=watch.check_nonfinite
        )
        loop.monitor = cm.__enter__()

    try:
        if watch is not None and watch.start == 0:
            attach()
        if on_eval is not None and on_eval(loop):
            loop.stopped = True
            return loop
        for step in range(config.steps):
            if watch is not None and step == watch.start and step > 0:
                attach()
            start = time.perf_counter()
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            loop.step, loop.loss = step + 1, loss.detach()
            if not torch.isfinite(loss):
                loop.diverged = True
                loop.step_seconds = time.perf_counter() - start
                loop.seconds += loop.step_seconds
                if loop.monitor is not None:
                    loop.monitor.step()
                if on_eval is not None:
                    on_eval(loop)
                break
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if loop.monitor is not None:
                loop.monitor.step()
            loop.step_seconds = time.perf_counter() - start
            loop.seconds += loop.step_seconds
            if on_step is not None:
                on_step(loop)
            if on_eval is not None and (
                loop.step % config.eval_every == 0 or loop.step == config.steps
            ):
                if on_eval(loop):
                    loop.stopped = loop.step < config.steps
                    break
    finally:
        if cm is not None:
            cm.__exit__(None, None, None)
    return loop


def train(model: nn.Module, data: Dataset, config: TrainConfig | None = None) -> TrainResult:
    """Train ``model`` on ``data`` with cross-entropy under ``config``; see the module docstring.

    Batches come from :func:`gradsight.lab.data.batches` (seeded permutations, so the ensemble
    trainer can be fed identical batches); each evaluation stores an :class:`EvalPoint` (with
    ``watch``: also the monitor's per-layer statistics, after the first step). The features
    are cast to the model's parameter dtype, so a ``model.double()`` trains in float64. Stops
    early on a non-finite loss (``diverged``) or when test accuracy reaches ``config.stop_at``
    (checked from the first evaluation after step 0).
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

    def loss_at(step: int) -> torch.Tensor:
        b = idx[step]  # (B,)
        return F.cross_entropy(model(X_tr[b]), y_tr[b])

    def record(loop: Loop) -> bool:
        model.eval()
        tr_loss, tr_acc = evaluate(model, X_ev, y_ev)
        te_loss, te_acc = evaluate(model, X_te, y_te)
        model.train()
        layers = _layer_stats(loop.monitor) if loop.monitor is not None and loop.step > 0 else None
        point = EvalPoint(loop.step, loop.seconds, tr_loss, tr_acc, te_loss, te_acc, layers)
        history.append(point)
        return loop.step > 0 and config.stop_at is not None and point.test_acc >= config.stop_at

    watch = Watch(every=config.watch_every) if config.watch else None
    loop = fit(model, loss_at, opt, config, watch=watch, on_eval=record)
    summary = summarize(loop.monitor.report()) if loop.monitor is not None else None
    return TrainResult(history=history, config=config, diverged=loop.diverged, watch=summary)


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
