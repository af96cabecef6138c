"""The README's lab tables, generated from recorded lab runs: nothing in them is typed in.

A *record* is the part of a lab run's ``results.json`` that the README shows — every claim's
verdict, first sentence of its explanation, command and experiment; every experiment's scale and
time; the ``llm_ffn`` table rows — plus the command that produced it. Records live in
``docs/lab/`` (``quick-seed0.json`` is the live run, ``quick-seedN.json`` the same run under
``--seed N``, ``full-*.json`` full-mode runs). The README holds blocks between markers
``<!-- lab:NAME -->`` and ``<!-- /lab:NAME -->``; :func:`render` computes each block from the
records, and a test fails when the README and the records disagree.

Commands (run from the repository root)::

    gradsight lab --quick --out report                                # writes report/results.json
    python -m gradsight.lab.readme record report/results.json docs/lab/quick-seed0.json \\
        --command "gradsight lab --quick --out report"
    # or several --only runs merged into one record:
    python -m gradsight.lab.readme record runs/*/results.json docs/lab/quick-seed1.json \\
        --command "gradsight lab --quick --seed 1 --only NAME, one process per experiment"
    # one experiment re-run after its code changed, the record's others kept:
    python -m gradsight.lab.readme replace docs/lab/quick-seed1.json runs/NAME/results.json \\
        --command "... ; NAME re-run on commit X"
    python -m gradsight.lab.readme write            # rewrite README.md's blocks from docs/lab
    python -m gradsight.lab.readme check            # exit 1 when README.md and docs/lab disagree
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from gradsight.errors import GradsightError
from gradsight.lab.registry import VERDICT_MEANING

BLOCKS = ("vocabulary", "verdicts", "scale", "seeds", "modes", "llm")
_FIRST_SENTENCE = re.compile(r"^(.*?[.!?])(\s+(?=[A-Z'\"(])|$)", re.S)


def first_sentence(text: str, limit: int = 280) -> str:
    """The first sentence of ``text`` (a full stop followed by a capital), cut at ``limit``.

    >>> first_sentence("Dead 3.3% at lr 0.01. Then more.")
    'Dead 3.3% at lr 0.01.'
    """
    text = " ".join(text.split())
    m = _FIRST_SENTENCE.match(text)
    out = m.group(1) if m else text
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


def record(doc: dict[str, Any], command: str) -> dict[str, Any]:
    """The README's share of a ``results.json`` document ``doc``, produced by ``command``."""
    if "claims" not in doc or "experiments" not in doc:
        raise GradsightError(
            f"not a lab results.json (keys {sorted(doc)!r}); expected 'claims' and 'experiments'"
        )
    experiments = {}
    for name, e in doc["experiments"].items():
        experiments[name] = {
            "scale": e.get("scale", ""),
            "seconds": e.get("seconds"),
            "command": e.get("command"),
            **({"rows": e.get("rows", []), "seeds": e.get("data", {}).get("seeds")}
               if name == "llm_ffn" else {}),
        }
    return {
        "command": command,
        "quick": doc.get("quick"),
        "seed": doc.get("seed", 0),
        "seconds": doc.get("seconds"),
        "date_utc": doc.get("environment", {}).get("date_utc"),
        "failed": doc.get("failed", {}),
        "experiments": experiments,
        "claims": [
            {
                "id": c["id"],
                "claim": c["claim"],
                "verdict": c["verdict"],
                "source": c.get("source", ""),
                "experiment": c["experiment"],
                "command": c["command"],
                "measured": first_sentence(c.get("explanation") or ""),
            }
            for c in doc["claims"]
        ],
    }


