"""`gradsight watch-demo`: the monitor on built-in healthy and broken models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gradsight.cli.app import app


@app.command("watch-demo")
def watch_demo(
    model: Annotated[str, typer.Option(help="healthy, sigmoid, dead, saturated, nan, or all")] = "all",
    steps: Annotated[int, typer.Option(min=1, help="training steps per model")] = 20,
    every: Annotated[int, typer.Option(min=1, help="measure activation sites every N steps")] = 1,
    html: Annotated[Path | None, typer.Option(help="write each report as HTML into this folder")] = None,
) -> None:
    """Train small built-in models for a few steps under gradsight.watch and print what it finds.

    Example: gradsight watch-demo --model sigmoid --steps 10 --html reports/
    """
    from gradsight.monitor import demo

    names = list(demo.DEMOS) if model == "all" else [model]
    for name in names:
        rep = demo.run(name, steps=steps, every=every)
        summary = demo.DEMOS[name].summary if name in demo.DEMOS else name
        typer.echo(f"\n== {name}: {summary}")
        typer.echo(rep.table())
        if html is not None:
            html.mkdir(parents=True, exist_ok=True)
            path = html / f"watch-{name}.html"
            rep.to_html(path)
            typer.echo(f"html: {path}")
        typer.echo(f"regenerate: gradsight watch-demo --model {name} --steps {steps} --every {every}")
