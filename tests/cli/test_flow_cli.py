"""`gradsight flow`, run in-process through the real entry point."""

from __future__ import annotations

import pytest


def _rows(out: str) -> dict[int, list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells
    return rows


def test_flow_prints_every_layer_with_theory(cli) -> None:
    code, out, _ = cli(
        [
            "flow",
            "--activation",
            "sigmoid",
            "--depth",
            "8",
            "--init",
            "xavier",
            "--width",
            "128",
            "--batch",
            "64",
        ])
    assert code == 0
    rows = _rows(out)
    assert sorted(rows) == list(range(1, 9))
    assert rows[8][3] == "1.000"  # theory is anchored at the last hidden layer
    assert all(0.8 < float(r[3]) < 1.25 for r in rows.values())  # measured / theory
    # sigmoid at σ_w² = 1: χ₁ = 0.05572, √χ₁ = 0.2361 per layer (pinned in tests/test_theory.py)
    assert "χ₁ = 0.05572" in out and "√χ₁ = 0.2361" in out and "(ordered)" in out
    assert "regenerate: gradsight flow --activation sigmoid --depth 8 --init xavier" in out


def test_flow_relu_he_is_critical(cli) -> None:
    code, out, _ = cli(
        ["flow", "-a", "relu", "-d", "4", "--init", "he", "-w", "64", "--batch", "32"]
    )
    assert code == 0 and "χ₁ = 1," in out and "(critical)" in out and "ξ = ∞" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["flow", "--activation", "sigmoidd"],
            "unknown activation 'sigmoidd'; did you mean 'sigmoid'?",
        ),
        (["flow", "--init", "hee", "--depth", "3"], "unknown init 'hee'; did you mean 'he'?"),
        (
            ["flow", "--data", "digit", "--depth", "3"],
            "unknown data set 'digit'; did you mean 'digits'?",
        ),
        (["flow", "--depth", "0"], "depth=0"),
    ],
)
def test_flow_bad_input_is_one_line_and_exit_2(cli, args: list[str], message: str) -> None:
    code, out, err = cli(args)
    assert code == 2 and message in err and err.startswith("error: ")


def test_flow_help_has_an_example(cli) -> None:
    code, out, _ = cli(["flow", "--help"])
    assert (
        code == 0 and "Example: gradsight flow --activation sigmoid --depth 20 --init xavier" in out
    )
