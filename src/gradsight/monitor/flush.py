"""Flush: logged steps from the device to the host, the window, the history and the sinks.

Logged steps are closed together, FLUSH_STEPS at a time or FLUSH_SECONDS apart (every step
under torch.distributed, where every rank must all_reduce at the same step), and whenever the
report, the history or revive_dead is asked for: one copy to the host, then the window
arithmetic in numpy (stats.py).
"""

from __future__ import annotations

import time
from typing import Any

from gradsight.errors import GradsightError
from gradsight.monitor import diagnostics
from gradsight.monitor.buffer import ReadyStep
from gradsight.monitor.records import LayerStats, ParamStats
from gradsight.monitor.report import StepRecord

FLUSH_STEPS = 32  # logged steps closed on the host together (one copy, warm Python)
FLUSH_SECONDS = 1.0  # ... or sooner, so sinks and the console stay live
MAX_HISTORY = 4096  # logged steps kept in memory; older ones are thinned (sinks keep all)


class Flusher:
    """The Monitor's part that closes logged steps on the host (a mixin)."""

    def _distributed(self, refresh: bool = False) -> bool:
        """Whether a process group of more than one rank exists. Asked on every logged step,
        so the answer is kept and asked again only when logged steps are closed (asking is
        costly in the cold middle of a step)."""
        if self._dist is None or refresh:
            try:
                import torch.distributed as dist

                self._dist = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
            except Exception:  # noqa: BLE001
                self._dist = False
        return self._dist

    def _close_logged(self) -> None:
        """The end of a logged step: its observations join the steps waiting for the host,
        which are closed together every FLUSH_STEPS logged steps or FLUSH_SECONDS (every step
        under torch.distributed, where every rank must all_reduce at the same step)."""
        if len(self.sites) != self._ready_sites:
            self._flush()  # a new site changes the layout: close the steps before it apart
        obs = self._take_observations()
        trained = self._grad_forwards or self._opt_stepped
        explained = self._sites_fired or len(self.log.errors) > self._errors_before
        if not explained and self.sites and trained and not self._unobserved_told:
            self._unobserved_told = True  # never an empty report that looks healthy
            self.log.record(
                "activation sites",
                GradsightError(
                    f"logged step {self.step_index} trained the model but none of its "
                    f"{len(self.sites)} activation sites ({self.sites[0].name!r}, ...) was observed; "
                    "their statistics are missing from this step on (a model run without its "
                    "module hooks: torch.compile of model.forward, a scripted or exported model?)"
                ),
            )
        if self._grad_obs:
            self._read_held_grads(release=True)
        if not self._ready:
            self._ready_since = time.monotonic()
        self._ready.append(ReadyStep(self.step_index, obs, self._params.take(self.step_index)))
        if (
            len(self._ready) >= FLUSH_STEPS
            or time.monotonic() - self._ready_since >= FLUSH_SECONDS
            or self._distributed()
        ):
            self._flush()

    def _flush(self, partial: bool = False) -> None:
        """Close the waiting logged steps on the host: one copy, then per step the window
        and a history record (and the sinks' line). ``partial`` also closes the step in
        progress (its forward seen, ``step()`` not yet called)."""
        if partial and not self._distributed():  # one rank may be here alone: no all_reduce
            obs = self._take_observations()
            if obs:
                self._ready.append(ReadyStep(self.step_index, obs, self._params.take(self.step_index)))
        else:
            self._settle()
        ready, self._ready = self._ready, []
        self._ready_sites = len(self.sites)
        if not ready:
            return
        for r in ready:
            for ob in r.observations:
                if ob.error is not None:
                    self.log.record(f"site gradient hook {ob.site.name}", ob.error)
        summaries = self._window.finalize_many(
            [(r.step, r.observations) for r in ready], self.sites, all_reduce=self._distributed(refresh=True)
        )
        for r, summary in zip(ready, summaries, strict=True):
            self._record(r.step, r.params, summary)

    def _record(self, step: int, params: list[ParamStats], summary: Any) -> None:
        if params:
            self._param_stats = params
        if summary is None:
            return
        self._summary = summary
        record = StepRecord(step=step, params=params, summary=summary, incoming=self._incoming())
        self._history.append(record)
        if len(self._history) > MAX_HISTORY:  # bounded memory on long runs: thin the older half
            half = len(self._history) // 2
            self._history = self._history[:half:2] + self._history[half:]
        if not self.sinks:
            return  # findings are built when a report is asked for
        self._findings = diagnostics.run(self._context(step))
        line = record.to_dict()
        line["findings"] = [f.to_dict() for f in self._findings]
        for sink in list(self.sinks):
            try:
                sink.write(line)
            except Exception as exc:  # noqa: BLE001 - a broken sink loses nothing else
                self.log.record(f"sink {type(sink).__name__}", exc)
                self.sinks.remove(sink)

    def _incoming(self) -> dict[str, tuple[float, float | None]]:
        return {p.name: (p.grad_norm, p.update_ratio) for p in self._param_stats}

    @property
    def _layers(self) -> list[LayerStats]:
        """Window stats of every site (forward order), from the last logged step."""
        if self._summary is None:
            return []
        return self._summary.window_stats(self._incoming())

    def _context(self, step: int | None = None) -> diagnostics.Context:
        """What the diagnostics see: now, or as of logged step ``step`` (a step closed later
        than it ran must not know of what came after it)."""
        events = self.events
        if step is not None:
            events = {k: ev for k, ev in events.items() if ev.step <= step}
        return diagnostics.Context(
            step=self.step_index if step is None else step,
            layers=self._layers,
            history=self._history,
            params=self._param_stats,
            events=events,
        )
