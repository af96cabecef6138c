"""`gradsight sweep`: a grid of small MLPs as trials; `gradsight sweep report DB`: its page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from gradsight.cli.app import app
from gradsight.errors import GradsightError

sweep_app = typer.Typer(no_args_is_help=False)
app.add_typer(sweep_app, name="sweep")


def _axis(help_text: str) -> Any:
    return typer.Option(None, help=help_text + " (comma-separated values)", show_default=False)


_CONFIG = typer.Option(
    None, "--config", help="TOML file whose sweep table gives the grid; flags override its values.",
    metavar="GRID.toml",
)
_BATCH = typer.Option(None, "--batch-size", help="Samples per step (default: 64).")
_SAMPLES = typer.Option(
    None, "--samples",
    help="N random points of the grid (lr log-uniform) instead of all of it (default: 0, all of it).",
)
_OUT = typer.Option(Path("sweep"), "--out", help="Directory for index.html (created).")
_STORE = typer.Option(
    None, "--store", help="SQLite trial store (default: OUT/trials.sqlite); stored trials are reused.",
    metavar="DB",
)
_FRESH = typer.Option(False, "--fresh", help="Ignore stored trials.")
_EXECUTOR = typer.Option("local", "--executor", help="'local' or 'ray'.")
_WORKERS = typer.Option(
    1, "--workers", help="Processes (local) or CPUs of a local Ray; 1 runs in this process."
)
_ADDRESS = typer.Option(
    None, "--address", help="With --executor ray: 'auto' or 'ray://host:port' (default: a local Ray)."
)
_ENSEMBLE = typer.Option(
    False, "--ensemble",
    help="Train trials that differ only in init, lr and seed together (torch.func).",
)
_STORE_ARG = typer.Argument(..., help="A trial store written by `gradsight sweep`.")
_PAGE = typer.Option(None, "--out", help="HTML page (default: index.html beside STORE).")
_CSV = typer.Option(None, "--csv", help="Also write one row per trial as CSV.")
_PARQUET = typer.Option(
    None, "--parquet", help="Also write the table as Parquet (needs pyarrow)."
)
_DATASET = _axis("Data sets: digits, mnist1d, spiral, circles, xor (default: digits)")
_ACTIVATION = _axis("Activations from the catalog (default: relu)")
_DEPTH = _axis("Hidden layers (default: 2)")
_WIDTH = _axis("Units per hidden layer (default: 32)")
_INIT = _axis("Inits: pytorch_default, xavier, he, lecun, orthogonal (default: pytorch_default)")
_LR = _axis("Learning rates (default: 0.1)")
_OPTIMIZER = _axis("Optimizers: sgd, momentum, adam, adamw (default: sgd)")
_SEEDS = _axis("Seeds (model init and batch order) (default: 0)")
_STEPS = _axis("Optimizer steps (default: 200)")


@sweep_app.callback(invoke_without_command=True)
def sweep(
    ctx: typer.Context,
    config: Path | None = _CONFIG,
    dataset: str | None = _DATASET,
    activation: str | None = _ACTIVATION,
    depth: str | None = _DEPTH,
    width: str | None = _WIDTH,
    init: str | None = _INIT,
    lr: str | None = _LR,
    optimizer: str | None = _OPTIMIZER,
    steps: str | None = _STEPS,
    seeds: str | None = _SEEDS,
    batch_size: int | None = _BATCH,
    samples: int | None = _SAMPLES,
    out: Path = _OUT,
    store: Path | None = _STORE,
    fresh: bool = _FRESH,
    executor: str = _EXECUTOR,
    workers: int = _WORKERS,
    address: str | None = _ADDRESS,
    ensemble: bool = _ENSEMBLE,
) -> None:
    """Train a grid of small MLPs as stored trials, locally or on Ray; write OUT/index.html.

    Trials already in the store are reused (--fresh runs them again); `gradsight sweep report
    DB` redraws the page and exports CSV or Parquet.

    Example: gradsight sweep --activation relu,tanh,gelu --lr 0.01,0.1,1 --depth 2,8 --seeds 0,1
    --steps 200 --ensemble --workers 2
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from gradsight.cli._progress import trial_progress
    from gradsight.lab import sweep as sw
    from gradsight.lab import sweep_report
    from gradsight.lab.trials import TrialStore, make_executor, run_trials

    values = sw.load_toml(config) if config is not None else {}
    flags = {"dataset": dataset, "activation": activation, "depth": depth, "width": width,
             "init": init, "lr": lr, "optimizer": optimizer, "steps": steps, "seed": seeds,
             "batch_size": batch_size, "samples": samples}
    values.update({k: v for k, v in flags.items() if v is not None})
    spec = sw.spec_from(values)  # every bad value is refused here, before anything runs
    todo = sw.trials(spec)
    if out.exists() and not out.is_dir():
        raise GradsightError(f"--out {str(out)!r} is a file; expected a directory (it is created)")
    db_path = store or out / "trials.sqlite"
    console = Console()
    console.print(f"gradsight sweep: {len(todo)} trials; store {db_path}")
    start = time.perf_counter()
    pool = make_executor(executor, workers, address)  # fails before the store is made
    try:
        with TrialStore(db_path) as db:
            size = -(-len(todo) // max(pool.workers, 1))  # at least one ensemble per worker
            group = (lambda ts: sw.group(ts, size)) if ensemble else None
            with trial_progress(console, "sweep") as progress:
                records = run_trials(todo, sw.TARGET, db, pool, fresh=fresh, group=group,
                                     progress=progress)
    finally:
        pool.close()
    failed = [r for r in records.values() if r.status != "done"]
    page = sweep_report.write_html(sweep_report.rows(db_path), out / "index.html", str(db_path))
    console.print(f"{len(records)} trials ({len(failed)} failed) in "
                  f"{time.perf_counter() - start:.0f} s; wrote {page}")


@sweep_app.command("report")
def report(
    store: Path = _STORE_ARG,
    out: Path | None = _PAGE,
    csv: Path | None = _CSV,
    parquet: Path | None = _PARQUET,
) -> None:
    """Write the sweep's HTML page (heatmaps, best config per activation, recurring findings).

    Example: gradsight sweep report sweep/trials.sqlite --csv sweep/trials.csv
    """
    from rich.console import Console

    from gradsight.lab import sweep_report

    rs = sweep_report.rows(store)
    console = Console()
    page = sweep_report.write_html(rs, out or store.parent / "index.html", str(store))
    console.print(f"wrote {page} ({len(rs)} trials)")
    if csv is not None:
        console.print(f"wrote {sweep_report.write_csv(rs, csv)}")
    if parquet is not None:
        console.print(f"wrote {sweep_report.write_parquet(rs, parquet)}")
