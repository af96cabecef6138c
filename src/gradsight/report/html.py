"""Build the lab report: ``index.html`` (self-contained) and ``results.json``.

The JSON document is the source of truth; the HTML page renders the same numbers:

* ``experiments``: ``{name: ExperimentResult.to_dict()}``
* ``claims``: one object per claim, with ``id, claim, verdict, evidence, command, explanation,
  source, experiment``
* ``interview``: the follow-up questions answered from the lab's own numbers
* ``failed``: ``{name: error}`` for experiments that raised (the others are still reported)
* ``environment``: versions, date, machine
* ``quick``, ``seed``, ``seconds``: how the lab was run (``--quick``, ``--seed``) and how long
  it took
* ``verdicts``: the verdict vocabulary, each word with its meaning

Every claim carries its experiment's ``scale`` (model, data, steps, seeds) beside its verdict.

The page has no external references at all (no CSS, JS, fonts or links): figures are inline SVG
with their XML prologue, namespaces and metadata stripped and their ids made unique per figure.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import platform
import re
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from gradsight.errors import GradsightError
from gradsight.lab.registry import VERDICT_MEANING, VERDICTS, ExperimentResult, Figure

# ---------------------------------------------------------------------------------- JSON

def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: numpy/torch scalars and arrays to Python, non-finite floats to None.

    >>> jsonable({"a": float("nan"), "b": (1, 2.5)})
    {'a': None, 'b': [1, 2.5]}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


def environment() -> dict[str, Any]:
    """Versions, date and machine the report was produced on."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("gradsight", "torch", "numpy", "matplotlib", "scikit-learn", "mnist1d"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    threads = None
    if "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "versions": versions,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def results_document(
    results: Sequence[ExperimentResult],
    quick: bool,
    env: dict[str, Any] | None = None,
    failed: dict[str, str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``results.json`` document for ``results`` (see the module docstring for its keys).

    ``failed`` maps the names of experiments that raised to their error message; ``seed`` is the
    lab's ``--seed``.
    """
    from gradsight.lab.interview import answers

    claims = []
    for result in results:
        for claim in result.claims:
            if claim.verdict not in VERDICTS:
                raise GradsightError(
                    f"claim {claim.id!r} of experiment {result.name!r} has verdict "
                    f"{claim.verdict!r}; allowed: {', '.join(VERDICTS)}"
                )
            claims.append({**claim.to_dict(), "experiment": result.name, "scale": result.scale})
    ids = [c["id"] for c in claims]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise GradsightError(f"claim ids must be unique across experiments; repeated: {dupes}")
    return jsonable(
        {
            "quick": quick,
            "seed": seed,
            "verdicts": dict(VERDICT_MEANING),
            "seconds": round(sum(r.seconds for r in results), 3),
            "experiments": {r.name: r.to_dict() for r in results},
            "claims": claims,
            "interview": answers(results),
            "failed": dict(failed or {}),
            "environment": env if env is not None else environment(),
        }
    )


# ---------------------------------------------------------------------------------- SVG

_SVG_DROP = [
    re.compile(r"<\?xml.*?\?>", re.S),
    re.compile(r"<!DOCTYPE.*?>", re.S),
    re.compile(r"<metadata>.*?</metadata>", re.S),
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r'\s+xmlns(:\w+)?="[^"]*"'),
]
_SVG_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(svg: str, prefix: str) -> str:
    """``svg`` ready to sit inside HTML5: no prologue, namespaces, metadata, comments or URLs.

    Ids (and the ``#id`` references to them) get ``prefix`` so several figures on one page
    cannot collide.
    """
    for pattern in _SVG_DROP:
        svg = pattern.sub("", svg)
    ids = set(_SVG_ID.findall(svg))
    if ids:
        svg = _SVG_ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', svg)
        svg = re.sub(
            r"#([\w.:-]+)",
            lambda m: f"#{prefix}{m.group(1)}" if m.group(1) in ids else m.group(0),
            svg,
        )
    return svg.strip()


# ---------------------------------------------------------------------------------- HTML

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1100px;padding:1.5em;color:#1d1d1f;background:#fff}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f5f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:.9em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f5f5f7;
padding:0 .25em;border-radius:3px}
.badge{display:inline-block;padding:.05em .55em;border-radius:1em;color:#fff;font-weight:600;
font-size:.85em;white-space:nowrap}
.supported{background:#1a7f37}.refuted{background:#cf222e}.nuanced{background:#bf8700}
.untestable{background:#6e7781}.not_reproduced{background:#8250df}
.ev{font-size:.82em;color:#444}.ev span{display:inline-block;margin-right:.8em}
.muted{color:#666}.scale{background:#f5f5f7;border-left:3px solid #999;padding:.3em .7em}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}
.wrap{overflow-x:auto}details summary{cursor:pointer;color:#444}
"""


def _fmt(value: Any) -> str:
    """A short human form of one value (3 significant digits for floats)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4g}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        items = [_fmt(v) for v in value[:8]]
        more = f", … ({len(value)} values)" if len(value) > 8 else ""
        return "[" + ", ".join(items) + more + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in list(value.items())[:10]) + (
            ", …" if len(value) > 10 else ""
        ) + "}"
    return str(value)


def _esc(value: Any) -> str:
    return html.escape(_fmt(value) if not isinstance(value, str) else value)


def _evidence_html(evidence: dict[str, Any]) -> str:
    parts = [
        f"<span><b>{html.escape(str(k))}</b> = {html.escape(_fmt(v))}</span>"
        for k, v in evidence.items()
    ]
    return f'<div class="ev">{"".join(parts)}</div>'


def _badge(verdict: str) -> str:
    return f'<span class="badge {verdict}">{verdict}</span>'


def _table(rows: list[dict[str, Any]], limit: int = 400) -> str:
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows[:limit]:
        cells = []
        for c in columns:
            v = row.get(c)
            cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{_esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="muted">{len(rows) - limit} more rows in results.json</p>'
        if len(rows) > limit
        else ""
    )
    return (
        f'<div class="wrap"><table><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>{more}'
    )


def _figure(fig: Figure, prefix: str) -> str:
    caption = html.escape(fig.caption)
    return (
        f"<figure><h4>{html.escape(fig.title)}</h4>{inline_svg(fig.svg, prefix)}"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _anchor(name: str) -> str:
    return "exp-" + re.sub(r"[^\w-]", "-", name)


def render_html(
    doc: dict[str, Any], results: Sequence[ExperimentResult], gallery: Sequence[Figure] = ()
) -> str:
    """The report page for ``doc`` (from :func:`results_document`) and the results' figures."""
    env = doc["environment"]
    claims = doc["claims"]
    counts = {v: sum(c["verdict"] == v for c in claims) for v in VERDICTS}
    mode = "quick" if doc["quick"] else "full"
    seed = doc.get("seed", 0)
    regen = ("gradsight lab" + (" --quick" if doc["quick"] else "")
             + (f" --seed {seed}" if seed else "") + " --out DIR")
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>gradsight lab report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>gradsight lab report</h1>",
        f'<p class="muted">{mode} run · {len(results)} experiments · '
        f"{doc['seconds']:.0f} s · {html.escape(env['date_utc'])} · regenerate everything with "
        f"<code>{html.escape(regen)}</code></p>",
        "<p>Each claim below was checked by a small experiment on this machine; the verdict is "
        "computed from the numbers beside it, and the command beside it regenerates them. "
        "Scale matters: these are small models on small data, and each section says how small."
        "</p>",
        "<p>" + " ".join(f"{_badge(v)} {counts[v]}" for v in VERDICTS) + "</p>",
        "<p class=\"muted\">" + "; ".join(
            f"<b>{html.escape(v)}</b>: {html.escape(m)}" for v, m in doc["verdicts"].items()
        ) + ".</p>",
    ]
    for name, message in doc.get("failed", {}).items():
        out.append(
            f'<p class="badge refuted">experiment {html.escape(name)} failed</p> '
            f"<code>{html.escape(message)}</code>"
        )
    out.append("<h2>Claims</h2>")
    if claims:
        out.append(
            '<div class="wrap"><table><thead><tr><th>verdict</th><th>claim</th>'
            "<th>evidence and explanation</th><th>command</th></tr></thead><tbody>"
        )
        for c in claims:
            source = "" if c.get("source") in (None, "", "explainer") else (
                f'<div class="muted">source: {html.escape(str(c["source"]))}</div>'
            )
            out.append(
                f"<tr><td>{_badge(c['verdict'])}</td>"
                f"<td><b>{html.escape(c['claim'])}</b>{source}"
                f'<div class="muted"><a href="#{_anchor(c["experiment"])}">'
                f"{html.escape(c['experiment'])}</a> · <code>{html.escape(c['id'])}</code></div></td>"
                f"<td>{html.escape(c.get('explanation') or '')}{_evidence_html(c['evidence'])}"
                f'<div class="muted">scale: {html.escape(c.get("scale") or "")}</div></td>'
                f"<td><code>{html.escape(c['command'])}</code></td></tr>"
            )
        out.append("</tbody></table></div>")
    else:
        out.append('<p class="muted">No claims: no experiment was run.</p>')

    if doc["interview"]:
        out.append("<h2>Interview questions, answered with the lab's numbers</h2>")
        for qa in doc["interview"]:
            out.append(f"<h3>{html.escape(qa['question'])}</h3><p>{html.escape(qa['answer'])}</p>")

    out.append("<h2>Experiments</h2><ul>")
    for r in results:
        out.append(
            f'<li><a href="#{_anchor(r.name)}">{html.escape(r.title)}</a> '
            f'<span class="muted">({r.seconds:.1f} s)</span></li>'
        )
    out.append("</ul>")
    for i, r in enumerate(results):
        out.append(f'<section id="{_anchor(r.name)}"><h2>{html.escape(r.title)}</h2>')
        out.append(f"<p>{html.escape(r.summary)}</p>")
        if r.scale:
            out.append(f'<p class="scale"><b>Scale:</b> {html.escape(r.scale)}</p>')
        out.append(
            f'<p class="muted">command: <code>{html.escape(r.command)}</code> · '
            f"took {r.seconds:.1f} s</p>"
        )
        for c in r.claims:
            out.append(f"<p>{_badge(c.verdict)} {html.escape(c.claim)} "
                       f'<span class="muted">(scale: {html.escape(r.scale)})</span></p>')
        for j, fig in enumerate(r.figures):
            out.append(_figure(fig, f"f{i}-{j}-"))
        if r.rows:
            out.append("<details open><summary>table</summary>")
            out.append(_table(jsonable(r.rows)))
            out.append("</details>")
        out.append("</section>")

    if gallery:
        out.append("<h2>Activation gallery: f and f′ from the catalog</h2>")
        for j, fig in enumerate(gallery):
            out.append(_figure(fig, f"g{j}-"))

    out.append("<h2>Environment</h2>")
    env_rows = [
        {"key": k, "value": v} for k, v in env.items() if k != "versions"
    ] + [{"key": f"version: {k}", "value": v} for k, v in env["versions"].items()]
    out.append(_table(env_rows))
    out.append("</body></html>")
    return "\n".join(out)


def _gallery() -> list[Figure]:
    """The activation f/f′ gallery from the registry (``gradsight.report.activation_plots``)."""
    from gradsight.report import activation_plots

    figures = activation_plots.gallery_figures()
    out = []
    for i, fig in enumerate(figures, start=1):
        out.append(
            Figure.from_matplotlib(
                fig,
                f"Catalog, part {i} of {len(figures)}",
                "f (left) and f′ (right) of each catalog entry; the kink convention is marked "
                "at 0. Gated forms are drawn along a with the gate b = 1.",
            )
        )
    return out


def build(
    results: Sequence[ExperimentResult],
    out_dir: str | os.PathLike[str],
    quick: bool,
    *,
    gallery: bool | Sequence[Figure] = True,
    failed: dict[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/results.json``; return the HTML path.

    ``results`` are the experiments' results in report order; ``quick`` records the mode they
    ran in. ``gallery=False`` leaves out the activation gallery (faster, for tests), a list of
    figures is used as the gallery (drawn earlier); ``failed``
    maps experiments that raised to their error, shown at the top of the page.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GradsightError(f"--out {str(out)!r} is a file; expected a directory (it is created)")
    out.mkdir(parents=True, exist_ok=True)
    doc = results_document(results, quick, failed=failed, seed=seed)
    (out / "results.json").write_text(
        json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8"
    )
    figures = _gallery() if gallery is True else (gallery or ())
    page = render_html(doc, results, figures)
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
