"""The lab's models: inits with known variances, shapes, a causal block with a functional GELU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradsight.errors import GradsightError
from gradsight.lab.models import CNN, INITS, MLP, Block, weight_variance


def test_mlp_structure_and_shapes() -> None:
    m = MLP(64, 10, depth=4, width=32, activation="tanh", init="xavier", seed=0)
    assert len(m.hidden) == 4 and len(m.acts) == 4 and len(m.linears()) == 5
    assert m(torch.randn(7, 64)).shape == (7, 10)
    logits, hs = m.forward_with_preactivations(torch.randn(7, 64))
    assert logits.shape == (7, 10) and [h.shape for h in hs] == [(7, 32)] * 4


def test_forward_with_preactivations_matches_forward() -> None:
    m = MLP(8, 3, depth=3, width=16, activation="relu", seed=1)
    x = torch.randn(5, 8)
    logits, hs = m.forward_with_preactivations(x)
    assert torch.equal(logits, m(x))
    assert torch.equal(hs[0], m.hidden[0](x))


@pytest.mark.parametrize(
    ("init", "sw2"),
    [("pytorch_default", 1 / 3), ("xavier", 1.0), ("he", 2.0), ("lecun", 1.0), ("orthogonal", 1.0)],
)
def test_hidden_weight_variance_matches_the_table(init: str, sw2: float) -> None:
    m = MLP(512, 10, depth=2, width=512, activation="relu", init=init, seed=0)
    w = m.hidden[1].weight  # (512, 512), fan_in = fan_out
    assert weight_variance(init, 512, 512) == pytest.approx(sw2)
    # 262144 entries: the sample variance is within 1 % of its expectation with overwhelming odds
    assert (w.var().item() * 512) == pytest.approx(sw2, rel=0.02)
    assert m.variances()[1][0] == pytest.approx(sw2)


def test_orthogonal_init_is_orthogonal() -> None:
    m = MLP(32, 10, depth=2, width=32, activation="tanh", init="orthogonal", seed=0)
    w = m.hidden[1].weight.double()
    assert torch.allclose(w @ w.T, torch.eye(32, dtype=torch.float64), atol=1e-5)


def test_bias_init() -> None:
    default = MLP(16, 4, depth=2, width=16, init="pytorch_default", seed=0)
    bound = 1 / math.sqrt(16)
    assert default.hidden[1].bias.abs().max() <= bound and default.hidden[1].bias.abs().max() > 0
    assert default.variances()[1][1] == pytest.approx(1 / (3 * 16))
    assert torch.count_nonzero(MLP(16, 4, depth=2, width=16, init="he", seed=0).hidden[0].bias) == 0
    const = MLP(16, 4, depth=2, width=16, init="he", bias_init=0.1, seed=0)
    assert torch.all(const.hidden[1].bias == 0.1) and const.variances()[1][1] == pytest.approx(0.01)


def test_seeded_init_is_reproducible() -> None:
    a = MLP(8, 2, depth=2, width=8, init="he", seed=3)
    torch.rand(10)  # moving the global RNG must not matter to a seeded model
    b = MLP(8, 2, depth=2, width=8, init="he", seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = MLP(8, 2, depth=2, width=8, init="he", seed=4)
    assert not torch.equal(a.hidden[0].weight, c.hidden[0].weight)


def test_every_init_name_builds() -> None:
    for init in INITS:
        assert MLP(4, 2, depth=1, width=4, init=init, seed=0)(torch.zeros(1, 4)).shape == (1, 2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: MLP(4, 2, 2, 8, init="hee"), "unknown init 'hee'; did you mean 'he'"),
        (lambda: MLP(4, 2, 2, 8, init="Xavier"), "did you mean 'xavier'"),
        (lambda: MLP(4, 2, 0, 8), "depth=0"),
        (lambda: MLP(4, 2, 2, 8, activation="rellu"), "did you mean 'relu'"),
        (lambda: MLP(4, 2, 2, 8, activation=3), "catalog name or a gradsight Activation, got 3"),
        (lambda: MLP(4, 2, 2, 8, activation="swiglu"), "'swiglu' is gated"),
        (lambda: CNN((1, 8), 10, channels=()), "channels must be a non-empty list"),
        (lambda: CNN((8,), 10), r"input_shape must be \(C, L\) or \(C, H, W\)"),
        (lambda: Block(d_model=30, n_heads=4), "d_model=30, n_heads=4"),
    ],
)
def test_errors(call, match: str) -> None:
    with pytest.raises(GradsightError, match=match):
        call()


def test_cnn_2d_and_1d() -> None:
    net2 = CNN((1, 8, 8), 10, channels=(8, 16), activation="relu", init="he", seed=0)
    assert net2(torch.randn(3, 64)).shape == (3, 10)
    assert net2(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert isinstance(net2.features[0], nn.Conv2d)
    net1 = CNN((1, 40), 10, channels=(8, 16, 16), activation="tanh", seed=0)
    assert net1(torch.randn(3, 40)).shape == (3, 10) and isinstance(net1.features[0], nn.Conv1d)
    conv = net2.features[2]  # Conv2d(8, 16, 3): fan_in 72, He: Var = 2/72
    assert conv.weight.var().item() == pytest.approx(2 / 72, rel=0.1)


def test_cnn_orthogonal_init_is_orthogonal() -> None:
    # a conv is initialised as the Linear layer (C_out, C_in·k) it computes
    net = CNN((1, 8, 8), 10, channels=(8, 16), activation="relu", init="orthogonal", seed=0)
    w = net.features[0].weight.flatten(1).double()  # (8, 9): orthonormal rows
    assert torch.allclose(w @ w.T, torch.eye(8, dtype=torch.float64), atol=1e-5)
    w = net.features[2].weight.flatten(1).double()  # (16, 72): orthonormal rows
    assert torch.allclose(w @ w.T, torch.eye(16, dtype=torch.float64), atol=1e-5)


def test_block_uses_functional_gelu_and_no_gelu_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = F.gelu

    def counting(x, approximate="none"):
        calls.append(approximate)
        return real(x, approximate=approximate)

    monkeypatch.setattr(F, "gelu", counting)
    blk = Block(d_model=16, n_heads=2)
    assert blk(torch.randn(2, 5, 16)).shape == (2, 5, 16)
    assert calls == ["none"]
    assert not any(isinstance(m, nn.GELU) for m in blk.modules())


def test_block_is_causal() -> None:
    blk = Block(d_model=16, n_heads=4, causal=True)
    x = torch.randn(1, 6, 16)
    y = blk(x)
    x2 = x.clone()
    x2[:, -1] += 1.0  # change only the last token
    y2 = blk(x2)
    assert torch.allclose(y[:, :-1], y2[:, :-1], atol=1e-6)
    assert not torch.allclose(y[:, -1], y2[:, -1])
