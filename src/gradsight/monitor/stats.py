"""From per-site observations to LayerStats: on-device sums per step, one host sync per
logged step, a window of observed steps.

Per observation of a site (one forward call) the capture keeps two device tensors:

    D[u] = sum over the samples of unit u of f'(z)      (C,)  -- one reduction in the forward
    ||g||  of g = dLoss/dy                             ()    -- one reduction in the backward

Everything reported follows from those, over a window of the last ``window`` observed steps
with W[u] = sum of D[u] and N = samples per unit:

    dead_fraction      = mean_u [ W[u] == 0 ]                 (f' = 0 for every sample)
    saturated_fraction = mean_u [ W[u] / N < 0.01 sup|f'| ]   (saturating activations only)
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

from gradsight.monitor.records import LayerStats
from gradsight.monitor.sites import Site

CLOSED_VALVE = 0.01  # a unit whose mean derivative is below 1 % of sup|f'| passes ~no gradient


@dataclass(eq=False, slots=True)
class Observation:
    """One forward call of one site, filled in by the forward and the backward hooks."""

    site: Site
    D: torch.Tensor  # (C,) float32 per-unit sum of f'(z)
    n: int  # samples per unit
    gnorms: list[torch.Tensor] = field(default_factory=list)  # () each, from backward hooks
    numel: int = 0  # elements of the site output


@dataclass
class _StepEntry:
    step: int
    flat: np.ndarray  # (U,) per-unit D of every site in the layout
    n: list[float]  # per site samples per unit
    gsq: list[float]  # per site sum of ||g||^2 (nan when no gradient was seen)
    numel: list[float]


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
            "saturated_fraction": closed if site.saturates else 0.0,
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
                    grad_norm=math.sqrt(g) if not math.isnan(g) else math.nan,
                    mean_derivative=self.step_sum[i] / (self.n[i] * c),
                    grad_rms=math.sqrt(g / self.numel[i]) if self.numel[i] > 0 and not math.isnan(g) else math.nan,
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
            norms = [math.sqrt(g) for _, g, _ in seen if not math.isnan(g)]
            rmss = [math.sqrt(g / m) for _, g, m in seen if not math.isnan(g) and m > 0]
            out.append(
                LayerStats(
                    grad_norm=statistics.median(norms) if norms else math.nan,
                    mean_derivative=self.win_sum[i] / (self.nW[i] * c),
                    grad_rms=statistics.median(rmss) if rmss else math.nan,
                    samples=int(self.nW[i]),
                    steps=len(seen),
                    step=max(st for st, _, _ in seen) if seen else self.step,
                    **self._common(i, site, c, incoming),
                )
            )
        return out


class StatsWindow:
    """Turns each logged step's observations into a Summary; keeps the window.

    The device work of a logged step is one concatenation of the observations' D and gradient
    norms and one copy to the host; grouping by site and the window arithmetic (a few arrays
    of one number per unit) run in numpy, where each operation costs a microsecond instead of
    a kernel launch."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.layout: list[tuple[Site, int]] = []  # (site, units) in forward order
        self.ring: deque[_StepEntry] = deque(maxlen=window)
        self.last_W: np.ndarray | None = None  # (U,) running window sum of D, for revive_dead
        self.last_N: list[float] = []  # (S,) window samples per unit, as numbers
        self._starts = np.zeros(0, dtype=np.int64)  # (S,) first unit of each site
        self._seg = np.zeros(0, dtype=np.int64)  # (U,) site of each unit
        self._thr = np.zeros(0)  # (U,) closed-valve threshold per unit
        self._nW = np.zeros(0)  # (S,) running window sum of samples per unit
        self._since_exact = 0

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
        units = np.array([c for _, c in self.layout], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(units)[:-1]]).astype(np.int64)
        self._seg = np.repeat(np.arange(len(self.layout)), units)
        bounds = np.array([CLOSED_VALVE * s.bound if math.isfinite(s.bound) else 0.0 for s, _ in self.layout])
        self._thr = np.repeat(bounds, units)
        self.ring.clear()

    def reset(self) -> None:
        self.ring.clear()
        self.last_W = None
        self._since_exact = 0

    def offsets(self) -> dict[Site, tuple[int, int]]:
        return {site: (int(a), int(a) + c) for (site, c), a in zip(self.layout, self._starts, strict=True)}

    # ------------------------------------------------------------------------------------
    def _to_host(self, steps: list[list[Observation]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every observation's D and gradient norms, of all the given steps, in one
        device-to-host copy; per step (its D's concatenated, its norms)."""
        obs = [ob for step in steps for ob in step]
        if not obs:
            return [(np.zeros(0), np.zeros(0)) for _ in steps]
        device = obs[0].D.device
        parts = [ob.D if ob.D.device == device else ob.D.to(device) for ob in obs]
        norms = [g if g.device == device else g.to(device) for ob in obs for g in ob.gnorms]
        if norms:
            parts.append(torch.stack(norms).float())
        host = torch.cat(parts).cpu().numpy().astype(np.float64)
        out, d_pos = [], 0
        g_pos = sum(ob.D.numel() for ob in obs)
        for step in steps:
            n_d = sum(ob.D.numel() for ob in step)
            n_g = sum(len(ob.gnorms) for ob in step)
            out.append((host[d_pos : d_pos + n_d], host[g_pos : g_pos + n_g]))
            d_pos += n_d
            g_pos += n_g
        return out

    def _group(
        self, observations: list[Observation], d: np.ndarray, g: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per layout position: flat D (U,), and per site n, numel, sum ||g||^2, seen-g (S,)."""
        S = len(self.layout)
        units = [c for _, c in self.layout]
        n = np.array([0.0] * S)
        numel = np.array([0.0] * S)
        in_order = len(observations) == S and all(
            ob.site is site and ob.D.numel() == c and len(ob.gnorms) <= 1
            for ob, (site, c) in zip(observations, self.layout, strict=False)
        )
        if in_order:  # the usual step: each site seen once, in forward order
            n[:] = [ob.n for ob in observations]
            numel[:] = [ob.numel for ob in observations]
            have = np.array([len(ob.gnorms) == 1 for ob in observations])
            gsq = np.zeros(S)
            gsq[have] = np.square(g)
            return d, n, numel, gsq, have
        index = {site: i for i, (site, _) in enumerate(self.layout)}
        flat = np.zeros(sum(units))
        gsq = np.zeros(S)
        have = np.zeros(S, dtype=bool)
        pos, gpos = 0, 0
        for ob in observations:
            c, k = ob.D.numel(), len(ob.gnorms)
            i = index.get(ob.site)
            if i is not None and c == units[i]:
                a = self._starts[i]
                flat[a : a + c] += d[pos : pos + c]
                n[i] += ob.n
                numel[i] += ob.numel
                if k:
                    gsq[i] += float(np.square(g[gpos : gpos + k]).sum())
                    have[i] = True
            pos += c
            gpos += k
        return flat, n, numel, gsq, have

    def finalize(
        self,
        step: int,
        observations: list[Observation],
        sites: list[Site],
        all_reduce: bool = False,
    ) -> Summary | None:
        """Close one logged step: ``finalize_many`` of one."""
        return self.finalize_many([(step, observations)], sites, all_reduce)[0]

    def finalize_many(
        self,
        steps: list[tuple[int, list[Observation]]],
        sites: list[Site],
        all_reduce: bool = False,
    ) -> list[Summary | None]:
        """Close logged steps, oldest first: a Summary of each step and of the window ending
        there (LayerStats are built from it on demand). One host copy for all of them (and one
        all_reduce per step under torch.distributed)."""
        if not any(obs for _, obs in steps) and not self.layout:
            return [None] * len(steps)
        self._ensure_layout(sites)
        if not self.layout:
            return [None] * len(steps)
        hosts = self._to_host([obs for _, obs in steps])
        return [
            self._close(step, obs, d, g, all_reduce)
            for (step, obs), (d, g) in zip(steps, hosts, strict=True)
        ]

    def _close(
        self, step: int, observations: list[Observation], d: np.ndarray, g: np.ndarray, all_reduce: bool
    ) -> Summary:
        S = len(self.layout)
        if observations:
            flat, n, numel, gsq, have = self._group(observations, d, g)
        else:  # a rank that saw nothing this step still takes part in the all_reduce
            flat, n, numel, gsq, have = (np.zeros(int(self._seg.size)), *(np.zeros(S) for _ in range(3)), np.zeros(S, bool))
        if all_reduce:
            flat, n, numel, gsq = _all_reduce(flat, n, numel, gsq)
            have = have | (gsq > 0)
        gsq_l = np.where(have, gsq, math.nan).tolist()
        n_l, numel_l = n.tolist(), numel.tolist()
        W, nW = self._slide(_StepEntry(step, flat, n_l, gsq_l, numel_l), n)  # (U,), (S,)
        self.last_N = nW.tolist()
        rows = np.empty((4, flat.size))
        rows[0], rows[1] = flat, W
        np.equal(W, 0, out=rows[2])
        np.less(W, self._thr * nW[self._seg], out=rows[3])
        step_sum, win_sum, dead, closed = np.add.reduceat(rows, self._starts, axis=1).tolist()
        return Summary(
            step=step,
            layout=list(self.layout),
            n=n_l,
            numel=numel_l,
            gsq=gsq_l,
            step_sum=step_sum,
            win_sum=win_sum,
            dead=dead,
            closed=closed,
            nW=self.last_N,
            ring=[(e.step, e.n, e.gsq, e.numel) for e in self.ring],
        )

    def _slide(self, entry: _StepEntry, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append a step to the window; the window sums ``last_W`` (U,) and nW (S,) kept as
        running sums (add the new step, subtract the one that drops out), recomputed exactly
        every ``window`` steps so rounding cannot build up."""
        dropped = self.ring[0] if len(self.ring) == self.window else None
        self.ring.append(entry)
        self._since_exact += 1
        if self.last_W is None or len(self.ring) == 1 or self._since_exact >= self.window:
            self.last_W = np.add.reduce([e.flat for e in self.ring])
            self._nW = np.add.reduce([np.asarray(e.n) for e in self.ring])
            self._since_exact = 0
        else:
            self.last_W = self.last_W + entry.flat
            self._nW = self._nW + n
            if dropped is not None:
                self.last_W -= dropped.flat
                self._nW -= np.asarray(dropped.n)
        return self.last_W, self._nW

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


def _all_reduce(*arrays: np.ndarray) -> list[np.ndarray]:
    """Sum the arrays over the ranks of the default process group, in one all_reduce."""
    import torch.distributed as dist

    sizes = [a.size for a in arrays]
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    packed = torch.from_numpy(np.concatenate(arrays)).to(device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    return np.split(packed.cpu().numpy(), np.cumsum(sizes)[:-1])
