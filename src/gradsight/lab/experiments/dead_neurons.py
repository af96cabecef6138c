"""Experiment ``dead_neurons``: when ReLU units die, whether they stay dead, and what prevents it.

A hidden unit is *dead* when its ReLU output is zero for every training sample: then its
derivative is zero for every sample, no gradient reaches its incoming weights and bias, and
only a change in the layers below could bring it back. The experiment measures that exactly
(one forward pass over the whole training set at each checkpoint), not from a sample window.

1. Sweep: a 4-layer ReLU MLP on digits, SGD with momentum, over learning rates × bias inits ×
   seeds; dead fraction over training, and of the units dead at mid-training, how many are
   still dead at the end (permanence).
   A run *trains* when its loss stays finite and its test accuracy reaches 50 % (chance: 10 %);
   otherwise it *collapsed* (finite loss, near chance) or *diverged* (NaN). "Kills" and
   "permanently" are judged on runs that train: a collapsed network has lost more than units.
2. Remedies at the learning rate where the baseline still trains and loses the most units
   (:func:`remedy_lr`), not where it collapses:
   Leaky ReLU (α = 0.01; for it "dead" means negative for every sample, although it still gets
   α-scaled gradient), He initialization, and a learning-rate schedule (linear warm-up over the
   first 30 % of steps, then cosine decay) — each against the same baseline and seeds. Runs
   that fail to train are counted and left out of the dead fractions.
3. Revival: the baseline trained inside ``gradsight.watch`` with ``mon.revive_dead(optimizer)``
   every 50 steps (dead units' incoming weights re-initialized, optimizer state zeroed).

Every run trains inside ``gradsight.watch`` (every ``watch_every`` steps; the revival arm every
step, as revival needs). The monitor's dead fraction at the end — units with f' = 0 for every
sample of its window, the last 8 logged batches — is reported beside the experiment's own
full-training-set count; for ReLU the two name the same units when the window's batches cover
the training set (tested). For Leaky ReLU the monitor reports no dead units by design (f' = α
never vanishes), while the count here is "negative for every sample".
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from gradsight.lab.registry import (
    Claim,
    ExperimentResult,
    Figure,
    Progress,
    command_for,
    experiment,
)
from gradsight.lab.registry import (
    seeds as lab_seeds,
)
from gradsight.lab.watching import findings_count, summarize

NAME = "dead_neurons"
TITLE = "Dead ReLU neurons: learning rate, bias init, remedies and revival"
KILL_MARGIN = 0.10  # the largest lr must leave this many more units dead than the smallest
PERMANENT = 0.90  # share of mid-training dead units still dead at the end
PREVENTS = 0.02  # a remedy prevents dying when at most this fraction ends dead
TRAINS = 0.5  # a run trains when its test accuracy reaches this (chance: 10 %) without NaN


@dataclass(frozen=True)
class Setup:
    lrs: tuple[float, ...]
    bias_inits: tuple[float | None, ...]
    seeds: int
    steps: int
    depth: int = 4
    width: int = 64
    batch_size: int = 64
    check_every: int = 25
    revive_every: int = 50
    watch_every: int = 10  # gradsight.watch measures every this many steps (window: 8 of them)
    warmup_fraction: float = 0.3


QUICK = Setup(lrs=(0.01, 0.1, 0.15, 0.3), bias_inits=(None, 0.1), seeds=3, steps=300)
FULL = Setup(lrs=(0.003, 0.01, 0.03, 0.1, 0.15, 0.2, 0.3, 1.0),
             bias_inits=(None, -0.1, 0.0, 0.1, 0.5), seeds=5, steps=1000)


# ------------------------------------------------------------------------- pure verdicts

def kill_verdict(
    trained_dead: dict[float, float], still_dead: float | None,
    failed: dict[float, tuple[int, int, float | None]] | None = None,
    margin: float = KILL_MARGIN, permanent: float = PERMANENT,
) -> tuple[str, str]:
    """Verdict on "large learning rates kill ReLU neurons permanently", judged on runs that train.

    ``trained_dead``: per learning rate at which most seeds *trained* (test accuracy at least
    :data:`TRAINS`, no NaN), the final dead fraction, mean over those runs. ``still_dead``: at
    the learning rate of ``trained_dead`` with the most dead units, the share of units dead at
    mid-training still dead at the end, over runs that trained (None when none were dead).
    ``failed``: per learning rate, (runs that collapsed or diverged, runs, mean dead fraction
    at the end of the collapsed ones or None) — reported, never judged on: a network that
    collapsed to chance has lost more than units.

    Kills: some learning rate that trains ends with at least ``margin`` more dead units than
    the smallest. Kills and ``still_dead >= permanent`` → supported; kills but units come back
    → nuanced; no kill in runs that train, while larger steps made runs collapse or diverge →
    nuanced (units die with the run, not in it); no kill and no failed run → refuted.

    >>> kill_verdict({0.01: 0.03, 0.1: 0.45}, 0.95)[0]
    'supported'
    >>> kill_verdict({0.01: 0.03, 0.1: 0.45}, 0.5)[0]
    'nuanced'
    >>> kill_verdict({0.01: 0.03, 0.1: 0.01}, 0.4, {0.3: (3, 3, 0.6)})[0]
    'nuanced'
    >>> kill_verdict({0.01: 0.03, 0.1: 0.01}, 0.4, {0.3: (0, 3, None)})[0]
    'refuted'
    """
    failed = {lr: f for lr, f in (failed or {}).items() if f[0]}
    fail_text = "; ".join(
        f"{n}/{total} at lr {lr:g}" + ("" if dead is None else f" ({dead:.0%} dead)")
        for lr, (n, total, dead) in sorted(failed.items())
    )
    if not trained_dead:
        return "nuanced", "No learning rate trained in most seeds: nothing to judge on."
    lo = min(trained_dead)
    top = max(trained_dead, key=lambda lr: (trained_dead[lr], -lr))
    rise = trained_dead[top] - trained_dead[lo]
    shown = "none were dead" if still_dead is None else f"{still_dead:.0%} were still dead"
    head = (
        f"In runs that trained (test accuracy ≥ {TRAINS:.0%}), the dead fraction at the end is "
        + ", ".join(f"{trained_dead[lr]:.1%} at lr {lr:g}" for lr in sorted(trained_dead))
        + f"; of the units dead at mid-training at lr {top:g}"
        + (" (the most dead)" if len(trained_dead) > 1 else "")
        + f", {shown} at the end."
    )
    if rise >= margin:
        if still_dead is not None and still_dead >= permanent:
            return "supported", head + (
                " Large learning rates kill units in networks that still train, and for good: a "
                "unit that is zero for every sample gets no gradient."
            )
        return "nuanced", head + " Large learning rates kill units, but not for good: the layers " \
            "below moved and brought some back."
    if failed:
        return "nuanced", head + (
            f" In runs that train, a larger step did not leave {margin:.0%} more units dead. Units "
            f"die in bulk only where the run itself failed (collapsed to chance accuracy or NaN "
            f"loss: {fail_text}): dying there is one symptom of a step too large to train with."
        )
    return "refuted", head + f" No learning rate left {margin:.0%} more units dead, and every run trained."


def remedy_verdict(
    baseline: float, remedies: dict[str, float | None], floor: float = 0.0,
    prevents: float = PREVENTS,
) -> tuple[str, str, dict[str, str]]:
    """Verdict on "Leaky ReLU, careful initialization and learning-rate scheduling prevent dead
    neurons" from final dead fractions at a learning rate where the baseline trains
    (:func:`remedy_lr`).

    ``remedies[name]`` is the remedy's final dead fraction (mean over seeds that trained), or
    None when most of its seeds failed to train (collapsed to chance or NaN loss): a remedy
    that trades dead units for a failed run prevents nothing. ``floor`` is the dead fraction a small learning rate ends
    with (units that never activate on this data). A remedy *prevents* when it ends with at
    most ``floor + prevents`` dead, *reduces* when it at least halves the baseline, else *does
    not help*. All prevent → supported; none prevents or reduces → refuted; otherwise nuanced.
    A baseline within ``floor + prevents`` leaves nothing to prevent → untestable (this run
    cannot decide it: at no learning rate where the baseline trains did it lose units).

    >>> remedy_verdict(0.6, {"leaky_relu": 0.0, "he_init": 0.01, "warmup": 0.0})[0]
    'supported'
    >>> remedy_verdict(0.6, {"leaky_relu": None, "he_init": 0.6, "warmup": 0.02})[0]
    'nuanced'
    >>> remedy_verdict(0.6, {"leaky_relu": None, "he_init": 0.6, "warmup": 0.5})[0]
    'refuted'
    >>> remedy_verdict(0.04, {"leaky_relu": 0.0, "he_init": 0.0, "warmup": 0.0}, floor=0.03)[0]
    'untestable'
    """
    status = {
        k: "fails to train" if v is None
        else "prevents" if v <= floor + prevents
        else "reduces" if v <= baseline / 2 else "does not help"
        for k, v in remedies.items()
    }
    listing = ", ".join(
        f"{k} fails to train" if remedies[k] is None else f"{k} {remedies[k]:.1%} ({status[k]})"
        for k in remedies
    )
    head = (
        f"Baseline ReLU ends with {baseline:.1%} dead (a small learning rate: {floor:.1%}); with "
        f"each remedy: {listing}."
    )
    if baseline <= floor + prevents:
        return "untestable", head + (
            " At no learning rate where the baseline trains did it lose units beyond the small "
            "learning rate's, so there was nothing to prevent and this run cannot judge a remedy."
        ), status
    if all(s == "prevents" for s in status.values()):
        return "supported", head, status
    if all(s in ("does not help", "fails to train") for s in status.values()):
        return "refuted", head + " None of them helped at this learning rate.", status
    return "nuanced", head + " Not every remedy is enough on its own at this learning rate.", status


# ------------------------------------------------------------------------- measurement

@dataclass
class Run:
    """One training run: dead fraction (and per-unit masks) at each checkpoint."""

    steps: list[int] = field(default_factory=list)
    dead: list[float] = field(default_factory=list)
    masks: list[torch.Tensor] = field(default_factory=list)  # (units,) bool per checkpoint
    test_acc: float = 0.0
    diverged: bool = False
    revived_units: int = 0
    seconds: float = 0.0
    watch: Any = None  # gradsight.lab.watching.WatchSummary of the run

    @property
    def trained(self) -> bool:
        """Finite loss throughout and test accuracy at least :data:`TRAINS`."""
        return not self.diverged and self.test_acc >= TRAINS

    @property
    def monitor_dead(self) -> float:
        """The monitor's dead fraction over all hidden units at the end (its window)."""
        return self.watch.pooled("dead_fraction") if self.watch is not None else math.nan

    def still_dead(self) -> tuple[int, int]:
        """(units dead at mid-training, of those still dead at the end)."""
        mid = self.masks[len(self.masks) // 2]
        return int(mid.sum()), int((mid & self.masks[-1]).sum())


def dead_mask(model: Any, X: torch.Tensor) -> torch.Tensor:
    """(units,) bool: hidden units whose derivative f'(z) is exactly 0 for every row of ``X``.

    For ReLU that is "pre-activation ≤ 0 for every sample" (ReLU'(0) = 0). An activation whose
    catalog entry cannot die (Leaky ReLU: f' = α below zero) has no dead units by this count,
    however many of its units stay negative: they still pass α·dout and can come back.
    """
    with torch.no_grad():
        _, hs = model.forward_with_preactivations(X)  # depth × (N, width)
    return torch.cat([(model.act.derivative(h) == 0).all(dim=0) for h in hs])


def train_one(
    ds: Any, setup: Setup, *, lr: float, seed: int, activation: str = "relu",
    init: str = "pytorch_default", bias_init: float | None = None, schedule: str = "constant",
    revive: bool = False,
) -> Run:
    """Train one MLP with SGD + momentum 0.9 through the lab's loop
    (:func:`gradsight.lab.training.fit`), checking the dead mask every ``check_every`` steps.

    ``schedule``: ``"constant"`` or ``"warmup_cosine"`` (linear warm-up over the first
    ``warmup_fraction`` of the steps, at least one, then cosine decay to 0; see
    :func:`gradsight.lab.training.lr_at`).
    """
    from gradsight.lab.data import batches
    from gradsight.lab.models import MLP
    from gradsight.lab.training import Loop, TrainConfig, Watch, fit, make_optimizer

    model = MLP(ds.n_features, ds.n_classes, depth=setup.depth, width=setup.width,
                activation=activation, init=init, bias_init=bias_init, seed=seed)
    config = TrainConfig(
        steps=setup.steps, batch_size=setup.batch_size, lr=lr, optimizer="momentum",
        schedule=schedule, warmup=max(1, int(round(setup.warmup_fraction * setup.steps))),
        seed=seed, eval_every=setup.check_every, watch=True,
        watch_every=1 if revive else setup.watch_every, threads=None,
    )
    opt = make_optimizer(model.parameters(), config)
    idx = batches(len(ds.y_train), config.batch_size, config.steps, config.seed)  # (steps, B)
    run = Run()
    start = time.perf_counter()

    def loss_at(step: int) -> torch.Tensor:
        b = idx[step]
        return F.cross_entropy(model(ds.X_train[b]), ds.y_train[b])

    def check(loop: Loop) -> None:
        if loop.diverged:  # a run that diverged is judged by its flag, not by a last mask
            return
        mask = dead_mask(model, ds.X_train)
        run.steps.append(loop.step)
        run.masks.append(mask)
        run.dead.append(float(mask.float().mean()))

    def maybe_revive(loop: Loop) -> None:
        if revive and loop.step % setup.revive_every == 0 and loop.step < setup.steps:
            revived = loop.monitor.revive_dead(opt)
            run.revived_units += sum(len(v) for v in revived.values())

    if revive:
        # revive_dead draws fresh weights from torch's global generator: seed it per run so the
        # revival arm is as reproducible as the others; it needs the monitor on every step
        torch.manual_seed(seed)
    watch = Watch(every=config.watch_every, window=8, check_nonfinite=not revive)
    loop = fit(model, loss_at, opt, config, watch=watch, on_step=maybe_revive, on_eval=check)
    run.diverged = loop.diverged
    run.watch = summarize(loop.monitor.report())
    with torch.no_grad():
        run.test_acc = float((model(ds.X_test).argmax(1) == ds.y_test).double().mean())
    run.seconds = time.perf_counter() - start
    return run


def _mean(xs: Sequence[float]) -> float:
    return float(statistics.fmean(xs)) if xs else float("nan")


def _still_dead(runs: Sequence[Run]) -> float | None:
    mid = sum(r.still_dead()[0] for r in runs)
    return sum(r.still_dead()[1] for r in runs) / mid if mid else None


def summary_row(label: dict[str, Any], runs: list[Run]) -> dict[str, Any]:
    """One row of the experiment's table: ``label`` plus the dead fraction at start, mid-training
    and end (mean over runs whose loss stayed finite), test accuracy, the monitor's count, and
    the runs split three ways -- ``trained`` (finite loss, test accuracy ≥ :data:`TRAINS`),
    ``collapsed`` (finite loss, below it) and ``diverged`` (NaN/Inf loss) -- with the dead
    fraction at the end of each group and the share of mid-training dead units still dead."""
    ok = [r for r in runs if not r.diverged]
    trained = [r for r in runs if r.trained]
    collapsed = [r for r in ok if not r.trained]
    return {
        **label,
        "dead_at_start": _mean([r.dead[0] for r in ok]),
        "dead_at_mid": _mean([r.dead[len(r.dead) // 2] for r in ok]),
        "dead_at_end": _mean([r.dead[-1] for r in ok]),
        "dead_at_end_per_seed": [round(r.dead[-1], 4) for r in ok],
        "monitor_dead_at_end": _mean([r.monitor_dead for r in ok]),
        "monitor_findings": ", ".join(
            f"{k} {v}/{len(runs)}" for k, v in sorted(findings_count([r.watch for r in runs]).items())
        ) or "none",
        "still_dead_of_mid": _still_dead(ok),
        "test_acc": _mean([r.test_acc for r in ok]),
        "test_acc_per_seed": [None if r.diverged else round(r.test_acc, 4) for r in runs],
        "diverged": f"{len(runs) - len(ok)}/{len(runs)}",
        "collapsed": f"{len(collapsed)}/{len(runs)}",
        "trained": f"{len(trained)}/{len(runs)}",
        "dead_at_end_trained": _mean([r.dead[-1] for r in trained]),
        "dead_at_end_collapsed": _mean([r.dead[-1] for r in collapsed]),
        "still_dead_of_mid_trained": _still_dead(trained),
    }


def monitor_agreement(runs: Sequence[Run]) -> dict[str, Any]:
    """How the monitor's dead fraction at the end compares with the full-set count at the end,
    over ReLU runs that trained: the largest and the median |difference|, and the mean of each.

    >>> r = Run(dead=[0.0, 0.5]); r.watch = None
    >>> monitor_agreement([r])["runs"]
    0
    """
    pairs = [(r.monitor_dead, r.dead[-1]) for r in runs
             if not r.diverged and not math.isnan(r.monitor_dead)]
    if not pairs:
        return {"runs": 0}
    diffs = [abs(m - c) for m, c in pairs]
    return {
        "runs": len(pairs),
        "max_abs_difference": round(max(diffs), 4),
        "median_abs_difference": round(statistics.median(diffs), 4),
        "monitor_mean": round(statistics.fmean(m for m, _ in pairs), 4),
        "count_mean": round(statistics.fmean(c for _, c in pairs), 4),
    }


def remedy_lr(trained_dead: dict[float, float], fallback: float) -> float:
    """Where the remedies are tested: of the learning rates at which the baseline trains
    (``trained_dead``: lr → final dead fraction of its runs that trained), the one that leaves
    the most units dead (ties: the smaller lr); ``fallback`` when none trains.

    >>> remedy_lr({0.01: 0.03, 0.1: 0.08, 0.12: 0.05}, 0.01)
    0.1
    >>> remedy_lr({}, 0.01)
    0.01
    """
    if not trained_dead:
        return fallback
    return max(trained_dead, key=lambda lr: (trained_dead[lr], -lr))


def dead_if_trained(row: dict[str, Any]) -> float | None:
    """A summary row's final dead fraction over runs that trained, or None when most of its
    seeds failed to train (collapsed or diverged)."""
    n_ok, n = (int(x) for x in row["trained"].split("/"))
    if 2 * n_ok <= n or math.isnan(row["dead_at_end_trained"]):
        return None
    return round(row["dead_at_end_trained"], 4)


def trained_dead_by_lr(runs_by_lr: dict[float, list[Run]]) -> dict[float, float]:
    """Per learning rate at which most runs trained: the mean final dead fraction of those runs."""
    return {
        lr: statistics.fmean(r.dead[-1] for r in rs if r.trained)
        for lr, rs in runs_by_lr.items() if 2 * sum(r.trained for r in rs) > len(rs)
    }


def _pct_or_dash(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.0%}"


def _curve(runs: list[Run]) -> tuple[list[int], list[float]]:
    ok = [r for r in runs if not r.diverged]
    if not ok:
        return [], []
    steps = ok[0].steps
    return steps, [statistics.median(r.dead[i] for r in ok) for i in range(len(steps))]


def _monitor_dead(runs: list[Run]) -> float | None:
    """Median over the runs that trained of the monitor's dead fraction at the end."""
    ok = [r.monitor_dead for r in runs if not r.diverged and not math.isnan(r.monitor_dead)]
    return statistics.median(ok) if ok else None


def _figure(sweep: dict[tuple[float, Any], list[Run]], remedies: dict[str, list[Run]],
            setup: Setup, kill_lr: float) -> Figure:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    cmap = plt.get_cmap("viridis")
    for i, lr in enumerate(setup.lrs):
        steps, dead = _curve(sweep[(lr, None)])
        color = cmap(i / max(1, len(setup.lrs) - 1))
        if steps:
            a.plot(steps, dead, color=color, label=f"lr {lr:g}")
        watched = _monitor_dead(sweep[(lr, None)])
        if watched is not None:
            a.scatter([setup.steps], [watched], marker="x", color=color, s=40, zorder=3,
                      label="gradsight.watch at the end" if i == 0 else None)
    a.set_xlabel("step")
    a.set_ylabel("dead fraction of hidden units (median over seeds)")
    a.set_title("ReLU MLP, PyTorch default init: learning rate")
    a.legend(fontsize=8)
    for name, runs in remedies.items():
        steps, dead = _curve(runs)
        ok = sum(not r.diverged for r in runs)
        label = name if ok == len(runs) else f"{name} ({len(runs) - ok}/{len(runs)} diverged)"
        if steps:
            (line,) = b.plot(steps, dead, label=label, lw=2 if name == "baseline" else 1.3)
            watched = _monitor_dead(runs)
            if watched is not None and name != "leaky_relu":
                b.scatter([setup.steps], [watched], marker="x", color=line.get_color(), s=40, zorder=3)
    b.set_xlabel("step")
    b.set_title(f"Remedies and revival at lr {kill_lr:g}")
    b.legend(fontsize=8)
    fig.tight_layout()
    return Figure.from_matplotlib(
        fig,
        "Dead units over training",
        "Dead = pre-activation ≤ 0 for every training sample (for Leaky ReLU: stuck negative, "
        "though it still gets α-scaled gradient). Medians over seeds; diverged runs left out. "
        "Crosses: the dead fraction gradsight.watch reported at the end of the same runs (f' = 0 "
        "for every sample of its window of 8 logged batches); it should sit on the line's end.",
    )


@experiment(NAME, TITLE, order=30, quick_budget_s=30, typical_s=(9, 166))
def run(quick: bool, progress: Progress) -> ExperimentResult:
    """Sweep learning rate × bias init, then remedies and revival; see the module docstring."""
    from gradsight.lab import data
    from gradsight.lab.training import torch_threads

    setup = QUICK if quick else FULL
    ds = data.load("digits")
    total = len(setup.lrs) * len(setup.bias_inits) * setup.seeds + 4 * setup.seeds
    done = 0
    sweep: dict[tuple[float, Any], list[Run]] = {}
    with torch_threads(1):  # tiny models: one thread is as fast and immune to barrier stalls
        for bias in setup.bias_inits:
            for lr in setup.lrs:
                runs = []
                for seed in lab_seeds(setup.seeds):
                    runs.append(train_one(ds, setup, lr=lr, seed=seed, bias_init=bias))
                    done += 1
                    progress(done, total, f"lr {lr:g} bias {bias}")
                sweep[(lr, bias)] = runs
        trained_dead = trained_dead_by_lr({lr: sweep[(lr, None)] for lr in setup.lrs})
        kill_lr = remedy_lr(trained_dead, min(setup.lrs))
        arms = {
            "leaky_relu": {"activation": "leaky_relu"},
            "he_init": {"init": "he"},
            "warmup_cosine": {"schedule": "warmup_cosine"},
            "revive_dead": {"revive": True},
        }
        remedies: dict[str, list[Run]] = {"baseline": sweep[(kill_lr, None)]}
        for arm, kw in arms.items():
            runs = []
            for seed in lab_seeds(setup.seeds):
                runs.append(train_one(ds, setup, lr=kill_lr, seed=seed, **kw))
                done += 1
                progress(done, total, arm)
            remedies[arm] = runs

    rows = [
        summary_row({"part": "sweep", "lr": lr, "bias_init": "pytorch_default" if b is None else b}, rs)
        for (lr, b), rs in sweep.items()
    ]
    remedy_rows = [summary_row({"part": "remedy", "lr": kill_lr, "arm": k}, rs) for k, rs in remedies.items()]
    for row, (arm, rs) in zip(remedy_rows, remedies.items(), strict=True):
        row["revived_units"] = sum(r.revived_units for r in rs) if arm == "revive_dead" else None
    rows += remedy_rows

    default_rows = {r["lr"]: r for r in rows if r["part"] == "sweep" and r["bias_init"] == "pytorch_default"}
    still = default_rows[kill_lr]["still_dead_of_mid_trained"] if trained_dead else None
    failed = {
        lr: (sum(not r.trained for r in sweep[(lr, None)]), setup.seeds,
             None if math.isnan(default_rows[lr]["dead_at_end_collapsed"])
             else default_rows[lr]["dead_at_end_collapsed"])
        for lr in setup.lrs
    }
    verdict1, text1 = kill_verdict(trained_dead, still, failed)
    by_bias = {
        str(r["bias_init"]): None if math.isnan(r["dead_at_end_trained"]) else round(r["dead_at_end_trained"], 4)
        for r in rows if r["part"] == "sweep" and r["lr"] == kill_lr
    }
    text1 += " At lr {:g}, runs that trained, by bias init: {}.".format(
        kill_lr, ", ".join(f"{k} → {'—' if v is None else format(v, '.1%')}" for k, v in by_bias.items())
    )
    text1 += " Test accuracy per seed: " + "; ".join(
        f"lr {lr:g} " + ", ".join("NaN" if a is None else f"{a:.0%}" for a in default_rows[lr]["test_acc_per_seed"])
        for lr in setup.lrs
    ) + "."
    agreement = monitor_agreement([r for rs in sweep.values() for r in rs]
                                  + [r for arm, rs in remedies.items()
                                     if arm not in ("baseline", "leaky_relu") for r in rs])
    if agreement["runs"]:
        text1 += (
            f" gradsight.watch, which watched every run, ends with {agreement['monitor_mean']:.1%} "
            f"dead on average against {agreement['count_mean']:.1%} counted here (median "
            f"|difference| {agreement['median_abs_difference']:.1%} over {agreement['runs']} ReLU "
            f"runs, largest {agreement['max_abs_difference']:.1%}: the monitor judges over its "
            f"window, the last 8 logged batches spanning {8 * setup.watch_every} steps, so units "
            "dying within it are not yet dead to it; the count here uses every training image "
            "at the last step)."
        )
    lo = min(trained_dead) if trained_dead else None
    claim1 = Claim(
        id="dead_neurons.large_lr_kills",
        claim="Large learning rates kill ReLU neurons permanently",
        verdict=verdict1,  # type: ignore[arg-type]
        evidence={
            "trains_at_test_acc": TRAINS,
            "dead_at_end_trained_by_lr": {f"{k:g}": round(v, 4) for k, v in trained_dead.items()},
            "smallest_lr": lo,
            "most_dead_trained_lr": kill_lr,
            "dead_at_smallest_lr": None if lo is None else round(trained_dead[lo], 4),
            "dead_at_most_dead_trained_lr": round(trained_dead.get(kill_lr, math.nan), 4),
            "still_dead_at_end_trained": None if still is None else round(still, 4),
            "failed_runs_by_lr": {f"{lr:g}": f"{n}/{t}" for lr, (n, t, _) in failed.items()},
            "dead_at_end_collapsed_by_lr": {f"{lr:g}": None if d is None else round(d, 4)
                                            for lr, (_, _, d) in failed.items()},
            "test_acc_per_seed_by_lr": {f"{lr:g}": default_rows[lr]["test_acc_per_seed"] for lr in setup.lrs},
            "dead_at_end_trained_by_bias_init": by_bias,
            "seeds": setup.seeds,
            "monitor_vs_count": agreement,
        },
        command=command_for(NAME, quick),
        explanation=text1,
    )
    rem = {r["arm"]: r for r in remedy_rows}
    base = rem["baseline"]["dead_at_end_trained"]
    named = {"leaky_relu": "Leaky ReLU", "he_init": "He init", "warmup_cosine": "warm-up + cosine"}
    remedy_dead = {named[k]: dead_if_trained(rem[k]) for k in named}
    floor = trained_dead[lo] if lo is not None else 0.0
    verdict2, text2, status = remedy_verdict(0.0 if math.isnan(base) else base, remedy_dead, floor)
    text2 = f"Tested at lr {kill_lr:g}, the learning rate that trains and leaves the most units dead. " + text2
    rev = rem["revive_dead"]
    text2 += (
        f" Revival with mon.revive_dead every {setup.revive_every} steps: "
        + ("most runs failed to train" if dead_if_trained(rev) is None
           else f"{rev['dead_at_end_trained']:.1%} dead at the end")
        + f" ({rev['revived_units']} units re-initialized over {setup.seeds} runs, "
        f"{rev['trained']} trained). Test accuracy (runs without NaN): "
        + ", ".join(f"{k} {_pct_or_dash(rem[k]['test_acc'])}" for k in ("baseline", *named, "revive_dead"))
        + "."
    )
    claim2 = Claim(
        id="dead_neurons.remedies_prevent",
        claim="Leaky ReLU, careful initialization and learning-rate scheduling prevent dead neurons",
        verdict=verdict2,  # type: ignore[arg-type]
        evidence={
            "lr": kill_lr,
            "baseline_dead": None if math.isnan(base) else round(base, 4),
            "small_lr_dead": round(floor, 4),
            "remedy_dead": remedy_dead,
            "remedy_status": status,
            "remedy_test_acc": {k: round(rem[k]["test_acc"], 4) for k in rem},
            "revival_dead_before": None if math.isnan(base) else round(base, 4),
            "revival_dead_after": dead_if_trained(rev),
            "trained_runs": {k: rem[k]["trained"] for k in rem},
            "diverged_runs": {k: rem[k]["diverged"] for k in rem},
            "revived_units": rev["revived_units"],
            "seeds": setup.seeds,
        },
        command=command_for(NAME, quick),
        explanation=text2,
    )
    watched = [
        {"part": "sweep", "lr": lr, "bias_init": b, "seed": i, **r.watch.compact()}
        for (lr, b), rs in sweep.items() for i, r in enumerate(rs)
    ] + [
        {"part": "remedy", "lr": kill_lr, "arm": arm, "seed": i, **r.watch.compact()}
        for arm, rs in remedies.items() if arm != "baseline" for i, r in enumerate(rs)
    ]
    curves = {
        f"lr {lr:g} bias {b}": dict(zip(("steps", "dead_median"), _curve(rs), strict=True))
        for (lr, b), rs in sweep.items()
    }
    curves.update({f"remedy {k}": dict(zip(("steps", "dead_median"), _curve(rs), strict=True)) for k, rs in remedies.items()})
    scale = (
        f"MLP {setup.depth}×{setup.width} ReLU on digits ({len(ds.y_train):,} training images), SGD momentum 0.9, "
        f"batch {setup.batch_size}, {setup.steps} steps; {setup.seeds} seeds per cell; dead "
        f"checked on the full training set every {setup.check_every} steps; learning rates "
        f"{', '.join(f'{lr:g}' for lr in setup.lrs)}; bias inits "
        f"{', '.join('default' if b is None else f'{b:g}' for b in setup.bias_inits)}; 1 torch thread."
    )
    return ExperimentResult(
        name=NAME,
        title=TITLE,
        summary=(
            "How many ReLU units end up zero for every training sample as the learning rate and "
            "the bias init change, whether they come back, and what Leaky ReLU, He init, a "
            "warm-up schedule and gradsight's revive_dead do about it — each measured against the "
            "same baseline and seeds."
        ),
        command=command_for(NAME, quick),
        quick=quick,
        scale=scale,
        rows=rows,
        data={"kill_lr": kill_lr, "curves": curves, "watch_every": setup.watch_every,
              "monitor_vs_count": agreement, "watch": watched},
        figures=[_figure(sweep, remedies, setup, kill_lr)],
        claims=[claim1, claim2],
    )
