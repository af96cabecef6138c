"""watch(include=..., exclude=...): site-name globs choose what is measured and what is hooked."""

from __future__ import annotations

import pytest
import torch

import gradsight as gs
from gradsight.monitor import GradsightWarning

from .helpers import Stack, mlp, train


def _run(model, steps=3, **kw):
    with gs.watch(model, every=1, **kw) as mon:
        train(model, mon, steps=steps, shape=(8, 5, 16) if isinstance(model, Stack) else None)
    return mon.report()


def _stack():
    torch.manual_seed(0)
    return Stack(n=12)


def test_include_measures_only_matching_sites_and_their_numbers_do_not_change():
    full = _run(_stack())
    part = _run(_stack(), include="blocks.1*")
    assert [ls.name for ls in part.layers] == ["blocks.1/gelu#0"] + [f"blocks.1{i}/gelu#0" for i in range(2)]
    for ls in part.layers:
        assert ls == full.layer(ls.name)
    assert part.meta["sites"] == [ls.name for ls in part.layers]


def test_exclude_wins_over_include_and_takes_functional_and_module_sites():
    rep = _run(_stack(), include="blocks.*", exclude=["blocks.1*", "relu#0"])
    assert [ls.name for ls in rep.layers] == [f"blocks.{i}/gelu#0" for i in (0, *range(2, 10))]
    torch.manual_seed(0)
    rep = _run(mlp(depth=4), exclude=["1", "3"])
    assert [ls.name for ls in rep.layers] == ["5", "7"]
    assert not rep.errors


def test_excluded_module_sites_are_not_hooked_at_all():
    torch.manual_seed(0)
    model = mlp(depth=4)
    with gs.watch(model, every=1, exclude="[13]") as mon:
        train(model, mon, steps=1)
        assert not model[1]._forward_hooks and not model[1]._forward_pre_hooks
        assert not model[3]._forward_hooks
        assert model[5]._forward_hooks and model[7]._forward_hooks


def test_excluded_functional_site_inside_a_measured_owner_keeps_the_names_of_the_others():
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)

        def forward(self, x):
            return self.b(torch.tanh(torch.relu(self.a(x))))

    torch.manual_seed(0)
    full = _run(Two())
    torch.manual_seed(0)
    part = _run(Two(), exclude="relu#0")
    assert [ls.name for ls in full.layers] == ["relu#0", "tanh#0"]
    assert [ls.name for ls in part.layers] == ["tanh#0"]
    assert part.layer("tanh#0") == full.layer("tanh#0")


def test_a_pattern_that_matches_nothing_warns_with_the_known_sites():
    torch.manual_seed(0)
    with pytest.warns(GradsightWarning, match=r"pattern 'blocks\.\*' matches no activation site; known sites: 1, 3, 5, 7"):
        rep = _run(mlp(depth=4), include=["blocks.*", "[15]"])
    assert [ls.name for ls in rep.layers] == ["1", "5"]
    with pytest.warns(GradsightWarning, match=r"exclude=.*'blocks\.0/gellu#0' matches no activation site; did you mean 'blocks\.0/gelu#0'\?"):
        _run(_stack(), exclude="blocks.0/gellu#0")


@pytest.mark.parametrize("bad", [3, ["blocks.*", None], b"blocks"], ids=["int", "list-with-None", "bytes"])
def test_include_must_be_globs(bad):
    with pytest.raises(gs.GradsightError, match=r"include must be a glob string or a list of them .*got"):
        gs.watch(mlp(), include=bad)
