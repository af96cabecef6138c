"""Experiment ``training_speed``: steps and seconds to a target accuracy, per activation.

"ReLU networks converge faster than sigmoid ones" depends on what else is fixed. Each setting
(data set × depth × optimizer × init family) trains MLPs of every activation on a small
learning-rate grid and several seeds, all of one activation at once with the ensemble trainer
(:func:`gradsight.lab.ensemble.train_ensemble`): seeds × learning rates × inits share one
stacked run. Per activation the learning rate with the fewest median steps to the target test
accuracy is kept (the way Krizhevsky et al. tuned each network separately), and ReLU is
compared with sigmoid setting by setting, seed spread included. In ``gradsight lab`` each
(data set, depth, optimizer, activation) ensemble is one trial (:func:`plan`,
:func:`train_setting`, :func:`build`), so workers or a Ray cluster train them side by side.

Init families: ``default`` is PyTorch's default Linear init for every activation; ``matched``
gives each activation the init designed for it (Xavier for sigmoid and tanh, He otherwise).

Every run is watched by ``gradsight.watch`` (every ``watch_every`` steps, one monitor per
ensemble member): the results keep, per run, the monitor's per-layer dead and saturated
fraction, ‖∂L/∂y‖ and E[f'] at the end, E[f'] at the first step, and its findings. The figure
shows E[f'] per hidden layer at the start — how open each activation's valve is before any
learning.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gradsight.activations import activation as gs_activation
from gradsight.errors import GradsightError
from gradsight.lab.registry import (
    Claim,
    ExperimentResult,
    Figure,
    command_for,
    seeded,
    split_experiment,
)
from gradsight.lab.registry import (
    seeds as lab_seeds,
)

NAME = "training_speed"
TITLE = "Training speed: steps to a target accuracy per activation"
LRS = {"momentum": (0.01, 0.1, 1.0), "adam": (1e-3, 3e-3, 1e-2)}
TARGETS = {"digits": 0.9, "mnist1d": 0.5}  # test accuracy (MLPs top out near 0.6 on MNIST-1D)


def matched_init(activation: str) -> str:
    """The init designed for ``activation``: Xavier for saturating ones (sigmoid, tanh: a
    catalog property), He for the others (the ReLU family and its smooth kin)."""
    return "xavier" if gs_activation(activation).saturates else "he"


@dataclass(frozen=True)
class Grid:
    datasets: tuple[str, ...]
    depths: tuple[int, ...]
    activations: tuple[str, ...]
    optimizers: tuple[str, ...]
    seeds: int
    steps: int
    width: int = 64
    batch_size: int = 64
    eval_every: int = 20
    watch_every: int = 10  # gradsight.watch measures every this many steps (window: 8 of them)


QUICK = Grid(("digits",), (5, 10), ("sigmoid", "relu"), ("momentum", "adam"), 3, 300,
             watch_every=15)
FULL = Grid(
    ("digits", "mnist1d"), (5, 10, 20),
    ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu"), ("momentum", "adam"), 3, 1000,
    eval_every=25, watch_every=50,
)


# ------------------------------------------------------------------------- pure functions

def _key(steps: int | None) -> float:
    return float("inf") if steps is None else float(steps)


def median_steps(steps: Sequence[int | None]) -> float:
    """Median steps to target over seeds; a seed that never reached it counts as infinite."""
    return statistics.median(_key(s) for s in steps)


def best_lr(per_lr: dict[float, Sequence[int | None]]) -> float:
    """The learning rate whose seeds reach the target in the fewest median steps (ties: the
    one with more seeds reaching it, then the smaller lr)."""
    return min(
        per_lr,
        key=lambda lr: (median_steps(per_lr[lr]), -sum(s is not None for s in per_lr[lr]), lr),
    )


def compare(a: Sequence[int | None], b: Sequence[int | None]) -> str:
    """Which of two activations reached the target first, seeds included, never-reached seeds
    treated as censored: slower than any seed that reached it, tied with each other.

    ``"a"`` when every seed of a that reached the target did so before every seed of b that
    did (or b had none) and a reached it in at least as many seeds, with one of the two strict
    (a's range ends before b's starts, or a reached it in more seeds); ``"b"`` symmetrically;
    ``"neither"`` when no seed of either reached it; else ``"tie"``.

    >>> compare([100, 120, 110], [300, None, 250])
    'a'
    >>> compare([100, 300], [200, 250])
    'tie'
    >>> compare([150, 200, None], [None, None, None])  # 2 of 3 vs 0 of 3: a is faster
    'a'
    >>> compare([100, None, None], [150, 160, 170])  # a once, early; b always, later
    'tie'
    """
    ra = [s for s in a if s is not None]
    rb = [s for s in b if s is not None]
    if not ra and not rb:
        return "neither"

    def beats(x: list[int], y: list[int]) -> bool:
        separated = not y or not x or max(x) < min(y)
        return bool(x) and separated and len(x) >= len(y) and (len(x) > len(y) or max(x) < min(y))

    if beats(ra, rb):
        return "a"
    if beats(rb, ra):
        return "b"
    return "tie"


def speed_verdict(outcomes: dict[str, str]) -> tuple[str, str]:
    """Verdict on "ReLU networks converge faster than sigmoid ones" from per-setting outcomes.

    ``outcomes`` maps a setting label to :func:`compare` of (relu, sigmoid): ``"a"`` ReLU faster,
    ``"b"`` sigmoid faster, ``"tie"``, ``"neither"``. Settings where neither trained are left
    out of the verdict (they are reported). ReLU faster in every remaining setting → supported;
    in none → refuted; in some → nuanced. No setting where either trained → nuanced (nothing
    could be compared).

    >>> speed_verdict({"d5": "a", "d10": "a", "d20": "neither"})[0]
    'supported'
    >>> speed_verdict({"d5": "a", "d10": "tie"})[0]
    'nuanced'
    """
    decided = {k: v for k, v in outcomes.items() if v != "neither"}
    wins = [k for k, v in decided.items() if v == "a"]
    losses = [k for k, v in decided.items() if v == "b"]
    ties = [k for k, v in decided.items() if v == "tie"]
    neither = [k for k, v in outcomes.items() if v == "neither"]
    tail = f" Neither reached the target in: {', '.join(neither)}." if neither else ""
    if not decided:
        return "nuanced", "Neither ReLU nor sigmoid reached the target in any setting." + tail
    if len(wins) == len(decided):
        return "supported", (
            f"ReLU reached the target first in all {len(decided)} settings where either did, "
            f"with no overlap between seeds." + tail
        )
    if not wins:
        return "refuted", (
            f"ReLU was never clearly faster: sigmoid faster in {len(losses)}, seed ranges "
            f"overlapping in {len(ties)} of {len(decided)} settings." + tail
        )
    parts = [f"ReLU faster in {', '.join(wins)}"]
    if losses:
        parts.append(f"sigmoid faster in {', '.join(losses)}")
    if ties:
        parts.append(f"no clear difference in {', '.join(ties)}")
    return "nuanced", "It depends on the setting: " + "; ".join(parts) + "." + tail


def _median_or_none(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(statistics.median(kept), 4) if kept else None


# ------------------------------------------------------------------------- measurement

def _setting_label(ds: str, depth: int, opt: str, init: str) -> str:
    return f"{ds}/depth {depth}/{opt}/{init} init"


def _train_activation(
    ds: Any, grid: Grid, depth: int, activation: str, optimizer: str, seeds_: Sequence[int]
) -> tuple[dict[str, dict[float, list[Any]]], float]:
    """Train ``seeds_`` × lrs × {default, matched} inits of one activation together.

    Returns ({init family: {lr: [TrainResult per seed]}}, ensemble seconds).
    """
    from gradsight.lab.ensemble import train_ensemble
    from gradsight.lab.models import MLP
    from gradsight.lab.training import TrainConfig

    families = {"default": "pytorch_default", "matched": matched_init(activation)}
    keys, nets, lrs, seeds = [], [], [], []
    for fam, init in families.items():
        for lr in LRS[optimizer]:
            for seed in seeds_:
                keys.append((fam, lr))
                nets.append(MLP(ds.n_features, ds.n_classes, depth=depth, width=grid.width,
                                activation=activation, init=init, seed=1000 * depth + seed))
                lrs.append(lr)
                seeds.append(seed)
    config = TrainConfig(steps=grid.steps, batch_size=grid.batch_size, optimizer=optimizer,
                         eval_every=grid.eval_every, eval_train_max=500, watch=True,
                         watch_every=grid.watch_every)
    start = time.perf_counter()
    runs = train_ensemble(nets, ds, config, lrs=lrs, seeds=seeds)
    seconds = time.perf_counter() - start
    out: dict[str, dict[float, list[Any]]] = {}
    for (fam, lr), run in zip(keys, runs, strict=True):
        out.setdefault(fam, {}).setdefault(lr, []).append(run)
    return out, seconds


def _figure(rows: list[dict[str, Any]], activations: Sequence[str], budget: int) -> Figure:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(settings) + 2), 4.2))
    width = 0.8 / len(activations)
    cap = budget * 1.1  # where "not reached within the step budget" is drawn
    colors = plt.get_cmap("tab10")
    for j, act in enumerate(activations):
        for i, setting in enumerate(settings):
            row = next((r for r in rows if r["setting"] == setting and r["activation"] == act), None)
            if row is None:
                continue
            x = i + (j - (len(activations) - 1) / 2) * width
            ys = [cap if s is None else s for s in row["steps_per_seed"]]
            ax.scatter([x] * len(ys), ys, color=colors(j), s=14, zorder=3,
                       marker="o", label=act if i == 0 else None)
            med = cap if row["median_steps"] is None else min(row["median_steps"], cap)
            ax.plot([x - width / 2.5, x + width / 2.5], [med] * 2, color=colors(j), lw=2)
    ax.axhline(cap, color="#999", lw=0.8, ls=":")
    ax.text(len(settings) - 0.5, cap, f"not reached in {budget} steps", ha="right", va="bottom",
            fontsize=8, color="#666")
    ax.set_ylim(0, cap * 1.08)
    ax.set_xticks(range(len(settings)))
    ax.set_xticklabels([s.replace("/", "\n") for s in settings], fontsize=7)
    ax.set_ylabel("steps to target test accuracy")
    ax.legend(fontsize=8, ncol=len(activations))
    fig.tight_layout()
    return Figure.from_matplotlib(
        fig,
        "Steps to the target accuracy, per setting and activation",
        "Dots: seeds at each activation's best learning rate; bars: medians; dotted line: "
        "the target was not reached within the step budget.",
    )


def _start_figure(profiles: dict[str, dict[str, list[float]]], label: str) -> Figure:
    """E[f'] per hidden layer at the first step, one line per activation, one panel per init
    family; ``profiles[family][activation]`` lists the medians over runs, input side first."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(profiles), figsize=(5.2 * len(profiles), 3.6), sharey=True,
                             squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (fam, per_act) in zip(axes[0], profiles.items(), strict=True):
        for j, (act, prof) in enumerate(per_act.items()):
            ax.plot(range(1, len(prof) + 1), prof, marker=".", color=colors(j), label=act)
        ax.set_xlabel("hidden layer (1 = nearest the input)")
        ax.set_title(f"{fam} init")
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("E[f'(z)] at the first step")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return Figure.from_matplotlib(
        fig,
        "How open each activation's valve is before learning (gradsight.watch)",
        f"Mean derivative E[f'(z)] over a batch and the layer's units at step 0, as gradsight.watch "
        f"measured it in every run ({label}; median over seeds and learning rates). Each "
        "layer multiplies the backward signal by about this much (times the weights).",
    )


def _findings_text(counts: dict[str, int], n: int) -> str:
    return ", ".join(f"{k} {v}/{n}" for k, v in sorted(counts.items())) or "none"


# ------------------------------------------------------------------------------- trials
#
# The lab runs training_speed as one trial per (data set, depth, optimizer, activation): the
# unit that trains as one ensemble. plan() lists them, train_setting() trains one and reduces
# it to its two rows (one per init family), build() compares the activations from those rows.

GRIDS: dict[str, Grid] = {"quick": QUICK, "full": FULL}


def plan(quick: bool, seed: int) -> list[dict[str, Any]]:
    """One trial config per (data set, depth, optimizer, activation) of the grid, with the
    seeds of the lab's ``--seed seed``."""
    name = "quick" if quick else "full"
    grid = GRIDS[name]
    with seeded(seed):
        seeds_ = lab_seeds(grid.seeds)
    return [
        {"grid": name, "dataset": ds, "depth": depth, "optimizer": opt, "activation": act,
         "seeds": seeds_}
        for ds in grid.datasets for depth in grid.depths for opt in grid.optimizers
        for act in grid.activations
    ]


def train_setting(config: dict[str, Any]) -> dict[str, Any]:
    """One trial: train ``config["activation"]`` on one data set, depth and optimizer (every
    seed × learning rate × init family, as one ensemble on one torch thread) and reduce it to
    what :func:`build` needs: one row per init family at its best learning rate, the test
    accuracy curves, what ``gradsight.watch`` saw per run, and E[f'] per layer at the start."""
    from gradsight.lab import data
    from gradsight.lab.training import steps_to_target, torch_threads
    from gradsight.lab.watching import findings_count, pooled_median

    grid = GRIDS[config["grid"]]
    ds_name, depth, opt, act = (config["dataset"], int(config["depth"]), config["optimizer"],
                                config["activation"])
    target = TARGETS[ds_name]
    rows: list[dict[str, Any]] = []
    curves: dict[str, Any] = {}
    watched: list[dict[str, Any]] = []
    start_profile: dict[str, list[float]] = {}
    with torch_threads(1):  # tiny matmuls: one thread is as fast and immune to barrier stalls
        by_fam, seconds = _train_activation(data.load(ds_name), grid, depth, act, opt,
                                            [int(s) for s in config["seeds"]])
    n_models = sum(len(v) for f in by_fam.values() for v in f.values())
    for fam, per_lr in by_fam.items():
        steps = {lr: [steps_to_target(r, target) for r in rs] for lr, rs in per_lr.items()}
        lr = best_lr(steps)
        runs = per_lr[lr]
        label = _setting_label(ds_name, depth, opt, fam)
        med = median_steps(steps[lr])
        sec_per_step = seconds / n_models / grid.steps
        rows.append({
            "setting": label,
            "activation": act,
            "init": "pytorch_default" if fam == "default" else matched_init(act),
            "best_lr": lr,
            "median_steps": med if med != float("inf") else None,
            "steps_per_seed": steps[lr],
            "reached": f"{sum(s is not None for s in steps[lr])}/{len(runs)}",
            "median_seconds": (med * sec_per_step) if med != float("inf") else None,
            "final_test_acc": statistics.median(r.final.test_acc for r in runs),
            "diverged": sum(r.diverged for r in runs),
        })
        counts = findings_count([r.watch for r in runs])
        rows[-1].update({
            "dead_at_end": pooled_median([r.watch for r in runs], "dead_fraction"),
            "saturated_at_end": pooled_median([r.watch for r in runs], "saturated_fraction"),
            "mean_derivative_at_start": pooled_median(
                [r.watch for r in runs], "mean_derivative", at="start"),
            "monitor_findings": _findings_text(counts, len(runs)),
        })
        curves[f"{label}/{act}"] = {
            "steps": [p.step for p in runs[0].history],
            "test_acc_per_seed": [[p.test_acc for p in r.history] for r in runs],
        }
        for run_lr, rs in per_lr.items():
            for seed, r in enumerate(rs):
                watched.append({"setting": label, "activation": act, "lr": run_lr, "seed": seed,
                                **r.watch.compact()})
        every = [r.watch.compact()["mean_derivative_start"] for rs in per_lr.values() for r in rs]
        start_profile[fam] = [statistics.median(col) for col in zip(*every, strict=True)]
    return {"rows": rows, "curves": curves, "watched": watched, "start_profile": start_profile}


def build(quick: bool, seed: int, results: list[tuple[dict[str, Any], dict[str, Any]]]
          ) -> ExperimentResult:
    """Compare the activations setting by setting from the trials' rows; see the module
    docstring."""
    grids = {c["grid"] for c, _ in results}
    if len(grids) != 1:
        raise GradsightError(f"training_speed trials of different grids cannot make one result: "
                             f"{sorted(grids)}")
    grid = GRIDS[grids.pop()]
    rows: list[dict[str, Any]] = []
    outcomes: dict[str, str] = {}
    per_setting: dict[str, dict[str, list[int | None]]] = {}
    curves: dict[str, Any] = {}
    watched: list[dict[str, Any]] = []  # one record per run: what gradsight.watch saw
    start_profiles: dict[str, dict[str, list[float]]] = {}  # family -> activation -> E[f'] per layer
    profile_setting = (grid.datasets[0], max(grid.depths), grid.optimizers[0])
    for config, metrics in results:
        rows += metrics["rows"]
        curves.update(metrics["curves"])
        watched += metrics["watched"]
        for row in metrics["rows"]:
            per_setting.setdefault(row["setting"], {})[row["activation"]] = row["steps_per_seed"]
        if (config["dataset"], config["depth"], config["optimizer"]) == profile_setting:
            for fam, profile in metrics["start_profile"].items():
                start_profiles.setdefault(fam, {})[config["activation"]] = profile

    for label, per_act in per_setting.items():
        if "relu" in per_act and "sigmoid" in per_act:
            outcomes[label] = compare(per_act["relu"], per_act["sigmoid"])
    verdict, text = speed_verdict(outcomes)
    wins = sum(v == "a" for v in outcomes.values())
    losses = sum(v == "b" for v in outcomes.values())
    fastest = {}
    for label, per_act in per_setting.items():
        best = min(per_act, key=lambda a: median_steps(per_act[a]))
        fastest[label] = best if median_steps(per_act[best]) != float("inf") else "none reached"
    med = {f"{label}": {a: (None if median_steps(s) == float("inf") else median_steps(s))
                        for a, s in per_act.items() if a in ("relu", "sigmoid")}
           for label, per_act in per_setting.items()}
    start_deriv = {
        a: statistics.median(r["mean_derivative_at_start"] for r in rows
                             if r["activation"] == a and r["mean_derivative_at_start"] is not None)
        for a in grid.activations
    }
    text += (
        " gradsight.watch, on every run: at the first step the mean derivative E[f'] over all "
        "hidden units (how much of the gradient each layer's activation lets through) was "
        + ", ".join(f"{a} {v:.2f}" for a, v in start_deriv.items())
        + " (median over settings)."
    )
    text += (
        " Per activation the best of a 3-value learning-rate grid was used; 'default' is "
        "PyTorch's Linear init, 'matched' is Xavier for sigmoid and He for ReLU. Target: "
        + ", ".join(f"{TARGETS[d]:.0%} test accuracy on {d}" for d in grid.datasets) + "."
    )
    claim = Claim(
        id="training_speed.relu_converges_faster",
        claim="ReLU networks converge faster than sigmoid ones",
        verdict=verdict,  # type: ignore[arg-type]
        evidence={
            "settings": len(outcomes),
            "relu_faster_settings": wins,
            "sigmoid_faster_settings": losses,
            "outcome_per_setting": {k: {"a": "relu faster", "b": "sigmoid faster"}.get(v, v)
                                    for k, v in outcomes.items()},
            "median_steps_relu_vs_sigmoid": med,
            "fastest_activation": fastest,
            "seeds": grid.seeds,
            "step_budget": grid.steps,
            "mean_derivative_at_start": {a: round(v, 4) for a, v in start_deriv.items()},
            # during training, not only at initialization: the monitor's end window, median over
            # settings at each activation's best learning rate, and the runs that turned NaN
            "saturated_at_end": {a: _median_or_none([r["saturated_at_end"] for r in rows
                                                     if r["activation"] == a])
                                 for a in grid.activations},
            "diverged_runs_at_best_lr": {a: sum(r["diverged"] for r in rows if r["activation"] == a)
                                         for a in grid.activations},
            "runs_at_best_lr": {a: grid.seeds * sum(r["activation"] == a for r in rows)
                                for a in grid.activations},
        },
        command=command_for(NAME, quick),
        explanation=text,
    )
    scale = (
        f"MLPs of width {grid.width}, depth {', '.join(map(str, grid.depths))}; "
        f"{', '.join(grid.datasets)}; {grid.steps} steps of batch {grid.batch_size}; "
        f"{grid.seeds} seeds × 3 learning rates × 2 init families per activation, trained "
        f"together with torch.func; activations {', '.join(grid.activations)}; evaluated every "
        f"{grid.eval_every} steps (the resolution of 'steps to target'). Seconds are the "
        "ensemble's wall time per model, 1 torch thread. Every run watched by gradsight.watch "
        f"every {grid.watch_every} steps (a plain forward + backward per model, outside the timing)."
    )
    ds0, depth0, opt0 = profile_setting
    profile_label = f"{ds0}, depth {depth0}, {opt0}"
    return ExperimentResult(
        name=NAME,
        title=TITLE,
        summary=(
            "Steps (and seconds) to a target test accuracy for each activation, per data set, "
            "depth, optimizer and init family, at each activation's best learning rate, with the "
            "spread over seeds."
        ),
        command=command_for(NAME, quick),
        quick=quick,
        scale=scale,
        rows=rows,
        data={"targets": {d: TARGETS[d] for d in grid.datasets}, "curves": curves,
              "outcomes": outcomes, "lrs": {k: list(v) for k, v in LRS.items()},
              "watch_every": grid.watch_every, "watch": watched,
              "mean_derivative_at_start_profile": {"setting": profile_label, **start_profiles}},
        figures=[_figure(rows, grid.activations, grid.steps),
                 _start_figure(start_profiles, profile_label)],
        claims=[claim],
    )


# full: 1294 s measured before every run was watched, plus the watch (~10 % at watch_every=50)
split_experiment(NAME, TITLE, order=20, plan=plan, trial=train_setting, build=build,
                 quick_budget_s=45, typical_s=(30, 1420))