def replace(old: dict[str, Any], new: dict[str, Any], command: str) -> dict[str, Any]:
    """Record ``old`` with every experiment that record ``new`` holds taken from ``new`` (its
    scale, time and claims, in registry order); ``command`` says how the result came about.
    For re-running one experiment after its code changed, without re-running the others.

    >>> a = {"quick": True, "seed": 1, "seconds": 3.0, "date_utc": "d1", "failed": {},
    ...      "experiments": {"cost": {"seconds": 1.0}, "born_dead": {"seconds": 2.0}},
    ...      "claims": [{"experiment": "cost", "verdict": "supported"},
    ...                 {"experiment": "born_dead", "verdict": "supported"}], "command": "c1"}
    >>> b = {**a, "seconds": 5.0, "date_utc": "d2", "experiments": {"cost": {"seconds": 5.0}},
    ...      "claims": [{"experiment": "cost", "verdict": "nuanced"}]}
    >>> r = replace(a, b, "c1; cost again")
    >>> r["seconds"], [c["verdict"] for c in r["claims"]], r["date_utc"]
    (7.0, ['nuanced', 'supported'], 'd2')
    """
    from gradsight.lab.registry import names

    if (old.get("quick"), old.get("seed", 0)) != (new.get("quick"), new.get("seed", 0)):
        raise GradsightError(
            f"the records disagree on (quick, seed): {(old.get('quick'), old.get('seed', 0))!r} "
            f"vs {(new.get('quick'), new.get('seed', 0))!r}"
        )
    order = {n: i for i, n in enumerate(names())}
    experiments = {**old["experiments"], **new["experiments"]}
    ranked = sorted(experiments, key=lambda n: order.get(n, len(order)))
    claims = [c for c in old["claims"] if c["experiment"] not in new["experiments"]] + new["claims"]
    return {
        **old,
        "command": command,
        "seconds": round(sum(experiments[n].get("seconds") or 0.0 for n in ranked), 3),
        "date_utc": max(old.get("date_utc") or "", new.get("date_utc") or ""),
        "failed": {**{k: v for k, v in old.get("failed", {}).items() if k not in new["experiments"]},
                   **new.get("failed", {})},
        "experiments": {n: experiments[n] for n in ranked},
        "claims": sorted(claims, key=lambda c: order.get(c["experiment"], len(order))),
    }


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``results.json`` document from several runs of different experiments (each run with
    ``--only``): experiments and claims in registry order; ``seconds`` summed; the runs must
    agree on ``quick`` and ``seed``.
    """
    from gradsight.lab.registry import names

    if not docs:
        raise GradsightError("merge needs at least one results.json")
    modes = {(d.get("quick"), d.get("seed", 0)) for d in docs}
    if len(modes) != 1:
        raise GradsightError(f"runs disagree on (quick, seed): {sorted(modes, key=str)!r}")
    order = {n: i for i, n in enumerate(names())}
    experiments: dict[str, Any] = {}
    for d in docs:
        for name, e in d["experiments"].items():
            if name in experiments:
                raise GradsightError(f"experiment {name!r} appears in two of the runs")
            experiments[name] = e
    ranked = sorted(experiments, key=lambda n: order.get(n, len(order)))
    claims = sorted((c for d in docs for c in d["claims"]),
                    key=lambda c: order.get(c["experiment"], len(order)))
    dates = sorted(d.get("environment", {}).get("date_utc") or "" for d in docs)
    return {
        "quick": docs[0].get("quick"),
        "seed": docs[0].get("seed", 0),
        "seconds": round(sum(e.get("seconds") or 0.0 for e in experiments.values()), 3),
        "experiments": {n: experiments[n] for n in ranked},
        "claims": claims,
        "failed": {k: v for d in docs for k, v in d.get("failed", {}).items()},
        "environment": {"date_utc": dates[-1]},
    }


def load_records(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Every ``*.json`` record in ``directory`` by file stem, sorted."""
    d = Path(directory)
    if not d.is_dir():
        raise GradsightError(f"records directory {str(d)!r} does not exist; record a run first")
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(d.glob("*.json"))}


# ------------------------------------------------------------------------------ blocks

def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _claim_label(c: dict[str, Any]) -> str:
    src = c.get("source") or "explainer"
    return f"{_cell(c['claim'])} ({_cell(src)})"


def _vocabulary() -> str:
    return "\n".join(f"- **{v}**: {m}." for v, m in VERDICT_MEANING.items())


def _verdicts(live: dict[str, Any]) -> str:
    n = len(live["experiments"])
    head = (
        f"Recorded from `{live['command']}` ({n} experiments, {live['seconds']:.0f} s of "
        f"experiment time, {live.get('date_utc') or 'date not recorded'}):\n\n"
        "| verdict | claim (source) | what we measured (first sentence of the explanation) | regenerate |\n"
        "|---|---|---|---|"
    )
    rows = [
        f"| {c['verdict']} | {_claim_label(c)} | {_cell(c['measured'])} | `{c['command']}` |"
        for c in live["claims"]
    ]
    failed = "".join(f"\n\nFailed in this run: {k}: {_cell(v)}" for k, v in live["failed"].items())
    return "\n".join([head, *rows]) + failed


