"""From per-site observations to LayerStats: on-device sums per step, one host copy per
batch of logged steps, a window of observed steps.

Per observation of a site (one forward call) the capture keeps these device tensors:

    D[u] = sum over the samples of unit u of f'(z)      (C,)  -- one reduction in the forward
    S    = sum of sign(|f'(z)| - 0.01 sup|f'|)         ()    -- saturating activations only;
           K = (n C - S) / 2 saturated (sample, unit) pairs of the n C
    ||g||  of g = dLoss/dy                             ()    -- one reduction in the backward

Everything reported follows from those, over a window of the last ``window`` observed steps
with W[u] = sum of D[u] and N = samples per unit:

    dead_fraction      = mean_u [ W[u] == 0 ]                 (f' = 0 for every sample)
    saturated_fraction = sum of K / (N C)                     (saturating activations only)
    active_fraction    = mean_u [ W[u] / N >= 0.01 sup|f'| ]
    mean_derivative    = sum_u W[u] / (N C)
    grad_norm          = median over the window's steps of ||g|| (quadrature sum within a step)
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gradsight.monitor import distributed
from gradsight.monitor.records import LayerStats
from gradsight.monitor.sites import SATURATED, Site

CLOSED_VALVE = SATURATED  # a unit whose mean derivative is below 1 % of sup|f'| passes ~no gradient


@dataclass(eq=False, slots=True)
class Observation:
    """One forward call of one site, filled in by the forward and the backward hooks."""

    site: Site
    D: torch.Tensor | None  # (C,) float32 per-unit sum of f'(z); None until settled
    n: int  # samples per unit
    gnorms: list[torch.Tensor] = field(default_factory=list)  # () each, from backward hooks
    numel: int = 0  # elements of the site output
    n_units: int = 0  # C, the length of D
    error: Exception | None = None  # raised in the gradient hook (reported by the monitor)
    grads: list[tuple[torch.Tensor | None, ...]] = field(default_factory=list)  # node grad tuples held until read
    nr: int = 0  # which of the node's gradients is the site output's
    saturated: torch.Tensor | None = None  # () S of Site.saturation_signs, or None

    def on_grad(self, g: torch.Tensor) -> None:
        """The gradient hook of the site's output: ||dLoss/dy|| of this call. A bound method
        called straight from autograd -- no wrapper between, as the backward runs it cold --
        and it never raises into the user's backward."""
        try:
            self.gnorms.append(torch.linalg.vector_norm(g.detach()))
        except Exception as exc:  # noqa: BLE001 - the user's backward goes on
            self.error = exc

    def on_node_grads(self, grads: tuple[torch.Tensor | None, ...]) -> None:
        """The pre-hook of the site output's autograd node: :meth:`on_grad` of its gradient."""
        g = grads[self.nr] if self.nr < len(grads) else None
        if g is not None:
            self.on_grad(g)


NO_GRAD = -1.0  # a site's sum of ||g||^2 in a step whose backward did not reach it (no backward seen)


@dataclass
class _StepEntry:
    step: int
    flat: np.ndarray  # (U,) per-unit D of every site in the layout
    n: list[float]  # per site samples per unit
    gsq: list[float]  # per site sum of ||g||^2 (NO_GRAD when no gradient was seen, nan when one was non-finite)
    numel: list[float]
    sat: list[float]  # per site K, the saturated (sample, unit) count (0: cannot saturate)


