"""Every docstring example in gradsight runs, module by module: the examples are the first code
a reader copies, so each must hold with the output it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import gradsight

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(gradsight.__path__, prefix="gradsight.")
)  # every module and package under src/gradsight, found on disk


def test_the_walk_finds_the_whole_package():
    assert {"gradsight.activations", "gradsight.monitor.monitor", "gradsight.scratch"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    monkeypatch.setenv("MPLBACKEND", "agg")
    module = importlib.import_module(name)
    result = doctest.testmod(
        module,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        extraglobs={"np": np},
        report=True,
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_no_example_is_skipped():
    skipped = []
    finder = doctest.DocTestFinder()
    for name in MODULES:
        for test in finder.find(importlib.import_module(name)):
            skipped += [f"{test.name}:{ex.lineno}" for ex in test.examples if ex.options.get(doctest.SKIP)]
    assert not skipped, skipped
