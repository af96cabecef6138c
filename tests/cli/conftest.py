"""Shared CLI test set-up: run ``gradsight ARGS`` in-process through the real entry point."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from gradsight.cli import main


@pytest.fixture
def cli(capsys, monkeypatch) -> Callable[[list[str]], tuple[int, str, str]]:
    """Run ``gradsight ARGS`` through ``gradsight.cli.main``; (exit code, stdout, stderr)."""

    def run(args: list[str]) -> tuple[int, str, str]:
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.setattr(sys, "argv", ["gradsight", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out = capsys.readouterr()
        code = exit_info.value.code
        return (0 if code is None else code), out.out, out.err

    return run
