"""The Ray executor: a local Ray with 2 CPUs gives what one process gives, and leaves nothing.

Ray is started once for the module (``num_cpus=2``, no dashboard, a bounded object store);
pytest turns every warning into an error, so the run must be warning-free too.
"""

from __future__ import annotations

import os

import pytest

from gradsight.lab import sweep
from gradsight.lab.trials import LocalExecutor, RayExecutor, TrialStore, run_trials

ray = pytest.importorskip("ray")

GRID = sweep.SweepSpec(activation=["relu", "tanh"], lr=[0.1, 1e6], seed=[0], steps=[20],
                       width=[16], watch_every=5)


def _children() -> set[int]:
    """Live child processes of this process (psutil comes with Ray)."""
    import psutil

    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE}


def test_ray_gives_what_one_process_gives_and_shuts_down_cleanly(tmp_path):
    before = _children()
    trials = sweep.trials(GRID)
    with TrialStore(tmp_path / "a.sqlite") as a:
        here = run_trials(trials, sweep.TARGET, a, LocalExecutor())
    executor = RayExecutor(workers=2)
    try:
        assert executor.workers == 2 and ray.is_initialized()
        with TrialStore(tmp_path / "b.sqlite") as b:
            there = run_trials(trials, sweep.TARGET, b, executor)
    finally:
        executor.close()
    assert not ray.is_initialized()
    for t in trials:
        mine, theirs = here[t.id], there[t.id]
        assert (theirs.status, theirs.failure, theirs.attempts) == (
            mine.status, mine.failure, mine.attempts)
        assert (theirs.metrics["findings"], theirs.metrics["step"]) == (
            mine.metrics["findings"], mine.metrics["step"])
        for key in ("test_acc", "test_loss", "dead_fraction", "grad_ratio"):
            assert theirs.metrics[key] == pytest.approx(mine.metrics[key], rel=1e-6, nan_ok=True)
    # a failure travels through Ray as it does here: ReLU diverges at lr 1e6 (tanh is bounded)
    assert {(r.config["activation"], r.config["lr"]) for r in there.values()
            if r.failure == "diverged"} == {("relu", 1e6)}
    import psutil

    psutil.wait_procs([psutil.Process(p) for p in _children() - before], timeout=30)
    assert _children() - before == set()
