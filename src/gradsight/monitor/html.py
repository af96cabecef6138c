"""A self-contained HTML page for a Report: inline CSS and hand-written SVG, no scripts, no
network. Charts: gradient norm per site (log scale), dead and saturated fraction per site,
dead / saturated fraction per site over the logged steps (heat maps), then the findings and
the full table."""

from __future__ import annotations

import html
import math
from typing import Any

from gradsight.monitor.records import layer_fields

W, H = 760, 260  # chart size in px
M_LEFT, M_BOTTOM, M_TOP = 70, 90, 20

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:980px;color:#1d232b}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde3ea;padding-bottom:4px}
table{border-collapse:collapse;font-size:12.5px} td,th{padding:3px 8px;border-bottom:1px solid #eef1f4;text-align:right}
td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}
.finding{border-left:4px solid #999;padding:6px 12px;margin:10px 0;background:#f8f9fb}
.critical{border-color:#c62828}.warning{border-color:#ef8f00}.info{border-color:#2e7dd7}
.sev{font-weight:600;text-transform:uppercase;font-size:11px;letter-spacing:.04em}
pre{white-space:pre-wrap;font-size:12px;background:#f3f5f7;padding:6px;margin:4px 0}
.muted{color:#6b7683} svg text{font-size:10.5px;fill:#3a4450}
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _x_positions(n: int) -> list[float]:
    inner = W - M_LEFT - 20
    if n <= 1:
        return [M_LEFT + inner / 2]
    return [M_LEFT + inner * i / (n - 1) for i in range(n)]


def _x_labels(names: list[str], xs: list[float]) -> str:
    step = max(1, len(names) // 40)
    out = []
    for i, (name, x) in enumerate(zip(names, xs, strict=False)):
        if i % step:
            continue
        label = name if len(name) <= 22 else "…" + name[-21:]
        out.append(
            f'<text x="{x:.1f}" y="{H - M_BOTTOM + 12}" text-anchor="end" '
            f'transform="rotate(-45 {x:.1f} {H - M_BOTTOM + 12})">{_e(label)}</text>'
        )
    return "".join(out)


def grad_chart(layers: list[Any]) -> str:
    """Gradient norm per site on a log axis."""
    names = [ls.name for ls in layers]
    vals = [ls.grad_norm for ls in layers]
    good = [v for v in vals if _finite(v) and v > 0]
    if not good:
        return '<p class="muted">no gradients were observed.</p>'
    lo = math.floor(math.log10(min(good)))
    hi = math.ceil(math.log10(max(good)))
    if hi == lo:
        hi += 1
    xs = _x_positions(len(names))
    plot_h = H - M_BOTTOM - M_TOP

    def y(v: float) -> float:
        return M_TOP + plot_h * (1 - (math.log10(v) - lo) / (hi - lo))

    parts = [f'<svg width="{W}" height="{H}" role="img" aria-label="gradient norm per site">']
    label_every = max(1, math.ceil((hi - lo) / 8))  # at most ~9 labels, however many decades
    for k in range(lo, hi + 1):
        yy = y(10.0**k)
        parts.append(f'<line x1="{M_LEFT}" x2="{W - 20}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e6eaef"/>')
        if (k - lo) % label_every == 0:
            parts.append(f'<text x="{M_LEFT - 6}" y="{yy + 3:.1f}" text-anchor="end">1e{k}</text>')
    pts = [(x, y(v)) for x, v in zip(xs, vals, strict=False) if _finite(v) and v > 0]
    if len(pts) > 1:
        path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2e7dd7" stroke-width="1.8"/>')
    for (x, yy), name, v in zip(pts, [n for n, v in zip(names, vals, strict=False) if _finite(v) and v > 0], good, strict=False):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="3.2" fill="#2e7dd7"><title>{_e(name)}: {v:.3g}</title></circle>'
        )
    parts.append(
        f'<text x="14" y="{M_TOP + plot_h / 2:.0f}" transform="rotate(-90 14 {M_TOP + plot_h / 2:.0f})" '
        'text-anchor="middle">||dL/dy|| (log)</text>'
    )
    parts.append(_x_labels(names, xs))
    parts.append("</svg>")
    return "".join(parts)


def fraction_chart(layers: list[Any]) -> str:
    """Dead and saturated fraction per site, grouped bars on [0, 1]."""
    names = [ls.name for ls in layers]
    if not names:
        return ""
    inner = W - M_LEFT - 20
    plot_h = H - M_BOTTOM - M_TOP
    slot = inner / len(names)
    bw = max(1.0, min(14.0, slot / 2.6))
    parts = [f'<svg width="{W}" height="{H}" role="img" aria-label="dead and saturated fraction">']
    for k in range(0, 5):
        v = k / 4
        yy = M_TOP + plot_h * (1 - v)
        parts.append(f'<line x1="{M_LEFT}" x2="{W - 20}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e6eaef"/>')
        parts.append(f'<text x="{M_LEFT - 6}" y="{yy + 3:.1f}" text-anchor="end">{v:.0%}</text>')
    xs = []
    for i, ls in enumerate(layers):
        cx = M_LEFT + slot * (i + 0.5)
        xs.append(cx)
        for j, (v, color, label) in enumerate(
            ((ls.dead_fraction, "#c62828", "dead"), (ls.saturated_fraction, "#ef8f00", "saturated"))
        ):
            if not _finite(v):
                continue
            h = plot_h * v
            x = cx - bw + j * bw
            parts.append(
                f'<rect x="{x:.1f}" y="{M_TOP + plot_h - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{_e(ls.name)} {label}: {v:.1%}</title></rect>'
            )
    parts.append(
        f'<rect x="{W - 170}" y="4" width="10" height="10" fill="#c62828"/>'
        f'<text x="{W - 155}" y="13">dead</text>'
        f'<rect x="{W - 110}" y="4" width="10" height="10" fill="#ef8f00"/>'
        f'<text x="{W - 95}" y="13">saturated</text>'
    )
    parts.append(_x_labels(names, xs))
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
    row_h = max(6, min(18, 360 // max(1, len(names))))
    left = 170
    cols = len(steps)
    cw = max(2.0, min(24.0, (W - left - 20) / cols))
    height = row_h * len(names) + 40
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    parts = [f'<svg width="{W}" height="{height}" role="img" aria-label="{_e(label)} over time">']
    for i, name in enumerate(names):
        yy = 10 + i * row_h
        if row_h >= 9 or i % 3 == 0:
            short = name if len(name) <= 26 else "…" + name[-25:]
            parts.append(f'<text x="{left - 6}" y="{yy + row_h * 0.75:.1f}" text-anchor="end">{_e(short)}</text>')
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
    for f in report.findings:
        ev = "\n".join(f"{k}: {v}" for k, v in f.to_dict()["evidence"].items())
        out.append(
            f"<div class='finding {_e(f.severity)}'><span class='sev'>{_e(f.severity)}</span> "
            f"<b>{_e(f.kind)}</b> at {_e(', '.join(f.layers) or '–')}<br>{_e(f.message)}"
            f"<br><b>Remedy:</b> {_e(f.remedy)}<pre>{_e(ev)}</pre></div>"
        )
    out.append("<h2>Gradient norm per site (log scale)</h2>")
    out.append(grad_chart(layers))
    out.append("<h2>Dead and saturated units per site</h2>")
    out.append(fraction_chart(layers))
    if report.history:
        out.append("<h2>Dead units over time</h2>")
        out.append(heatmap(report.history, names, "dead_fraction", "#c62828", "dead fraction"))
        out.append("<h2>Saturated units over time</h2>")
        out.append(heatmap(report.history, names, "saturated_fraction", "#ef8f00", "saturated fraction"))
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
