"""Deep models, readable: sites grouped by block, findings worst first, numbers for people.

A site's *block* is its module path up to the first numbered component -- the repeated layer
of a ``ModuleList``: ``"transformer.h.17.mlp.act"`` and ``"transformer.h.17/gelu#0"`` are in
block ``"transformer.h.17"``; a site with no numbered component (``"cls.predictions.act"``,
``"relu#0"``) is a block of its own. Consecutive blocks of one container that no finding names
are folded into one row (``"transformer.h.0-11"``), so a 48-layer model prints the blocks that
are sick and a line or two for the rest.

    >>> block_of("transformer.h.17.mlp.act"), block_of("blocks.3/gelu#0"), block_of("relu#0")
    ('transformer.h.17', 'blocks.3', 'relu#0')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gradsight.monitor.records import SEVERITIES, Finding, LayerStats

GROUP_ABOVE = 24  # more sites than this: the console summary groups them by block
WORST_SITES = 8  # sites listed one by one at the top of a grouped summary


def block_of(name: str) -> str:
    """The block a site belongs to (see the module docstring)."""
    path = name.split("/", 1)[0]
    parts = path.split(".")
    for i, p in enumerate(parts):
        if p.isdigit() and i > 0:
            return ".".join(parts[: i + 1])
    return name


def _container(block: str) -> tuple[str, int] | None:
    head, _, idx = block.rpartition(".")
    return (head, int(idx)) if head and idx.isdigit() else None


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def worst_first(findings: list[Finding]) -> list[Finding]:
    """Critical, then warning, then info; the order of diagnosis within a severity."""
    return sorted(findings, key=lambda f: -severity_rank(f.severity))


def site_severity(findings: list[Finding]) -> dict[str, str]:
    """The worst severity of the findings that name each site."""
    out: dict[str, str] = {}
    for f in findings:
        for name in f.layers:
            if severity_rank(f.severity) > severity_rank(out.get(name, "")):
                out[name] = f.severity
    return out


def worst_sites(layers: list[LayerStats], findings: list[Finding], k: int = WORST_SITES) -> list[LayerStats]:
    """The ``k`` sites most in trouble: named by the worst findings first, then by the largest
    dead + saturated fraction, then by the smallest gradient norm."""
    sev = site_severity(findings)

    def badness(ls: LayerStats) -> tuple[float, float, float]:
        frac = sum(v for v in (ls.dead_fraction, ls.saturated_fraction) if math.isfinite(v))
        g = ls.grad_norm if math.isfinite(ls.grad_norm) else -1.0  # a NaN gradient is worst
        return (-severity_rank(sev.get(ls.name, "")), -frac, g)

    return sorted(layers, key=badness)[:k]


@dataclass
class Group:
    """Consecutive sites shown as one row: one block, or a run of healthy blocks."""

    label: str
    layers: list[LayerStats] = field(default_factory=list)
    blocks: int = 1
    severity: str = ""

    def _vals(self, attr: str) -> list[float]:
        return [v for v in (getattr(ls, attr) for ls in self.layers) if isinstance(v, float) and math.isfinite(v)]

    @property
    def activations(self) -> str:
        return ",".join(dict.fromkeys(ls.activation for ls in self.layers))

    def span(self, attr: str) -> tuple[float, float]:
        v = self._vals(attr)
        return (min(v), max(v)) if v else (math.nan, math.nan)

    def mean(self, attr: str) -> float:
        v = self._vals(attr)
        return sum(v) / len(v) if v else math.nan

    @property
    def nonfinite(self) -> int:
        """Sites of the group whose gradient norm is NaN or Inf."""
        return sum(1 for ls in self.layers if not math.isfinite(ls.grad_norm))


def group_by_block(layers: list[LayerStats], findings: list[Finding]) -> list[Group]:
    """Sites in forward order, one Group per block; runs of consecutive blocks of the same
    container that no finding names are folded into one Group labelled ``"<container>.a-b"``."""
    sev = site_severity(findings)
    blocks: list[Group] = []
    index: dict[str, Group] = {}
    for ls in layers:
        key = block_of(ls.name)
        g = index.get(key)
        if g is None:
            g = index[key] = Group(key)
            blocks.append(g)
        g.layers.append(ls)
        s = sev.get(ls.name, "")
        if severity_rank(s) > severity_rank(g.severity):
            g.severity = s
    out: list[Group] = []
    run: list[Group] = []

    def close_run() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            head, first = _container(run[0].label)  # type: ignore[misc]
            last = _container(run[-1].label)[1]  # type: ignore[index]
            out.append(Group(f"{head}.{first}-{last}", [ls for g in run for ls in g.layers], len(run)))
        run.clear()

    for g in blocks:
        c = _container(g.label)
        prev = _container(run[-1].label) if run else None
        if g.severity or c is None:
            close_run()
            out.append(g)
        elif prev is not None and (prev[0] != c[0] or c[1] != prev[1] + 1):
            close_run()
            run.append(g)
        else:
            run.append(g)
    close_run()
    return out


def human(value: Any, digits: int = 4) -> Any:
    """Numbers rounded for people (``digits`` significant digits), inside lists and dicts too;
    the JSON keeps full precision.

    >>> human({"ratio": 6.762291e-17, "sites": [0.123456789, 3]})
    {'ratio': 6.762e-17, 'sites': [0.1235, 3]}
    """
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: human(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [human(v, digits) for v in value]
    return value


def _table(rows: list[list[str]], left: int) -> list[str]:
    """Aligned text rows; the first ``left`` columns left-aligned, a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def format_grouped(layers: list[LayerStats], findings: list[Finding], meta: dict[str, Any]) -> str:
    """The console summary of a deep model: findings worst first, the worst sites one by one,
    then one row per block (healthy runs folded), in forward order."""
    from gradsight.monitor.report import COLUMNS, _fmt

    groups = group_by_block(layers, findings)
    n_blocks = sum(g.blocks for g in groups)
    title = f"gradsight watch: {meta.get('model', 'model')}, {len(layers)} sites in {n_blocks} blocks"
    if "steps" in meta:
        title += f", {meta['steps']} steps (every {meta.get('every')}, window {meta.get('window')})"
    lines = [title, ""]
    if findings:
        lines.append("findings (worst first):")
        lines += [f"  {f}" for f in worst_first(findings)]
    else:
        lines.append("findings: none")
    lines += ["", f"worst {min(WORST_SITES, len(layers))} sites:"]
    rows = [[h for h, _, _ in COLUMNS]]
    rows += [[_fmt(getattr(ls, a), p) for _, a, p in COLUMNS] for ls in worst_sites(layers, findings)]
    lines += _table(rows, 2)
    lines += ["", "by block (forward order; consecutive blocks no finding names are folded):"]
    rows = [["block", "sites", "act", "grad_norm min", "max", "dead max", "saturated max", "E[f'] mean", "finding"]]
    for g in groups:
        lo, hi = g.span("grad_norm")
        nonfinite = f" ({g.nonfinite} non-finite)" if g.nonfinite else ""
        rows.append([
            g.label, str(len(g.layers)), g.activations, _fmt(lo), _fmt(hi) + nonfinite,
            _fmt(g.span("dead_fraction")[1], True), _fmt(g.span("saturated_fraction")[1], True),
            _fmt(g.mean("mean_derivative")), g.severity or "-",
        ])  # fmt: skip
    lines += _table(rows, 3)
    return "\n".join(lines)
