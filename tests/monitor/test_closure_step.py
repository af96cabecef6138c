"""Regression (found by the Lightning callback): with ``optimizer.step(closure)`` the backward
runs inside the step, after the optimizer's pre-step hook; the update ratio was never measured."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

import gradsight as gs

from .helpers import mlp


def _run(model, closure: bool):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    with gs.watch(model, every=1) as mon:
        for _ in range(3):
            x, y = torch.randn(32, 16, generator=g), torch.randint(0, 4, (32,), generator=g)

            def loss_fn(x=x, y=y):
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                return loss

            if closure:
                opt.step(loss_fn)
            else:
                loss_fn()
                opt.step()
            mon.step()
    return mon.report()


def test_update_ratio_is_measured_when_the_backward_runs_inside_step():
    torch.manual_seed(0)
    base = mlp(depth=2)
    plain, closed = _run(copy.deepcopy(base), False), _run(copy.deepcopy(base), True)
    assert all(p.update_ratio is not None and p.update_ratio > 0 for p in closed.params)
    assert closed.params == plain.params and closed.layers == plain.layers
