"""Experiment ``cost``: forward + backward time per element of each activation, beside a copy.

The explainer says ReLU's forward and backward are cheaper than sigmoid, tanh and GELU. On a
CPU an elementwise op over a large tensor is close to memory-bound, so the honest yardstick is
a plain copy of the same tensor (the bandwidth floor). Every op is timed interleaved with the
others in one process (a fresh random order each round; per round the fastest of three
back-to-back calls, which drops most preemptions), and the verdict rests on *paired* per-round
ratios to ReLU, so a burst of load from another process hits both sides of a ratio.

The timed ops are the catalog's own PyTorch modules (``gs.activation(name).module()``):
forward under ``no_grad``, and forward + ``torch.autograd.grad`` for the backward. A width-256
Linear layer producing a tensor of the same size is timed too, to show what share of a layer
the activation is.

Glibc's allocator returns big blocks to the OS on every free, so every eager op would pay page
faults that swamp the arithmetic; while timing, the experiment asks glibc (``mallopt``) to keep
freed memory, and restores the default thresholds afterwards.
"""

from __future__ import annotations

import ctypes
import random
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from gradsight.lab.registry import (
    Claim,
    ExperimentResult,
    Figure,
    Progress,
    command_for,
    experiment,
)
from gradsight.lab.training import torch_threads

NAME = "cost"
# the claim compares ReLU with these
RIVALS: tuple[str, ...] = ("sigmoid", "tanh", "gelu")
QUICK_ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu")


# ------------------------------------------------------------------------- pure functions

def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile) of ``values`` (linear interpolation).

    >>> quartiles([1.0, 2.0, 3.0, 4.0, 5.0])
    (2.0, 3.0, 4.0)
    """
    v = sorted(float(x) for x in values)
    if not v:
        raise ValueError("quartiles of an empty sequence")

    def at(q: float) -> float:
        pos = q * (len(v) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)

    return at(0.25), at(0.5), at(0.75)


def paired_ratios(times: dict[str, Sequence[float]], reference: str) -> dict[str, list[float]]:
    """Per-round ratio ``times[name][i] / times[reference][i]`` for every name.

    ``times`` holds one timing per round for each op, all rounds interleaved, so round i of two
    ops ran under the same background load.
    """
    ref = times[reference]
    return {
        name: [t / r for t, r in zip(ts, ref, strict=True)] for name, ts in times.items()
    }


def summarize(
    times: dict[str, Sequence[float]], n_elements: int, reference: str = "relu",
    floor: str = "copy",
) -> list[dict[str, Any]]:
    """Table rows, cheapest first: median ns per element, the ratio to the memory-copy floor and
    the paired ratio to ``reference`` with its interquartile range.

    ``times`` maps op name → seconds per round (same number of rounds each, interleaved).
    """
    to_ref = paired_ratios(times, reference)
    to_floor = paired_ratios(times, floor)
    rows = []
    for name, ts in times.items():
        q25, med, q75 = quartiles(to_ref[name])
        rows.append(
            {
                "op": name,
                "ns_per_element": statistics.median(ts) / n_elements * 1e9,
                "x_copy": statistics.median(to_floor[name]),
                f"x_{reference}": med,
                f"x_{reference}_q25": q25,
                f"x_{reference}_q75": q75,
            }
        )
    rows.sort(key=lambda r: r["ns_per_element"])
    return rows


def cost_verdict(
    ratios_to_relu: dict[str, Sequence[float]], rivals: Sequence[str] = RIVALS
) -> tuple[str, str, dict[str, Any]]:
    """Verdict on "ReLU's forward and backward are cheaper than sigmoid/tanh/GELU".

    ``ratios_to_relu[name]`` are paired per-round ratios t(name)/t(relu) of forward + backward.
    A rival is *costlier* than ReLU when even its lower quartile exceeds 1 (ReLU won in at least
    three rounds of four), *cheaper* when its upper quartile is below 1, and *within noise*
    otherwise. All rivals costlier → supported; none costlier → refuted; a mix → nuanced.

    >>> cost_verdict({"sigmoid": [2.0] * 5, "tanh": [3.0] * 5, "gelu": [1.5] * 5})[0]
    'supported'
    """
    missing = [r for r in rivals if r not in ratios_to_relu]
    if missing:
        raise ValueError(f"no timings for {missing}")
    status: dict[str, str] = {}
    evidence: dict[str, Any] = {}
    for r in rivals:
        q25, med, q75 = quartiles(ratios_to_relu[r])
        status[r] = "costlier" if q25 > 1.0 else "cheaper" if q75 < 1.0 else "within noise"
        evidence[f"{r}_over_relu"] = round(med, 3)
        evidence[f"{r}_over_relu_iqr"] = [round(q25, 3), round(q75, 3)]
    costlier = [r for r in rivals if status[r] == "costlier"]
    others = [f"{r} ({status[r]})" for r in rivals if status[r] != "costlier"]
    ratio_text = ", ".join(f"{r} {evidence[f'{r}_over_relu']:.2f}×" for r in rivals)
    if len(costlier) == len(rivals):
        verdict = "supported"
        text = f"Forward + backward, every rival took longer than ReLU in most rounds: {ratio_text}."
    elif not costlier:
        verdict = "refuted"
        text = f"No rival was reliably slower than ReLU here: {ratio_text}."
    else:
        verdict = "nuanced"
        text = (
            f"ReLU was reliably cheaper than {', '.join(costlier)} but not than "
            f"{', '.join(others)}: {ratio_text}."
        )
    evidence["status"] = status
    return verdict, text, evidence


# ------------------------------------------------------------------------- measurement

@contextmanager
def _keep_freed_memory():
    """Ask glibc to keep freed blocks (no mmap/munmap per op) while timing; no-op elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        yield False
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))
    try:
        yield ok
    finally:
        mallopt(m_mmap_threshold, 128 * 1024)
        mallopt(m_trim_threshold, 128 * 1024)


