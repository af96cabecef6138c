"""``gradsight.watch(model)``: the Monitor that hooks a model and turns each logged step into
LayerStats, ParamStats and Findings.

This file is the public facade -- the state of a watch, the user's calls (``step``, ``report``,
``close``) and the optimizer hooks. The work is done by its parts, one job each:

    discovery.py  finding and naming the activation sites (the first forward with gradients)
    arming.py     the site hooks of logged steps and the functional-activation mode
    buffer.py     a logged step's observations, from the hooks to device tensors
    guard.py      the hooks of every step and the non-finite guard with its replay
    flush.py      closing logged steps on the host: the window, the history, the sinks
    compiled.py   staying truthful under torch.compile

What each part costs and why it is built that way: benchmarks/README.md.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradsight.errors import GradsightError
from gradsight.monitor import compiled, diagnostics, distributed, nonfinite
from gradsight.monitor._util import ErrorLog, clean_name, guarded, named_modules, unwrap
from gradsight.monitor.arming import Arming
from gradsight.monitor.buffer import Deferred, ReadyStep, StepBuffer
from gradsight.monitor.capture import SiteMode, module_sites
from gradsight.monitor.discovery import Discovery
from gradsight.monitor.flush import Flusher
from gradsight.monitor.guard import HeldOutputs, NonFiniteGuard, PendingReplay
from gradsight.monitor.params import ParamTracker
from gradsight.monitor.records import Finding, ParamStats
from gradsight.monitor.report import Report, StepRecord
from gradsight.monitor.select import SiteFilter
from gradsight.monitor.sinks import Sink, make_sinks
from gradsight.monitor.sites import Site
from gradsight.monitor.stats import Observation, StatsWindow

PARAM_EVERY = 50  # steps between two parameter measurements, at least


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GradsightError(f"watch() {name} must be a positive integer (1, 2, ...), got {value!r}")
    return value


class Monitor(Discovery, Arming, StepBuffer, NonFiniteGuard, Flusher):
    """Watches one model. Create with :func:`watch`; use as a context manager.

    >>> import torch, gradsight as gs
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> with gs.watch(model) as mon:
    ...     for _ in range(2):
    ...         model(torch.randn(16, 4)).sum().backward(); model.zero_grad()
    ...         mon.step()
    >>> [ls.name for ls in mon.report().layers], mon.report().findings
    (['1'], [])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        every: int = 10,
        window: int = 8,
        sinks: Sequence[Sink] = (),
        check_nonfinite: bool = True,
        select: SiteFilter | None = None,
    ) -> None:
        self.model = model
        self.root = unwrap(model)
        self.every = every
        self.window_size = window
        self.check_nonfinite = check_nonfinite
        self.log = ErrorLog()
        self.sinks = list(sinks)
        self.step_index = 0
        self.closed = False

        # sites
        self._module_acts = {m: (clean_name(n), a) for m, (n, a) in module_sites(self.root).items()}
        # include= / exclude= (select.py): excluded module sites get no Site and no hooks,
        # except inside a hooked owner, where their hooks only keep the functional mode out
        self._select = select or SiteFilter()
        self._excluded = {m for m, (n, _) in self._module_acts.items() if not self._select(n)}
        self._site_names_seen = {n for n, _ in self._module_acts.values()}
        self._owners_measured: set[str] = set()
        self._site_of_module: dict[nn.Module, Site] = {}
        self._sites_by_name: dict[str, Site] = {}
        self.sites: list[Site] = []
        self._owners: set[str] = set()
        self._names = {m: n for n, m in named_modules(self.root)}
        self._modules = {n: m for m, n in self._names.items()}

        # state of the current forward
        self._frames: list[tuple[str, dict[str, int]]] = [("", defaultdict(int))]
        self._suppress = 0
        self._busy = 0
        self._owner_depth = 0
        self._root_depth = 0
        self._replaying = False
        self._discovering = False
        self._discovered = False
        self._rediscover = False
        self._disc_order: list[Site] = []
        self._hint_channel = False
        self._producers: dict[int, tuple[str, nn.Module, int | None]] = {}
        self._keep: list[torch.Tensor] = []
        self._entries: list[nn.Module] = []
        self._hooked_entries: list[nn.Module] = []  # checked by a gradient hook on the output
        self._entry_params: list[nn.Parameter] = []  # checked by their .grad at end of backward
        self._entry_grads: list[torch.Tensor] = []  # output gradients of _hooked_entries, this backward
        self._random = True  # the forward draws random numbers (known after discovery)
        self._pre_D: dict[nn.Module, tuple[torch.Tensor, int, torch.Tensor | None]] = {}

        # step state
        self._logged = True
        # this step's observations in forward order; entries from _settled on may still be
        # Deferred (buffer.py), which _settle turns into Observations
        self._obs: list[Observation | Deferred] = []
        self._settled = 0
        self._grad_obs: list[Observation] = []  # observations whose gradient hooks hold gradients
        self._grad_numel = 0
        # logged steps done on the device, not yet on the host: (step, observations, params)
        self._ready: list[ReadyStep] = []
        self._ready_since = 0.0
        self._ready_sites = 0
        self._inputs: tuple[Any, Any] | None = None
        self._rng: torch.Tensor | None = None
        self._out_grads: list[torch.Tensor | None] = []
        self._held: list[HeldOutputs] = []  # outputs not yet checked
        self._bwd_queued = False
        self._fwd_bad_step = -1
        self._dist: bool | None = None  # see _distributed()
        self._rank_guard = distributed.NonFiniteGuard()  # the non-finite verdict across ranks
        # stable hooks (torch.compile, see compiled.py): one set of hooks for the whole run
        self._stable = compiled.is_compiled(model)
        self._grad_forwards = 0  # forwards with gradients in this step
        self._unobserved_told = False
        self._stepped = False  # step() was called at least once
        self._opt_steps: dict[int, int] = {}  # optimizer steps seen before the first step()
        self._no_step_told = False
        self._model_opts: dict[int, bool] = {}  # optimizer id -> it updates the model's parameters
        self._opt_stepped = False  # an optimizer of the model stepped in this step
        self._sites_fired = False  # a site hook ran in this step (its observation may be dropped)
        self._errors_before = 0  # errors recorded before this step (a failing hook explains itself)

        # results
        self._window = StatsWindow(window)
        self._params = ParamTracker(self.root)
        self._history: list[StepRecord] = []
        self._summary: Any = None
        self._param_stats: list[ParamStats] = []
        self._findings: list[Finding] = []
        self.events: dict[str, nonfinite.NonFiniteEvent] = {}
        self._pending: list[PendingReplay] = []

        # hooks
        self._mode = SiteMode(self._on_activation_call, self._mode_skip)
        self._mode_active = False
        self._handles: list[Any] = []  # for the monitor's lifetime
        self._armed: list[Any] = []  # logged steps only
        self._disc_handles: list[Any] = []
        self._entry_handles: list[Any] = []
        self._install()

    def _install(self) -> None:
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        r = self.root
        self._handles.append(r.register_forward_pre_hook(self._on_root_pre, with_kwargs=True))
        self._handles.append(
            r.register_forward_hook(self._on_root_post, with_kwargs=True, always_call=True)
        )
        self._handles.append(register_optimizer_step_pre_hook(self._on_opt_pre))
        self._handles.append(register_optimizer_step_post_hook(self._on_opt_post))
        self._arm()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Finish pending work and remove every hook and mode; idempotent."""
        if self.closed:
            return
        try:
            self._check_all_held()
            self._read_held_grads(release=True)
            self._process_pending()
            self._flush(partial=True)
            self._tell_missing_step(final=True)
        except Exception as exc:  # noqa: BLE001 - closing must always remove the hooks
            self.log.record("close", exc)
        finally:
            for h in self._handles + self._armed + self._disc_handles + self._entry_handles:
                h.remove()
            self._handles, self._armed, self._disc_handles, self._entry_handles = [], [], [], []
            self._exit_mode(force=True)
            self._keep.clear()
            self._producers.clear()
            self._inputs = None
            self._out_grads = []
            self._held = []
            self._entry_grads.clear()
            self._grad_obs = []
            self.closed = True
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001
                    self.log.record(f"sink {type(sink).__name__}.close", exc)

    def step(self) -> None:
        """Mark the end of one optimizer step (call after backward, usually after
        ``opt.step()``). On logged steps this closes the site statistics of the step on the
        device; they reach the host, the history and the sinks with the next batch of logged
        steps (see the module docstring)."""
        if self.closed:
            return
        self._stepped = True
        try:
            self._rank_guard.settle(self)  # under torch.distributed: all ranks locate a bad step
            if self._held:  # forwards of this step that got no backward
                self._check_all_held()
            self._entry_grads.clear()  # of a backward that did not pass the model's output
            self._process_pending()
            if self._logged:
                self._close_logged()
        except Exception as exc:  # noqa: BLE001 - never crash the loop
            self.log.record("step", exc)
        self.step_index += 1
        self._grad_forwards = 0
        self._opt_stepped = False
        self._sites_fired = False
        self._errors_before = len(self.log.errors)
        self._logged = self.step_index % self.every == 0
        try:
            if self._logged:
                self._arm()
            else:
                self._disarm()
        except Exception as exc:  # noqa: BLE001
            self.log.record("arm", exc)

    def report(self) -> Report:
        """A snapshot of everything measured so far (callable during or after watching). Asking
        never changes what is measured: a step is in the report once ``step()`` closed it (or
        ``close()``, for a last step without one), whenever the report is read."""
        try:
            self._check_all_held()
            self._process_pending()
            self._flush()
        except Exception as exc:  # noqa: BLE001
            self.log.record("report", exc)
        ctx = self._context()
        findings = diagnostics.run(ctx)
        return Report(
            layers=list(ctx.layers),
            findings=findings,
            params=list(self._param_stats),
            history=list(self._history),
            errors=list(self.log.errors),
            meta={
                "model": type(self.root).__name__,
                "every": self.every,
                "window": self.window_size,
                "steps": self.step_index,
                "sites": [s.name for s in self.sites],
            },
        )

    def revive_dead(self, optimizer: torch.optim.Optimizer | None = None) -> dict[str, list[int]]:
        """Re-initialise the incoming weights and bias of the units dead over the current window
        and zero their optimizer state (dead-unit resampling, as in sparse-autoencoder
        training). Returns ``{site: [unit indices]}`` of what was revived."""
        from gradsight.monitor.revive import revive

        self._flush()
        return revive(self, optimizer)

    @property
    def history(self) -> list[StepRecord]:
        """One record per logged step so far (the oldest thinned beyond MAX_HISTORY)."""
        try:
            self._flush()
        except Exception as exc:  # noqa: BLE001
            self.log.record("history", exc)
        return self._history

    @property
    def site_names(self) -> list[str]:
        """Names of the activation sites found so far, in forward order."""
        return [s.name for s in self.sites]

    @guarded("optimizer pre-step hook")
    def _on_opt_pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)  # args[0]: the optimizer
        if callable(closure) and self._logged and self._param_step():
            # step(closure) (Lightning, LBFGS) runs the backward inside the step, after this
            # hook: the weights before the update are the weights now
            self._params.want_update = True
        self._params.before_step(optimizer)

    @guarded("optimizer post-step hook")
    def _on_opt_post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._params.after_step(optimizer)
        mine = self._model_opts.get(id(optimizer))
        if mine is None:
            mine = self._model_opts[id(optimizer)] = self._steps_model(optimizer)
        self._opt_stepped = self._opt_stepped or mine
        if not self._stepped and mine:
            n = self._opt_steps[id(optimizer)] = self._opt_steps.get(id(optimizer), 0) + 1
            if n >= 2:  # one optimizer stepped twice with no step() between: step() is missing
                self._tell_missing_step(final=True)

    def _steps_model(self, optimizer: Any) -> bool:
        """Whether ``optimizer`` updates parameters of the watched model."""
        ids = self._params.param_ids
        return any(id(p) in ids for g in optimizer.param_groups for p in g["params"])

    def _tell_missing_step(self, final: bool) -> None:
        """One warning (and an entry in report().errors) when the optimizer stepped but
        ``step()`` was never called: then no step is ever logged. ``final``: it will not be
        (one optimizer stepped twice, or the monitor is closing)."""
        if not final or self._stepped or self._no_step_told or not self._opt_steps:
            return
        self._no_step_told = True
        n = sum(self._opt_steps.values())
        self.log.record(
            "mon.step() was never called",
            GradsightError(
                f"the optimizer stepped {n} time(s) but mon.step() was never called, so no step "
                "is logged and the report stays empty; call mon.step() once per optimizer step, "
                "after backward (usually right after opt.step())"
            ),
        )

    def _param_step(self) -> bool:
        """Parameter stats (gradient norms, the update ratio) change slowly: they are measured
        on logged steps at least PARAM_EVERY steps apart (every logged step when every >= 50)."""
        stride = max(1, -(-PARAM_EVERY // self.every))  # logged steps between two measurements
        return (self.step_index // self.every) % stride == 0


def watch(
    model: nn.Module,
    *,
    every: int = 10,
    window: int = 8,
    sinks: Sequence[Sink] = (),
    jsonl: str | Path | None = None,
    tensorboard: str | Path | None = None,
    console: bool = False,
    check_nonfinite: bool = True,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    wandb: Any = False,
) -> Monitor:
    """Watch the learning signal of ``model``: every activation site (modules and functional
    calls), its gradient, dead and saturated units, the origin of the first NaN/Inf.

    Args:
        model: any ``torch.nn.Module`` (DDP- and ``torch.compile``-wrapped ones too).
        every: measure activation sites on every ``every``-th step (1 = every step). Non-finite
            values are checked on every step regardless.
        window: observed steps over which dead / saturated units are judged.
        sinks: where each logged step goes (``JSONLSink``, ``TensorBoardSink``, ``ConsoleSink``).
        jsonl: shorthand for ``sinks=[JSONLSink(jsonl)]``.
        tensorboard: shorthand for ``sinks=[TensorBoardSink(tensorboard)]`` (needs the
            ``gradsight[tensorboard]`` extra).
        console: print a summary table at each logged step.
        check_nonfinite: check outputs and gradients for NaN/Inf on every step.
        include: site-name globs (``"blocks.*"``, ``["*/gelu#*", "head.act"]``): only matching
            sites are measured and hooked (every site when None). See ``monitor/select.py``.
        exclude: site-name globs never measured nor hooked; wins over ``include``. A pattern
            matching no site is a GradsightWarning at the first forward, naming the sites.
        wandb: True logs to the active W&B run (or a new one); a run logs to that run
            (``sinks=[WandbSink(run)]``; needs the ``gradsight[wandb]`` extra).

    Returns:
        A :class:`Monitor`; use it as a context manager and call ``mon.step()`` once per
        optimizer step. Hooks are removed when the ``with`` block ends, also on an exception.

    >>> import torch, gradsight as gs
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
    ...                             torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> with torch.no_grad():
    ...     model[2].bias[:2] = -1e6   # two of the second layer's 8 units can never turn on
    >>> with gs.watch(model, every=1) as mon:
    ...     model(torch.randn(256, 4)).sum().backward(); mon.step()
    >>> [l.dead_fraction for l in mon.report().layers]
    [0.0, 0.25]
    """
    if not isinstance(model, nn.Module):
        raise GradsightError(
            f"watch() needs a torch.nn.Module, got {type(model).__name__!r} ({model!r:.60}); "
            "pass the model itself, e.g. gs.watch(model)"
        )
    every = _positive_int("every", every)
    window = _positive_int("window", window)
    select = SiteFilter(include, exclude)
    all_sinks = list(sinks) + make_sinks(jsonl=jsonl, tensorboard=tensorboard, console=console)
    if wandb is not False and wandb is not None:
        from gradsight.monitor.wandb_sink import WandbSink

        all_sinks.append(WandbSink(None if wandb is True else wandb))
    if not math.isfinite(float(every)):
        raise GradsightError(f"watch() every must be finite, got {every!r}")
    return Monitor(
        model, every=every, window=window, sinks=all_sinks, check_nonfinite=check_nonfinite, select=select
    )