@dataclass
class Summary:
    """Host numbers of one logged step and its window; LayerStats are built from it on demand
    (``step_stats`` / ``window_stats``), so a logged step costs no Python per site beyond the
    sync."""

    step: int
    layout: list[tuple[Site, int]]
    n: list[float]
    numel: list[float]
    gsq: list[float]
    step_sum: list[float]
    win_sum: list[float]
    dead: list[float]
    closed: list[float]
    nW: list[float]
    sat: list[float]  # per site K summed over the window
    ring: list[tuple[int, list[float], list[float], list[float]]]  # (step, n, gsq, numel)

    def _common(self, i: int, site: Site, c: int, extra: dict[str, Any]) -> dict[str, Any]:
        closed = self.closed[i] / c if self.nW[i] > 0 else math.nan
        dead = (0.0 if site.saturates else self.dead[i] / c) if self.nW[i] > 0 else math.nan
        out = {
            "name": site.name,
            "activation": site.activation_name,
            "units": c,
            "incoming": site.incoming,
            "dead_fraction": dead,
            # a saturating unit (sigmoid, tanh) with f' ~ 0 is saturated, never dead
            "saturated_fraction": (self.sat[i] / (self.nW[i] * c) if self.nW[i] > 0 else math.nan)
            if site.saturates
            else 0.0,
            "active_fraction": 1.0 - closed,
        }
        inc = extra.get(site.incoming) if site.incoming is not None else None
        if inc is not None:
            out["weight_grad_norm"], out["update_ratio"] = inc
        return out

    def step_stats(self, incoming: dict[str, tuple[float, float | None]]) -> list[LayerStats]:
        """Per-site stats of this step (dead / saturated over the window ending here)."""
        out = []
        for i, (site, c) in enumerate(self.layout):
            if self.n[i] <= 0:
                continue
            g = self.gsq[i]
            out.append(
                LayerStats(
                    grad_norm=math.sqrt(g) if g >= 0 else math.nan,
                    mean_derivative=self.step_sum[i] / (self.n[i] * c),
                    grad_rms=math.sqrt(g / self.numel[i]) if self.numel[i] > 0 and g >= 0 else math.nan,
                    backward_seen=not g < 0,
                    samples=int(self.n[i]),
                    steps=1,
                    step=self.step,
                    **self._common(i, site, c, incoming),
                )
            )
        return out

    def window_stats(self, incoming: dict[str, tuple[float, float | None]]) -> list[LayerStats]:
        """Per-site stats over the window: grad_norm is the median of the steps' norms."""
        out = []
        for i, (site, c) in enumerate(self.layout):
            if self.nW[i] <= 0:
                continue
            seen = [(st, gs[i], nm[i]) for st, ns, gs, nm in self.ring if ns and ns[i] > 0]
            norms = [math.sqrt(g) for _, g, _ in seen if g >= 0]
            rmss = [math.sqrt(g / m) for _, g, m in seen if g >= 0 and m > 0]
            out.append(
                LayerStats(
                    grad_norm=statistics.median(norms) if norms else math.nan,
                    mean_derivative=self.win_sum[i] / (self.nW[i] * c),
                    grad_rms=statistics.median(rmss) if rmss else math.nan,
                    backward_seen=any(not g < 0 for _, g, _ in seen),
                    samples=int(self.nW[i]),
                    steps=len(seen),
                    step=max(st for st, _, _ in seen) if seen else self.step,
                    **self._common(i, site, c, incoming),
                )
            )
        return out


