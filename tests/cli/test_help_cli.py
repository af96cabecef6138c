"""`gradsight CMD --help`: every command's description reads as whole paragraphs, wrapped by the
terminal, not broken a second time where its docstring's source lines end."""

from __future__ import annotations

import inspect
import sys

import pytest

from gradsight.cli import main
from gradsight.cli.app import app, reflow

COMMANDS = {c.name: c.callback for c in app.registered_commands} | {
    f"{g.name} {c.name}": c.callback for g in app.registered_groups for c in g.typer_instance.registered_commands
} | {g.name: g.typer_instance.registered_callback.callback for g in app.registered_groups}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_each_paragraph_of_the_description_on_one_line(capsys, monkeypatch, command) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # wider than any paragraph: a line break now is the docstring's
    monkeypatch.setattr(sys, "argv", ["gradsight", *command.split(), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    lines = [ln.strip() for ln in out.splitlines()]
    for paragraph in reflow(inspect.getdoc(COMMANDS[command])).split("\n\n"):
        assert paragraph in lines, paragraph


def test_reflow_joins_lines_and_keeps_paragraphs() -> None:
    assert reflow("  a\n  b\n\n  c  \n") == "a b\n\nc"
