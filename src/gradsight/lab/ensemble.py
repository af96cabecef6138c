"""Train many small models of one architecture at once with ``torch.func``.

The K models' parameters are stacked (``stack_module_state``: every tensor gains a leading
model axis K), one forward runs all of them (``vmap`` over ``functional_call``), and one
backward of Σ_k loss_k yields every model's own gradient (the models share no parameters, so
∂(Σ_j loss_j)/∂θ_k = ∂loss_k/∂θ_k). The optimizer update is applied to the stacked tensors with
a per-model learning rate. A grid of seeds × learning rates × inits therefore costs about one
run of K-times-wider matrix products instead of K runs.

Each model k sees its own batch order, ``gradsight.lab.data.batches(n, B, steps, seeds[k])``,
and follows exactly the update rule of :func:`gradsight.lab.training.train` with
``TrainConfig(lr=lrs[k], seed=seeds[k])`` (SGD, SGD with momentum 0.9, Adam or AdamW with
decay on matrices only, every schedule of :data:`gradsight.lab.training.SCHEDULES`, and
``grad_clip`` on each model's own gradient norm, in PyTorch's formulas), so the two agree to
float rounding — tested in float64.

With ``config.watch`` every member is watched by its own ``gradsight.watch`` monitor: hooks do
not fire inside ``vmap``, so on every ``config.watch_every``-th step each member also runs one
plain forward + backward of its batch through a watched replica
(:class:`gradsight.lab.watching.EnsembleWatch`). ``TrainResult.watch`` then holds what a plain
watched loop of that member alone would report; the update itself is untouched.

>>> from gradsight.lab import data, models
>>> ds = data.load("xor")
>>> nets = [models.MLP(2, 2, depth=2, width=16, activation="tanh", seed=s) for s in range(3)]
>>> runs = train_ensemble(nets, ds, TrainConfig(steps=100, eval_every=50), lrs=[0.01, 0.1, 1.0])
>>> len(runs), [p.step for p in runs[0].history]
(3, [0, 50, 100])
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from gradsight.errors import GradsightError
from gradsight.lab.data import Dataset, batches
from gradsight.lab.training import (
    EvalPoint,
    TrainConfig,
    TrainResult,
    check_config,
    lr_at,
    torch_threads,
)
from gradsight.lab.watching import EnsembleWatch

__all__ = ["train_ensemble"]

_EPS = 1e-8  # torch.optim.Adam / AdamW default
_CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), at most 1
_MOMENTUM = 0.9  # TrainConfig(optimizer="momentum")


def _per_model(
    values: Sequence[float] | torch.Tensor | None, default: float, k: int, what: str
) -> list[float]:
    if values is None:
        return [default] * k
    out = [float(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]
    if len(out) != k:
        raise GradsightError(f"{what} needs one value per model ({k}), got {len(out)}: {out!r}")
    return out


def _check_same_architecture(models: Sequence[nn.Module]) -> None:
    """Same parameter names/shapes/dtypes AND the same modules: one forward (model 0's, run
    with each model's parameters) must be every model's forward, so two MLPs that differ only
    in a parameter-free activation are refused rather than silently run with model 0's."""

    def signature(m: nn.Module) -> tuple[list, list]:
        params = [(n, tuple(p.shape), p.dtype) for n, p in m.named_parameters()]
        modules = [
            (n, repr(sub) if not list(sub.children()) else type(sub).__name__)
            for n, sub in m.named_modules()
        ]
        return params, modules

    ref = signature(models[0])
    for i, m in enumerate(models[1:], start=1):
        got = signature(m)
        if got != ref:
            what = "parameters" if got[0] != ref[0] else "modules"
            mine, theirs = (got[0], ref[0]) if what == "parameters" else (got[1], ref[1])
            g, r = next(
                ((g, r) for g, r in zip(mine, theirs, strict=False) if g != r), (mine, theirs)
            )
            raise GradsightError(
                f"model {i} does not share model 0's architecture ({what} differ: {g!r} vs {r!r}); "
                "train_ensemble runs one forward for all models, so they must be identical up to "
                "parameter values"
            )


def train_ensemble(
    models: Sequence[nn.Module],
    data: Dataset,
    config: TrainConfig | None = None,
    lrs: Sequence[float] | torch.Tensor | None = None,
    seeds: Sequence[int] | None = None,
) -> list[TrainResult]:
    """Train ``models`` (same architecture, any inits) together; one :class:`TrainResult` each.

    Args:
        models: K modules with identical parameter names, shapes and dtypes. They are not
            modified; their initial parameters are copied into the stack.
        data: the data set (features cast to the models' dtype).
        config: shared settings (steps, batch size, optimizer, schedule, weight decay,
            betas, grad_clip, evaluation, ``watch`` and ``watch_every``). ``stop_at`` is a single-model feature
            and is refused.
        lrs: K peak learning rates (default ``config.lr`` for all).
        seeds: K batch-order seeds (default ``config.seed`` for all).

    Returns K results; ``EvalPoint.seconds`` is the wall time of the whole ensemble so far
    (watching excluded). A model whose loss turns non-finite is marked ``diverged`` and frozen;
    the others go on. With ``config.watch`` each result's ``watch`` is that member's
    :class:`~gradsight.lab.watching.WatchSummary` (``EvalPoint.layers`` stay None).
    """
    config = config or TrainConfig()
    check_config(config)
    if config.stop_at is not None:
        raise GradsightError(
            f"train_ensemble does not support stop_at={config.stop_at!r}; "
            "use gradsight.lab.training.train for early-stopped runs"
        )
    if not models:
        raise GradsightError("train_ensemble needs at least one model, got an empty list")
    _check_same_architecture(models)
    with torch_threads(config.threads):
        return _train_ensemble(models, data, config, lrs, seeds)


def _train_ensemble(
    models: Sequence[nn.Module],
    data: Dataset,
    config: TrainConfig,
    lrs: Sequence[float] | torch.Tensor | None,
    seeds: Sequence[int] | None,
) -> list[TrainResult]:
    K = len(models)
    lr_k = _per_model(lrs, config.lr, K, "lrs")
    seed_k = [int(s) for s in _per_model(seeds, config.seed, K, "seeds")]

    params, buffers = stack_module_state(list(models))  # name -> (K, ...)
    names = list(params)
    dtype = params[names[0]].dtype
    base = copy.deepcopy(models[0]).to("meta")

    def one(
        p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    batched = vmap(one, in_dims=(0, 0, 0))  # per-model inputs (K, B, D) -> (K, B, C)
    shared = vmap(one, in_dims=(0, 0, None))  # one input (N, D) -> (K, N, C)

    X_tr, y_tr = data.X_train.to(dtype), data.y_train
    X_te, y_te = data.X_test.to(dtype), data.y_test
    X_ev, y_ev = X_tr[: config.eval_train_max], y_tr[: config.eval_train_max]
    idx = torch.stack(
        [batches(len(y_tr), config.batch_size, config.steps, s) for s in seed_k]
    )  # (K, steps, B)

    lr0 = torch.tensor(lr_k, dtype=dtype)  # (K,)
    unit = replace(config, lr=1.0)  # schedule factor: lr_k(step) = lr_k · lr_at(step, unit)

    state_m = {n: torch.zeros_like(params[n]) for n in names}
    state_v = {n: torch.zeros_like(params[n]) for n in names}
    alive = torch.ones(K, dtype=torch.bool)
    histories: list[list[EvalPoint]] = [[] for _ in range(K)]
    elapsed = 0.0

    def scores(logits: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        """Each member's mean cross-entropy and accuracy: ``logits`` (K, N, C), ``y`` (N,)."""
        n, c = logits.shape[1], logits.shape[2]
        loss = F.cross_entropy(logits.reshape(K * n, c), y.repeat(K), reduction="none")
        acc = (logits.argmax(2) == y).double().mean(dim=1)
        return loss.view(K, n).mean(dim=1).tolist(), acc.tolist()

    @torch.no_grad()
    def record(step: int, which: torch.Tensor) -> None:
        tr_loss, tr_acc = scores(shared(params, buffers, X_ev), y_ev)  # K members at once
        te_loss, te_acc = scores(shared(params, buffers, X_te), y_te)
        for k in which.nonzero().flatten().tolist():
            histories[k].append(
                EvalPoint(step, elapsed, tr_loss[k], tr_acc[k], te_loss[k], te_acc[k])
            )

    watcher = EnsembleWatch(models, config.watch_every) if config.watch else None
    with watcher if watcher is not None else contextlib.nullcontext():
        record(0, alive.clone())
        for step in range(config.steps):
            start = time.perf_counter()
            b = idx[:, step]  # (K, B)
            logits = batched(params, buffers, X_tr[b])  # (K, B, C)
            B, C = b.shape[1], logits.shape[-1]
            losses = F.cross_entropy(
                logits.reshape(K * B, C), y_tr[b].reshape(K * B), reduction="none"
            )
            losses = losses.view(K, B).mean(dim=1)  # (K,)
            grads = torch.autograd.grad(losses.sum(), [params[n] for n in names])
            finite = torch.isfinite(losses.detach())
            newly_dead = alive & ~finite
            was_alive = alive.clone()
            alive &= finite
            elapsed += time.perf_counter() - start
            dying = newly_dead.nonzero().flatten().tolist()
            if watcher is not None:
                # a member whose loss just turned non-finite is watched on this step too, as a
                # plain watched loop checks every step: its monitor locates the NaN/Inf
                watched = range(K) if watcher.logged(step) else dying
                watcher.observe([k for k in watched if was_alive[k]], params, buffers,
                                X_tr[b], y_tr[b])
            start = time.perf_counter()
            _update(config, step, params, grads, names, state_m, state_v,
                    lr0 * lr_at(step, unit) * alive.to(dtype), alive)  # frozen models: lr 0
            elapsed += time.perf_counter() - start
            if watcher is not None:
                watcher.after_update(params, frozen=dying)
                watcher.step()
                for k in dying:
                    watcher.stop(k)
            done = step + 1
            if dying:
                record(done, newly_dead)
            if done % config.eval_every == 0 or done == config.steps:
                record(done, alive.clone())
            if not alive.any():
                break
        summaries = watcher.summaries() if watcher is not None else [None] * K

    diverged = (~alive).tolist()
    return [
        TrainResult(histories[k], replace(config, lr=lr_k[k], seed=seed_k[k]),
                    diverged=diverged[k], watch=summaries[k])
        for k in range(K)
    ]


@torch.no_grad()
def _update(
    config: TrainConfig,
    step: int,
    params: dict[str, torch.Tensor],
    grads: Sequence[torch.Tensor],
    names: Sequence[str],
    state_m: dict[str, torch.Tensor],
    state_v: dict[str, torch.Tensor],
    lr_now: torch.Tensor,
    alive: torch.Tensor,
) -> None:
    """One optimizer step of every model in place, in PyTorch's formulas; ``lr_now``: (K,)."""

    def view(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return t.view(-1, *([1] * (like.dim() - 1)))  # (K,) -> (K, 1, ..., 1)

    grads = [torch.where(view(alive, g), g, torch.zeros_like(g)) for g in grads]
    if config.grad_clip is not None:
        # each model's global norm over all its parameters, (K,)
        norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)
        coef = (config.grad_clip / (norms + _CLIP_EPS)).clamp(max=1.0)
        grads = [g * view(coef, g) for g in grads]
    beta1, beta2 = config.betas
    for n, g in zip(names, grads, strict=True):
        p = params[n]
        if config.optimizer == "adamw":
            if config.weight_decay and p.dim() >= 3:  # a matrix of each model: decoupled decay
                p.mul_(1 - view(lr_now, p) * config.weight_decay)
        elif config.weight_decay:
            g = g + config.weight_decay * p
        if config.optimizer in ("adam", "adamw"):
            t = step + 1
            state_m[n].lerp_(g, 1 - beta1)
            state_v[n].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            step_size = view(lr_now, p) / (1 - beta1**t)
            denom = (state_v[n].sqrt() / math.sqrt(1 - beta2**t)).add_(_EPS)
            p.sub_(step_size * state_m[n] / denom)
        elif config.optimizer == "momentum":
            buf = state_m[n]
            if step == 0:
                buf.copy_(g)
            else:
                buf.mul_(_MOMENTUM).add_(g)
            p.sub_(view(lr_now, p) * buf)
        else:
            p.sub_(view(lr_now, p) * g)
