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

import torch

from gradsight.monitor.records import LayerStats
from gradsight.monitor.sites import Site

CLOSED_VALVE = 0.01  # a unit whose mean derivative is below 1 % of sup|f'| passes ~no gradient


@dataclass(eq=False)
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
    flat: torch.Tensor  # (U,) per-unit D of every site in the layout
    n_dev: torch.Tensor  # (S,) samples per unit, per site, on the device
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
    """Turns each logged step's observations into LayerStats; keeps the window."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.layout: list[tuple[Site, int]] = []  # (site, units) in forward order
        self.ring: deque[_StepEntry] = deque(maxlen=window)
        self.last_W: torch.Tensor | None = None  # (U,) window sum, for revive_dead
        self.last_N: list[float] = []
        self._seg: torch.Tensor | None = None
        self._thr: torch.Tensor | None = None

    # ------------------------------------------------------------------------------------
    def _ensure_layout(self, sites: list[Site], device: torch.device) -> bool:
        """Grow the layout with sites whose unit count is known; True when it changed."""
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
        if changed or self._seg is None or self._seg.device != device:
            self.layout.sort(key=lambda su: su[0].index)
            seg = [i for i, (_, c) in enumerate(self.layout) for _ in range(c)]
            thr = [
                CLOSED_VALVE * s.bound if math.isfinite(s.bound) else 0.0
                for s, c in self.layout
                for _ in range(c)
            ]
            self._seg = torch.tensor(seg, dtype=torch.long, device=device)
            self._thr = torch.tensor(thr, dtype=torch.float32, device=device)
        if changed:
            self.ring.clear()
        return changed

    def reset(self) -> None:
        self.ring.clear()
        self.last_W = None

    def offsets(self) -> dict[Site, tuple[int, int]]:
        out, start = {}, 0
        for site, c in self.layout:
            out[site] = (start, start + c)
            start += c
        return out

    # ------------------------------------------------------------------------------------
    def finalize(
        self,
        step: int,
        observations: list[Observation],
        sites: list[Site],
        all_reduce: bool = False,
    ) -> Summary | None:
        """Close a logged step: a Summary of the step and of the window (LayerStats are built
        from it on demand). One host sync (and one all_reduce under torch.distributed)."""
        if not observations and not self.layout:
            return None
        device = observations[0].D.device if observations else self._seg.device  # type: ignore[union-attr]
        self._ensure_layout(sites, device)
        S = len(self.layout)
        index = {site: i for i, (site, _) in enumerate(self.layout)}
        per_site_D: list[torch.Tensor | None] = [None] * S
        n = [0.0] * S
        numel = [0.0] * S
        g_parts: list[list[torch.Tensor]] = [[] for _ in range(S)]
        for ob in observations:
            i = index.get(ob.site)
            if i is None or ob.D.numel() != self.layout[i][1]:
                continue
            per_site_D[i] = ob.D if per_site_D[i] is None else per_site_D[i] + ob.D
            n[i] += ob.n
            numel[i] += ob.numel
            g_parts[i].extend(ob.gnorms)
        flat = torch.cat(
            [
                d.to(device) if d is not None else torch.zeros(c, device=device)
                for d, (_, c) in zip(per_site_D, self.layout, strict=False)
            ]
        )  # (U,)
        have_g = [bool(p) for p in g_parts]
        norms = [g for p in g_parts for g in p]
        if norms:
            owner = torch.tensor([i for i, p in enumerate(g_parts) for _ in p], device=device)
            gsq_dev = torch.zeros(S, device=device).index_add(
                0, owner, torch.stack(norms).float().square()
            )  # (S,)
        else:
            gsq_dev = torch.zeros(S, device=device)
        meta = torch.tensor(n + numel, dtype=torch.float32, device=device)  # (2S,)
        packed = torch.cat([flat, gsq_dev, meta])  # (U + 3S,)
        if all_reduce:
            import torch.distributed as dist

            dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        U = flat.numel()
        flat = packed[:U]
        n_dev = packed[U + S : U + 2 * S]

        self.ring.append(_StepEntry(step, flat, n_dev, [], [], []))
        W = torch.stack([e.flat for e in self.ring]).sum(0) if len(self.ring) > 1 else flat  # (U,)
        self.last_W = W
        seg, thr = self._seg, self._thr
        nW = torch.stack([e.n_dev for e in self.ring]).sum(0)  # (S,) samples per unit
        rows = torch.stack(
            [
                flat,  # sum of f' this step
                W,  # sum of f' over the window
                (W == 0).to(flat.dtype),  # dead units
                (W < thr * nW[seg]).to(flat.dtype),  # closed valves
            ]
        )  # (4, U)
        per_site = torch.zeros(4, S, device=device, dtype=rows.dtype).index_add_(1, seg, rows)  # (4, S)
        stacked = torch.cat([per_site, nW.to(rows.dtype).unsqueeze(0)])  # (5, S): one segment sum
        host = torch.cat([packed[U:], stacked.flatten()]).tolist()  # the one host sync
        gsq, n_h, numel_h = host[0:S], host[S : 2 * S], host[2 * S : 3 * S]
        rest = host[3 * S :]
        entry = self.ring[-1]
        entry.n = n_h
        entry.numel = numel_h
        entry.gsq = [
            g if (have or (all_reduce and g > 0)) else math.nan for g, have in zip(gsq, have_g, strict=False)
        ]
        self.last_N = rest[4 * S : 5 * S]
        return Summary(
            step=step,
            layout=list(self.layout),
            n=n_h,
            numel=numel_h,
            gsq=entry.gsq,
            step_sum=rest[0:S],
            win_sum=rest[S : 2 * S],
            dead=rest[2 * S : 3 * S],
            closed=rest[3 * S : 4 * S],
            nW=rest[4 * S : 5 * S],
            ring=[(e.step, e.n, e.gsq, e.numel) for e in self.ring],
        )

    def dead_units(self) -> dict[Site, torch.Tensor]:
        """Per site, the indices of the units dead over the current window."""
        if self.last_W is None:
            return {}
        out = {}
        for i, (site, (a, b)) in enumerate(self.offsets().items()):
            if i < len(self.last_N) and self.last_N[i] > 0:
                idx = torch.nonzero(self.last_W[a:b] == 0).flatten()
                if idx.numel():
                    out[site] = idx
        return out
