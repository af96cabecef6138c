"""Plots of activations, f and f' side by side, drawn from the registry.

``figure([...])`` gives one row per activation (f on the left, f' on the right, the kink
convention marked at 0); ``save([...], "acts.svg")`` writes it; ``gallery_figures()`` draws
the whole catalog for the lab report and ``write_gallery(dir)`` writes one file per entry.
Gated forms are drawn along a with the gate b = 1: f(a) * 1 and d/da = f'(a).

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot state), so nothing
here depends on a display or a global backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradsight.activations import Activation, activation, names
from gradsight.errors import GradsightError

FORMATS = ("svg", "png", "pdf")
ROW_HEIGHT = 2.3  # inches per activation row


def _as_activation(item: str | Activation) -> Activation:
    return item if isinstance(item, Activation) else activation(item)


def _label(act: Activation) -> str:
    shown = {k: v for k, v in act.params.items() if k != "derivative_at_zero"}
    return act.name + ("(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else "")


def _plain(act: Activation) -> Activation:
    return act.inner if act.is_gated else act


def draw(act: Activation, ax_f: Any, ax_df: Any, xlim: tuple[float, float] = (-4.0, 4.0)) -> None:
    """Draw f on ``ax_f`` and f' on ``ax_df`` over ``xlim``; mark f'(0) where f has a kink."""
    f = _plain(act)
    x = np.linspace(xlim[0], xlim[1], 801)  # contains 0: the kink convention is drawn
    y, dy = f(x), f.derivative(x)
    label = _label(act) + (" (b = 1)" if act.is_gated else "")
    ax_f.plot(x, y, color="#1f77b4", lw=1.8)
    ax_f.set_title(f"{label}", fontsize=10, loc="left")
    ax_f.text(0.02, 0.92, act.formula, transform=ax_f.transAxes, fontsize=8, va="top")
    kinked = not f.is_smooth
    if kinked:  # f' jumps at 0: draw the two sides apart and the convention as a dot
        left, right = x < 0, x > 0
        ax_df.plot(x[left], dy[left], color="#d62728", lw=1.8)
        ax_df.plot(x[right], dy[right], color="#d62728", lw=1.8)
        ax_df.plot([0.0], [f.derivative_at_zero], "o", color="#d62728", ms=4)
        ax_df.annotate(
            f"f'(0) = {f.derivative_at_zero:g}",
            (0.0, f.derivative_at_zero),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
        )
    else:
        ax_df.plot(x, dy, color="#d62728", lw=1.8)
    bound = f.derivative_bound
    ax_df.set_title(
        ("∂f/∂a" if act.is_gated else "f'")
        + (f"   sup|f'| = {bound:.4g}" if np.isfinite(bound) else "   f' unbounded"),
        fontsize=10,
        loc="left",
    )
    for ax in (ax_f, ax_df):
        ax.axhline(0.0, color="0.7", lw=0.6)
        ax.axvline(0.0, color="0.7", lw=0.6)
        ax.set_xlim(*xlim)
        ax.tick_params(labelsize=8)


def figure(activations: Sequence[str | Activation], xlim: tuple[float, float] = (-4.0, 4.0)) -> Any:
    """A matplotlib Figure: one row per activation, f left and f' right.

    >>> fig = figure(["relu", "gelu"])
    >>> len(fig.axes)
    4
    """
    from matplotlib.figure import Figure

    acts = [_as_activation(a) for a in activations]
    if not acts:
        raise GradsightError(
            "nothing to plot: name at least one activation; known: " + ", ".join(names())
        )
    if not (np.isfinite(xlim[0]) and np.isfinite(xlim[1]) and xlim[0] < xlim[1]):
        raise GradsightError(f"x range must be finite with min < max, got {tuple(xlim)!r}")
    height = ROW_HEIGHT * len(acts)
    fig = Figure(figsize=(9.0, height))
    # fixed margins in inches: constrained layout would double the drawing time
    fig.subplots_adjust(
        left=0.06, right=0.98, wspace=0.16, top=1 - 0.3 / height, bottom=0.3 / height, hspace=0.45
    )
    axes = fig.subplots(len(acts), 2, squeeze=False)  # (rows, 2)
    for act, (ax_f, ax_df) in zip(acts, axes, strict=True):
        draw(act, ax_f, ax_df, xlim)
    return fig


def save(
    activations: Sequence[str | Activation],
    path: str | os.PathLike[str],
    xlim: tuple[float, float] = (-4.0, 4.0),
) -> Path:
    """Write ``figure(activations)`` to ``path`` (.svg, .png or .pdf, chosen by the suffix)."""
    out = Path(path)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise GradsightError(f"output file must end in .svg, .png or .pdf, got {str(out)!r}")
    fig = figure(activations, xlim)
    out.parent.mkdir(parents=True, exist_ok=True)
    # no timestamps in the file: the same command writes the same bytes
    metadata = {"Date": None} if fmt == "svg" else {"CreationDate": None} if fmt == "pdf" else {}
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "gradsight"}):  # stable ids inside the SVG
        fig.savefig(out, format=fmt, metadata=metadata, dpi=120)
    return out


def gallery_figures(per_figure: int = 4, xlim: tuple[float, float] = (-4.0, 4.0)) -> list[Any]:
    """The whole catalog, ``per_figure`` activations per figure, in registry order."""
    everything = names()
    return [
        figure(everything[i : i + per_figure], xlim) for i in range(0, len(everything), per_figure)
    ]


def write_gallery(
    directory: str | os.PathLike[str], fmt: str = "svg", only: Iterable[str] | None = None
) -> list[Path]:
    """One file per catalog entry, ``directory/NAME.svg``; returns the paths written."""
    if fmt not in FORMATS:
        raise GradsightError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    chosen = list(only) if only is not None else names()
    return [save([n], Path(directory) / f"{n}.{fmt}") for n in chosen]
