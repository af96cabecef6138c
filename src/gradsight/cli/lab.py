"""`gradsight lab`: run the lab's experiments and write the report (index.html + results.json)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from gradsight.cli.app import app
from gradsight.errors import GradsightError

_VERDICT_STYLE = {  # one per word of gradsight.lab.registry.VERDICTS (tested)
    "supported": "bold green",
    "refuted": "bold red",
    "nuanced": "bold yellow",
    "not_reproduced": "bold magenta",
    "untestable": "dim",
}


def _selected(only: list[str] | None) -> list:
    """The experiments to run, in report order; ``only`` names (repeatable or comma-separated)."""
    from gradsight.lab import registry

    everything = registry.registered()
    if not only:
        return everything
    wanted: list[str] = []
    for item in only:
        wanted.extend(part.strip() for part in item.split(",") if part.strip())
    if not wanted:
        raise GradsightError("--only was given without a name; known: " + ", ".join(registry.names()))
    for name in wanted:
        registry.get(name)  # raises with a did-you-mean hint
    return [e for e in everything if e.name in set(wanted)]


_GALLERY_TYPICAL_S = 4.0  # seconds the activation gallery takes to draw on 2 cores

_QUICK = typer.Option(
    False, "--quick", help="Small grids and few steps: the whole lab in under 5 minutes."
)
_OUT = typer.Option(
    Path("report"), "--out", help="Directory for index.html and results.json (created)."
)
_STORE = typer.Option(
    None, "--store", help="SQLite trial store (default: OUT/trials.sqlite); reused on re-runs.",
    metavar="DB",
)
_FRESH = typer.Option(False, "--fresh", help="Ignore stored trials: run everything again.")
_EXECUTOR = typer.Option(
    "local", "--executor", help="Where trials run: 'local' (processes here) or 'ray'.",
)
_WORKERS = typer.Option(
    1, "--workers", help="Processes (local) or CPUs of a local Ray; 1 runs in this process.",
)
_ADDRESS = typer.Option(
    None, "--address", help="With --executor ray: 'auto' or 'ray://host:port' (default: a local Ray).",
)
_ONLY = typer.Option(
    None,
    "--only",
    help="Run only this experiment (repeat, or separate names by commas).",
    metavar="NAME",
)
_SEED = typer.Option(
    0, "--seed", min=0,
    help="Re-run with other seeds: every experiment trains seeds N*k … N*k+k-1 (k its seed count).",
)


@app.command("lab")
def lab(
    quick: bool = _QUICK,
    out: Path = _OUT,
    only: list[str] | None = _ONLY,
    seed: int = _SEED,
    store: Path | None = _STORE,
    fresh: bool = _FRESH,
    executor: str = _EXECUTOR,
    workers: int = _WORKERS,
    address: str | None = _ADDRESS,
) -> None:
    """Run the lab's experiments and write DIR/index.html and DIR/results.json.

    Each experiment settles some of the ReLU explainer's claims or reproduces a paper result;
    its verdicts are printed as it finishes, beside its scale. Each experiment is one trial, or
    several (llm_ffn: one per feed-forward form and seed, spread over --workers or a Ray
    cluster), stored in DIR/trials.sqlite (or --store) as each finishes: the same command again
    reuses every stored trial (--fresh runs them again), so a killed run resumes where it
    stopped. A failing trial is retried once, then its experiment is reported as failed; the
    others go on. The run says up front how long it should take on 2 CPU cores (the sum of the
    chosen experiments' measured typical times) and, as trials finish, how long is left.

    Example: gradsight lab --quick --out report --only derivatives --only cost --seed 1

    On a Ray cluster: gradsight lab --executor ray --address auto
    """
    from rich.console import Console

    from gradsight.cli._progress import trial_progress
    from gradsight.lab.eta import describe
    from gradsight.lab.trials import TrialStore, make_executor, run_trials
    from gradsight.lab.trials.lab import TARGET, figures, gallery_trial, trials_for

    chosen = _selected(only)
    if out.exists() and not out.is_dir():  # fail before the experiments run, not after
        raise GradsightError(f"--out {str(out)!r} is a file; expected a directory (it is created)")
    console = Console()
    planned = {e.name: trials_for(e, quick, seed) for e in chosen}
    # an experiment's typical time, shared equally by its trials
    weights = {t.id: e.typical_s(quick) / len(planned[e.name]) for e in chosen
               for t in planned[e.name]}
    n_trials = sum(len(ts) for ts in planned.values())
    mode = ("quick" if quick else "full") + (f", --seed {seed}" if seed else "")
    work = sum(weights.values())
    console.print(
        f"gradsight lab ({mode}): {len(chosen)} experiment{'s' if len(chosen) != 1 else ''}"
        + (f" in {n_trials} trials" if n_trials > len(chosen) else "")
        + f", {describe(work)} of work on 2 cores"
        + (f", {describe(work / workers)} with {workers} workers if its trials spread evenly"
           if workers > 1 else "")
        + " (measured typical times; a busy or slower machine takes longer)"
    )
    gallery = gallery_trial()
    weights[gallery.id] = _GALLERY_TYPICAL_S
    owner = {t.id: e for e in chosen for t in planned[e.name]}
    results: dict[str, object] = {}
    failed: dict[str, str] = {}
    start = time.perf_counter()
    pool = make_executor(executor, workers, address)  # fails before the store is made
    try:
        with TrialStore(store or out / "trials.sqlite") as db:
            with trial_progress(console, "lab") as progress:
                waiting = set(owner)
                arrived: dict[str, tuple] = {}  # trial id -> (record, from the store)

                def show(rec, cached: bool) -> None:
                    if rec.id not in owner:
                        return
                    exp = owner[rec.id]
                    waiting.discard(rec.id)
                    arrived[rec.id] = (rec, cached)
                    eta = progress.counts.eta_s if waiting and progress.counts else None
                    ids = [t.id for t in planned[exp.name]]
                    if exp.split is not None:
                        _print_trial(progress.console, exp, rec, cached, eta)
                    if all(i in arrived for i in ids):
                        _finish(progress.console, exp, [arrived[i] for i in ids], quick, seed,
                                eta, planned[exp.name], results, failed)

                records = run_trials(
                    [t for e in chosen for t in planned[e.name]] + [gallery], TARGET, db, pool,
                    fresh=fresh, weights=weights, progress=progress, on_record=show,
                )
    finally:
        pool.close()
    drawn = records[gallery.id]
    if drawn.status != "done":
        failed["activation gallery"] = f"{drawn.error} (after {drawn.attempts} attempts)"
    from gradsight.report import build

    done = [results[e.name] for e in chosen if e.name in results]
    index = build(done, out, quick=quick, failed=failed, seed=seed,
                  gallery=figures(drawn.metrics) if drawn.status == "done" else False)
    console.print(
        f"{len(done)} experiments in {time.perf_counter() - start:.0f} s; "
        f"wrote {index} and {index.parent / 'results.json'}"
    )
    if failed:
        console.print(f"[bold red]{len(failed)} failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)


def _finish(console, exp, arrived: list[tuple], quick: bool, seed: int, eta: float | None,
            trials: list, results: dict, failed: dict) -> None:
    """Every trial of ``exp`` is in: its result (built from the trials' metrics), or why not."""
    from rich.markup import escape

    from gradsight.lab.trials.lab import build_result

    records = [rec for rec, _ in arrived]
    bad = [(t, rec) for t, rec in zip(trials, records, strict=True) if rec.status != "done"]
    if bad:
        trial, rec = bad[0]
        where = f"trial {trial.label()}: " if exp.split is not None else ""
        failed[exp.name] = f"{where}{rec.error} (after {rec.attempts} attempts)"
        console.print(f"[bold red]✗ {exp.name} failed[/] (attempt {rec.attempts}) "
                      f"{escape(failed[exp.name])}")
        return
    try:
        result = build_result(exp, quick, seed, records)
    except Exception as exc:  # a result that cannot be built fails its experiment, not the lab
        failed[exp.name] = f"building the result from its trials: {type(exc).__name__}: {exc}"
        console.print(f"[bold red]✗ {exp.name} failed[/] {escape(failed[exp.name])}")
        return
    results[exp.name] = result
    stored = sum(cached for _, cached in arrived)
    if exp.split is None:
        note = " (stored)" if stored else ""
    else:
        note = f" in {len(records)} trials" + (f", {stored} stored" if stored else "")
    _print_result(console, exp, result, note, quick, eta)


def _print_trial(console, exp, rec, cached: bool, eta: float | None) -> None:
    """One line per finished trial of a split experiment (a failure prints in red)."""
    from rich.markup import escape

    from gradsight.lab.eta import describe

    label = f"{exp.name}({', '.join(f'{k}={v}' for k, v in sorted(rec.config.items()))})"
    left = f"; {describe(eta)} left" if eta is not None else ""
    if rec.status != "done":
        console.print(f"[red]  ✗ {escape(label)}[/] (attempt {rec.attempts}) {escape(rec.error)}")
    else:
        console.print(f"[dim]  {escape(label)} {rec.seconds:.1f} s"
                      + (" (stored)" if cached else "") + f"{left}[/]", highlight=False)


def _print_result(console, exp, result, note: str, quick: bool, eta: float | None) -> None:
    """One experiment's line (its time, the time left) and its verdicts."""
    from rich.markup import escape

    from gradsight.lab.eta import describe

    seconds = result.seconds
    over = quick and seconds > exp.quick_budget_s
    budget = f", quick budget {exp.quick_budget_s:.0f} s" if quick else ""
    console.print(
        f"[bold]{exp.name}[/] {seconds:.1f} s{note}"
        + f" (typical {exp.typical_s(quick):.0f} s{budget})"
        + (" [red](over its quick budget)[/]" if over else "")
        + (f"; {describe(eta)} left" if eta is not None else "")
    )
    if result.scale:
        console.print(f"   [dim]scale: {escape(result.scale)}[/]", highlight=False)
    for c in result.claims:
        style = _VERDICT_STYLE.get(c.verdict, "")
        console.print(f"   [{style}]{c.verdict:>14}[/]  {escape(c.claim)}", highlight=False)
