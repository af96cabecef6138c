"""Saturation as people mean it: planted faults raise a ``saturation`` finding naming exactly
the affected sites; healthy nets (Xavier tanh, PyTorch-default sigmoid, GELU transformers) raise
none; only activations the catalog says saturate can be saturated."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tests.monitor.helpers import mlp, train
from torch import nn

import gradsight as gs
from gradsight import theory


def _tanh_mlp(depth: int = 5, width: int = 64, d_in: int = 32, gain: float = 1.0, seed: int = 0):
    torch.manual_seed(seed)
    model = mlp(nn.Tanh, depth=depth, width=width, d_in=d_in, d_out=10)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=gain)
            nn.init.zeros_(m.bias)
    return model


def _watch(model, steps=3, every=1, window=8, **kw):
    with gs.watch(model, every=every, window=window) as mon:
        train(model, mon, steps=steps, **kw)
    return mon.report()


def _saturation(rep):
    found = [f for f in rep.findings if f.kind == "saturation"]
    assert len(found) <= 1
    return found[0] if found else None


def test_a_tanh_mlp_scaled_x12_is_saturated_at_every_site():
    model = _tanh_mlp()
    with torch.no_grad():
        for m in list(model)[:-1]:
            if isinstance(m, nn.Linear):
                m.weight.mul_(12.0)
    rep = _watch(model, d_in=32, d_out=10, batch=64)
    f = _saturation(rep)
    assert f is not None and f.severity == "critical"
    assert f.layers == ("1", "3", "5", "7", "9")
    for ls in rep.layers:  # most pre-activations past the knee, the valve a tenth open at most
        assert ls.saturated_fraction > 0.5 and ls.mean_derivative < 0.15


def test_one_tanh_layer_scaled_x50_is_the_only_site_named():
    model = _tanh_mlp()
    with torch.no_grad():
        model[4].weight.mul_(50.0)  # feeds site "5"
    rep = _watch(model, d_in=32, d_out=10, batch=64)
    f = _saturation(rep)
    assert f is not None and f.layers == ("5",)
    assert rep.layer("5").mean_derivative < 0.15
    assert all(rep.layer(n).mean_derivative > 0.5 for n in ("1", "3", "7", "9"))


@pytest.mark.parametrize(("k", "severity"), [(15, None), (16, "warning"), (31, "warning"), (32, "critical")])
def test_the_share_thresholds_are_a_quarter_and_a_half_of_the_pre_activations(k, severity):
    model = _tanh_mlp(depth=2)
    with torch.no_grad():
        model[0].weight.mul_(0.05)  # the other units stay near z = 0, far from the tails
        model[0].bias[:k] = 50.0  # k of 64 units pinned at +1: tanh'(50) = 0
    rep = _watch(model, d_in=32, d_out=10, lr=0.0)
    assert rep.layer("1").saturated_fraction == k / 64
    f = _saturation(rep)
    if severity is None:
        assert f is None
    else:
        assert f.layers == ("1",) and f.severity == severity
        assert f.evidence["saturated_fraction"] == {"1": k / 64}
        assert f.evidence["opening"]["1"] == pytest.approx(rep.layer("1").mean_derivative)


@pytest.mark.parametrize(("z", "fires"), [(4.5, True), (1.0, False)], ids=["at-the-knee", "open"])
def test_pre_activations_crowding_the_knee_are_saturation_too(z, fires):
    """sigmoid at z = 4.5 passes f' = 0.0108 (4 % of its 1/4 maximum): no pre-activation is
    past the 1 % line (|z| > 5.99), but the valve is a twenty-fifth open."""
    model = nn.Sequential(nn.Linear(8, 16), nn.Sigmoid(), nn.Linear(16, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(z)
    rep = _watch(model, d_in=8, d_out=2, lr=0.0)
    ls = rep.layer("1")
    assert ls.saturated_fraction == 0.0
    opening = torch.sigmoid(torch.tensor(z)) * torch.sigmoid(torch.tensor(-z)) / 0.25
    assert ls.mean_derivative / 0.25 == pytest.approx(opening.item(), rel=1e-5)
    f = _saturation(rep)
    assert (f is not None) is fires
    if fires:
        assert f.layers == ("1",) and f.severity == "warning"
        assert f.evidence["opening"]["1"] == pytest.approx(opening.item(), rel=1e-5)


def test_the_window_pools_the_saturated_pre_activations_of_its_steps():
    model = _tanh_mlp(depth=1)
    with torch.no_grad():
        model[0].weight.mul_(0.05)
    g = torch.Generator().manual_seed(0)
    with gs.watch(model, every=1, window=4) as mon:
        for step in range(4):
            with torch.no_grad():
                model[0].bias[:32] = 50.0 if step < 2 else 0.0  # half the units, half the steps
            model(torch.randn(16, 32, generator=g)).square().mean().backward()
            model.zero_grad()
            mon.step()
    assert mon.report().layer("1").saturated_fraction == 0.25


@pytest.mark.parametrize("q", [1.0, 4.0, 16.0], ids=["q1", "q4", "q16"])
def test_the_saturated_fraction_is_what_theory_predicts_for_gaussian_pre_activations(q):
    torch.manual_seed(0)
    d = 64
    model = nn.Sequential(nn.Linear(d, d), nn.Tanh())
    with torch.no_grad():  # z = sqrt(q) x with x ~ N(0, 1): exactly N(0, q) per element
        model[0].weight.copy_(math.sqrt(q) * torch.eye(d))
        model[0].bias.zero_()
    with gs.watch(model, every=1) as mon:
        model(torch.randn(512, d)).sum().backward()
        mon.step()
    got = mon.report().layer("1").saturated_fraction
    want = theory.saturation_fraction("tanh", q)  # P(|z| > 2.99)
    n = 512 * d
    assert abs(got - want) < 5 * math.sqrt(want * (1 - want) / n) + 1e-4


@pytest.mark.parametrize(
    "name", [n for n in gs.activations.names() if not gs.activation(n).saturates and not gs.activation(n).is_gated]
)
def test_only_activations_the_catalog_says_saturate_can_be_saturated(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), gs.activation(name).module(), nn.Linear(32, 4))
    with torch.no_grad():
        model[0].weight.mul_(50.0)  # pre-activations far out on both sides
    rep = _watch(model, steps=2, d_in=16, d_out=4)
    assert rep.layers[0].saturated_fraction == 0.0
    assert _saturation(rep) is None


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32)
    return (X - X.mean(0)) / (X.std(0) + 1e-6), torch.tensor(y)


def _train_on_digits(model, steps, lr):
    X, y = _digits()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    reports = []
    with gs.watch(model, every=10) as mon:
        for step in range(steps):
            idx = torch.randint(0, len(X), (128,), generator=g)
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
            opt.zero_grad()
            mon.step()
            if step in (0, steps - 1):
                reports.append(mon.report())
    return reports


def test_a_xavier_tanh_mlp_is_not_saturated_before_or_after_training():
    torch.manual_seed(0)
    model = mlp(nn.Tanh, depth=4, width=64, d_in=64, d_out=10)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("tanh"))
            nn.init.zeros_(m.bias)
    for rep in _train_on_digits(model, steps=100, lr=0.05):
        assert _saturation(rep) is None, [str(f) for f in rep.findings]
        assert max(ls.saturated_fraction for ls in rep.layers) < 0.1


def test_a_pytorch_default_sigmoid_mlp_is_not_saturated_before_or_after_training():
    torch.manual_seed(0)
    model = mlp(nn.Sigmoid, depth=3, width=64, d_in=64, d_out=10)
    for rep in _train_on_digits(model, steps=100, lr=0.1):
        assert _saturation(rep) is None, [str(f) for f in rep.findings]


@pytest.mark.parametrize("scale", [1.0, 50.0], ids=["default", "x50"])
def test_a_gelu_transformer_is_never_saturated(scale):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16)
    model = transformers.GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for block in model.transformer.h:
            block.mlp.c_fc.weight.mul_(scale)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with gs.watch(model, every=1) as mon:
        for _ in range(3):
            ids = torch.randint(0, 64, (4, 16))
            model(ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad()
            mon.step()
    rep = mon.report()
    assert len(rep.layers) == 2 and {ls.activation for ls in rep.layers} == {"gelu"}
    assert all(ls.saturated_fraction == 0.0 for ls in rep.layers)
    assert _saturation(rep) is None
