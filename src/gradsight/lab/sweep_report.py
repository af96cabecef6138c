"""What a sweep found, read from its trial store: a table, an HTML page, CSV and Parquet.

:func:`rows` flattens every sweep trial in a store into one dict (its config, status and
metrics). :func:`write_html` draws, per panel (one per depth × init, and per any other axis
that took more than one value except lr, activation and seed):

- test accuracy and dead fraction as heatmaps over learning rate × activation, each cell the
  mean over seeds (a cell with a diverged or failed seed is marked and left out of the colour);
- the best configuration per activation (highest mean test accuracy over its seeds) with the
  seeds' spread (min – max, standard deviation);
- the findings of ``gradsight.watch`` that recur, with how many trials ended with each;
- every failed trial and its error.
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradsight.errors import GradsightError
from gradsight.lab.sweep import AXES, KIND
from gradsight.lab.trials.store import TrialStore

__all__ = ["best_per_activation", "recurring_findings", "rows", "write_csv", "write_html",
           "write_parquet"]

METRICS: tuple[str, ...] = ("test_acc", "train_acc", "test_loss", "train_loss", "dead_fraction",
                            "grad_ratio", "mean_derivative", "diverged", "step", "train_seconds")
PANEL_EXCLUDES = ("lr", "activation", "seed")


def rows(store_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One flat dict per sweep trial in the store: id, config (``AXES`` + batch_size,
    watch_every), status, failure, error, attempts, seconds, ``METRICS``, findings (a list).
    A config stored under several code versions appears once: its latest record."""
    path = Path(store_path)
    if not path.is_file():
        raise GradsightError(f"no trial store at {str(path)!r}; run `gradsight sweep` first")
    with TrialStore(path) as store:
        latest: dict[tuple, Any] = {}
        for rec in store.records(KIND):
            latest[tuple(sorted(rec.config.items()))] = rec
    out = []
    for rec in latest.values():
        m = rec.metrics or {}
        row = {"id": rec.id, **rec.config, "status": rec.status, "failure": rec.failure,
               "error": rec.error, "attempts": rec.attempts, "seconds": rec.seconds}
        row.update({k: m.get(k) for k in METRICS})
        row["findings"] = list(m.get("findings") or [])
        out.append(row)
    out.sort(key=lambda r: tuple(str(r.get(a)) for a in AXES))
    if not out:
        raise GradsightError(f"the store {str(path)!r} holds no sweep trials")
    return out


def _ok(r: dict[str, Any]) -> bool:
    return r["status"] == "done" and r["test_acc"] is not None


def _varying(rs: Sequence[dict[str, Any]]) -> list[str]:
    return [a for a in AXES if len({r[a] for r in rs}) > 1]


def _setting(r: dict[str, Any], axes: Sequence[str]) -> tuple:
    return tuple(r[a] for a in axes)


def best_per_activation(rs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per activation, the configuration (all axes but seed) with the highest mean test
    accuracy over its seeds that all finished; with n seeds, their min, max and std."""
    axes = [a for a in AXES if a != "seed"]
    settings: dict[tuple, list[dict[str, Any]]] = {}
    for r in rs:
        settings.setdefault(_setting(r, axes), []).append(r)
    best: dict[str, dict[str, Any]] = {}
    for key, members in settings.items():
        if not all(_ok(m) for m in members):
            continue
        accs = [m["test_acc"] for m in members]
        entry = {**dict(zip(axes, key, strict=True)), "seeds": len(accs),
                 "mean_acc": statistics.fmean(accs), "min_acc": min(accs), "max_acc": max(accs),
                 "std_acc": statistics.stdev(accs) if len(accs) > 1 else 0.0}
        act = entry["activation"]
        if act not in best or entry["mean_acc"] > best[act]["mean_acc"]:
            best[act] = entry
    return sorted(best.values(), key=lambda e: -e["mean_acc"])


def recurring_findings(rs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each finding kind: in how many trials it appeared, and with which activations."""
    count: dict[str, list[dict[str, Any]]] = {}
    for r in rs:
        for kind in r["findings"]:
            count.setdefault(kind, []).append(r)
    return [
        {"finding": kind, "trials": len(hit), "of": len(rs),
         "activations": ", ".join(sorted({h["activation"] for h in hit}))}
        for kind, hit in sorted(count.items(), key=lambda kv: -len(kv[1]))
    ]


def _heatmap(ax: Any, rs: Sequence[dict[str, Any]], metric: str, title: str) -> None:
    import numpy as np

    lrs = sorted({r["lr"] for r in rs})
    acts = sorted({r["activation"] for r in rs})
    grid = np.full((len(acts), len(lrs)), np.nan)
    marks = [["" for _ in lrs] for _ in acts]
    for i, a in enumerate(acts):
        for j, lr in enumerate(lrs):
            cell = [r for r in rs if r["activation"] == a and r["lr"] == lr]
            good = [r[metric] for r in cell if _ok(r) and r[metric] is not None]
            if len(good) < len(cell):
                marks[i][j] = "×"  # a seed diverged or failed
            if good:
                grid[i, j] = statistics.fmean(good)
    cmap = "viridis" if metric == "test_acc" else "magma_r"
    im = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs], rotation=45)
    ax.set_yticks(range(len(acts)), acts)
    ax.set_xlabel("learning rate")
    ax.set_title(title, fontsize=9)
    for i in range(len(acts)):
        for j in range(len(lrs)):
            text = "" if math.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
            ax.text(j, i, (text + marks[i][j]).strip(), ha="center", va="center", fontsize=7,
                    color="white" if (metric == "test_acc") == (grid[i, j] < 0.5) else "black")
    ax.figure.colorbar(im, ax=ax, shrink=0.8)