def activation_names(quick: bool) -> list[str]:
    """The catalog's single-input activations (the gated forms take two inputs)."""
    import gradsight as gs

    names = [n for n in gs.activations.names() if not gs.activation(n).is_gated]
    if quick:
        names = [n for n in QUICK_ACTIVATIONS if n in names]
    return names


def _ops(names: Sequence[str], n: int) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """name → (forward, forward+backward) closures over tensors of ``n`` elements."""
    import gradsight as gs

    x = torch.randn(n)  # (n,)
    g = torch.randn(n)  # (n,) upstream gradient
    dst = torch.empty(n)
    ops: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}

    def copy() -> Any:
        return dst.copy_(x)

    ops["copy"] = (copy, copy)
    for name in names:
        module = gs.activation(name).module()

        def fwd(m=module) -> Any:
            with torch.no_grad():
                return m(x)

        def fwd_bwd(m=module) -> Any:
            xr = x.detach().requires_grad_()
            return torch.autograd.grad(m(xr), xr, g)

        ops[name] = (fwd, fwd_bwd)
    # a width-256 Linear producing the same number of elements: the rest of a layer
    width = 256
    rows = max(n // width, 1)
    lin = torch.nn.Linear(width, width)
    xl = torch.randn(rows, width)  # (rows, 256)
    gl = torch.randn(rows, width)

    def lin_fwd() -> Any:
        with torch.no_grad():
            return lin(xl)

    def lin_fwd_bwd() -> Any:
        xr = xl.detach().requires_grad_()
        return torch.autograd.grad(lin(xr), [xr, *lin.parameters()], gl)

    ops["linear256"] = (lin_fwd, lin_fwd_bwd)
    return ops


def measure(
    names: Sequence[str], n: int, rounds: int, progress: Progress | None = None,
    seed: int = 0, done: int = 0, total: int = 0, repeats: int = 3,
) -> dict[str, dict[str, list[float]]]:
    """{"forward": {op: [s per round]}, "forward_backward": {...}}: in each round every op runs
    once in a fresh random order, timed as the fastest of ``repeats`` back-to-back calls."""
    ops = _ops(names, n)
    for f, fb in ops.values():  # warm-up: first calls pay one-off dispatch and allocation
        f()
        fb()
    rng = random.Random(seed)
    out: dict[str, dict[str, list[float]]] = {
        "forward": {k: [] for k in ops}, "forward_backward": {k: [] for k in ops}
    }
    for r in range(rounds):
        order = [(k, phase) for k in ops for phase in (0, 1)]
        rng.shuffle(order)
        for k, phase in order:
            fn = ops[k][phase]
            best = float("inf")
            for _ in range(repeats):  # the fastest of a few back-to-back calls drops preemptions
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            out["forward" if phase == 0 else "forward_backward"][k].append(best)
        if progress is not None:
            progress(done + r + 1, total, f"{n:,} elements")
    return out


def _figure(tables: dict[int, list[dict[str, Any]]]) -> Figure:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    sizes = sorted(tables)
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 3.6), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        rows = [r for r in tables[n] if r["op"] != "linear256"]
        names = [r["op"] for r in rows]
        vals = [r["x_copy"] for r in rows]
        colors = ["#888" if k == "copy" else "#1a7f37" if k == "relu" else "#4477aa" for k in names]
        ax.barh(names, vals, color=colors)
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xlabel("forward+backward time / one memory copy (median)")
        ax.set_title(f"{n:,} float32 elements")
        ax.invert_yaxis()
    fig.tight_layout()
    return Figure.from_matplotlib(
        fig,
        "Forward + backward cost relative to a memory copy",
        "Bars: median over interleaved rounds of each activation's forward+backward time divided "
        "by the time to copy the same tensor once (dotted line). Green: ReLU.",
    )


