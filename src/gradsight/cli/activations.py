"""`gradsight activations`, `gradsight derivative`, `gradsight plot`: the catalog from a shell.

Thin edges: parse the input, call ``gradsight.activations`` / ``gradsight.report``, print.
Bad input raises GradsightError, which ``gradsight.cli.main`` prints as one line (exit 2).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from gradsight.cli.app import app
from gradsight.errors import GradsightError

_NUMBERS = {"ignore_unknown_options": True}  # so that "-1" is a number, not an option


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise GradsightError(f"{what} must be a number, got {text!r}") from None
    if math.isnan(value):
        raise GradsightError(f"{what} must be a number, got {text!r}")
    return value


def _param_option(help: str) -> typer.models.OptionInfo:
    """The repeatable ``--param/-p KEY=VALUE`` option, parsed by ``activations.parse_params``."""
    return typer.Option("--param", "-p", metavar="KEY=VALUE", help=help)


def _fmt(value: float) -> str:
    return "inf" if value == math.inf else repr(float(value))


def _properties(act) -> str:
    words = [
        "monotonic" if act.is_monotonic else "non-monotonic",
        "smooth" if act.is_smooth else "kink at 0",
    ]
    if act.saturates:
        words.append("saturating")
    if act.zero_centered:
        words.append("zero-centered")
    if act.is_gated:
        words.append("gated")
    return ", ".join(words)


@app.command("activations")
def activations_command(
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="DIR",
            help="Also write DIR/NAME.svg (f and f' side by side) for every entry.",
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Image format for --plot: svg, png or pdf.")
    ] = "svg",
) -> None:
    """List the activation catalog: formula, f'(0) convention, sup|f'| and properties.

    Every value is computed from the catalog's own f and f' (sup|f'| numerically). f'(0) is the
    kink convention for relu-like entries (PyTorch's by default); gated forms describe their
    inner f, as d/da per unit gate b.

    Example: gradsight activations --plot report/activations
    """
    from rich.table import Table

    import gradsight as gs

    table = Table(title="gradsight activation catalog", title_justify="left")
    for column in ("name", "formula", "parameters", "f'(0)", "sup|f'|", "properties"):
        table.add_column(column, overflow="fold")
    for name in gs.activations.names():
        act = gs.activation(name)
        kinked = "derivative_at_zero" in act.params
        params = ", ".join(f"{k}={v!r}" for k, v in act.params.items() if k != "derivative_at_zero")
        at_zero = f"{act.derivative_at_zero:.6g}" + (
            " (kink)" if kinked and not act.is_smooth else ""
        )
        table.add_row(
            name, act.formula, params, at_zero, f"{act.derivative_bound:.6g}", _properties(act)
        )
    console = _console()
    console.print(table)
    console.print("f'(0) of a kink is a convention: choose it with derivative_at_zero=...")
    if plot is not None:
        from gradsight.report import activation_plots

        paths = activation_plots.write_gallery(plot, fmt=fmt)
        console.print(f"wrote {len(paths)} plots to {plot}/ (e.g. {paths[0].name})")


@app.command("derivative", context_settings=_NUMBERS)
def derivative_command(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Catalog name, e.g. relu, gelu, swiglu.")
    ],
    xs: Annotated[
        list[str],
        typer.Argument(metavar="X...", help="Points to evaluate at (negative numbers welcome)."),
    ],
    param: Annotated[
        list[str] | None,
        _param_option("Activation parameter, e.g. negative_slope=0.2 (repeatable)."),
    ] = None,
    gate: Annotated[
        str, typer.Option("--gate", metavar="B", help="Gated forms only: the gate b in f(a)·b.")
    ] = "1.0",
) -> None:
    """Print f(x) and f'(x), exactly (float64, round-trip digits), at each X.

    For gated forms (reglu, geglu, swiglu) X is a and the gate b is --gate: it prints f(a)·b,
    d/da and d/db.

    Example: gradsight derivative leaky_relu -1 0 2 --param negative_slope=0.2
    """
    import numpy as np
    from rich.table import Table

    import gradsight as gs

    params = gs.activations.parse_params(name, param or [])
    act = gs.activation(name, **params)
    x = np.array([_number(v, "X") for v in xs], dtype=np.float64)
    shown = ", ".join(f"{k}={v!r}" for k, v in act.params.items())
    console = _console()
    console.print(f"{name}({shown})" if shown else name)
    table = Table()
    if act.is_gated:
        b = np.full_like(x, _number(gate, "--gate"))
        y = act(x, b)
        da, db = act.derivative(x, b)
        for column in ("a", "b", "f(a)·b", "d/da", "d/db"):
            table.add_column(column, justify="right")
        for row in zip(x, b, y, da, db, strict=True):
            table.add_row(*(_fmt(v) for v in row))
    else:
        y, dy = act(x), act.derivative(x)
        for column in ("x", "f(x)", "f'(x)"):
            table.add_column(column, justify="right")
        for row in zip(x, y, dy, strict=True):
            table.add_row(*(_fmt(v) for v in row))
    console.print(table)
    if "derivative_at_zero" in act.params and np.any(x == 0):
        console.print(
            f"f'(0) = {act.params['derivative_at_zero']!r} is the kink convention "
            "(PyTorch's unless --param derivative_at_zero=... says otherwise)"
        )


@app.command("plot", context_settings=_NUMBERS)
def plot_command(
    names: Annotated[
        list[str], typer.Argument(metavar="NAME...", help="Catalog names, one row each.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="FILE", help="Output file: .svg, .png or .pdf.")
    ],
    param: Annotated[
        list[str] | None, _param_option("Parameter for every named activation (repeatable).")
    ] = None,
    xmin: Annotated[str, typer.Option("--xmin", help="Left end of the x range.")] = "-4",
    xmax: Annotated[str, typer.Option("--xmax", help="Right end of the x range.")] = "4",
) -> None:
    """Plot f and f' side by side, one row per activation, with the kink convention marked.

    Example: gradsight plot relu gelu swiglu --out activations.svg
    """
    import gradsight as gs
    from gradsight.report import activation_plots

    acts = [gs.activation(n, **gs.activations.parse_params(n, param or [])) for n in names]
    path = activation_plots.save(acts, out, xlim=(_number(xmin, "--xmin"), _number(xmax, "--xmax")))
    _console().print(f"wrote {path}")
