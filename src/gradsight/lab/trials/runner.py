"""Run trials through an executor into a store: reuse what is stored, retry a failure once.

:func:`run_trials` is the driver's loop. For each trial (deduplicated by id):

1. a stored, reusable record (done, or diverged) is taken as is — unless ``fresh``;
2. the rest run in batches on the executor (``group`` decides which trials share a batch,
   e.g. one ``torch.func`` ensemble per architecture); each outcome is written to the store
   the moment its batch returns, in its own transaction;
3. a trial that failed is recorded as failed, then run once more on its own; the second
   outcome replaces the first (``attempts`` = 2).

Progress is reported after every change as :class:`Counts`. The remaining time is the wall
time so far scaled by the work left, ``eta = elapsed · (W_left / W_done)``, with ``W`` the
trials' weights (typical seconds, or 1 each); before the first trial returns it is
``Σ W_left / workers`` when weights are typical seconds, else unknown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from gradsight.lab.trials.executors import Executor
from gradsight.lab.trials.store import Record, TrialStore
from gradsight.lab.trials.trial import Trial

__all__ = ["Counts", "run_trials"]


@dataclass
class Counts:
    """Where a run stands (trials)."""

    total: int  # trials in this run
    done: int = 0  # finished in this run
    running: int = 0  # submitted and not back (with worker processes: min(workers, waiting))
    failed: int = 0  # failed for good in this run (after the retry)
    cached: int = 0  # taken from the store
    eta_s: float | None = None  # seconds left, estimated

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cached


def _record(trial: Trial, outcome: dict, attempts: int) -> Record:
    failure = outcome["failure"]
    return Record(
        id=trial.id, kind=trial.kind, config=trial.config, version=trial.version,
        status="failed" if failure else "done", failure=failure, error=outcome["error"],
        metrics=outcome["metrics"], attempts=attempts, seconds=float(outcome["seconds"]),
        started=outcome["started"], finished=outcome["finished"], host=outcome["host"],
        versions=outcome["versions"],
    )


def run_trials(
    trials: Iterable[Trial],
    target: str,
    store: TrialStore,
    executor: Executor,
    *,
    fresh: bool = False,
    group: Callable[[list[Trial]], list[list[Trial]]] | None = None,
    weights: Mapping[str, float] | None = None,
    progress: Callable[[Counts], None] | None = None,
    on_record: Callable[[Record, bool], None] | None = None,
) -> dict[str, Record]:
    """Run every trial not already stored; return ``{trial id: Record}`` for all of them.

    Args:
        trials: the trials; duplicates by id run once (a batch shares its first trial's kind).
        target: ``"module:function"`` that computes a batch (see :func:`executors.execute`).
        store: where finished trials are written (by this process only).
        executor: a :class:`~gradsight.lab.trials.executors.Executor`.
        fresh: ignore stored records (they are overwritten as trials finish again).
        group: splits the trials to run into batches (default: one trial per batch).
        weights: trial id -> typical seconds, for the estimate (default 1 each).
        progress: called with :class:`Counts` whenever something changes.
        on_record: called with each trial's final record and whether it came from the store.
    """
    unique = list({t.id: t for t in trials}.values())
    out: dict[str, Record] = {}
    counts = Counts(total=len(unique))
    weight = {t.id: float((weights or {}).get(t.id, 1.0)) for t in unique}
    timed = weights is not None
    start = time.perf_counter()
    done_w = 0.0

    todo: list[Trial] = []
    for t in unique:
        rec = None if fresh else store.get(t.id)
        if rec is not None and rec.reusable:
            out[t.id] = rec
            counts.cached += 1
            if on_record is not None:
                on_record(rec, True)
        else:
            todo.append(t)
    left_w = sum(weight[t.id] for t in todo)

    def report(waiting: int) -> None:
        counts.running = min(executor.workers, waiting)
        if done_w > 0:
            counts.eta_s = (time.perf_counter() - start) * left_w / done_w
        elif timed:
            counts.eta_s = left_w / max(executor.workers, 1)
        if progress is not None:
            progress(counts)

    def run(batches: Sequence[list[Trial]], attempt: int) -> list[Trial]:
        nonlocal done_w, left_w
        retry: list[Trial] = []
        waiting = sum(len(b) for b in batches)
        report(waiting)
        tasks = [(b[0].kind, [t.config for t in b]) for b in batches]
        for i, outcomes in executor.run(target, tasks):
            for trial, outcome in zip(batches[i], outcomes, strict=True):
                rec = _record(trial, outcome, attempt)
                store.put(rec)
                out[trial.id] = rec
                waiting -= 1
                if rec.status == "failed" and attempt == 1:
                    retry.append(trial)
                    continue
                done_w += weight[trial.id]
                left_w -= weight[trial.id]
                if rec.status == "failed":
                    counts.failed += 1
                else:
                    counts.done += 1
                if on_record is not None:
                    on_record(rec, False)
            report(waiting)
        return retry

    if todo:
        batches = group(todo) if group is not None else [[t] for t in todo]
        retry = run(batches, attempt=1)
        if retry:
            run([[t] for t in retry], attempt=2)
    report(0)
    return {t.id: out[t.id] for t in unique}
