"""What both trainer callbacks share: one watch over the training run, one ``mon.step()`` per
optimizer step, the scalars handed to the trainer's loggers, each new critical finding printed
once, and the HTML report at the end. The trainer-specific files only decide *when*.

Scalar names (one panel section per statistic in TensorBoard and W&B, which group by the part
before the first ``/``; see :func:`scalars`)::

    gradsight_grad_norm/<site>  gradsight_dead_fraction/<site>  gradsight_saturated_fraction/<site>
    gradsight_mean_derivative/<site>  gradsight_findings/<kind>  (sites it concerns; 0 when none)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, TextIO

from torch import nn

from gradsight.errors import GradsightError
from gradsight.monitor import Monitor, Report, watch
from gradsight.monitor.records import KINDS, Finding, LayerStats

STATS = ("grad_norm", "dead_fraction", "saturated_fraction", "mean_derivative")
HTML_NAME = "gradsight.html"


def scalars(layers: list[LayerStats], findings: list[Finding]) -> dict[str, float]:
    """The flat ``{name: float}`` a trainer logs: per site its window statistics, per finding
    kind the number of sites it concerns. Non-finite values stay as they are (loggers plot
    NaN as a gap)."""
    out: dict[str, float] = {}
    for stat in STATS:
        for ls in layers:
            v = getattr(ls, stat)
            out[f"gradsight_{stat}/{ls.name}"] = float(v) if isinstance(v, (int, float)) else math.nan
    for kind in KINDS:
        out[f"gradsight_findings/{kind}"] = float(sum(len(f.layers) or 1 for f in findings if f.kind == kind))
    return out


class CallbackCore:
    """One training run's watch. ``start(model)``, ``step()`` per optimizer step,
    ``take()`` for the scalars of logged steps not handed out yet, ``end(out_dir)``."""

    def __init__(self, html: bool | str | Path, console: TextIO | None, watch_kwargs: dict[str, Any]) -> None:
        if not isinstance(html, (bool, str, Path)):
            raise GradsightError(
                f"GradsightCallback html must be True (write {HTML_NAME} to the output directory), "
                f"False or a file path, got {html!r}"
            )
        watch_kwargs.setdefault("every", 10)
        self.watch_kwargs = watch_kwargs
        self.html = html
        self.console = console
        self.monitor: Monitor | None = None
        self.html_path: Path | None = None
        self._told: set[tuple[str, tuple[str, ...]]] = set()
        self._handed = -1  # the last logged step whose scalars were handed out

    def start(self, model: nn.Module) -> None:
        if self.monitor is not None and not self.monitor.closed:
            self.monitor.close()  # a second fit() on the same callback: a fresh watch
        self.monitor = watch(model, **self.watch_kwargs)
        self._handed = -1
        self._told.clear()

    def step(self) -> None:
        if self.monitor is not None:
            self.monitor.step()

    def take(self, main: bool = True) -> dict[str, float]:
        """Scalars of the latest window when a logged step closed since the last call (else
        ``{}``); prints new critical findings on the main process."""
        mon = self.monitor
        if mon is None or mon.closed:
            return {}
        history = mon.history
        if not history or history[-1].step == self._handed:
            return {}
        self._handed = history[-1].step
        rep = mon.report()
        if main:
            self.tell(rep.findings)
        return scalars(rep.layers, rep.findings)

    def tell(self, findings: list[Finding]) -> None:
        """Print each critical finding not printed before (by kind and sites) to the console."""
        for f in findings:
            key = (f.kind, f.layers)
            if f.severity == "critical" and key not in self._told:
                self._told.add(key)
                print(f"gradsight: {f}", file=self.console or sys.stderr)

    def end(self, out_dir: str | Path | None, main: bool = True) -> None:
        mon = self.monitor
        if mon is None or mon.closed:
            return
        mon.close()
        if not main:
            return
        rep = mon.report()
        self.tell(rep.findings)
        if self.html is not False:
            path = Path(out_dir or ".") / HTML_NAME if self.html is True else Path(self.html)
            path.parent.mkdir(parents=True, exist_ok=True)
            rep.to_html(path)
            self.html_path = path

    def report(self) -> Report:
        if self.monitor is None:
            raise GradsightError(
                "GradsightCallback.report(): training has not started; pass the callback to the "
                "trainer and call fit()/train() first"
            )
        return self.monitor.report()


class WatchAccess:
    """What a callback shows of its watch (a mixin: the callback holds a ``_core``)."""

    _core: CallbackCore

    @property
    def monitor(self) -> Monitor | None:
        """The live :class:`~gradsight.monitor.Monitor` (None before training starts)."""
        return self._core.monitor

    @property
    def html_path(self) -> Path | None:
        """Where the HTML report was written at the end of training, if it was."""
        return self._core.html_path

    def report(self) -> Report:
        """What the watch measured so far (during or after training)."""
        return self._core.report()