class StatsWindow:
    """Turns each logged step's observations into a Summary; keeps the window.

    The device work of a batch of logged steps is one concatenation of the observations' D
    and gradient norms and one copy to the host; grouping by site and the window arithmetic
    (arrays of one number per unit and step) run in numpy, for the whole batch at once."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.layout: list[tuple[Site, int]] = []  # (site, units) in forward order
        self.ring: deque[_StepEntry] = deque(maxlen=window)
        self.last_W: np.ndarray | None = None  # (U,) window sum of D at the last step, for revive_dead
        self.last_N: list[float] = []  # (S,) window samples per unit, as numbers
        self._starts = np.zeros(0, dtype=np.int64)  # (S,) first unit of each site
        self._thr = np.zeros(0)  # (U,) closed-valve threshold per unit
        self._units = np.zeros(0, dtype=np.int64)  # (S,) units of each site
        self._unit_site = np.zeros(0, dtype=np.int64)  # (U,) index of each unit's site
        self._work: dict[str, np.ndarray] = {}  # see _buffer

    # ------------------------------------------------------------------------------------
    def _ensure_layout(self, sites: list[Site]) -> None:
        """Grow the layout with sites whose unit count is known; a change clears the window."""
        known = {s for s, _ in self.layout}
        changed = False
        for site in sites:
            if site not in known and site.units:
                self.layout.append((site, site.units))
                changed = True
        for i, (site, units) in enumerate(self.layout):
            if site.units and site.units != units:
                self.layout[i] = (site, site.units)
                changed = True
        if not changed:
            return
        self.layout.sort(key=lambda su: su[0].index)
        units = self._units = np.array([c for _, c in self.layout], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(units)[:-1]]).astype(np.int64)
        bounds = np.array([CLOSED_VALVE * s.bound if math.isfinite(s.bound) else 0.0 for s, _ in self.layout])
        self._thr = np.repeat(bounds, units)
        self._unit_site = np.repeat(np.arange(len(units)), units)  # (U,) the site of each unit
        self.ring.clear()

    def reset(self) -> None:
        self.ring.clear()
        self.last_W = None

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
        """A work array kept from one close to the next, grown when too small. The arrays of
        a close are megabytes (32 steps of 20 x 256 units in float64: 1.3 MB each); fresh
        ones come from mmap and cost a page fault per 4 KiB touched, ~2.4 us each on a 2-core
        VM: 3-5 ms a close, more than the arithmetic."""
        need = math.prod(shape)
        buf = self._work.get(name)
        if buf is None or buf.dtype != dtype or buf.size < need:
            buf = self._work[name] = np.empty(max(need, 1), dtype=dtype)
        return buf[:need].reshape(shape)

    def offsets(self) -> dict[Site, tuple[int, int]]:
        return {site: (int(a), int(a) + c) for (site, c), a in zip(self.layout, self._starts, strict=True)}

    # ------------------------------------------------------------------------------------
    def _to_host(self, steps: list[list[Observation]]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every observation's D, gradient norms and saturated count, of all the given steps,
        in one device-to-host copy; per step (its D's concatenated, its norms, its counts)."""
        obs = [ob for step in steps for ob in step]
        if not obs:
            return [(np.zeros(0), np.zeros(0), np.zeros(0)) for _ in steps]
        parts = [ob.D for ob in obs]
        norms = [g for ob in obs for g in ob.gnorms]
        if norms:
            parts.append(torch.stack(norms).float())
        counts = [ob.saturated for ob in obs if ob.saturated is not None]
        if counts:
            parts.append(torch.stack(counts).float())
        n = sum(t.numel() for t in parts)
        if all(t.device.type == "cpu" and t.dtype == torch.float32 for t in parts):
            # into a kept buffer of the same dtype (a casting cat takes twice as long)
            staged = torch.cat(parts, out=torch.from_numpy(self._buffer("staging", (n,), np.float32)))
        else:
            try:
                staged = torch.cat(parts)
            except RuntimeError:  # tensors on several devices (a model split across GPUs)
                device = parts[0].device
                staged = torch.cat([t.to(device) for t in parts])
        host = self._buffer("host", (n,))
        host[:] = staged.cpu().numpy()  # float64: the window sums stay exact
        out, d_pos = [], 0
        g_pos = sum(ob.n_units for ob in obs)
        k_pos = g_pos + len(norms)
        for step in steps:
            n_d = sum(ob.n_units for ob in step)
            n_g = sum(len(ob.gnorms) for ob in step)
            n_k = sum(ob.saturated is not None for ob in step)
            out.append((host[d_pos : d_pos + n_d], host[g_pos : g_pos + n_g], host[k_pos : k_pos + n_k]))
            d_pos += n_d
            g_pos += n_g
            k_pos += n_k
        return out

    def _group(
        self, step: int, observations: list[Observation], d: np.ndarray, g: np.ndarray, k: np.ndarray
    ) -> _StepEntry:
        """One step's observations laid out by site: flat D (U,), per site n, numel,
        sum ||g||^2 (NO_GRAD where no gradient was seen), saturated count."""
        sat = np.zeros(len(self.layout))
        counted = [ob.saturated is not None for ob in observations]
        S = len(self.layout)
        in_order = len(observations) == S and all(
            ob.site is site and ob.n_units == c and len(ob.gnorms) <= 1
            for ob, (site, c) in zip(observations, self.layout, strict=False)
        )
        if in_order:  # the usual step: each site seen once, in forward order
            n = [float(ob.n) for ob in observations]
            numel = [float(ob.numel) for ob in observations]
            have = np.array([len(ob.gnorms) == 1 for ob in observations], dtype=bool)
            gsq = np.zeros(S)
            gsq[have] = np.square(g)
            mask = np.array(counted, dtype=bool)
            units = np.array([ob.n_units for ob in observations], dtype=np.float64)
            sat[mask] = (np.asarray(n)[mask] * units[mask] - k) / 2  # K = (n C - S) / 2
            return _StepEntry(step, d, n, np.where(have, gsq, NO_GRAD).tolist(), numel, sat.tolist())
        units = [c for _, c in self.layout]
        index = {site: i for i, (site, _) in enumerate(self.layout)}
        flat = np.zeros(sum(units))
        n_a, numel_a, gsq = np.zeros(S), np.zeros(S), np.zeros(S)
        have = np.zeros(S, dtype=bool)
        pos, gpos, kpos = 0, 0, 0
        for ob, has_k in zip(observations, counted, strict=True):
            c, m = ob.n_units, len(ob.gnorms)
            i = index.get(ob.site)
            if i is not None and c == units[i]:
                a = self._starts[i]
                flat[a : a + c] += d[pos : pos + c]
                n_a[i] += ob.n
                numel_a[i] += ob.numel
                if m:
                    gsq[i] += float(np.square(g[gpos : gpos + m]).sum())
                    have[i] = True
                if has_k:
                    sat[i] += (ob.n * c - k[kpos]) / 2  # K = (n C - S) / 2
            pos += c
            gpos += m
            kpos += has_k
        return _StepEntry(
            step, flat, n_a.tolist(), np.where(have, gsq, NO_GRAD).tolist(), numel_a.tolist(), sat.tolist()
        )

    def finalize_many(
        self,
        steps: list[tuple[int, list[Observation]]],
        sites: list[Site],
        all_reduce: bool = False,
    ) -> list[Summary | None]:
        """Close logged steps, oldest first: a Summary of each step and of the window ending
        there (LayerStats are built from it on demand). One host copy for all of them (and one
        all_reduce per step under torch.distributed); the window arithmetic for all of them
        at once, in numpy."""
        if not steps or (not any(obs for _, obs in steps) and not self.layout):
            return [None] * len(steps)
        self._ensure_layout(sites)
        if not self.layout:
            return [None] * len(steps)
        S, U = len(self.layout), int(self._units.sum())
        entries = []
        for (step, obs), (d, g, k) in zip(steps, self._to_host([obs for _, obs in steps]), strict=True):
            if obs:
                entry = self._group(step, obs, d, g, k)
            else:  # a rank that saw nothing this step still takes part in the all_reduce
                entry = _StepEntry(step, np.zeros(U), [0.0] * S, [NO_GRAD] * S, [0.0] * S, [0.0] * S)
            if all_reduce:
                gsq = np.asarray(entry.gsq)
                have = ~(gsq < 0)  # a non-finite gradient (nan) was seen
                flat, n, numel, gsq, sat = distributed.reduce_site_sums(
                    entry.flat, np.asarray(entry.n), np.asarray(entry.numel), np.where(have, gsq, 0.0), np.asarray(entry.sat)
                )
                gsq = np.where(have | (gsq > 0), gsq, NO_GRAD)
                entry = _StepEntry(step, flat, n.tolist(), gsq.tolist(), numel.tolist(), sat.tolist())
            entries.append(entry)
        return self._close(entries)

    def _close(self, entries: list[_StepEntry]) -> list[Summary | None]:
        """The window sums of each new step -- W[u] = sum of D[u] over the last ``window``
        observed steps, summed directly (oldest first, so a unit is dead exactly when each of
        its D's was 0) -- and the per-site counts from them, for K steps in a few numpy calls."""
        w, K = self.window, len(entries)
        before = list(self.ring)[-(w - 1) :] if w > 1 else []
        pad = (w - 1) - len(before)
        U, S = int(self._units.sum()), len(self.layout)
        rows = pad + len(before) + K
        D, N, Q = self._buffer("D", (rows, U)), self._buffer("N", (rows, S)), self._buffer("Q", (rows, S))
        D[:pad], N[:pad], Q[:pad] = 0.0, 0.0, 0.0
        for i, e in enumerate([*before, *entries]):
            D[pad + i], N[pad + i], Q[pad + i] = e.flat, e.n, e.sat
        W, nW, sW = self._buffer("W", (K, U)), self._buffer("nW", (K, S)), self._buffer("sW", (K, S))
        W[:], nW[:], sW[:] = D[0:K], N[0:K], Q[0:K]  # row k sums rows k .. k+w-1
        for j in range(1, w):
            W += D[j : j + K]
            nW += N[j : j + K]
            sW += Q[j : j + K]
        limit = self._buffer("limit", (K, U))  # samples in the window, times the threshold
        np.take(nW, self._unit_site, axis=1, out=limit)
        limit *= self._thr
        flags = self._buffer("flags", (K, U), np.bool_)
        starts = self._starts
        step_sum = np.add.reduceat(D[-K:], starts, axis=1).tolist()  # (K, S) each
        win_sum = np.add.reduceat(W, starts, axis=1).tolist()
        dead = np.add.reduceat(np.equal(W, 0, out=flags), starts, axis=1, dtype=np.int64).tolist()
        closed = np.add.reduceat(np.less(W, limit, out=flags), starts, axis=1, dtype=np.int64).tolist()
        nW_l, sW_l = nW.tolist(), sW.tolist()
        layout = list(self.layout)
        out: list[Summary | None] = []
        for k, e in enumerate(entries):
            self.ring.append(e)
            out.append(
                Summary(
                    step=e.step,
                    layout=layout,
                    n=e.n,
                    numel=e.numel,
                    gsq=e.gsq,
                    step_sum=step_sum[k],
                    win_sum=win_sum[k],
                    dead=dead[k],
                    closed=closed[k],
                    nW=nW_l[k],
                    sat=sW_l[k],
                    ring=[(r.step, r.n, r.gsq, r.numel) for r in self.ring],
                )
            )
        for e in self.ring:
            if e.flat.base is not None:  # a view of the reused host buffer: the next close reads it
                e.flat = e.flat.copy()
        self.last_W, self.last_N = W[-1].copy(), nW_l[-1]
        return out

    def dead_units(self) -> dict[Site, torch.Tensor]:
        """Per site, the indices of the units dead over the current window."""
        if self.last_W is None:
            return {}
        out = {}
        for i, (site, (a, b)) in enumerate(self.offsets().items()):
            if i < len(self.last_N) and self.last_N[i] > 0:
                idx = np.flatnonzero(self.last_W[a:b] == 0)
                if idx.size:
                    out[site] = torch.from_numpy(idx)
        return out

