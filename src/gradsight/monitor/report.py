"""The Report: what a watch measured, as data (``to_dict``/``to_json``), as a console table
(``table()``/``str()``) and as a self-contained HTML page (``to_html``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradsight.monitor.records import (
    NO_BACKWARD,
    Finding,
    LayerStats,
    ParamStats,
    json_safe,
    layer_fields,
)


class StepRecord:
    """One logged step: per-site stats of that step (``layers``, built on first access) and
    per-layer parameter stats (``params``)."""

    def __init__(
        self,
        step: int,
        params: list[ParamStats],
        summary: Any = None,
        incoming: dict[str, Any] | None = None,
        layers: list[LayerStats] | None = None,
    ) -> None:
        self.step = step
        self.params = params
        self._summary = summary
        self._incoming = incoming or {}
        self._layers = layers

    @property
    def layers(self) -> list[LayerStats]:
        if self._layers is None:
            self._layers = self._summary.step_stats(self._incoming) if self._summary else []
            self._summary = None
        return self._layers

    def __repr__(self) -> str:
        return f"StepRecord(step={self.step}, layers={len(self.layers)}, params={len(self.params)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "layers": [s.to_dict() for s in self.layers],
            "params": [p.to_dict() for p in self.params],
        }


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if pct:
            return f"{100 * v:5.1f}%"
        if v == 0 or 1e-3 <= abs(v) < 1e4:
            return f"{v:.4g}"
        return f"{v:.2e}"
    return str(v)


@dataclass
class Report:
    """Everything measured: ``layers`` (per site, window summary, forward order), ``findings``,
    ``params`` (per parameterized layer, last logged step), ``history`` (logged steps: all of
    the recent ones; past 4096 the older half is thinned to every other record, so memory
    stays bounded on long runs; a JSONL sink keeps every one),
    ``errors`` (failures inside the monitor; the training was not interrupted), ``meta``."""

    layers: list[LayerStats]
    findings: list[Finding]
    params: list[ParamStats] = field(default_factory=list)
    history: list[StepRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> LayerStats:
        """The stats of the site called ``name``."""
        for ls in self.layers:
            if ls.name == name:
                return ls
        from gradsight.errors import unknown_choice

        raise unknown_choice("site", name, [ls.name for ls in self.layers])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (non-finite floats as the strings "nan"/"inf")."""
        return {
            "meta": json_safe(self.meta),
            "layers": [s.to_dict() for s in self.layers],
            "findings": [f.to_dict() for f in self.findings],
            "params": [p.to_dict() for p in self.params],
            "history": [r.to_dict() for r in self.history],
            "errors": list(self.errors),
        }

    def to_json(self, path: str | Path | None = None, indent: int | None = 2) -> str:
        """The report as JSON; written to ``path`` when given. Returns the text."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page (inline SVG, no scripts, no network); written to ``path``
        when given. Returns the text."""
        from gradsight.monitor.html import render

        text = render(self)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def table(self) -> str:
        """A plain-text summary: one row per site, then the findings."""
        return format_table(self.layers, self.findings, self.meta)

    def __str__(self) -> str:
        return self.table()


# (header, LayerStats attribute, as a percentage): the fields marked ``table``
COLUMNS = tuple((f.metadata["label"], f.name, f.metadata["percent"]) for f in layer_fields("table"))


def format_table(layers: list[LayerStats], findings: list[Finding], meta: dict[str, Any]) -> str:
    from gradsight.monitor.blocks import GROUP_ABOVE, format_grouped, worst_first

    if len(layers) > GROUP_ABOVE:  # a deep model: by block, the worst first (blocks.py)
        return format_grouped(layers, findings, meta)
    findings = worst_first(findings)
    rows = [[h for h, _, _ in COLUMNS]]
    for ls in layers:
        rows.append(
            [
                NO_BACKWARD if attr == "grad_norm" and not ls.backward_seen else _fmt(getattr(ls, attr), pct)
                for _, attr, pct in COLUMNS
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    title = f"gradsight watch: {meta.get('model', 'model')}, {len(layers)} sites"
    if "steps" in meta:
        title += f", {meta['steps']} steps (every {meta.get('every')}, window {meta.get('window')})"
    lines.append(title)
    for j, r in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False)))
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    if findings:
        lines.append("")
        lines.append("findings:")
        for f in findings:
            lines.append(f"  {f}")
    else:
        lines.append("")
        lines.append("findings: none")
    return "\n".join(lines)
