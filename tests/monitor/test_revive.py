"""revive_dead: exactly the dead units' incoming weights, biases and optimizer state change."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gradsight as gs


def _setup(opt_name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    dead = [1, 4, 5, 11]
    with torch.no_grad():
        model[2].bias[dead] = -1e6
    opt = {"adam": lambda: torch.optim.Adam(model.parameters(), lr=1e-3),
           "sgd": lambda: torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)}[opt_name]()  # fmt: skip
    return model, opt, dead


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_revive_resets_exactly_the_dead_units(opt_name):
    model, opt, dead = _setup(opt_name)
    with gs.watch(model, every=1) as mon:
        for _ in range(3):
            F.cross_entropy(model(torch.randn(32, 8)), torch.randint(0, 3, (32,))).backward()
            opt.step()
            opt.zero_grad()
            mon.step()
        w0, b0 = model[2].weight.detach().clone(), model[2].bias.detach().clone()
        state0 = {k: v.clone() for k, v in opt.state[model[2].weight].items() if torch.is_tensor(v)}
        other = model[0].weight.detach().clone()
        revived = mon.revive_dead(opt)
    assert revived == {"3": dead}
    live = [u for u in range(16) if u not in dead]
    w, b = model[2].weight.detach(), model[2].bias.detach()
    assert torch.equal(w[live], w0[live]) and torch.equal(b[live], b0[live])
    assert not torch.equal(w[dead], w0[dead])
    assert torch.equal(b[dead], torch.zeros(len(dead)))
    # new rows have the mean norm of the live rows
    assert torch.allclose(w[dead].norm(dim=1), w0[live].norm(dim=1).mean().expand(len(dead)), rtol=1e-5)
    assert torch.equal(model[0].weight, other)
    for key, before in state0.items():
        after = opt.state[model[2].weight][key]
        if after.shape == w.shape:
            assert torch.equal(after[live], before[live])
            assert torch.equal(after[dead], torch.zeros_like(after[dead]))


def test_revived_units_come_back_to_life():
    model, opt, dead = _setup("sgd")
    with gs.watch(model, every=1, window=2) as mon:
        for _ in range(2):
            model(torch.randn(32, 8)).sum().backward()
            mon.step()
        mon.revive_dead(opt)
        for _ in range(2):
            model(torch.randn(32, 8)).sum().backward()
            mon.step()
    assert mon.report().layer("3").dead_fraction == 0.0


def test_revive_through_batchnorm_resets_its_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        model[1].bias[[0, 2]] = -1e3
    with gs.watch(model, every=1) as mon:
        model(torch.randn(16, 8)).sum().backward()
        mon.step()
        assert mon.revive_dead(None) == {"2": [0, 2]}
    assert torch.equal(model[1].bias.detach()[[0, 2]], torch.zeros(2))
    assert torch.equal(model[1].weight.detach()[[0, 2]], torch.ones(2))
    assert mon.report().layers[0].incoming == "0"


def test_nothing_dead_nothing_revived():
    model = nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(), nn.Linear(4, 2))
    with gs.watch(model, every=1) as mon:
        model(torch.randn(8, 4)).sum().backward()
        mon.step()
        assert mon.revive_dead() == {}
