"""Run trials through an executor into a store: reuse what is stored, retry a failure once.

:func:`run_trials` is the driver's loop. For each trial (deduplicated by id):

1. a stored, reusable record (done, or diverged) is taken as is — unless ``fresh``;
2. the rest run in batches on the executor (``group`` decides which trials share a batch,
   e.g. one ``torch.func`` ensemble per architecture); each outcome is written to the store
   the moment its batch returns, in its own transaction; the record keeps the metrics as
   the store gives them back (JSON), so a trial run now and one read later are the same;
3. a trial that failed is recorded as failed, then run once more on its own; the second
   outcome replaces the first (``attempts`` = 2).

Progress is reported after every change as :class:`Counts`. The remaining time is
:class:`gradsight.lab.eta.Estimate` over the trials to run (their typical seconds, scaled by
how the finished ones compared with theirs) divided by the executor's workers. Without
typical times every trial weighs 1 and the pace is the mean seconds per finished trial, so
nothing is estimated before the first one returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from gradsight.lab.eta import PRIOR_S, Estimate
from gradsight.lab.trials.executors import Executor
from gradsight.lab.trials.store import Record, TrialStore
from gradsight.lab.trials.trial import Trial, as_json

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
        metrics=as_json(outcome["metrics"]), attempts=attempts, seconds=float(outcome["seconds"]),
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
    timed = weights is not None

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
    estimate = Estimate({t.id: float((weights or {}).get(t.id, 1.0)) for t in todo},
                        prior_s=PRIOR_S if timed else 0.0)

    def report(waiting: int) -> None:
        counts.running = min(executor.workers, waiting)
        if timed or estimate.done_typical > 0:
            counts.eta_s = estimate.remaining() / max(executor.workers, 1)
        if progress is not None:
            progress(replace(counts))  # a snapshot

    def run(batches: Sequence[list[Trial]], attempt: int) -> list[Trial]:
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
                estimate.finish(trial.id, rec.seconds, completed=rec.status == "done")
                if rec.status == "failed":
                    counts.failed += 1
                else:
                    counts.done += 1
                report(waiting)
                if on_record is not None:
                    on_record(rec, False)
        return retry

    if todo:
        batches = group(todo) if group is not None else [[t] for t in todo]
        retry = run(batches, attempt=1)
        if retry:
            run([[t] for t in retry], attempt=2)
    report(0)
    return {t.id: out[t.id] for t in unique}
