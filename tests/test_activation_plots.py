"""f and f' side by side, from the registry; the docstring examples of the activations area."""

from __future__ import annotations

import numpy as np
import pytest

import gradsight as gs
from gradsight.errors import GradsightError
from gradsight.report import activation_plots


def test_gallery_draws_every_registered_activation():
    figs = activation_plots.gallery_figures(per_figure=8)
    titles = [ax.get_title(loc="left") for fig in figs for ax in fig.axes[::2]]
    assert [t.split("(")[0].split(" ")[0] for t in titles] == gs.activations.names()


def test_figure_marks_the_kink_convention_and_draws_the_true_derivative():
    fig = activation_plots.figure([gs.activation("relu", derivative_at_zero=1.0), "sigmoid"])
    ax_f, ax_df, _, ax_sig_df = fig.axes
    dots = [line for line in ax_df.get_lines() if line.get_marker() == "o"]
    assert (
        len(dots) == 1 and list(dots[0].get_xdata()) == [0.0] and list(dots[0].get_ydata()) == [1.0]
    )
    # the sigmoid' curve is the catalog's derivative, peaking at 1/4 at 0
    (curve,) = [line for line in ax_sig_df.get_lines() if len(line.get_xdata()) > 100]
    assert max(curve.get_ydata()) == pytest.approx(0.25)
    assert "sup|f'| = 0.25" in ax_sig_df.get_title(loc="left")
    # smooth functions get no kink marker
    assert not [line for line in ax_sig_df.get_lines() if line.get_marker() == "o"]


def test_gated_forms_are_drawn_along_a_with_unit_gate():
    fig = activation_plots.figure(["swiglu"])
    ax_f, ax_df = fig.axes
    assert ax_f.get_title(loc="left") == "swiglu (b = 1)" and ax_df.get_title(
        loc="left"
    ).startswith("∂f/∂a")
    x, y = ax_f.get_lines()[0].get_data()
    np.testing.assert_allclose(y, gs.activation("silu")(x))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: activation_plots.figure([]), "nothing to plot"),
        (
            lambda: activation_plots.figure(["relu"], xlim=(1.0, 1.0)),
            r"min < max, got \(1.0, 1.0\)",
        ),
        (
            lambda: activation_plots.save(["relu"], "x.jpg"),
            "must end in .svg, .png or .pdf, got 'x.jpg'",
        ),
        (lambda: activation_plots.write_gallery(".", fmt="gif"), "unknown format 'gif'"),
    ],
    ids=["empty", "range", "suffix", "format"],
)
def test_errors(call, message):
    with pytest.raises(GradsightError, match=message):
        call()
