"""A one-line rich progress display for trials: done / running / failed / cached and ETA."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from gradsight.lab.eta import describe
from gradsight.lab.trials import Counts


def counts_text(c: Counts) -> str:
    """``"3 done · 2 running · 1 failed · 4 cached · about 2 min left"``."""
    eta = "" if c.eta_s is None or c.finished == c.total else f" · {describe(c.eta_s)} left"
    return f"{c.done} done · {c.running} running · {c.failed} failed · {c.cached} cached{eta}"


@contextlib.contextmanager
def trial_progress(console: Any, label: str) -> Iterator[_Update]:
    """A rich progress bar over trials; yields the callback that :func:`run_trials` takes."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn(f"{label:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None, counts="")

        yield _Update(bar, task)


class _Update:
    """The progress callback; ``console`` prints above the bar, ``counts`` is the latest."""

    def __init__(self, bar: Any, task: Any) -> None:
        self.bar, self.task, self.console = bar, task, bar.console
        self.counts: Counts | None = None

    def __call__(self, c: Counts) -> None:
        self.counts = c
        self.bar.update(self.task, total=max(c.total, 1), completed=c.finished,
                        counts=counts_text(c))