def _panels(rs: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    keys = [a for a in AXES if a not in PANEL_EXCLUDES]
    keys = sorted(set(_varying(rs)) & set(keys) | {"depth", "init"}, key=keys.index)
    panels: dict[str, list[dict[str, Any]]] = {}
    for r in rs:
        title = ", ".join(f"{k}={r[k]}" for k in keys)
        panels.setdefault(title, []).append(r)
    return panels


def _svg(fig: Any) -> str:
    """The figure as inline SVG, the same bytes for the same numbers (no date, fixed ids)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with plt.rc_context({"svg.hashsalt": "gradsight-sweep"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)


def _table(items: Sequence[dict[str, Any]]) -> str:
    if not items:
        return '<p class="muted">none</p>'
    cols = list(items[0])

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(i[c])}</td>" for c in cols) + "</tr>"
                   for i in items)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:left}.muted{color:#666}.fail{color:#b00}")


def write_html(rs: Sequence[dict[str, Any]], path: str | os.PathLike[str], store: str = "") -> Path:
    """Write the sweep's page (see the module docstring) to ``path``; return it."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    failed = [r for r in rs if r["status"] != "done"]
    varying = _varying(rs)
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>gradsight sweep</title><style>{_CSS}</style></head><body>",
        "<h1>gradsight sweep</h1>",
        f'<p class="muted">{len(rs)} trials · {len(failed)} failed · axes that vary: '
        f"{html.escape(', '.join(varying) or 'none')} · regenerate with "
        f"<code>gradsight sweep report {html.escape(store)}</code></p>",
        "<p>Each cell is the mean over seeds of the last evaluation. × marks a cell where a "
        "seed diverged or failed; those seeds are left out of the number.</p>",
    ]
    for title, members in _panels(rs).items():
        fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len({r["activation"] for r in members})
                                                 + 2.2))
        _heatmap(axes[0], members, "test_acc", "test accuracy")
        _heatmap(axes[1], members, "dead_fraction", "dead fraction (watch, end)")
        parts.append(f"<h2>{html.escape(title)}</h2>{_svg(fig)}")
    parts.append("<h2>Best configuration per activation</h2>")
    parts.append("<p>Highest mean test accuracy over seeds; min, max and std over those seeds."
                 "</p>" + _table(best_per_activation(rs)))
    parts.append("<h2>Findings that recur</h2>" + _table(recurring_findings(rs)))
    parts.append('<h2 class="fail">Failed trials</h2>' + _table(
        [{**{a: r[a] for a in AXES}, "failure": r["failure"], "attempts": r["attempts"],
          "error": r["error"]} for r in failed]))
    parts.append("</body></html>")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def _flat(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "findings": ";".join(r["findings"])}


def write_csv(rs: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """One row per trial; findings joined by ';'."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rs[0]))
        writer.writeheader()
        writer.writerows(_flat(r) for r in rs)
    return out


def write_parquet(rs: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """The same table as Parquet (needs pyarrow: ``pip install 'gradsight[sweep]'``)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise GradsightError("--parquet needs pyarrow: pip install 'gradsight[sweep]'") from None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([_flat(r) for r in rs]), out)
    return out