def _measure_all(
    names: Sequence[str], sizes: Sequence[int], rounds: int, progress: Progress
) -> tuple[dict[int, list[dict[str, Any]]], dict[str, Any], list[dict[str, Any]], dict[str, list[float]]]:
    """Measure every size; (per-size forward+backward tables, raw timings, rows, paired ratios
    to ReLU of forward+backward at the largest size)."""
    tables: dict[int, list[dict[str, Any]]] = {}
    raw: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    ratios_big: dict[str, list[float]] = {}
    total = rounds * len(sizes)
    for i, n in enumerate(sizes):
        t = measure(names, n, rounds, progress, seed=i, done=i * rounds, total=total)
        fb = summarize(t["forward_backward"], n)
        fw = {r["op"]: r for r in summarize(t["forward"], n)}
        for r in fb:
            rows.append(
                {
                    "elements": n,
                    "op": r["op"],
                    "fwd_ns_per_el": fw[r["op"]]["ns_per_element"],
                    "fwd_bwd_ns_per_el": r["ns_per_element"],
                    "fwd_bwd_x_copy": r["x_copy"],
                    "fwd_bwd_x_relu": r["x_relu"],
                    "x_relu_q25": r["x_relu_q25"],
                    "x_relu_q75": r["x_relu_q75"],
                }
            )
        tables[n] = fb
        raw[str(n)] = t
        if n == max(sizes):
            ratios_big = paired_ratios(t["forward_backward"], "relu")
    return tables, raw, rows, ratios_big


@experiment(NAME, "Cost: activation forward + backward vs a memory copy", order=50, quick_budget_s=15,
            typical_s=(4, 165))
def run(quick: bool, progress: Progress) -> ExperimentResult:
    """Time each activation's forward and forward+backward per element, beside a copy."""
    names = activation_names(quick)
    sizes = [2**14, 2**20] if quick else [2**12, 2**16, 2**20, 2**23]
    rounds = 25 if quick else 80
    # one thread: with two, every op ends in a barrier, and on cores shared with other work
    # a descheduled thread makes the other wait a whole time slice (milliseconds), swamping
    # the microseconds being measured
    threads = 1
    with torch_threads(threads), _keep_freed_memory() as kept:
        tables, raw, rows, ratios_big = _measure_all(names, sizes, rounds, progress)
    big = max(sizes)
    verdict, text, evidence = cost_verdict(ratios_big)
    by_op = {r["op"]: r for r in tables[big]}
    relu_x_copy = by_op["relu"]["x_copy"]
    share = statistics.median(
        a / (a + b) for a, b in zip(raw[str(big)]["forward_backward"]["relu"],
                                    raw[str(big)]["forward_backward"]["linear256"], strict=True)
    )
    small = min(sizes)
    small_ratios = {
        r: round(statistics.median(paired_ratios(raw[str(small)]["forward_backward"], "relu")[r]), 3)
        for r in RIVALS
    }
    narrower = all(small_ratios[r] < evidence[f"{r}_over_relu"] for r in RIVALS)
    evidence.update(
        {
            "elements": big,
            "relu_ns_per_element": round(by_op["relu"]["ns_per_element"], 4),
            "copy_ns_per_element": round(by_op["copy"]["ns_per_element"], 4),
            "relu_over_copy": round(relu_x_copy, 3),
            "relu_share_of_width256_layer": round(share, 4),
            "small_tensor_elements": small,
            "small_tensor_over_relu": small_ratios,
            "rounds": rounds,
            "torch_threads": threads,
        }
    )
    text += (
        f" ReLU itself costs {relu_x_copy:.1f}× a plain copy of the tensor, and its forward+backward "
        f"is {share:.1%} of a width-256 Linear+ReLU layer's. On a {small:,}-element tensor "
        f"fixed per-call overhead {'narrows' if narrower else 'does not narrow'} the gaps ("
        + ", ".join(f"{r} {v:.2f}×" for r, v in small_ratios.items())
        + "). ReLU is cheaper per element; in a whole layer the matrix multiply dominates."
    )
    claim = Claim(
        id="cost.relu_cheaper",
        claim="ReLU's forward and backward are cheaper than sigmoid/tanh/GELU",
        verdict=verdict,  # type: ignore[arg-type]
        evidence=evidence,
        command=command_for(NAME, quick),
        explanation=text,
    )
    scale = (
        f"{', '.join(f'{n:,}' for n in sizes)} float32 elements on CPU, {threads} torch threads, "
        f"{rounds} interleaved rounds per size (each the fastest of 3 calls), medians of paired "
        "ratios; PyTorch eager ops, "
        f"{'freed memory kept by the allocator' if kept else 'default allocator'}. Other "
        "processes share the cores, so single timings are noisy; ratios are paired per round."
    )
    return ExperimentResult(
        name=NAME,
        title="Cost: activation forward + backward vs a memory copy",
        summary=(
            "Forward and forward+backward time per element of each catalog activation, beside "
            "a copy of the same tensor (the memory-bandwidth floor) and a width-256 Linear "
            "layer producing the same number of elements."
        ),
        command=command_for(NAME, quick),
        quick=quick,
        scale=scale,
        rows=rows,
        data={"sizes": sizes, "activations": list(names), "timings_s": raw},
        figures=[_figure(tables)],
        claims=[claim],
    )
