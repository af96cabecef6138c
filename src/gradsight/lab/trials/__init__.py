"""Trials: pure functions of a JSON-able config, stored in SQLite, run locally or on Ray.

- :mod:`~gradsight.lab.trials.trial`     what a trial is, its id, the code version
- :mod:`~gradsight.lab.trials.store`     the SQLite store (WAL); only the driver writes
- :mod:`~gradsight.lab.trials.executors` local (in-process or N processes) and Ray
- :mod:`~gradsight.lab.trials.runner`    reuse, run, store, retry once, progress
- :mod:`~gradsight.lab.trials.lab`       the lab's experiments as trials
"""

from __future__ import annotations

from gradsight.lab.trials.executors import (
    EXECUTORS,
    LocalExecutor,
    RayExecutor,
    execute,
    make_executor,
)
from gradsight.lab.trials.runner import Counts, run_trials
from gradsight.lab.trials.store import Record, TrialStore
from gradsight.lab.trials.trial import Trial, code_version, trial_id

__all__ = [
    "EXECUTORS",
    "Counts",
    "LocalExecutor",
    "RayExecutor",
    "Record",
    "Trial",
    "TrialStore",
    "code_version",
    "execute",
    "make_executor",
    "run_trials",
    "trial_id",
]
