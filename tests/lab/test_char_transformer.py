"""The character transformer: FFN forms, their derivatives as the FFN uses them, parameter parity."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import gradsight as gs
from gradsight.errors import GradsightError
from gradsight.lab.models import CharTransformer, CharTransformerConfig
from gradsight.lab.models.char_transformer import FeedForward, ffn_hidden_width

FORMS = ("relu", "gelu", "silu", "relu2", "reglu", "geglu", "swiglu")
GATED = {"reglu": "relu", "geglu": "gelu", "swiglu": "silu"}


def _ffn64(form: str, d: int = 16) -> FeedForward:
    torch.manual_seed(0)
    return FeedForward(
        CharTransformerConfig(vocab_size=10, d_model=d, n_heads=2, ffn=form)
    ).double()


@pytest.mark.parametrize("form", ["reglu", "geglu", "swiglu"])
def test_gated_derivatives_match_autograd_in_the_ffn(form: str) -> None:
    """The catalog's (df/da, df/db) times the upstream gradient is what autograd sends to up(x)."""
    ffn = _ffn64(form)
    x = torch.randn(3, 5, 16, dtype=torch.float64)  # (B, T, d)
    u = ffn.up(x).detach().requires_grad_(True)  # (B, T, 2h')
    h = ffn.act(u)  # (B, T, h')
    g = torch.randn_like(h)  # upstream dL/dh
    (h * g).sum().backward()
    a, b = u.detach().chunk(2, dim=-1)
    act = gs.activation(form)
    da, db = act.derivative(a, b)
    expected = torch.cat([da * g, db * g], dim=-1)
    assert h.shape[-1] == ffn.hidden == ffn.up.out_features // 2
    torch.testing.assert_close(u.grad, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, act(a, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", ["relu2", "relu", "gelu", "silu"])
def test_plain_derivatives_match_autograd_in_the_ffn(form: str) -> None:
    ffn = _ffn64(form)
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    u = ffn.up(x).detach().requires_grad_(True)  # (B, T, h)
    h = ffn.act(u)
    g = torch.randn_like(h)
    (h * g).sum().backward()
    act = gs.activation(form)
    torch.testing.assert_close(u.grad, act.derivative(u.detach()) * g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, act(u.detach()), rtol=1e-12, atol=1e-12)


def test_relu2_is_the_square_of_relu_in_the_ffn() -> None:
    ffn = _ffn64("relu2")
    x = torch.randn(4, 16, dtype=torch.float64)
    torch.testing.assert_close(ffn(x), ffn.down(F.relu(ffn.up(x)) ** 2), rtol=0, atol=0)


@pytest.mark.parametrize("d_model,ffn_mult", [(64, 4.0), (128, 4.0), (48, 2.0)])
@pytest.mark.parametrize("form", FORMS[1:])
def test_parameter_counts_match_relu_within_2_percent(
    form: str, d_model: int, ffn_mult: float
) -> None:
    def count(f: str, ffn_only: bool) -> int:
        cfg = CharTransformerConfig(
            vocab_size=103, d_model=d_model, n_heads=4, ffn=f, ffn_mult=ffn_mult
        )
        return CharTransformer(cfg).num_params(ffn_only=ffn_only)

    for ffn_only in (True, False):
        base, other = count("relu", ffn_only), count(form, ffn_only)
        assert abs(other - base) / base < 0.02, (form, ffn_only, base, other)


def test_gated_hidden_width_is_two_thirds() -> None:
    assert ffn_hidden_width(64, 4.0, gated=False) == 256
    assert ffn_hidden_width(64, 4.0, gated=True) == 171  # 2/3 * 256 = 170.67
    cfg = CharTransformerConfig(vocab_size=10, d_model=64, ffn="swiglu")
    assert cfg.is_gated and cfg.ffn_hidden == 171
    # plain: 2 d h = 32768 weights; gated: 3 d h' = 32832 (+0.2 %)
    assert CharTransformer(cfg).num_params(ffn_only=True) == 2 * 3 * 64 * 171


@pytest.mark.parametrize("form", FORMS)
def test_forward_shapes_and_loss(form: str) -> None:
    model = CharTransformer(
        CharTransformerConfig(vocab_size=11, context=8, d_model=16, n_heads=2, ffn=form)
    )
    idx, targets = torch.randint(0, 11, (2, 3, 8))
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 8, 11)
    # at init logits ~ N(0, 1): loss ~ ln(V) + 1/2 on targets unrelated to the input
    assert math.log(11) - 0.2 < loss.item() < math.log(11) + 1.0
    assert [n for n, _ in model.ffn_sites()] == ["blocks.0.ffn.act", "blocks.1.ffn.act"]


def test_attention_is_causal() -> None:
    model = CharTransformer(CharTransformerConfig(vocab_size=11, context=8, d_model=16, n_heads=2))
    idx = torch.randint(0, 11, (1, 8))
    changed = idx.clone()
    changed[0, 5] = (idx[0, 5] + 1) % 11
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_head_is_tied_to_the_embedding() -> None:
    model = CharTransformer(CharTransformerConfig(vocab_size=11, d_model=16, n_heads=2))
    assert model.head.weight is model.tok.weight


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ffn": "swiglue"}, r"unknown ffn form 'swiglue'; did you mean 'swiglu'\?"),
        ({"n_heads": 3}, r"n_heads=3 must divide d_model=64"),
        ({"context": 0}, r"context must be a positive int, got 0"),
        ({"ffn_mult": 0.0}, r"ffn_mult must be > 0, got 0.0"),
    ],
    ids=["unknown-form", "heads", "context", "mult"],
)
def test_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(GradsightError, match=match):
        CharTransformerConfig(vocab_size=10, **kwargs)


def test_sequence_longer_than_context_is_an_error() -> None:
    model = CharTransformer(CharTransformerConfig(vocab_size=11, context=4, d_model=16, n_heads=2))
    with pytest.raises(GradsightError, match="sequence length 5 exceeds context 4"):
        model(torch.zeros(1, 5, dtype=torch.long))
