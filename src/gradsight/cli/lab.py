"""`gradsight lab`: run the lab's experiments and write the report (index.html + results.json)."""

from __future__ import annotations

import time
import traceback
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


_QUICK = typer.Option(
    False, "--quick", help="Small grids and few steps: the whole lab in under 5 minutes."
)
_OUT = typer.Option(
    Path("report"), "--out", help="Directory for index.html and results.json (created)."
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
    quick: bool = _QUICK, out: Path = _OUT, only: list[str] | None = _ONLY, seed: int = _SEED
) -> None:
    """Run the lab's experiments and write DIR/index.html and DIR/results.json.

    Each experiment settles some of the ReLU explainer's claims or reproduces a paper result;
    its verdicts are printed as it finishes, beside its scale. The run says up front how long it
    should take on 2 CPU cores (the sum of the chosen experiments' measured typical times) and,
    after each experiment, how long is left, scaled by how fast the finished experiments ran here.

    Example: gradsight lab --quick --out report --only derivatives --only cost --seed 1
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from gradsight.lab import registry
    from gradsight.lab.eta import Estimate, describe
    from gradsight.report import build

    chosen = _selected(only)
    if out.exists() and not out.is_dir():  # fail before the experiments run, not after
        raise GradsightError(f"--out {str(out)!r} is a file; expected a directory (it is created)")
    console = Console()
    estimate = Estimate({e.name: e.typical_s(quick) for e in chosen})
    mode = ("quick" if quick else "full") + (f", --seed {seed}" if seed else "")
    console.print(
        f"gradsight lab ({mode}): {len(chosen)} experiments, {describe(estimate.total)} on 2 cores "
        "(measured typical times; a busy or slower machine takes longer)"
    )
    results = []
    failed: dict[str, str] = {}
    start = time.perf_counter()
    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[message]}", style="dim"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        for exp in chosen:
            task = bar.add_task(exp.name, total=None, message="")

            def progress(done: int, total: int, message: str = "", _task=task) -> None:
                bar.update(_task, completed=done, total=max(total, 1), message=message[:40])

            try:
                result = registry.run(exp.name, quick=quick, progress=progress, seed=seed)
            except Exception as exc:  # one broken experiment must not lose the others
                failed[exp.name] = f"{type(exc).__name__}: {exc}"
                estimate.finish(exp.name, 0.0, completed=False)
                bar.update(task, total=1, completed=0, message="failed")
                bar.console.print(f"[bold red]✗ {exp.name} failed[/] {escape(failed[exp.name])}")
                bar.console.print(traceback.format_exc(), style="dim", markup=False)
                continue
            results.append(result)
            estimate.finish(exp.name, result.seconds)
            bar.update(task, total=1, completed=1, message=f"{result.seconds:.1f} s")
            over = " [red](over its quick budget)[/]" if quick and result.seconds > exp.quick_budget_s else ""
            budget = f", quick budget {exp.quick_budget_s:.0f} s" if quick else ""
            left = f"; {describe(estimate.remaining())} left" if estimate.left else ""
            bar.console.print(
                f"[bold]{exp.name}[/] {result.seconds:.1f} s (typical {exp.typical_s(quick):.0f} s"
                f"{budget}){over}{left}"
            )
            bar.console.print(f"   [dim]scale: {escape(result.scale)}[/]", highlight=False)
            for c in result.claims:
                style = _VERDICT_STYLE.get(c.verdict, "")
                bar.console.print(f"   [{style}]{c.verdict:>14}[/]  {escape(c.claim)}", highlight=False)
    index = build(results, out, quick=quick, failed=failed, seed=seed)
    console.print(
        f"{len(results)} experiments in {time.perf_counter() - start:.0f} s; "
        f"wrote {index} and {index.parent / 'results.json'}"
    )
    if failed:
        console.print(f"[bold red]{len(failed)} failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)
