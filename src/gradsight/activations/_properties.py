"""Properties of an activation measured from its own f and f', never typed in.

Everything is computed in float64 on a grid that is fine near the origin (step 1e-3 on
[-20, 20]) and geometric in the tails (out to 1e6), then refined where it matters: the
supremum of |f'| by golden-section search around the best grid point.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_CORE = np.linspace(-20.0, 20.0, 40001)  # contains 0 exactly: the kink conventions count
_TAIL = np.geomspace(20.0, 1e6, 400)[1:]
GRID = np.concatenate([-_TAIL[::-1], _CORE, _TAIL])
_Z = np.linspace(-12.0, 12.0, 240001)  # for E[f(z)], z ~ N(0, 1)
_PHI = np.exp(-0.5 * _Z**2) / math.sqrt(2.0 * math.pi) * (_Z[1] - _Z[0])


@dataclass(frozen=True)
class Properties:
    derivative_bound: float  # sup |f'|; inf when f' grows without bound
    is_monotonic: bool  # f' keeps one sign (zero allowed) on the whole line
    is_smooth: bool  # f' continuous: left and right limits agree at 0
    saturates: bool  # |f'| -> 0 at both x -> -inf and x -> +inf
    zero_centered: bool  # |E f(z)| <= 1e-3 * sqrt(E f(z)^2) for z ~ N(0, 1)
    can_die: bool  # f' == 0 exactly on a whole half-line (x < 0 or x > 0) of the grid
    rectifier: bool  # f' one constant on the whole negative half-line, larger for x > 0


_cache: OrderedDict[tuple, Properties] = OrderedDict()
CACHE_SIZE = 256  # a learned PReLU slope gives a new key every step: keep the recent ones


def of(act: Any) -> Properties:
    """The properties of a (plain) activation, cached per name and parameters."""
    key = act._key()
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    props = _cache[key] = compute(act, act.derivative)
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return props


def _golden_max(g: Callable[[float], float], lo: float, hi: float, iters: int = 80) -> float:
    """max of a unimodal g on [lo, hi] by golden-section search."""
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    gc, gd = g(c), g(d)
    for _ in range(iters):
        if gc >= gd:
            b, d, gd = d, c, gc
            c = b - inv_phi * (b - a)
            gc = g(c)
        else:
            a, c, gc = c, d, gd
            d = a + inv_phi * (b - a)
            gd = g(d)
    return max(gc, gd)


def compute(act: Any, df: Callable[[np.ndarray], np.ndarray]) -> Properties:
    d = np.asarray(df(GRID), dtype=np.float64)
    ad = np.abs(d)

    near = np.abs(np.asarray(df(np.array([-1e3, 1e3]))))
    far = np.abs(np.asarray(df(np.array([-1e6, 1e6]))))
    unbounded = bool(np.any(far > 100.0 * near + 1.0))
    if unbounded:
        bound = math.inf
    else:
        i = int(np.argmax(ad))
        lo, hi = GRID[max(i - 1, 0)], GRID[min(i + 1, GRID.size - 1)]
        refined = _golden_max(lambda x: float(abs(df(np.float64(x)))), float(lo), float(hi))
        # 12 significant digits: the search is good to ~1e-13, and tanh's 1 + 1 ulp is noise
        bound = float(f"{max(ad[i], refined):.12g}")

    monotonic = bool(np.all(d >= -1e-12) or np.all(d <= 1e-12))
    h = 1e-7
    left, right = (float(v) for v in np.asarray(df(np.array([-h, h]))))
    smooth = abs(left - right) <= 1e-5 * max(1.0, abs(left), abs(right))
    saturates = bool(np.all(near < 1e-6))
    # a unit whose pre-activations all fall where f' is exactly 0 gets no gradient to leave by
    can_die = bool(np.all(d[GRID < 0] == 0) or np.all(d[GRID > 0] == 0))
    left = d[GRID < 0]
    rectifier = bool(np.all(left == left[0]) and np.all(d[GRID > 0] > left[0]))

    fz = np.asarray(act(_Z), dtype=np.float64)
    mean = float(np.sum(fz * _PHI))
    rms = math.sqrt(float(np.sum(fz * fz * _PHI)))
    zero_centered = abs(mean) <= 1e-3 * rms

    return Properties(bound, monotonic, smooth, saturates, zero_centered, can_die, rectifier)
