"""The lab's training runs seen through ``gradsight.watch``: one summary per run, and monitors
for the members of a ``torch.func`` ensemble.

:class:`WatchSummary` is what an experiment stores per run: per activation site the monitor's
window statistics at the end (dead, saturated fraction, ‖∂L/∂y‖, E[f'], incoming weight
gradient and update ratio), the same at the first logged step (the network as initialised),
and the kinds of the monitor's findings.

:class:`EnsembleWatch` gives each member of an ensemble its own monitor. Module and tensor
hooks do not fire inside ``vmap``, so the ensemble's own forward is invisible to
``gradsight.watch``. Instead, on a logged step (``step % every == 0``) member k's pre-update
parameters θ_k are copied into a plain replica module (a deep copy of model k) that runs one
ordinary forward + backward of the same batch through its monitor:

    loss_k = cross_entropy(replica_k(X[b_k]), y[b_k]);  loss_k.backward()      (θ_k as is)

After the ensemble's update the replica is brought to θ_k' by a :class:`_Mirror` optimizer, so
the monitor's optimizer-step hooks measure the update ratio ‖θ_k' − θ_k‖ / ‖θ_k‖ as they do
for any optimizer. ``mon.step()`` is called once per training step, so the monitor's step
count, its logged steps (``every``) and its window are those of a plain watched loop of that
member alone — the numbers agree with it to float rounding (tested in float64). The stacked
parameters are only read: watching never changes what is trained.

Costs one plain forward + backward per member every ``every`` steps, plus the monitor.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gradsight.errors import GradsightError
from gradsight.monitor.records import layer_fields

__all__ = [
    "SITE_KEYS",
    "EnsembleWatch",
    "WatchSummary",
    "findings_count",
    "pooled_median",
    "summarize",
]

# per-site numbers a summary keeps: every LayerStats field
SITE_KEYS: tuple[str, ...] = tuple(f.name for f in layer_fields())


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _site_dict(layer: Any) -> dict[str, Any]:
    return {k: _finite_or_none(getattr(layer, k, None)) for k in SITE_KEYS}


def _round(v: Any, digits: int) -> Any:
    if isinstance(v, float) and v != 0 and math.isfinite(v):
        return float(f"{v:.{digits}g}")
    return v


@dataclass
class WatchSummary:
    """What ``gradsight.watch`` saw of one training run (JSON-able through :meth:`to_dict`).

    layers        per activation site, forward order, the monitor's window at the end of the
                  run: ``SITE_KEYS`` (non-finite numbers as None)
    start         the same for the first logged step alone (step 0: the network as initialised)
    findings      kinds of the monitor's findings at the end ("dead_units", "saturation",
                  "vanishing_gradients", "exploding_gradients", "non_finite"), most severe
                  first, without repeats
    logged_steps  records in the monitor's history: the steps it measured (the monitor thins
                  its history past 4096 records, keeping the first)
    errors        failures inside the monitor (training went on regardless); normally empty
    """

    layers: list[dict[str, Any]]
    start: list[dict[str, Any]]
    findings: list[str]
    logged_steps: int
    errors: list[str] = field(default_factory=list)

    def pooled(self, key: str, at: str = "end") -> float:
        """``key`` averaged over every unit of every site (weights: units per site), at the
        ``"end"`` window or the ``"start"`` step; nan when no site reported it.

        dead_fraction pooled = Σ_s dead_s·units_s / Σ_s units_s: the share of all hidden units
        that are dead.
        """
        if at not in ("end", "start"):
            raise GradsightError(f"at must be 'end' or 'start', got {at!r}")
        rows = self.layers if at == "end" else self.start
        pairs = [(r[key], r["units"]) for r in rows if r.get(key) is not None and r.get("units")]
        if not pairs:
            return math.nan
        return sum(v * u for v, u in pairs) / sum(u for _, u in pairs)

    def to_dict(self, digits: int | None = 4) -> dict[str, Any]:
        """JSON-able dict; floats rounded to ``digits`` significant digits (None: exact)."""

        def rows(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if digits is None:
                return [dict(r) for r in rs]
            return [{k: _round(v, digits) for k, v in r.items()} for r in rs]

        return {
            "layers": rows(self.layers),
            "start": rows(self.start),
            "findings": list(self.findings),
            "logged_steps": self.logged_steps,
            "errors": list(self.errors),
        }


    def compact(self, digits: int = 3) -> dict[str, Any]:
        """Per-site lists in forward order (a smaller record for runs counted in hundreds):
        ``sites``, ``dead``, ``saturated``, ``grad_norm``, ``mean_derivative`` (end window),
        ``mean_derivative_start``, ``grad_norm_start`` (first logged step), ``findings``."""

        def col(rows: list[dict[str, Any]], key: str) -> list[Any]:
            return [_round(r.get(key), digits) for r in rows]

        return {
            "sites": [r["name"] for r in self.layers],
            "dead": col(self.layers, "dead_fraction"),
            "saturated": col(self.layers, "saturated_fraction"),
            "grad_norm": col(self.layers, "grad_norm"),
            "mean_derivative": col(self.layers, "mean_derivative"),
            "mean_derivative_start": col(self.start, "mean_derivative"),
            "grad_norm_start": col(self.start, "grad_norm"),
            "findings": list(self.findings),
            **({"errors": list(self.errors)} if self.errors else {}),
        }


def pooled_median(summaries: Sequence[WatchSummary | None], key: str, at: str = "end") -> float | None:
    """Median over runs of :meth:`WatchSummary.pooled`; None when no run has a number."""
    values = [s.pooled(key, at) for s in summaries if s is not None]
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else None


def findings_count(summaries: Sequence[WatchSummary | None]) -> dict[str, int]:
    """How many of the runs ended with each finding kind, e.g. ``{"dead_units": 2}``."""
    counts: dict[str, int] = {}
    for s in summaries:
        for kind in s.findings if s is not None else ():
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def summarize(report: Any) -> WatchSummary:
    """A :class:`WatchSummary` of a monitor's ``Report`` (``mon.report()``)."""
    start = report.history[0].layers if report.history else []
    return WatchSummary(
        layers=[_site_dict(layer) for layer in report.layers],
        start=[_site_dict(layer) for layer in start],
        findings=list(dict.fromkeys(f.kind for f in report.findings)),
        logged_steps=len(report.history),
        errors=list(report.errors),
    )