def _scale(live: dict[str, Any]) -> str:
    return "\n".join(
        f"- `{name}` ({e['seconds']:.1f} s): {_cell(e['scale'])}"
        for name, e in live["experiments"].items()
    )


def _seed_runs(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    runs = [r for k, r in records.items() if k.startswith("quick-seed")]
    return sorted(runs, key=lambda r: r["seed"])


def _seeds(records: dict[str, dict[str, Any]]) -> str:
    runs = _seed_runs(records)
    if not runs:
        return "No seed runs recorded."
    by_run = [{c["id"]: c for c in r["claims"]} for r in runs]
    ids = list(by_run[0])
    head = (
        "Commands: " + "; ".join(f"`{r['command']}`" for r in runs) + ".\n\n"
        "| claim | " + " | ".join(f"--seed {r['seed']}" for r in runs) + " | same verdict in all |\n"
        "|---|" + "---|" * len(runs) + "---|"
    )
    rows = []
    for cid in ids:
        verdicts = [b[cid]["verdict"] if cid in b else "not run" for b in by_run]
        ran = {v for v in verdicts if v != "not run"}
        same = "**no**" if len(ran) > 1 else "yes" if len(ran) == len(set(verdicts)) else "not run in all"
        rows.append(f"| {_cell(by_run[0][cid]['claim'])} | " + " | ".join(verdicts) + f" | {same} |")
    held = sum(r.endswith("| yes |") for r in rows)
    flipped = sum(r.endswith("| **no** |") for r in rows)
    missing = len(rows) - held - flipped
    tail = (
        f"\n\nOf {len(rows)} claims, {held} keep their verdict across {len(runs)} seeds and "
        f"{flipped} change it; {missing} were not run under every seed."
    )
    return "\n".join([head, *rows]) + tail


def _modes(records: dict[str, dict[str, Any]]) -> str:
    live = records.get("quick-seed0")
    if live is None:
        return "No quick run recorded."
    full: dict[str, tuple[str, dict[str, Any]]] = {}  # claim id -> (record name, claim)
    for key, r in records.items():
        if key.startswith("full"):
            for c in r["claims"]:
                full[c["id"]] = (key, c)
    head = "| claim | quick | full | full run (record) |\n|---|---|---|---|"
    rows = []
    for c in live["claims"]:
        key, f = full.get(c["id"], ("", None))
        rows.append(
            f"| {_cell(c['claim'])} | {c['verdict']} | {f['verdict'] if f else 'not run'} | "
            + (f"`{key}`" if f else "—") + " |"
        )
    used = sorted({key for key, _ in full.values()})
    sources = [f"- `{key}` (`docs/lab/{key}.json`): `{records[key]['command']}`" for key in used]
    return "\n".join([head, *rows, "", "The full runs, each recorded with its command:", "",
                      *sources] if sources else [head, *rows])


def _llm_table(rec: dict[str, Any]) -> str:
    from gradsight.lab.experiments.llm_ffn import SHAZEER_TABLE1

    e = rec["experiments"].get("llm_ffn")
    if e is None:
        return f"`{rec['command']}` did not run llm_ffn."
    rows = e["rows"]
    theirs = sorted(SHAZEER_TABLE1, key=SHAZEER_TABLE1.get)
    ours = sorted(rows, key=lambda r: r["val_bits_per_char"])
    lines = [
        f"From `{rec['command']}` ({len(e.get('seeds') or [])} seeds: "
        f"{', '.join(map(str, e.get('seeds') or []))}); scale: {_cell(e['scale'])}.",
        "",
        "| ffn | params | val bits/char (mean ± std over seeds) | exact-zero FFN activations | "
        "dead FFN units | our rank | Shazeer (2020) rank, log-ppl |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        std = r.get("val_bits_per_char_std")
        spread = "" if std is None else f" ± {std:.3f}"
        sh = (f"{theirs.index(r['ffn']) + 1}, {SHAZEER_TABLE1[r['ffn']]:.3f}"
              if r["ffn"] in SHAZEER_TABLE1 else "—")
        lines.append(
            f"| {r['ffn']} | {r['params']:,} | {r['val_bits_per_char']:.3f}{spread} | "
            f"{r['ffn_zero_fraction']:.1%} | {r['ffn_dead_fraction']:.2%} | "
            f"{ours.index(r) + 1} | {sh} |"
        )
    lines.append("")
    lines += [f"- **{c['verdict']}** {_cell(c['claim'])}: {_cell(c['measured'])}"
              for c in rec["claims"] if c["experiment"] == "llm_ffn"]
    return "\n".join(lines)


def _llm(records: dict[str, dict[str, Any]]) -> str:
    parts = []
    live = records.get("quick-seed0")
    if live is not None:
        parts.append(_llm_table(live))
    for key, r in records.items():
        if key.startswith("full") and "llm_ffn" in r["experiments"]:
            parts.append(_llm_table(r))
    if len(parts) < 2:
        parts.append("The full run (`gradsight lab --only llm_ffn`) has not been recorded.")
    return "\n\n".join(parts)


def render(records: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every README block's text from ``records`` (see :func:`load_records`)."""
    live = records.get("quick-seed0")
    if live is None:
        raise GradsightError(
            f"no quick-seed0 record among {sorted(records)!r}; record `gradsight lab --quick` first"
        )
    return {
        "vocabulary": _vocabulary(),
        "verdicts": _verdicts(live),
        "scale": _scale(live),
        "seeds": _seeds(records),
        "modes": _modes(records),
        "llm": _llm(records),
    }


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- lab:{name} -->\n)(.*?)(\n<!-- /lab:{name} -->)", re.S)


def blocks_of(readme: str) -> dict[str, str]:
    """The text inside each ``<!-- lab:NAME -->`` block of ``readme``."""
    out = {}
    for name in BLOCKS:
        m = _pattern(name).search(readme)
        if m:
            out[name] = m.group(2)
    return out


def rewrite(readme: str, blocks: dict[str, str]) -> str:
    """``readme`` with each marked block replaced; every block of :data:`BLOCKS` must exist."""
    for name in BLOCKS:
        pat = _pattern(name)
        if not pat.search(readme):
            raise GradsightError(
                f"README has no block <!-- lab:{name} --> … <!-- /lab:{name} -->; add the markers"
            )
        readme = pat.sub(lambda m, n=name: m.group(1) + blocks[n] + m.group(3), readme)
    return readme


def _command_and_paths(args: list[str], n_paths: int | None, usage: str) -> tuple[str, list[str]]:
    """``--command CMD`` and the paths around it in ``args`` (after the subcommand): exactly
    ``n_paths`` of them, or at least two when None; else a GradsightError saying ``usage``."""
    fits = len(args) >= 5 if n_paths is None else len(args) == 3 + n_paths  # subcommand, --command CMD
    if "--command" not in args or not fits:
        raise GradsightError(usage)
    i = args.index("--command")
    return args[i + 1], [a for j, a in enumerate(args[1:], 1) if j not in (i, i + 1)]


def _read_json(path: str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _write_json(path: str, doc: Any) -> None:
    Path(path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``record RESULTS... OUT --command CMD`` (several RESULTS are merged, see :func:`merge`) |
    ``replace RECORD RESULTS --command CMD`` (RESULTS' experiments replace RECORD's) |
    ``write [README] [--dir D]`` | ``check [README]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    directory = Path("docs/lab")
    if "--dir" in args:
        i = args.index("--dir")
        directory = Path(args[i + 1])
        del args[i : i + 2]
    if not args or args[0] not in ("record", "replace", "write", "check"):
        raise GradsightError(f"usage: record|replace|write|check; got {args[:1]!r}; try 'check'")
    if args[0] == "replace":
        command, (target, source) = _command_and_paths(
            args, 2, "usage: replace RECORD.json RESULTS.json --command 'how RECORD came about now'"
        )
        new = record(_read_json(source), command)
        _write_json(target, replace(_read_json(target), new, command))
        return 0
    if args[0] == "record":
        command, paths = _command_and_paths(
            args, None, "usage: record RESULTS.json [RESULTS.json ...] OUT.json --command 'gradsight lab ...'"
        )
        *sources, out = paths
        docs = [_read_json(p) for p in sources]
        doc = docs[0] if len(docs) == 1 else merge(docs)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        _write_json(out, record(doc, command))
        return 0
    readme = Path(args[1] if len(args) > 1 else "README.md")
    text = readme.read_text(encoding="utf-8")
    new = rewrite(text, render(load_records(directory)))
    if args[0] == "check":
        return 0 if new == text else 1
    readme.write_text(new, encoding="utf-8")
    return 0


def _cli() -> int:
    """``python -m gradsight.lab.readme``: --help prints the module's commands; a bad call is a
    one-line error (exit 2), as in the ``gradsight`` command."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return 0
    try:
        return main()
    except GradsightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(_cli())
