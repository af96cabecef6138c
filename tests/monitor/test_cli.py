"""`gradsight watch-demo`: the built-in broken models show their findings."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gradsight.cli import app
from gradsight.errors import GradsightError
from gradsight.monitor import demo

EXPECTED = {
    "healthy": set(),
    "sigmoid": {"vanishing_gradients"},
    "dead": {"dead_units"},
    "saturated": {"saturation"},
    "nan": {"non_finite"},
}


@pytest.mark.parametrize("name", list(demo.DEMOS))
def test_each_demo_finds_what_it_plants(name):
    rep = demo.run(name, steps=3)
    assert {f.kind for f in rep.findings} == EXPECTED[name]


def test_nan_demo_names_block_2():
    (f,) = demo.run("nan", steps=2).findings
    assert f.layers == ("blocks.2/sqrt#0",)


def test_watch_demo_command(tmp_path):
    result = CliRunner().invoke(app, ["watch-demo", "--model", "dead", "--steps", "2", "--html", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "dead_units at 5" in result.output
    assert "regenerate: gradsight watch-demo --model dead --steps 2 --every 1" in result.output
    assert (tmp_path / "watch-dead.html").read_text().startswith("<!doctype html>")


def test_unknown_demo_suggests_the_closest():
    with pytest.raises(GradsightError, match="unknown demo 'sigmod'; did you mean 'sigmoid'"):
        demo.run("sigmod")
