"""`gradsight flow`: per-layer gradient norms at initialization with theory beside them.

Thin edge: parses options, calls :func:`gradsight.lab.experiments.gradient_flow.measure_flow`
and :func:`gradsight.theory.mean_field`, prints a table. Bad input raises GradsightError, which
``gradsight.cli.main`` prints as one line (exit 2).
"""

from __future__ import annotations

import math

import typer

from gradsight.cli.app import app


def _num(v: float) -> str:
    return f"{v:.3e}" if v and (abs(v) < 1e-3 or abs(v) >= 1e4) else f"{v:.4f}"


@app.command("flow")
def flow(
    activation: str = typer.Option(
        "sigmoid", "--activation", "-a", help="Catalog name (see `gradsight activations`)."
    ),
    depth: int = typer.Option(20, "--depth", "-d", help="Number of hidden layers."),
    init: str = typer.Option(
        "pytorch_default", "--init", help="pytorch_default, xavier, he, lecun or orthogonal."
    ),
    width: int = typer.Option(256, "--width", "-w", help="Units per hidden layer."),
    data: str = typer.Option(
        "digits", "--data", help="Data set for the batch: digits, mnist1d, spiral, circles, xor."
    ),
    batch: int = typer.Option(256, "--batch", help="Samples in the batch."),
    seeds: int = typer.Option(1, "--seeds", help="Networks to average (mean of squared norms)."),
) -> None:
    """Per-layer gradient norm of a freshly initialized MLP on a real batch, with mean-field theory.

    'measured' is the back-propagated signal ‖∂ℓ/∂h_l‖ at layer l's pre-activations (RMS over the batch); 'theory' is the mean-field prediction anchored at the last hidden layer; 'ratio' = measured / theory; 'weight grad' is ‖∂L/∂W_l‖ of the batch-mean loss.

    Example: gradsight flow --activation sigmoid --depth 20 --init xavier
    """
    from rich.console import Console
    from rich.table import Table

    from gradsight import theory
    from gradsight.lab.experiments.gradient_flow import VANISH, measure_flow

    m = measure_flow(activation, depth, init, width, data, batch, seeds)
    mf = theory.mean_field(activation, m.weight_var, m.bias_var)
    console = Console(highlight=False)
    xi = "∞" if mf.depth_scale == math.inf else f"{mf.depth_scale:.2f}"
    console.print(
        f"{m.activation}, init {init}: σ_w² = {m.weight_var:.4g}, σ_b² = {m.bias_var:.3g}, "
        f"q* = {mf.q_star:.4g}, χ₁ = {mf.chi1:.4g}, √χ₁ = {mf.grad_factor:.4f} per layer, "
        f"depth scale ξ = {xi} layers ({mf.phase})"
    )
    table = Table(title=f"depth {depth}, width {width}, {batch} {m.data} samples, {seeds} seed(s)")
    for col in ("layer", "measured", "theory", "ratio", "weight grad"):
        table.add_column(col, justify="right")
    for row in m.table():
        table.add_row(
            str(row["layer"]),
            _num(row["measured"]),
            _num(row["theory"]),
            f"{row['ratio']:.3f}",
            _num(row["weight_grad"]),
        )
    console.print(table)
    k = m.vanish_depth()
    console.print(
        f"first/last weight-gradient ratio {m.relative_weight_grad[0]:.3g}; "
        + (
            f"below {VANISH:g} of the last layer after {k} layers"
            if k
            else f"never below {VANISH:g} of the last layer"
        )
    )
    console.print(
        f"regenerate: gradsight flow --activation {activation} --depth {depth} --init {init} "
        f"--width {width} --data {data} --batch {batch} --seeds {seeds}"
    )