class _Mirror(torch.optim.Optimizer):
    """An "optimizer" whose step copies given values into given parameters. It presents the
    ensemble's update to the monitors' global optimizer-step hooks, which measure the update
    ratio across any optimizer's step (each monitor picks out its own replica's parameters).
    It holds every replica's parameters, so one step serves all members: the hooks run once
    per monitor, not once per monitor and member."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        super().__init__(list(params), {})
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (parameter, new value)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: ARG002 - the Optimizer signature
        for p, value in self.pairs:
            p.copy_(value)
        self.pairs = []


class EnsembleWatch:
    """One monitor per ensemble member, fed by plain forward + backward passes of replicas;
    see the module docstring.

    Args:
        models: the ensemble's K models (deep-copied; the originals are not touched).
        every: measure every ``every``-th step (the monitor's ``every``).
        window: logged steps over which the monitor judges dead and saturated units.

    Per training step the trainer calls, in this order: :meth:`observe` (after its own
    forward/backward, before its update; parameters as stacked ``name -> (K, ...)``),
    :meth:`after_update` (after the update), then :meth:`step`. :meth:`stop` ends member k's
    watch (it diverged and was frozen); :meth:`summaries` closes every monitor.
    """

    def __init__(self, models: Sequence[nn.Module], every: int, window: int = 8) -> None:
        from gradsight.monitor import watch

        self.every = every
        self.replicas = [copy.deepcopy(m) for m in models]
        self.params = [dict(r.named_parameters()) for r in self.replicas]
        self.buffers = [dict(r.named_buffers()) for r in self.replicas]
        self.mirror = _Mirror([p for ps in self.params for p in ps.values()])
        self.monitors = [
            watch(r, every=every, window=window, check_nonfinite=True) for r in self.replicas
        ]
        self.active = [True] * len(self.replicas)
        self._observed: list[int] = []

    def logged(self, step: int) -> bool:
        """Whether step ``step`` (0-based) is one the monitors measure."""
        return step % self.every == 0

    def observe(
        self,
        members: Sequence[int],
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        X: torch.Tensor,
        y: torch.Tensor,
    ) -> None:
        """One watched forward + backward of each member in ``members`` on its batch.

        ``params``/``buffers``: the stacked tensors ``name -> (K, ...)`` before the update;
        ``X``: (K, B, D) each member's batch, ``y``: (K, B).
        """
        self._observed = [k for k in members if self.active[k]]
        for k in self._observed:
            replica = self.replicas[k]
            with torch.no_grad():
                for n, p in self.params[k].items():
                    p.copy_(params[n][k])
                for n, b in self.buffers[k].items():
                    b.copy_(buffers[n][k])
            replica.zero_grad(set_to_none=True)
            with torch.enable_grad():
                loss = F.cross_entropy(replica(X[k]), y[k])  # ()
                loss.backward()

    def after_update(self, params: Mapping[str, torch.Tensor], frozen: Sequence[int] = ()) -> None:
        """Show the monitors of the members observed this step their update (θ_k → θ_k');
        ``frozen`` members took no step (their loss turned non-finite), as a plain loop
        skips ``opt.step()`` then."""
        moved = [k for k in self._observed if k not in frozen]
        if not moved:
            return
        self.mirror.pairs = [(p, params[n][k]) for k in moved for n, p in self.params[k].items()]
        self.mirror.step()

    def step(self, members: Sequence[int] | None = None) -> None:
        """``mon.step()`` of every active member (or of ``members``): one training step done."""
        for k in range(len(self.monitors)) if members is None else members:
            if self.active[k]:
                self.monitors[k].step()
        self._observed = []

    def stop(self, k: int) -> None:
        """Close member ``k``'s monitor; its summary keeps what it saw."""
        if self.active[k]:
            self.monitors[k].close()
            self.active[k] = False

    def summaries(self) -> list[WatchSummary]:
        """Close every monitor and summarise each member's report."""
        self.close()
        return [summarize(m.report()) for m in self.monitors]

    def close(self) -> None:
        """Remove every hook (also after an error); idempotent."""
        for k in range(len(self.monitors)):
            self.stop(k)

    def __enter__(self) -> EnsembleWatch:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
