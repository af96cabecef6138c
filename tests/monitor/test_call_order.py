"""Reading the monitor never changes what it measures; a missing mon.step() and a forward with
no backward are said so, not left as an empty report or a bare NaN (issue 18)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from tests.monitor.helpers import mlp
from tests.monitor.test_nonfinite import Net

import gradsight as gs
from gradsight.monitor import GradsightWarning

POINTS = ("before_forward", "after_forward", "after_backward", "after_opt", "after_step")


def _loop(read_at: frozenset[str], every: int = 2, steps: int = 7):
    torch.manual_seed(0)
    model = mlp(act=torch.nn.Tanh, depth=3, width=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    seen = []
    with gs.watch(model, every=every) as mon:
        for _ in range(steps):
            x, y = torch.randn(8, 16, generator=g), torch.randint(0, 4, (8,), generator=g)
            if "before_forward" in read_at:
                seen.append(mon.report())
            out = model(x)
            if "after_forward" in read_at:
                seen.append(mon.report())
            F.cross_entropy(out, y).backward()
            if "after_backward" in read_at:
                seen.append(mon.report())
            opt.step()
            opt.zero_grad()
            if "after_opt" in read_at:
                seen.append(mon.report())
            mon.step()
            if "after_step" in read_at:
                seen.append(mon.report())
                _ = mon.history
    return mon.report(), seen


@pytest.mark.parametrize("read_at", [*POINTS, "everywhere"])
def test_reading_the_report_at_any_point_changes_nothing(read_at):
    want, _ = _loop(frozenset())
    got, seen = _loop(frozenset(POINTS if read_at == "everywhere" else (read_at,)))
    assert [r.to_dict() for r in got.history] == [r.to_dict() for r in want.history]
    assert [r.step for r in got.history] == [0, 2, 4, 6]
    assert [ls.to_dict() for ls in got.layers] == [ls.to_dict() for ls in want.layers]
    assert [p.to_dict() for p in got.params] == [p.to_dict() for p in want.params]
    assert not got.errors
    for rep in seen:  # what was read mid-loop is a prefix of the end result, never a NaN record
        assert all(math.isfinite(ls.grad_norm) for r in rep.history for ls in r.layers)


def test_findings_come_in_causal_order_and_only_the_first_says_first():
    """A backward NaN at step 1, a forward NaN at step 3: the backward one is first."""
    model = Net(None, 0)
    with gs.watch(model, every=1) as mon:
        for step in range(5):
            model.blocks[1].fault = "backward" if step == 1 else ("forward" if step == 3 else None)
            F.cross_entropy(model(torch.randn(6, 8)), torch.randint(0, 2, (6,))).backward()
            model.zero_grad()  # no update: the NaN gradient never reaches the weights
            mon.step()
    found = [f for f in mon.report().findings if f.kind == "non_finite"]
    assert [(f.evidence["step"], f.evidence["phase"]) for f in found] == [(1, "backward"), (3, "forward")]
    assert found[0].message.startswith("first non-finite value at step 1 in the backward pass")
    assert found[1].message.startswith("a later non-finite value at step 3 in the forward pass")
    assert sum("first" in f.message for f in found) == 1


def _gs_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, GradsightWarning)]


@pytest.mark.parametrize("steps", [1, 5])
def test_a_loop_that_never_calls_step_is_told_once_what_to_do(steps):
    model = mlp(depth=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gs.watch(model) as mon:
            for _ in range(steps):
                model(torch.randn(4, 16)).sum().backward()
                opt.step()
                opt.zero_grad()
            mon.report()
        mon.report()
    (told,) = _gs_warnings(caught)
    assert f"the optimizer stepped {min(steps, 2)} time(s)" in told
    assert "call mon.step() once per optimizer step, after backward" in told
    assert len([e for e in mon.report().errors if "mon.step() was never called" in e]) == 1


def test_two_optimizers_each_stepping_once_per_step_are_not_told_anything():
    model = mlp(depth=2)
    opt_a = torch.optim.SGD(list(model.parameters())[:2], lr=0.1)
    opt_b = torch.optim.SGD(list(model.parameters())[2:], lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gs.watch(model, every=1) as mon:
            for _ in range(3):
                model(torch.randn(4, 16)).sum().backward()
                opt_a.step()
                opt_b.step()
                mon.step()
    assert _gs_warnings(caught) == []
    assert not mon.report().errors


def test_forward_only_steps_report_no_backward_seen():
    model = mlp(depth=2)
    with gs.watch(model, every=1) as mon:
        for _ in range(3):
            model(torch.randn(4, 16))  # gradients enabled, but no backward
            mon.step()
    rep = mon.report()
    assert rep.layers and all(not ls.backward_seen for ls in rep.layers)
    assert all(math.isnan(ls.grad_norm) for ls in rep.layers)
    assert {ls.to_dict()["grad_norm"] for ls in rep.layers} == {"no backward seen"}
    assert rep.to_dict()["history"][0]["layers"][0]["grad_rms"] == "no backward seen"
    assert "no backward seen" in str(rep)
    # a step with a backward is not marked
    with gs.watch(model, every=1) as mon2:
        model(torch.randn(4, 16)).sum().backward()
        mon2.step()
    assert all(ls.backward_seen and math.isfinite(ls.grad_norm) for ls in mon2.report().layers)
    assert "no backward seen" not in str(mon2.report())
