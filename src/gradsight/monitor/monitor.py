"""``gradsight.watch(model)``: the Monitor that hooks a model and turns each logged step into
LayerStats, ParamStats and Findings.

What runs when (the cost model; see benchmarks/monitor_overhead.py). Inside a training step,
code that runs right after the model's own kernels -- Python or torch -- runs 10-40x slower
than the same code in a loop (measured on a 2-core VM: a process-group check 18 us against
0.4 us, a 256-element sum 18 us against 1.9 us): the kernels have evicted it from the caches.
So the cost is counted in interruptions of the step, and work that can wait is done together,
later, warm:

every step    root pre/post hooks: keep references to the inputs (and the CPU RNG state when
              the forward has random ops) and to the outputs; a pre-hook on the outputs'
              autograd node queues the end-of-backward callback, where the entry layers' bias
              (or small weight) gradient -- for an embedding, its output gradient, kept by a
              bare ``list.append`` hook -- and the outputs are summed: the non-finite checks of
              both passes in one place, one host read (one sync on a GPU). Outputs over HOLD_OUTPUTS
              elements, and those of a forward that gets no backward, are summed at once.
              No activation site is touched.
logged step   (step % every == 0) site hooks are armed: each site's forward hook keeps the
              tensor f' is read from and the output's autograd node (a module site seen
              before whose f' reads its output: only (site, y, y's version), see _fast_hook),
              and at the end of the forward one loop takes per site one derivative kernel
              and ONE reduction (per-unit sum of f'(z), a matrix-vector product), and
              registers on that node a gradient pre-hook: on the CPU it takes the norm as the
              gradient passes; on an accelerator it is a bare ``list.append`` (no Python
              bytecode runs in the backward) and the end-of-backward callback takes the norms
              of all held gradients in one ``_foreach_norm`` (see _watch_grad). The
              functional-activation mode is pushed inside the owner modules only. At least
              PARAM_EVERY (50) steps apart: one ``_foreach_norm`` over parameter gradients and
              weights, and the update ratio across the optimizer step.
host          logged steps are closed on the host together, FLUSH_STEPS (32) at a time or
              FLUSH_SECONDS apart (each step under torch.distributed), and whenever the report,
              the history or revive_dead is asked for: one copy to the host, then the window
              arithmetic in numpy. Closing them one by one cost ~5% of a step at every=1 -- the
              Python runs cold right after the model's kernels.
first NaN     the step is snapshotted and replayed later with every op checked (nonfinite.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradsight.activations import is_inplace_call
from gradsight.errors import GradsightError
from gradsight.monitor import diagnostics, nonfinite
from gradsight.monitor._util import (
    ErrorLog,
    all_finite,
    float_tensors,
    guarded,
    no_compile,
    unwrap,
)
from gradsight.monitor.capture import SiteMode, module_sites
from gradsight.monitor.params import ParamTracker
from gradsight.monitor.records import Finding, LayerStats, ParamStats
from gradsight.monitor.report import Report, StepRecord
from gradsight.monitor.sinks import Sink, make_sinks
from gradsight.monitor.sites import (
    CONV_LIKE_MODULES,
    CONV_LIKE_OPS,
    PASS_THROUGH,
    Site,
    functional_name,
)
from gradsight.monitor.stats import Observation, StatsWindow

PARAM_EVERY = 50  # steps between two parameter measurements, at least
FLUSH_STEPS = 32  # logged steps closed on the host together (one copy, warm Python)
FLUSH_SECONDS = 1.0  # ... or sooner, so sinks and the console stay live
# a site output this large is measured in its hook, while it is still in the cache (reading it
# again at the end of the forward costs more than the hook's cold start saves)
EAGER_NUMEL = 1 << 18
HOLD_OUTPUTS = 1 << 20  # model outputs up to this many elements are checked at the end of the backward
HOLD_GRADS = 1 << 22  # site-output gradient elements held until the end of the backward, at most
NORM_IN_HOOK_DEVICES = ("cpu",)  # site gradients normed as they pass, not held (see _watch_grad)
MAX_HISTORY = 4096  # logged steps kept in memory; older ones are thinned (sinks keep all)
_LINEAR_LIKE_OPS = frozenset({"linear", "matmul", "bmm", "addmm", "layer_norm", "embedding", "mm"})
# op names (substrings) that draw random numbers: a forward with any of them is replayed from
# the RNG state captured before it; a forward with none needs no capture
_RANDOM_OPS = ("dropout", "rand", "bernoulli", "normal", "uniform", "multinomial", "exponential",
               "geometric", "cauchy", "log_normal", "poisson", "rrelu", "scaled_dot_product_attention",
               "multi_head_attention")  # fmt: skip
_RANDOM_MODULES = (nn.modules.dropout._DropoutNd, nn.RReLU)
# layers whose bias gradient is the output gradient summed over all but the unit dimension
_BIAS_SUMS = (nn.Linear, nn.modules.conv._ConvNd, nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GradsightError(f"watch() {name} must be a positive integer (1, 2, ...), got {value!r}")
    return value


class Monitor:
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
        self._module_acts = module_sites(self.root)
        self._site_of_module: dict[nn.Module, Site] = {}
        self._sites_by_name: dict[str, Site] = {}
        self.sites: list[Site] = []
        self._owners: set[str] = set()
        self._names = {m: n for n, m in self.root.named_modules()}
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
        # this step's observations in forward order; the list is never replaced (the fast
        # site hooks hold its append). Entries from _settled on may still be tuples that
        # _settle turns into Observations (None: dropped):
        #   (site, y, y's version)                          a fast hook's (see _fast_hook)
        #   (site, tensor f' reads, its version, y's node, y.output_nr, y.numel())   _defer's
        self._obs: list[Any] = []
        self._settled = 0
        self._rearm = False  # a site left the fast hook: arm anew at the next logged step
        self._fast_hooks: dict[nn.Module, tuple[Site, Any]] = {}  # see _fast_hook
        self._grad_obs: list[Observation] = []  # observations whose gradient hooks hold gradients
        self._grad_numel = 0
        # logged steps done on the device, not yet on the host: (step, observations, params)
        self._ready: list[tuple[int, list[Observation], list[ParamStats]]] = []
        self._ready_since = 0.0
        self._ready_sites = 0
        self._inputs: tuple[Any, Any] | None = None
        self._rng: torch.Tensor | None = None
        self._out_grads: list[torch.Tensor | None] = []
        self._held: list[tuple[list[torch.Tensor], Any, Any]] = []  # outputs not yet checked
        self._bwd_queued = False
        self._fwd_bad_step = -1
        self._dist: bool | None = None  # see _distributed()

        # results
        self._window = StatsWindow(window)
        self._params = ParamTracker(self.root)
        self._history: list[StepRecord] = []
        self._summary: Any = None
        self._param_stats: list[ParamStats] = []
        self._findings: list[Finding] = []
        self.events: dict[str, nonfinite.NonFiniteEvent] = {}
        self._pending: list[tuple[str, nonfinite.NonFiniteEvent, nonfinite.Snapshot]] = []

        # hooks
        self._mode = SiteMode(self._on_activation_call, self._mode_skip)
        self._mode_active = False
        self._handles: list[Any] = []  # for the monitor's lifetime
        self._armed: list[Any] = []  # logged steps only
        self._disc_handles: list[Any] = []
        self._entry_handles: list[Any] = []
        self._install()

    # =====================================================================================
    # lifecycle
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
            self._fast_hooks.clear()
            self.closed = True
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001
                    self.log.record(f"sink {type(sink).__name__}.close", exc)

    # =====================================================================================
    # the user's calls
    def step(self) -> None:
        """Mark the end of one optimizer step (call after backward, usually after
        ``opt.step()``). On logged steps this closes the site statistics of the step on the
        device; they reach the host, the history and the sinks with the next batch of logged
        steps (see the module docstring)."""
        if self.closed:
            return
        try:
            if self._held:  # forwards of this step that got no backward
                self._check_all_held()
            self._entry_grads.clear()  # of a backward that did not pass the model's output
            self._process_pending()
            if self._logged:
                self._close_logged()
        except Exception as exc:  # noqa: BLE001 - never crash the loop
            self.log.record("step", exc)
        self.step_index += 1
        self._logged = self.step_index % self.every == 0
        try:
            if self._logged:
                if self._rearm:
                    self._rearm = False
                    self._disarm()
                self._arm()
            else:
                self._disarm()
        except Exception as exc:  # noqa: BLE001
            self.log.record("arm", exc)

    def report(self) -> Report:
        """A snapshot of everything measured so far (callable during or after watching)."""
        try:
            self._check_all_held()
            self._process_pending()
            self._flush(partial=True)
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

    # =====================================================================================
    # sites
    def _new_site(self, name: str, act: Any, kind: str, **kw: Any) -> Site:
        site = Site(index=len(self.sites), name=name, act=act, kind=kind, **kw)
        self.sites.append(site)
        self._sites_by_name[name] = site
        return site

    def _module_site(self, module: nn.Module) -> Site | None:
        site = self._site_of_module.get(module)
        if site is None and module in self._module_acts:
            name, act = self._module_acts[module]
            site = self._sites_by_name.get(name)
            if site is None:
                site = self._new_site(
                    name, act, "module", module=module, inplace=bool(getattr(module, "inplace", False))
                )
            self._site_of_module[module] = site
        return site

    def _mode_skip(self) -> bool:
        return self._busy > 0 or self._suppress > 0 or self._replaying

    @contextlib.contextmanager
    def _internal(self) -> Iterator[None]:
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    def _observe(
        self,
        site: Site,
        x: torch.Tensor | None,
        y: Any,
        pre: tuple[torch.Tensor, int, torch.Tensor | None] | None = None,
    ) -> None:
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            return
        self._busy += 1  # our own torch calls must not look like the user's activations
        try:
            if site.units is None:
                self._layout(site, y)
            if self._discovering:
                if site not in self._disc_order:
                    self._disc_order.append(site)
                self._link_incoming(site, x if x is not None else y)
            if pre is None and not site.eager:
                if y.numel() < EAGER_NUMEL:
                    self._defer(site, x, y)  # settled at the end of the forward
                    return
                site.eager = True  # large: measured in its hook, this step and the next ones
            D, n, S = pre if pre is not None else site.unit_sums(x, y)  # (C,), (), ()
            site.units = site.unit_count(y.shape)
            ob = Observation(site, D, n, numel=y.numel(), n_units=site.units, saturated=S)
            if y.requires_grad:
                y.register_hook(ob.on_grad)
            self._obs.append(ob)
        finally:
            self._busy -= 1

    def _defer(self, site: Site, x: torch.Tensor | None, y: torch.Tensor) -> None:
        """Keep what the site's observation needs until :meth:`_settle`, in its place in
        forward order in ``_obs``. Only the tensor f' reads is held (with
        its version, to tell whether it was changed in place before the end of the forward)
        and y's autograd node, where the gradient of y as the site made it arrives -- the
        same tensors autograd keeps for the activation's backward: ReLU, sigmoid and tanh
        save their output, GELU and SiLU their input. Holding the other one to the end of the
        forward gives each site fresh memory: 1.096x against 1.062x a step at every=1 on the
        20x256 ReLU MLP (its input held or let go, measured side by side)."""
        read = site.reads(x, y)
        if read is None:
            raise ValueError(f"site {site.name!r}: no input to take the derivative of")
        node = y.grad_fn if y.requires_grad else None
        self._obs.append((site, read, read._version, node, y.output_nr, y.numel()))

    def _settle(self) -> None:
        """Per-unit derivative sums of the observations made since the last call, in one warm
        loop: done here, at the end of the forward, instead of in each site's hook, where every
        torch call pays the cold-path cost of running right after the model's kernels. The
        tensors read are alive until the backward anyway; one changed in place since its site
        ran (its version moved) is not measured this step, and the site is measured in its
        hook from then on. The output's gradient hook is registered here too (:meth:`_watch_grad`)."""
        obs, dropped = self._obs, False
        if self._settled == len(obs):
            return
        with self._internal():
            for i in range(self._settled, len(obs)):
                entry = obs[i]
                if type(entry) is not tuple:
                    continue  # measured in its hook
                site = entry[0]
                try:
                    if len(entry) == 3:  # a fast hook's: y is what f' reads
                        _, read, version = entry
                        if not isinstance(read, torch.Tensor) or not read.is_floating_point():
                            obs[i], dropped = None, True
                            continue
                        node = read.grad_fn if read.requires_grad else None
                        nr, numel = read.output_nr, read.numel()
                        if numel >= EAGER_NUMEL:  # large: from the next step on, in its hook
                            site.eager = self._rearm = True
                    else:
                        _, read, version, node, nr, numel = entry
                    if read._version == version:
                        D, n, S = site.unit_sums(read, read)  # f' reads one tensor: x or y
                        site.units = units = D.shape[0]
                        ob = obs[i] = Observation(site, D, n, numel=numel, n_units=units, saturated=S)
                        if node is not None:
                            self._watch_grad(ob, node, nr, numel, read.device.type)
                        continue
                except Exception as exc:  # noqa: BLE001
                    self.log.record(f"site {site.name}", exc)
                site.eager = self._rearm = True
                obs[i], dropped = None, True
        if dropped:
            obs[:] = [ob for ob in obs if ob is not None]
        self._settled = len(obs)

    def _take_observations(self) -> list[Observation]:
        """This step's observations, settled, and an empty list for the next step's."""
        self._settle()
        obs = list(self._obs)
        self._obs.clear()
        self._settled = 0
        return obs

    def _watch_grad(self, ob: Observation, node: Any, nr: int, numel: int, device: str) -> None:
        """dLoss/dy for the observation, from a pre-hook on y's autograd node ``node`` (y is
        its output ``nr``; a node pre-hook costs half what a tensor hook does to register: 1.5
        against 2.7 us in a warm loop).

        On the devices in NORM_IN_HOOK_DEVICES (the CPU) the hook takes the norm as the
        gradient passes, while it is still in the cache, and autograd frees the gradient as it
        would without us. Elsewhere the hook only appends the node's gradient tuple to
        ``ob.grads`` -- a built-in method, no Python bytecode in the backward -- and the norms
        of all held gradients are taken in one ``_foreach_norm`` at the end of the backward
        (:meth:`_read_held_grads`), up to HOLD_GRADS held elements. On the CPU holding lost:
        the held gradients are memory the backward cannot reuse, so malloc hands it fresh
        pages, and when glibc has trimmed its heap each page faults (~2.4 us on the 2-core VM).
        At every=1, side by side in one process, 3 processes each: 20x256 ReLU MLP 1.105 /
        1.099 / 1.100x held against 1.098 / 1.095 / 1.097x in the hook (page faults a step 58 /
        19 / 69 against 17 / 2 / 13), 8x256 sigmoid MLP 1.116 / 1.123 / 1.123x against 1.112 /
        1.121 / 1.117x, and in a process where the heap faulted more, 1.165 against 1.123x."""
        ob.nr = nr
        if device in NORM_IN_HOOK_DEVICES or self._grad_numel + numel > HOLD_GRADS:
            node.register_prehook(ob.on_node_grads)
            return
        node.register_prehook(ob.grads.append)
        self._grad_obs.append(ob)
        self._grad_numel += numel

    def _read_held_grads(self, release: bool = False) -> None:
        """The norms of the gradients held since the last call, in one ``_foreach_norm``;
        then the gradients are let go (a second backward through the same graph holds new
        ones: their norms join the first in quadrature). ``release``: the step is over."""
        held = [(ob, g[ob.nr]) for ob in self._grad_obs for g in ob.grads if g[ob.nr] is not None]
        if held:
            try:
                with torch.no_grad():
                    norms = torch._foreach_norm([g for _, g in held])
                for (ob, _), norm in zip(held, norms, strict=True):
                    ob.gnorms.append(norm)
            except Exception:  # noqa: BLE001 - one by one: a failure is told per site
                for ob, g in held:
                    ob.on_grad(g)
        for ob in self._grad_obs:
            ob.grads.clear()
        if release:
            self._grad_obs = []
            self._grad_numel = 0

    def _layout(self, site: Site, t: torch.Tensor) -> None:
        """Decide once, at the site's first sight, whether its units are channels."""
        if site.units is None:
            site.channel_layout = self._hint_channel and t.ndim >= 3
            site.units = site.unit_count(t.shape)

    def _link_incoming(self, site: Site, x: torch.Tensor) -> None:
        """Walk from the site's input back to the weight layer that produced it."""
        if site.incoming is not None or not isinstance(x, torch.Tensor):
            return
        chain: list[tuple[str, nn.Module]] = []
        key: int | None = id(x)
        for _ in range(8):
            rec = self._producers.get(key) if key is not None else None
            if rec is None:
                return
            name, mod, key = rec
            chain.append((name, mod))
            if not isinstance(mod, PASS_THROUGH):
                site.incoming = name
                site.chain = chain
                return

    # =====================================================================================
    # hooks: root (every step)
    @no_compile
    @guarded("forward pre-hook")
    def _on_root_pre(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        if self._replaying:
            return
        self._root_depth += 1
        if self._root_depth > 1:
            return
        self._frames = [("", defaultdict(int))]
        self._inputs = (args, kwargs)
        self._rng = torch.get_rng_state() if self.check_nonfinite and self._random else None
        if torch.is_grad_enabled() and (not self._discovered or (self._rediscover and self._logged)):
            self._begin_discovery()

    @no_compile
    @guarded("forward hook")
    def _on_root_post(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if self._replaying:
            return
        self._root_depth = max(self._root_depth - 1, 0)
        if self._root_depth > 0:
            return
        self._settle()
        if self._discovering:
            self._end_discovery()
        if output is None:
            return  # the forward raised
        outs = [output] if type(output) is torch.Tensor else float_tensors(output)
        backward = torch.is_grad_enabled() and any(t.requires_grad for t in outs)
        if self.check_nonfinite and outs:
            if backward and sum(t.numel() for t in outs) <= HOLD_OUTPUTS:
                # checked at the end of the backward, beside the entry gradients: one
                # interruption of the step with torch work instead of two
                self._held.append((outs, self._inputs, self._rng))
                if len(self._held) > 4:  # forwards without a backward: check as they go
                    self._check_held(self._held.pop(0))
            elif not all_finite(outs):
                self._fwd_bad_step = self.step_index
                self._forward_nonfinite(self._inputs, self._rng)
        if backward:
            self._out_grads = [None] * len(outs)
            self._bwd_queued = False
            for i, t in enumerate(outs):
                if not t.requires_grad:
                    continue
                if t.grad_fn is not None:  # a node pre-hook costs less to register than a tensor hook
                    t.grad_fn.register_prehook(functools.partial(self._on_output_node, i, t.output_nr))
                else:
                    t.register_hook(functools.partial(self._on_output_grad, i))

    def _check_held(self, held: tuple[list[torch.Tensor], Any, Any]) -> None:
        outs, inputs, rng = held
        if not all_finite(outs):
            self._fwd_bad_step = self.step_index
            self._forward_nonfinite(inputs, rng)

    def _check_all_held(self) -> None:
        held, self._held = self._held, []
        for h in held:
            self._check_held(h)

    @no_compile
    @guarded("output gradient hook")
    def _on_output_node(self, i: int, nr: int, grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
        g = grad_outputs[nr] if nr < len(grad_outputs) else None
        if not self._replaying and g is not None:
            self._got_output_grad(i, g)

    @no_compile
    @guarded("output gradient hook")
    def _on_output_grad(self, i: int, g: torch.Tensor) -> None:
        if not self._replaying:
            self._got_output_grad(i, g)

    def _got_output_grad(self, i: int, g: torch.Tensor) -> None:
        if i < len(self._out_grads):
            self._out_grads[i] = g
        if not self._bwd_queued:
            self._bwd_queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._on_backward_end)

    @guarded("end of backward")
    def _on_backward_end(self, deferred: bool = False) -> None:
        if self._replaying:
            self._bwd_queued = False
            return
        if not deferred and self._logged and self._distributed():
            # DDP averages the gradients in its own end-of-backward callback, queued after
            # ours: go to the back of the queue once so the parameter stats see the result
            torch.autograd.Variable._execution_engine.queue_callback(
                functools.partial(self._on_backward_end, True)
            )
            return
        self._bwd_queued = False
        grads, self._out_grads = self._out_grads, []
        if self._grad_obs:
            self._read_held_grads()
        loss = [g for g in grads if g is not None]
        ok, bad = True, False
        if self.check_nonfinite:
            # the forward outputs held to here, the entry layers' gradients (a backward NaN
            # reaches them) and, with no entry layers, the loss gradient: everything finite,
            # the common case, is known from one host read (one sync on an accelerator)
            entry = [p.grad for p in self._entry_params if p.grad is not None] + self._entry_grads
            outs = [t for held in self._held for t in held[0]]
            ok = all_finite(outs + entry + ([] if self._entries else loss))
            if ok:
                self._held = []
            else:
                self._check_all_held()
                bad = not all_finite(entry)
        self._entry_grads.clear()
        if self._logged and self._param_step():
            bad = (not self._params.read_grads()) or bad
        if not self.check_nonfinite:
            return
        # a non-finite loss gradient reaches the entry layers too: check it only to blame it
        loss_finite = ok and not self._entries  # already part of the check above
        bad_loss = (bad or not self._entries) and not loss_finite and not all_finite(loss)
        if bad or bad_loss:
            self._backward_nonfinite(grads, bad_loss)

    @no_compile
    @guarded("entry layer hook")
    def _on_entry_out(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._replaying or not torch.is_grad_enabled() or not self.check_nonfinite:
            return
        for t in float_tensors(output):
            if t.requires_grad:  # kept to the end of the backward and checked there
                t.register_hook(self._entry_grads.append)

    @guarded("optimizer pre-step hook")
    def _on_opt_pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._params.before_step(optimizer)

    @guarded("optimizer post-step hook")
    def _on_opt_post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._params.after_step(optimizer)

    def _param_step(self) -> bool:
        """Parameter stats (gradient norms, the update ratio) change slowly: they are measured
        on logged steps at least PARAM_EVERY steps apart (every logged step when every >= 50)."""
        stride = max(1, -(-PARAM_EVERY // self.every))  # logged steps between two measurements
        return (self.step_index // self.every) % stride == 0

    # =====================================================================================
    # hooks: sites (logged steps)
    def _arm(self) -> None:
        if self._armed or self.closed or self._discovering:
            return
        owners = tuple(self._owners)
        for module, (path, _) in self._module_acts.items():
            # the pre-hook is needed only to keep the functional mode out of a module site that
            # runs inside an owner, or to measure an in-place input before it is overwritten
            inside_owner = any(o == "" or path.startswith(o + ".") for o in owners)
            site = self._module_site(module) if bool(getattr(module, "inplace", False)) else None
            overwrites = site is not None and site.out_deriv is None
            fast = None if inside_owner or overwrites else self._fast_hook(module)
            if fast is not None:
                self._armed.append(module.register_forward_hook(fast))
                continue
            if inside_owner or overwrites:
                self._armed.append(module.register_forward_pre_hook(self._on_site_pre))
            self._armed.append(
                module.register_forward_hook(
                    self._on_site_post_counted if inside_owner or overwrites else self._on_site_post,
                    always_call=True,
                )
            )
        for path in sorted(self._owners):
            mod = self._modules.get(path)
            if mod is None:
                continue
            self._armed.append(mod.register_forward_pre_hook(functools.partial(self._on_owner_pre, path)))
            self._armed.append(mod.register_forward_hook(self._on_owner_post, always_call=True))

    def _fast_hook(self, module: nn.Module) -> Any:
        """The forward hook of a module site seen before whose f' reads its output, where no
        functional mode has to be kept out and nothing is overwritten: it only puts (site, y,
        y's version) in the step's list, and :meth:`_settle` does the rest at the end of the
        forward, warm. (The full hook runs ~15 Python calls cold, right after the model's
        kernels.) None for every other site."""
        site = self._site_of_module.get(module)
        if site is None or not site.units or site.out_deriv is None or site.eager:  # gated: no out_deriv
            return None
        cached = self._fast_hooks.get(module)
        if cached is not None and cached[0] is site:
            return cached[1]
        append, log, grad_enabled = self._obs.append, self.log, torch.is_grad_enabled

        @no_compile
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            try:
                if grad_enabled():
                    append((site, output, output._version))
            except Exception as exc:  # noqa: BLE001 - never crash the loop
                log.record(f"activation hook {site.name}", exc)

        self._fast_hooks[module] = (site, hook)
        return hook

    def _disarm(self) -> None:
        for h in self._armed:
            h.remove()
        self._armed = []

    @no_compile
    @guarded("activation pre-hook")
    def _on_site_pre(self, module: nn.Module, args: Any) -> None:
        if self._replaying:
            return
        self._suppress += 1
        site = self._module_site(module)
        if (
            site is not None
            and site.inplace
            and site.out_deriv is None
            and not site.act.is_gated
            and torch.is_grad_enabled()
            and args
            and isinstance(args[0], torch.Tensor)
        ):
            with self._internal():  # the input is about to be overwritten: measure it now
                self._layout(site, args[0])
                self._pre_D[module] = site.unit_sums(args[0], args[0])

    @no_compile
    @guarded("activation hook")
    def _on_site_post_counted(self, module: nn.Module, args: Any, output: Any) -> None:
        """The post-hook of a site that has a pre-hook: undo its suppression, then measure."""
        if self._replaying:
            return
        self._suppress = max(self._suppress - 1, 0)
        self._measure_module_site(module, args, output)

    @no_compile
    @guarded("activation hook")
    def _on_site_post(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._replaying:
            return
        self._measure_module_site(module, args, output)

    def _measure_module_site(self, module: nn.Module, args: Any, output: Any) -> None:
        pre = self._pre_D.pop(module, None)
        if output is None or not torch.is_grad_enabled():
            return
        site = self._module_site(module)
        if site is None:
            return
        x = args[0] if args and isinstance(args[0], torch.Tensor) and not site.inplace else None
        self._observe(site, x, output, pre)

    @no_compile
    @guarded("owner pre-hook")
    def _on_owner_pre(self, path: str, module: nn.Module, args: Any) -> None:
        if self._replaying:
            return
        self._frames.append((path, defaultdict(int)))
        if self._owner_depth == 0:
            self._enter_mode()
        self._owner_depth += 1

    @no_compile
    @guarded("owner hook")
    def _on_owner_post(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._replaying:
            return
        if len(self._frames) > 1:
            self._frames.pop()
        self._owner_depth = max(self._owner_depth - 1, 0)
        if self._owner_depth == 0:
            self._exit_mode()

    def _enter_mode(self) -> None:
        if not self._mode_active:
            self._mode.__enter__()
            self._mode_active = True

    def _exit_mode(self, force: bool = False) -> None:
        if not self._mode_active:
            return
        from torch.overrides import _get_current_function_mode_stack

        stack = _get_current_function_mode_stack()
        if stack and stack[-1] is self._mode:
            self._mode.__exit__(None, None, None)
            self._mode_active = False
        elif force:
            self._mode_active = False  # someone else popped it; nothing of ours is left

    # =====================================================================================
    # the functional-activation mode
    @no_compile
    def _on_activation_call(self, func: Any, args: Any, kwargs: Any, rec: tuple[Any, Any]) -> Any:
        act, x = rec
        try:
            path, counts = self._frames[-1]
            k = counts[act.name]
            counts[act.name] += 1
            name = functional_name(path, act.name, k)
            site = self._sites_by_name.get(name)
            if site is None:
                if not self._discovering:
                    self._rediscover = True
                    return func(*args, **kwargs)
                site = self._new_site(name, act, "functional")
            if self._discovering:
                self._owners.add(path)
            inplace = is_inplace_call(func, args, kwargs)
            pre = None
            if inplace and site.out_deriv is None and torch.is_grad_enabled():
                with self._internal():
                    self._layout(site, x)
                    pre = site.unit_sums(x, x)
        except Exception as exc:  # noqa: BLE001 - the user's op must still run
            self.log.record("functional site", exc)
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if torch.is_grad_enabled():
            try:
                self._observe(site, None if inplace else x, out, pre)
            except Exception as exc:  # noqa: BLE001
                self.log.record("functional site", exc)
        return out

    def _on_other_op(self, func: Any) -> None:
        if not self._discovering:
            return
        name = nonfinite.op_name(func)
        if not self._random and any(r in name for r in _RANDOM_OPS):
            self._random = True
        if name in CONV_LIKE_OPS:
            self._hint_channel = True
        elif name in _LINEAR_LIKE_OPS:
            self._hint_channel = False

    # =====================================================================================
    # discovery: the first forward with gradients sees every module and every op
    def _begin_discovery(self) -> None:
        self._disarm()
        self._discovering = True
        self._disc_order = []
        self._hint_channel = False
        self._random = any(isinstance(m, _RANDOM_MODULES) for m in self.root.modules())
        self._mode.on_other = self._on_other_op
        for name, mod in self.root.named_modules():
            if mod is self.root:
                continue
            self._disc_handles.append(
                mod.register_forward_pre_hook(functools.partial(self._on_disc_pre, name))
            )
            self._disc_handles.append(
                mod.register_forward_hook(functools.partial(self._on_disc_post, name), always_call=True)
            )
        if self.root in self._module_acts:  # the whole model is one activation module
            self._disc_handles.append(self.root.register_forward_pre_hook(self._on_site_pre))
            self._disc_handles.append(
                self.root.register_forward_hook(self._on_site_post_counted, always_call=True)
            )
        self._enter_mode()

    def _end_discovery(self) -> None:
        self._exit_mode()
        self._mode.on_other = None
        for h in self._disc_handles:
            h.remove()
        self._disc_handles = []
        self._discovering = False
        self._discovered = True
        self._rediscover = False
        self._keep.clear()
        self._producers.clear()
        # forward order: what this forward saw first, then the rest as before
        seen = list(self._disc_order)
        rest = [s for s in self.sites if s not in seen]
        self.sites = seen + rest
        for i, s in enumerate(self.sites):
            s.index = i
        for h in self._entry_handles:
            h.remove()
        self._entry_handles = [m.register_forward_hook(self._on_entry_out) for m in self._hooked_entries]
        if self._logged:
            self._arm()

    @no_compile
    @guarded("discovery pre-hook")
    def _on_disc_pre(self, name: str, module: nn.Module, args: Any) -> None:
        if self._replaying:
            return
        self._frames.append((name, defaultdict(int)))
        if module in self._module_acts:
            self._on_site_pre(module, args)

    @no_compile
    @guarded("discovery hook")
    def _on_disc_post(self, name: str, module: nn.Module, args: Any, output: Any) -> None:
        if self._replaying:
            return
        if len(self._frames) > 1:
            self._frames.pop()
        if module in self._module_acts:
            self._on_site_post_counted(module, args, output)
        if output is None:
            return
        if isinstance(module, CONV_LIKE_MODULES):
            self._hint_channel = True
        elif isinstance(module, (nn.Linear, nn.LayerNorm, nn.Embedding)):
            self._hint_channel = False
        outs = float_tensors(output)
        owns = any(True for _ in module.parameters(recurse=False))
        ins = float_tensors(args)
        if owns or isinstance(module, PASS_THROUGH):
            first_in = ins[0] if ins else None
            for t in outs[:1]:
                self._producers[id(t)] = (name, module, id(first_in) if first_in is not None else None)
                self._keep.append(t)
        if (
            owns
            and not any(t.requires_grad for t in ins)
            and any(t.requires_grad for t in outs)
            and module not in self._entries
        ):
            self._entries.append(module)
            # a backward NaN reaches the entry layer's output gradient and so its parameter
            # gradients: read one .grad at the end of the backward (no hook, no extra
            # interruption of the step) -- the bias of a layer whose bias gradient is the sum
            # of the output gradient (tiny, and any NaN/Inf in the sum shows), else the weight
            # unless it far outsizes the output (embeddings: a hook on the output instead)
            bias = getattr(module, "bias", None)
            weights = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if isinstance(module, _BIAS_SUMS) and isinstance(bias, nn.Parameter) and bias.requires_grad:
                self._entry_params.append(bias)
            elif weights and weights[0].numel() <= max(4 * sum(t.numel() for t in outs), 1 << 18):
                self._entry_params.append(weights[0])
            else:
                self._hooked_entries.append(module)
                self._on_entry_out(module, args, output)  # this step; later steps: its hook

    # =====================================================================================
    # non-finite values
    def _snapshot(
        self,
        grads: list[torch.Tensor | None] | None = None,
        inputs: tuple[Any, Any] | None = None,
        rng: torch.Tensor | None = None,
    ) -> nonfinite.Snapshot:
        if inputs is None:
            inputs, rng = self._inputs, self._rng
        args, kwargs = inputs if inputs is not None else ((), {})
        return nonfinite.Snapshot(
            args=nonfinite.clone_tree(args),
            kwargs=nonfinite.clone_tree(kwargs),
            state=nonfinite.snapshot_state(self.root),
            rng=rng,
            grad_outputs=[g.detach().clone() if g is not None else None for g in grads]
            if grads is not None
            else None,
        )

    def _forward_nonfinite(self, inputs: tuple[Any, Any] | None, rng: torch.Tensor | None) -> None:
        ev = self.events.get("forward")
        if ev is not None:
            ev.later_steps += 1
            return
        ev = nonfinite.NonFiniteEvent("forward", self.step_index)
        self.events["forward"] = ev
        args, kwargs = inputs if inputs is not None else ((), {})
        bad_in = nonfinite.first_nonfinite_input(args, kwargs)
        if bad_in is not None:
            ev.phase, ev.site, ev.module, ev.evidence = "input", "input", "", bad_in
            return
        bad_p = nonfinite.first_nonfinite_parameter(self.root)
        if bad_p is not None:
            name, ev_counts = bad_p
            ev.phase, ev.site, ev.module = "parameters", name, name.rpartition(".")[0]
            ev.evidence = {"parameter": name, **ev_counts}
            return
        self._pending.append(("forward", ev, self._snapshot(inputs=inputs, rng=rng)))

    def _backward_nonfinite(self, grads: list[torch.Tensor | None], bad_loss: bool) -> None:
        if self._fwd_bad_step == self.step_index:
            return  # a non-finite forward explains its backward; the forward event has it
        ev = self.events.get("backward")
        if ev is not None:
            ev.later_steps += 1
            return
        ev = nonfinite.NonFiniteEvent("backward", self.step_index)
        self.events["backward"] = ev
        if bad_loss:
            ev.phase, ev.site, ev.module = "loss", "loss", ""
            ev.evidence = {
                "grad_of_output": [
                    nonfinite.nonfinite_counts(g) for g in grads if g is not None
                ][:2]
            }
            return
        self._pending.append(("backward", ev, self._snapshot(grads)))

    @contextlib.contextmanager
    def _replay_guard(self) -> Iterator[None]:
        self._replaying = True
        n = len(self._obs)
        try:
            yield
        finally:
            self._replaying = False
            del self._obs[n:]  # what the fast site hooks saw of the replay
            self._settled = min(self._settled, n)

    def _process_pending(self) -> None:
        pending, self._pending = self._pending, []
        for phase, ev, snap in pending:
            try:
                if phase == "forward":
                    origin = nonfinite.locate_forward(self.root, snap, self._replay_guard)
                else:
                    origin = nonfinite.locate_backward(self.root, snap, self._replay_guard)
            except Exception as exc:  # noqa: BLE001
                self.log.record(f"locating the {phase} non-finite origin", exc)
                origin = None
            if origin is not None:
                ev.site, ev.module, ev.op = origin["site"], origin["module"], origin["op"]
                ev.evidence = origin["evidence"]
            else:
                ev.evidence = {"located": False}

    # =====================================================================================
    # closing a logged step
    def _distributed(self, refresh: bool = False) -> bool:
        """Whether a process group of more than one rank exists. Asked on every logged step,
        so the answer is kept and asked again only when logged steps are closed (the question
        costs ~20 us in the cold middle of a step, 0.4 us in a warm loop)."""
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
        if self._grad_obs:
            self._read_held_grads(release=True)
        if not self._ready:
            self._ready_since = time.monotonic()
        self._ready.append((self.step_index, obs, self._params.take(self.step_index)))
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
        if partial:
            obs = self._take_observations()
            if obs:
                self._ready.append((self.step_index, obs, self._params.take(self.step_index)))
        else:
            self._settle()
        ready, self._ready = self._ready, []
        self._ready_sites = len(self.sites)
        if not ready:
            return
        for _, obs, _ in ready:
            for ob in obs:
                if ob.error is not None:
                    self.log.record(f"site gradient hook {ob.site.name}", ob.error)
        summaries = self._window.finalize_many(
            [(step, obs) for step, obs, _ in ready], self.sites, all_reduce=self._distributed(refresh=True)
        )
        for (step, _, params), summary in zip(ready, summaries, strict=True):
            self._record(step, params, summary)

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
    all_sinks = list(sinks) + make_sinks(jsonl=jsonl, tensorboard=tensorboard, console=console)
    if not math.isfinite(float(every)):
        raise GradsightError(f"watch() every must be finite, got {every!r}")
    return Monitor(model, every=every, window=window, sinks=all_sinks, check_nonfinite=check_nonfinite)
