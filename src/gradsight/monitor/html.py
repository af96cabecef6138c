"""A self-contained HTML page for a Report: inline CSS and hand-written SVG, no scripts, no
network. Charts: gradient norm per site (log scale), dead and saturated fraction per site,
dead / saturated fraction per site over the logged steps (heat maps), then the findings and
the full table."""

from __future__ import annotations

import html
import math
from typing import Any

from gradsight.monitor.blocks import GROUP_ABOVE, group_by_block, human, worst_first
from gradsight.monitor.records import layer_fields

M_TOP = 20  # px above the first row of a chart

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:980px;color:#1d232b}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde3ea;padding-bottom:4px}
table{border-collapse:collapse;font-size:12.5px} td,th{padding:3px 8px;border-bottom:1px solid #eef1f4;text-align:right}
td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}
.finding{border-left:4px solid #999;padding:6px 12px;margin:10px 0;background:#f8f9fb}
.critical{border-color:#c62828}.warning{border-color:#ef8f00}.info{border-color:#2e7dd7}
.sev{font-weight:600;text-transform:uppercase;font-size:11px;letter-spacing:.04em}
pre{white-space:pre-wrap;font-size:12px;background:#f3f5f7;padding:6px;margin:4px 0}
.muted{color:#6b7683} svg text{font-size:10.5px;fill:#3a4450;font-family:ui-monospace,Menlo,Consolas,monospace}
.scroll{overflow-x:auto}
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


CHAR_W = 6.4  # px per character of the monospace chart labels (10.5 px font), for the margin
ROW_H = 14  # px per site in the per-site charts
PLOT_W = 460  # px of the value axis


def _label_margin(names: list[str]) -> int:
    """Left margin that holds the longest site name in full (labels are never clipped)."""
    return 16 + math.ceil(CHAR_W * max((len(n) for n in names), default=4))


def _row_labels(names: list[str], left: int, top: int) -> str:
    return "".join(
        f'<text x="{left - 6}" y="{top + i * ROW_H + ROW_H * 0.72:.1f}" text-anchor="end">{_e(n)}</text>'
        for i, n in enumerate(names)
    )


def grad_chart(layers: list[Any]) -> str:
    """Gradient norm per site on a log axis: one row per site, in forward order, every name
    written in full at the left."""
    names = [ls.name for ls in layers]
    vals = [ls.grad_norm for ls in layers]
    good = [v for v in vals if _finite(v) and v > 0]
    if not good:
        return '<p class="muted">no gradients were observed.</p>'
    lo = math.floor(math.log10(min(good)))
    hi = math.ceil(math.log10(max(good)))
    if hi == lo:
        hi += 1
    left = _label_margin(names)
    width, height = left + PLOT_W + 20, M_TOP + ROW_H * len(names) + 34
    bottom = M_TOP + ROW_H * len(names)

    def x(v: float) -> float:
        return left + PLOT_W * (math.log10(v) - lo) / (hi - lo)

    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="gradient norm per site">']
    label_every = max(1, math.ceil((hi - lo) / 8))  # at most ~9 labels, however many decades
    for k in range(lo, hi + 1):
        xx = x(10.0**k)
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{M_TOP}" y2="{bottom}" stroke="#e6eaef"/>')
        if (k - lo) % label_every == 0:
            parts.append(f'<text x="{xx:.1f}" y="{bottom + 14}" text-anchor="middle">1e{k}</text>')
    for i, (name, v) in enumerate(zip(names, vals, strict=True)):
        yy = M_TOP + i * ROW_H + ROW_H / 2
        if _finite(v) and v > 0:
            parts.append(
                f'<line x1="{left}" x2="{x(v):.1f}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#b8d3f2"/>'
                f'<circle cx="{x(v):.1f}" cy="{yy:.1f}" r="3.2" fill="#2e7dd7"><title>{_e(name)}: {v:.3g}</title></circle>'
            )
        else:
            parts.append(f'<text x="{left + 4}" y="{yy + 3.5:.1f}" fill="#c62828">{_e(v)}</text>')
    parts.append(_row_labels(names, left, M_TOP))
    parts.append(f'<text x="{left + PLOT_W / 2:.0f}" y="{bottom + 30}" text-anchor="middle">||dL/dy|| (log)</text>')
    parts.append("</svg>")
    return "".join(parts)


def fraction_chart(layers: list[Any]) -> str:
    """Dead and saturated fraction per site on [0, 1]: one row per site, every name in full."""
    names = [ls.name for ls in layers]
    if not names:
        return ""
    left = _label_margin(names)
    width, height = left + PLOT_W + 20, M_TOP + ROW_H * len(names) + 34
    bottom = M_TOP + ROW_H * len(names)
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="dead and saturated fraction">']
    for k in range(0, 5):
        xx = left + PLOT_W * k / 4
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{M_TOP}" y2="{bottom}" stroke="#e6eaef"/>')
        parts.append(f'<text x="{xx:.1f}" y="{bottom + 14}" text-anchor="middle">{k / 4:.0%}</text>')
    bh = (ROW_H - 4) / 2
    for i, ls in enumerate(layers):
        for j, (v, color, label) in enumerate(
            ((ls.dead_fraction, "#c62828", "dead"), (ls.saturated_fraction, "#ef8f00", "saturated"))
        ):
            if not _finite(v):
                continue
            yy = M_TOP + i * ROW_H + 2 + j * bh
            parts.append(
                f'<rect x="{left}" y="{yy:.1f}" width="{PLOT_W * v:.1f}" height="{bh:.1f}" '
                f'fill="{color}"><title>{_e(ls.name)} {label}: {v:.1%}</title></rect>'
            )
    parts.append(
        f'<rect x="{width - 170}" y="4" width="10" height="10" fill="#c62828"/>'
        f'<text x="{width - 155}" y="13">dead</text>'
        f'<rect x="{width - 110}" y="4" width="10" height="10" fill="#ef8f00"/>'
        f'<text x="{width - 95}" y="13">saturated</text>'
    )
    parts.append(_row_labels(names, left, M_TOP))
    parts.append("</svg>")
    return "".join(parts)


def heatmap(history: list[Any], names: list[str], attr: str, color: str, label: str) -> str:
    """Fraction per site (rows) over logged steps (columns)."""
    steps = [rec.step for rec in history]
    if not steps or not names:
        return ""
    grid: dict[tuple[str, int], float] = {}
    for j, rec in enumerate(history):
        for ls in rec.layers:
            grid[(ls.name, j)] = getattr(ls, attr)
    row_h = ROW_H
    left = _label_margin(names)
    cols = len(steps)
    cw = max(2.0, min(24.0, PLOT_W / cols))
    height = row_h * len(names) + 40
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    parts = [f'<svg class="chart" width="{left + cols * cw + 20:.0f}" height="{height}" role="img" aria-label="{_e(label)} over time">']
    parts.append(_row_labels(names, left, 10))
    for i, name in enumerate(names):
        yy = 10 + i * row_h
        for j in range(cols):
            v = grid.get((name, j))
            if v is None or not _finite(v):
                fill = "#f1f3f5"
                title = "not observed"
            else:
                a = max(0.04, min(1.0, v))
                fill = f"rgba({r},{g},{b},{a:.3f})"
                title = f"{v:.1%}"
            parts.append(
                f'<rect x="{left + j * cw:.1f}" y="{yy}" width="{cw:.1f}" height="{row_h - 1}" fill="{fill}">'
                f"<title>{_e(name)} step {steps[j]}: {title}</title></rect>"
            )
    parts.append(
        f'<text x="{left}" y="{height - 8}">step {steps[0]}</text>'
        f'<text x="{left + cols * cw:.1f}" y="{height - 8}" text-anchor="end">step {steps[-1]}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _num(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.1%}" if pct else f"{v:.4g}"
    return _e(v)


def block_table(layers: list[Any], findings: list[Any]) -> str:
    """One row per block (healthy runs folded; see monitor/blocks.py), in forward order."""
    head = ("block", "sites", "activation", "grad norm min", "max", "dead max", "saturated max", "E[f'] mean", "finding")
    rows = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for g in group_by_block(layers, findings):
        lo, hi = g.span("grad_norm")
        cells = [_e(g.label), len(g.layers), _e(g.activations), _num(lo), _num(hi), _num(g.span("dead_fraction")[1], True),
                 _num(g.span("saturated_fraction")[1], True), _num(g.mean("mean_derivative")), _e(g.severity or "–")]  # fmt: skip
        cls = f" class='{_e(g.severity)}'" if g.severity else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(rows) + "</table>"


def render(report: Any) -> str:
    """The page for ``report`` (a gradsight.monitor.Report)."""
    meta = report.meta
    layers = report.layers
    names = [ls.name for ls in layers]
    title = f"gradsight watch — {meta.get('model', 'model')}"
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>{len(layers)} activation sites · {meta.get('steps', 0)} steps · "
        f"sites measured every {meta.get('every')} steps, dead/saturated judged over the last "
        f"{meta.get('window')} measured steps.</p>",
        "<h2>Findings</h2>",
    ]
    if not report.findings:
        out.append("<p>No findings: gradient flow, dead and saturated units look healthy.</p>")
    for f in worst_first(report.findings):
        ev = "\n".join(f"{k}: {v}" for k, v in human(f.to_dict()["evidence"]).items())
        out.append(
            f"<div class='finding {_e(f.severity)}'><span class='sev'>{_e(f.severity)}</span> "
            f"<b>{_e(f.kind)}</b> at {_e(', '.join(f.layers) or '–')}<br>{_e(f.message)}"
            f"<br><b>Remedy:</b> {_e(f.remedy)}<pre>{_e(ev)}</pre></div>"
        )
    if len(layers) > GROUP_ABOVE:
        out.append("<h2>By block</h2>" + block_table(layers, report.findings))
    out.append("<h2>Gradient norm per site (log scale)</h2>")
    out.append(f"<div class='scroll'>{grad_chart(layers)}</div>")
    out.append("<h2>Dead and saturated units per site</h2>")
    out.append(f"<div class='scroll'>{fraction_chart(layers)}</div>")
    if report.history:
        out.append("<h2>Dead units over time</h2>")
        out.append(f"<div class='scroll'>{heatmap(report.history, names, 'dead_fraction', '#c62828', 'dead fraction')}</div>")
        out.append("<h2>Saturated units over time</h2>")
        out.append(
            f"<div class='scroll'>{heatmap(report.history, names, 'saturated_fraction', '#ef8f00', 'saturated fraction')}</div>"
        )
    out.append("<h2>All sites</h2><table><tr>")
    cols = [(f.metadata["label"], f.name, f.metadata["percent"]) for f in layer_fields()]
    out.append("".join(f"<th>{_e(h)}</th>" for h, _, _ in cols) + "</tr>")
    for ls in layers:
        out.append("<tr>" + "".join(f"<td>{_num(getattr(ls, a), p)}</td>" for _, a, p in cols) + "</tr>")
    out.append("</table>")
    if report.errors:
        out.append("<h2>Monitor errors (training was not interrupted)</h2>")
        out.append("".join(f"<pre>{_e(e)}</pre>" for e in report.errors))
    out.append("</body></html>")
    return "".join(out)
