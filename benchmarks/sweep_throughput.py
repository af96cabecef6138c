"""Print trials per minute for one 64-trial grid of small MLPs on digits, four ways, side by side.

The grid: activation (relu, tanh) × init (he, xavier) × lr (0.01, 0.03, 0.1, 0.3) × seed
(0..3); depth 2, width 32, 100 SGD steps of 64 samples, watched by gradsight.watch every 10
steps — 64 trials, each through the trial store. The modes:

- sequential   one trial after another in this process (``--executor local --workers 1``)
- workers 2    two local worker processes (``--workers 2``)
- ensemble     trials sharing an architecture train as one torch.func ensemble (``--ensemble``)
- ray local    a local Ray with 2 CPUs, one task per trial (``--executor ray --workers 2``)

Every mode is timed after an untimed warm-up of 4 trials, sequential and ensemble, so that
one-off costs (imports, loading digits, torch's first kernels) do not land on the first mode.
Wall times include starting the worker processes or Ray (Ray's start-up is also shown alone)
and writing every trial to a fresh store. Ray's per-trial overhead is its wall time beyond the
trials' own compute, per trial: (wall · CPUs − Σ trial seconds) / n.

    .venv/bin/python benchmarks/sweep_throughput.py              # the four modes
    .venv/bin/python benchmarks/sweep_throughput.py --no-ray     # without Ray
    .venv/bin/python benchmarks/sweep_throughput.py --no-ray --breakdown

``--breakdown`` adds where the time goes: the same 64 trainings called directly (no store, no
executor), one after another and as ensembles, each with and without ``gradsight.watch``, twice
in alternation. Watching an ensemble member costs a plain forward + backward of a replica on
every logged step (hooks do not fire inside ``vmap``), so the watched ensemble can be no faster
than those replica passes.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from gradsight.lab import data, sweep
from gradsight.lab.ensemble import train_ensemble
from gradsight.lab.training import train
from gradsight.lab.trials import LocalExecutor, RayExecutor, TrialStore, run_trials

GRID = sweep.SweepSpec(activation=["relu", "tanh"], init=["he", "xavier"],
                       lr=[0.01, 0.03, 0.1, 0.3], seed=[0, 1, 2, 3], steps=[100], depth=[2],
                       width=[32], watch_every=10)


def timed(name: str, make, group, trials, tmp: Path) -> dict:
    """Run ``trials`` into a fresh store with the executor ``make()`` builds."""
    start = time.perf_counter()
    executor = make()
    started = time.perf_counter() - start
    try:
        with TrialStore(tmp / f"{name}.sqlite") as store:
            recs = run_trials(trials, sweep.TARGET, store, executor, group=group)
    finally:
        executor.close()
    wall = time.perf_counter() - start
    failed = sum(r.status != "done" for r in recs.values())
    return {"mode": name, "wall": wall, "start": started, "failed": failed,
            "work": sum(r.seconds for r in recs.values()), "workers": executor.workers,
            "acc": sum(r.metrics["test_acc"] for r in recs.values()) / len(recs)}


def breakdown(trials: list, repeats: int = 2) -> None:
    """Seconds of the grid's trainings alone: sequential and ensemble, watched and not."""
    ds = data.load("digits")
    groups = [[t.config for t in g] for g in sweep.group(trials)]

    def sequential(watch: bool) -> float:
        start = time.perf_counter()
        for t in trials:
            train(sweep.model_for(t.config, ds), ds,
                  replace(sweep.train_config_for(t.config), watch=watch))
        return time.perf_counter() - start

    def ensemble(watch: bool) -> float:
        start = time.perf_counter()
        for cs in groups:
            train_ensemble([sweep.model_for(c, ds) for c in cs], ds,
                           replace(sweep.train_config_for(cs[0]), watch=watch),
                           lrs=[c["lr"] for c in cs], seeds=[c["seed"] for c in cs])
        return time.perf_counter() - start

    runs: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, fn, watch in (("sequential", sequential, True), ("ensemble", ensemble, True),
                                ("sequential", sequential, False), ("ensemble", ensemble, False)):
            runs.setdefault(f"{name}, {'watched' if watch else 'unwatched'}", []).append(fn(watch))
    print(f"\n# where the time goes: the {len(trials)} trainings alone (no store, no executor), "
          f"{len(groups)} ensembles of {', '.join(str(len(g)) for g in groups)}; {repeats} runs "
          "alternating")
    print("| training | seconds | × sequential (same watching) |")
    print("|---|---:|---:|")
    for key, secs in runs.items():
        ref = runs["sequential, " + key.split(", ")[1]]
        ratios = " / ".join(f"{r / s:.2f}" for r, s in zip(ref, secs, strict=True))
        print(f"| {key} | {' / '.join(f'{s:.2f}' for s in secs)} | {ratios} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray mode")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the trainings alone, watched and unwatched")
    args = parser.parse_args()
    trials = sweep.trials(GRID)
    n = len(trials)
    modes = [("sequential", lambda: LocalExecutor(1), None),
             ("workers 2", lambda: LocalExecutor(2), None),
             ("ensemble", lambda: LocalExecutor(1), sweep.group)]
    if not args.no_ray:
        modes.append(("ray local", lambda: RayExecutor(workers=2), None))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up, untimed: the first trials of a process pay one-off costs (imports, loading
        # digits, torch's first kernels) that would otherwise all land on the first mode
        for name, make, group in modes[0], modes[2]:
            timed(f"warm-up {name}", make, group, trials[:4], Path(tmp))
        for name, make, group in modes:
            rows.append(timed(name, make, group, trials, Path(tmp)))
            print(f"  {name}: {rows[-1]['wall']:.1f} s", flush=True)
    base = rows[0]["wall"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n# {n} trials (sweep grid: 2 activations × 2 inits × 4 lr × 4 seeds, MLP 64-32-32-10, "
          f"100 steps), torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} at the end")
    print("| mode | wall s | trials/min | × sequential | mean test acc | failed |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['wall']:.1f} | {60 * n / r['wall']:.0f} | "
              f"{base / r['wall']:.2f} | {r['acc']:.3f} | {r['failed']} |")
    for r in rows:
        if r["mode"] == "ray local":
            over = (r["wall"] * r["workers"] - r["work"]) / n
            print(f"\nRay: {r['start']:.1f} s to start; per-trial overhead beyond the trial's own "
                  f"compute {over:.2f} s (wall × {r['workers']} CPUs − Σ trial seconds, per trial)")
    if args.breakdown:
        breakdown(trials)


if __name__ == "__main__":
    main()
