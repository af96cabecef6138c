"""`gradsight activations | derivative | plot`, run in-process through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gradsight as gs


def test_activations_lists_every_registered_name_with_its_numbers(cli):
    code, out, _ = cli(["activations"])
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert set(rows) == set(gs.activations.names())
    assert "1.1289" in rows["gelu"] and "1.09984" in rows["silu"] and "0.25" in rows["sigmoid"]
    assert "0 (kink)" in rows["relu"] and "0.01 (kink)" in rows["leaky_relu"]
    assert "inf" in rows["relu2"] and "gated" in rows["swiglu"]
    assert "saturating" in rows["tanh"] and "zero-centered" in rows["tanh"]


def test_activations_plot_writes_one_file_per_entry(cli, tmp_path):
    code, out, _ = cli(["activations", "--plot", str(tmp_path)])
    assert code == 0 and f"wrote {len(gs.activations.names())} plots" in out
    assert sorted(p.stem for p in tmp_path.glob("*.svg")) == sorted(gs.activations.names())


def _table(out: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.split("│")[1:-1]]
        for line in out.splitlines()
        if line.startswith("│")
    ]


def test_derivative_prints_exact_values_including_negative_inputs(cli):
    code, out, _ = cli(["derivative", "relu", "-1", "0", "2"])
    assert code == 0
    assert _table(out) == [["-1.0", "0.0", "0.0"], ["0.0", "0.0", "0.0"], ["2.0", "2.0", "1.0"]]
    assert "f'(0) = 0.0 is the kink convention" in out


def test_derivative_takes_parameters(cli):
    code, out, _ = cli(
        ["derivative", "leaky_relu", "-1", "0", "--param", "negative_slope=0.2"]
    )
    assert code == 0 and _table(out) == [["-1.0", "-0.2", "0.2"], ["0.0", "0.0", "0.2"]]
    code, out, _ = cli(["derivative", "relu", "0", "-p", "derivative_at_zero=1"])
    assert _table(out) == [["0.0", "0.0", "1.0"]]
    code, out, _ = cli(["derivative", "sigmoid", "0"])
    assert _table(out) == [["0.0", "0.5", "0.25"]]


def test_derivative_of_a_gated_form_prints_both_partials(cli):
    code, out, _ = cli(["derivative", "reglu", "-1", "2", "--gate", "3"])
    assert code == 0
    assert _table(out) == [
        ["-1.0", "3.0", "0.0", "0.0", "0.0"],
        ["2.0", "3.0", "6.0", "3.0", "2.0"],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["derivative", "rellu", "1"],
            "error: unknown activation 'rellu'; did you mean 'relu'? known: ",
        ),
        (["derivative", "relu", "1", "abc"], "error: X must be a number, got 'abc'"),
        (
            ["derivative", "elu", "1", "--param", "alpah=2"],
            "error: unknown elu parameter 'alpah'; did you mean 'alpha'?",
        ),
        (
            ["derivative", "elu", "1", "--param", "alpha=x"],
            "error: elu parameter alpha must be a number, got 'x'",
        ),
        (
            ["derivative", "elu", "1", "--param", "alpha"],
            "error: parameter must look like key=value, got 'alpha'",
        ),
        (
            ["plot", "relu", "--out", "f.gif"],
            "error: output file must end in .svg, .png or .pdf, got 'f.gif'",
        ),
        (
            ["plot", "relu", "gellu", "--out", "f.svg"],
            "error: unknown activation 'gellu'; did you mean 'gelu'?",
        ),
        (
            ["plot", "relu", "--out", "f.svg", "--xmin", "3", "--xmax", "1"],
            "error: x range must be finite with min < max, got (3.0, 1.0)",
        ),
    ],
    ids=[
        "name",
        "number",
        "param-name",
        "param-value",
        "param-form",
        "format",
        "plot-name",
        "range",
    ],
)
def test_bad_input_is_one_line_quoting_the_value(args, message, cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(args)
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1
    assert not list(tmp_path.iterdir())  # nothing written


def test_plot_writes_svg_and_png(cli, tmp_path):
    svg = tmp_path / "acts.svg"
    code, out, _ = cli(["plot", "relu", "gelu", "swiglu", "--out", str(svg)])
    assert code == 0 and f"wrote {svg}" in out.replace("\n", "")
    text = svg.read_text()
    assert text.startswith("<?xml") and "<svg" in text
    png = tmp_path / "sub" / "elu.png"
    code, _, _ = cli(
        ["plot", "elu", "--out", str(png), "--param", "alpha=2", "--xmin", "-2"]
    )
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_is_reproducible(cli, tmp_path):
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    cli(["plot", "relu", "--out", str(a)])
    cli(["plot", "relu", "--out", str(b)])
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("command", ["activations", "derivative", "plot"])
def test_help_has_an_example(command, cli):
    code, out, _ = cli([command, "--help"])
    assert code == 0 and f"Example: gradsight {command}" in out


def test_console_script_exit_code_and_message():
    exe = Path(sys.executable).parent / "gradsight"
    if not exe.exists():
        pytest.skip("the gradsight console script is not installed in this environment")
    proc = subprocess.run(
        [str(exe), "derivative", "rellu", "1"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown activation 'rellu'; did you mean 'relu'?")


def test_the_catalog_commands_do_not_import_the_monitor():
    # the monitor pulls in torch._dynamo (about a second): only watching should pay for it
    code = (
        "import sys, gradsight as gs\n"
        "from gradsight.cli import main\n"
        "sys.argv = ['gradsight', 'derivative', 'relu', '-1', '2']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'gradsight.monitor' not in sys.modules and 'torch._dynamo' not in sys.modules\n"
        "assert gs.watch.__module__ == 'gradsight.monitor.monitor'  # there on first use\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
