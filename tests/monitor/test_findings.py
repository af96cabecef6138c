"""Findings: planted faults are diagnosed with evidence and a remedy; healthy nets are quiet."""

from __future__ import annotations

import pytest
import torch
from tests.monitor.helpers import mlp, train
from torch import nn

import gradsight as gs

GRADIENT_KINDS = {"vanishing_gradients", "exploding_gradients"}


def _kinds(rep):
    return {f.kind for f in rep.findings}


def _run(model, steps=6, **kw):
    with gs.watch(model, every=1, **kw) as mon:
        train(model, mon, steps=steps, d_in=64, d_out=10, batch=64)
    return mon.report()


def test_he_initialised_20_layer_relu_mlp_raises_no_gradient_finding():
    torch.manual_seed(0)
    rep = _run(mlp(nn.ReLU, depth=20, width=128, d_in=64, d_out=10, init="he"))
    assert not _kinds(rep) & GRADIENT_KINDS, [str(f) for f in rep.findings]
    assert len(rep.layers) == 20


def test_xavier_tanh_mlp_raises_no_gradient_finding():
    torch.manual_seed(0)
    rep = _run(mlp(nn.Tanh, depth=20, width=128, d_in=64, d_out=10, init="xavier"))
    assert not _kinds(rep) & GRADIENT_KINDS, [str(f) for f in rep.findings]
    assert "saturation" not in _kinds(rep)


def test_20_layer_sigmoid_mlp_has_vanishing_gradients():
    torch.manual_seed(0)
    rep = _run(mlp(nn.Sigmoid, depth=20, width=128, d_in=64, d_out=10))
    (f,) = [f for f in rep.findings if f.kind == "vanishing_gradients"]
    assert f.layers[0] == "1"  # the earliest site is the worst off
    assert f.severity == "critical"
    assert f.evidence["ratio_to_reference"]["1"] < 1e-4
    assert "kaiming_normal_" in f.remedy
    assert f.evidence["reference_site"] == "39"


def test_exploding_gradients_with_oversized_init():
    torch.manual_seed(0)
    model = mlp(nn.ReLU, depth=12, width=128, d_in=64, d_out=10)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=3.0 * (2.0 / m.in_features) ** 0.5)
            nn.init.zeros_(m.bias)
    rep = _run(model, steps=1)
    (f,) = [f for f in rep.findings if f.kind == "exploding_gradients"]
    assert "1" in f.layers
    assert "clip_grad_norm_" in f.remedy


def test_dead_unit_finding_names_the_layer_with_evidence():
    torch.manual_seed(0)
    model = mlp(nn.ReLU, depth=3, width=64, d_in=64, d_out=10, init="he")
    with torch.no_grad():
        model[2].bias[:40] = -1e6
    rep = _run(model, steps=3)
    (f,) = [f for f in rep.findings if f.kind == "dead_units"]
    assert f.layers == ("3",)
    assert f.evidence["dead_units"] == {"3": 40}
    assert f.evidence["dead_fraction"] == {"3": 40 / 64}
    assert f.severity == "critical"
    assert "revive_dead" in f.remedy and "LeakyReLU(0.01)" in f.remedy
    # the message says on how many samples the units were judged: 3 steps of 64 in the window
    assert f.evidence["samples_per_unit"] == {"3": 192} and "(192 per unit)" in f.message


def test_saturation_finding():
    model = mlp(nn.Tanh, depth=3, width=64, d_in=64, d_out=10)
    with torch.no_grad():
        model[2].bias[:40] = 50.0  # tanh'(50) = 0: 40 of 64 units pinned at +1
    rep = _run(model, steps=2)
    (f,) = [f for f in rep.findings if f.kind == "saturation"]
    assert f.layers == ("3",)
    assert f.evidence["saturated_fraction"]["3"] == 40 / 64
    assert rep.layer("3").dead_fraction == 0.0


def test_findings_are_json_safe_and_readable():
    model = mlp(nn.Sigmoid, depth=20, width=32, d_in=64, d_out=10)
    rep = _run(model, steps=1)
    f = rep.findings[0]
    d = f.to_dict()
    assert set(d) == {"kind", "layers", "severity", "message", "evidence", "remedy", "step"}
    assert f.kind in str(f) and "Remedy:" in str(f)


def _finding(rep, kind):
    found = [f for f in rep.findings if f.kind == kind]
    assert len(found) <= 1, [str(f) for f in found]
    return found[0] if found else None


def test_vanishing_remedy_for_saturating_activations_is_to_switch_them():
    torch.manual_seed(0)
    rep = _run(mlp(nn.Sigmoid, depth=20, width=32, d_in=64, d_out=10), steps=1)
    f = _finding(rep, "vanishing_gradients")
    assert f.remedy.startswith("switch the hidden activations to ReLU-family ones")


def test_vanishing_remedy_for_a_too_small_init_is_to_initialise_for_the_activation():
    torch.manual_seed(0)
    model = mlp(nn.ReLU, depth=20, width=64, d_in=64, d_out=10, init="he")
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(0.5)  # half of He: the gradient halves at every layer
    rep = _run(model, steps=1)
    f = _finding(rep, "vanishing_gradients")
    assert f.layers[0] == "1" and f.severity == "critical"
    assert f.remedy.startswith("initialise for the activation")


@pytest.mark.parametrize(
    ("factor", "severity"), [(1.0, None), (30.0, None), (1e3, "warning"), (1e5, "critical")]
)
def test_a_gradient_that_jumps_over_its_median_is_exploding(factor, severity):
    torch.manual_seed(0)
    model = mlp(nn.ReLU, depth=3, width=32, d_in=16, d_out=4, init="he")
    g = torch.Generator().manual_seed(0)
    with gs.watch(model, every=1) as mon:
        for step in range(8):  # no optimizer: the same weights, a similar gradient each step
            loss = model(torch.randn(32, 16, generator=g)).square().mean()
            (loss * (factor if step == 7 else 1.0)).backward()
            model.zero_grad()
            mon.step()
    f = _finding(mon.report(), "exploding_gradients")
    if severity is None:
        assert f is None
        return
    assert f.severity == severity and "jumped" in f.message
    assert f.layers == ("1", "3", "5")
    for growth in f.evidence["growth_over_median"].values():
        assert growth == pytest.approx(factor, rel=0.5)
    assert "clip_grad_norm_" in f.remedy


def test_the_gradient_of_a_depth_that_shrinks_it_is_not_exploding():
    torch.manual_seed(0)
    model = mlp(nn.ReLU, depth=12, width=128, d_in=64, d_out=10, init="he")
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(0.6)
    rep = _run(model, steps=1)
    assert _finding(rep, "exploding_gradients") is None
    assert _finding(rep, "vanishing_gradients") is not None


def test_dead_units_of_an_activation_that_cannot_die_get_the_general_remedy():
    torch.manual_seed(0)
    model = mlp(nn.ELU, depth=3, width=64, d_in=64, d_out=10)
    with torch.no_grad():
        model[2].bias[:40] = -1e4  # elu'(-1e4) = e^-1e4 = 0: no gradient, as dead as a relu's
    rep = _run(model, steps=2)
    f = _finding(rep, "dead_units")
    assert f.layers == ("3",) and f.evidence["dead_units"] == {"3": 40}
    assert "LeakyReLU" not in f.remedy
    assert f.remedy.startswith("revive them with mon.revive_dead(optimizer); lower the learning rate")
