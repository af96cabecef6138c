"""`gradsight --version`: the package's version, the one pyproject.toml declares."""

from __future__ import annotations

import re
from pathlib import Path

import gradsight


def test_version_prints_the_declared_version(cli) -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)  # no tomllib on 3.10
    code, out, err = cli(["--version"])
    assert (code, out, err) == (0, f"gradsight {declared}\n", "")
    assert gradsight.__version__ == declared


def test_version_is_listed_in_help(cli) -> None:
    code, out, _ = cli(["--help"])
    assert code == 0 and "--version" in out and "activations" in out
