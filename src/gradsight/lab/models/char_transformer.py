"""A small decoder-only character transformer whose feed-forward activation is a parameter.

Pre-LayerNorm GPT layout (as in nanoGPT), learned positions, causal self-attention through
``F.scaled_dot_product_attention(is_causal=True)``, a tied output head. The feed-forward
block (the "FFN") is where the activation lives::

    plain  (relu, gelu, silu, relu2, any catalog name):  FFN(x) = W2 f(W1 x)          W1: (h, d)
    gated  (reglu, geglu, swiglu):                      FFN(x) = W2 (f(W x) * (V x))  [W; V]: (2h', d)

With ``h = ffn_mult * d`` for plain forms and ``h' = round(2h / 3)`` for gated forms the FFN
holds ``2dh`` or ``3dh'`` weights: equal up to rounding (Shazeer 2020, "GLU Variants Improve
Transformer", keeps parameters and compute equal the same way). No FFN biases, as in Shazeer.
Linear weights start at ``N(0, 1/fan_in)`` (residual output projections also ``/ sqrt(2L)``),
the tied token embedding / head at ``N(0, 1/d)``, positions at ``N(0, 0.02^2)``.

The activation module sits at ``blocks.{i}.ffn.act``; its output ``(B, T, h)`` is the hidden
activation whose zeros, dead units and gradient :func:`gradsight.watch` and the ``llm_ffn``
experiment measure.

>>> cfg = CharTransformerConfig(vocab_size=103, ffn="swiglu")
>>> model = CharTransformer(cfg)
>>> logits, loss = model(torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, 8, dtype=torch.long))
>>> logits.shape                                           # (B, T, vocab)
torch.Size([2, 8, 103])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gradsight import activations
from gradsight.errors import GradsightError, unknown_choice

GATED_FORMS: tuple[str, ...] = ("reglu", "geglu", "swiglu")


def ffn_forms() -> list[str]:
    """Every name the feed-forward block accepts: the activation catalog's names."""
    return list(activations.names())


def _activation(name: str) -> activations.Activation:
    known = ffn_forms()
    if name not in known:
        raise unknown_choice("ffn form", name, known)
    return activations.activation(name)


def ffn_hidden_width(d_model: int, ffn_mult: float, gated: bool) -> int:
    """Hidden units of the FFN: ``h = round(ffn_mult * d)``; gated forms ``round(2h / 3)``.

    >>> ffn_hidden_width(64, 4, gated=False), ffn_hidden_width(64, 4, gated=True)
    (256, 171)
    """
    h = int(round(ffn_mult * d_model))
    return int(round(2 * h / 3)) if gated else h


@dataclass
class CharTransformerConfig:
    """Size and feed-forward form of a :class:`CharTransformer`."""

    vocab_size: int  # characters in the vocabulary
    context: int = 64  # longest sequence T; learned positions 0..T-1
    d_model: int = 64  # residual width d
    n_layers: int = 2  # transformer blocks
    n_heads: int = 4  # attention heads; must divide d_model
    ffn: str = "gelu"  # feed-forward form: any catalog activation name (relu2, swiglu, ...)
    ffn_mult: float = 4.0  # plain hidden width h = ffn_mult * d; gated forms use round(2h/3)

    def __post_init__(self) -> None:
        for field_name in ("vocab_size", "context", "d_model", "n_layers", "n_heads"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or value < 1:
                raise GradsightError(f"{field_name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise GradsightError(f"n_heads={self.n_heads!r} must divide d_model={self.d_model!r}")
        if not self.ffn_mult > 0:
            raise GradsightError(f"ffn_mult must be > 0, got {self.ffn_mult!r}")
        _activation(self.ffn)  # fail at construction, with a did-you-mean

    @property
    def is_gated(self) -> bool:
        return bool(_activation(self.ffn).is_gated)

    @property
    def ffn_hidden(self) -> int:
        return ffn_hidden_width(self.d_model, self.ffn_mult, self.is_gated)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: ``softmax(QK^T / sqrt(d_head) + causal mask) V``."""

    def __init__(self, cfg: CharTransformerConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        q, k, v = self.qkv(x).split(C, dim=-1)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, C/H)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class FeedForward(nn.Module):
    """``down(act(up(x)))``; for gated forms ``act`` splits ``up(x)`` into ``a, b`` and returns
    ``f(a) * b``.

    Shapes: ``x (B, T, d) -> up (B, T, h or 2h') -> act (B, T, h or h') -> down (B, T, d)``.
    """

    def __init__(self, cfg: CharTransformerConfig) -> None:
        super().__init__()
        act = _activation(cfg.ffn)
        h = cfg.ffn_hidden
        self.form = cfg.ffn
        self.hidden = h
        self.up = nn.Linear(cfg.d_model, 2 * h if act.is_gated else h, bias=False)
        self.act = act.module()
        self.down = nn.Linear(h, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))  # (B, T, d)


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln1(x))`` then ``x + ffn(ln2(x))``."""

    def __init__(self, cfg: CharTransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # (B, T, C)
        return x + self.ffn(self.ln2(x))  # (B, T, C)


class CharTransformer(nn.Module):
    """Decoder-only character model: embeddings -> blocks -> LayerNorm -> tied head.

    ``forward(idx (B, T), targets (B, T) | None) -> (logits (B, T, V), loss | None)``, loss in
    nats per character (mean cross-entropy).
    """

    def __init__(self, cfg: CharTransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied, as in GPT-2
        self.apply(self._init)
        # the tied token embedding / head is the head's Linear of fan-in d: logits start ~N(0, 1)
        nn.init.normal_(self.tok.weight, 0.0, 1.0 / math.sqrt(cfg.d_model))
        # GPT-2: residual-branch outputs scaled by 1/sqrt(2L) so the stream's variance stays ~1
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "ffn.down.weight")):
                nn.init.normal_(p, 0.0, 1.0 / math.sqrt(p.shape[1] * 2 * cfg.n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        # Linear weights ~ N(0, 1/fan_in): pre-activations start at unit scale at any width.
        # GPT-2's fixed std 0.02 is that scale only near d = 2500; at d = 64 it starts the
        # FFN pre-activations at std ~0.16, and a gated unit f(a) * b -- a product of two such
        # numbers -- then starts ~10x smaller than a plain one and learns visibly later.
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.in_features))
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def ffn_sites(self) -> list[tuple[str, nn.Module]]:
        """``(name, module)`` of each FFN activation, in forward order (``blocks.0.ffn.act``)."""
        return [(f"blocks.{i}.ffn.act", b.ffn.act) for i, b in enumerate(self.blocks)]

    def num_params(self, ffn_only: bool = False) -> int:
        """Trainable parameters (tied weights counted once); ``ffn_only``: FFN weights only."""
        if ffn_only:
            return sum(p.numel() for b in self.blocks for p in b.ffn.parameters())
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape  # (B, T)
        if T > self.cfg.context:
            raise GradsightError(f"sequence length {T} exceeds context {self.cfg.context}")
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        logits = self.head(self.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))
        return logits, loss
