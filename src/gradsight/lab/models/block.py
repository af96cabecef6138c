"""A small pre-norm transformer block whose MLP calls the *functional* ``F.gelu``.

    x = x + Attention(LayerNorm(x))            # multi-head self-attention, optional causal mask
    x = x + W₂ · gelu(W₁ · LayerNorm(x))       # gelu is F.gelu, not an nn.GELU module

The functional GELU is deliberate: it is the case a module-hook monitor misses and
``gradsight.watch`` must intercept (its site is named ``"mlp/gelu#0"`` inside ``Block``).

>>> blk = Block(d_model=32, n_heads=4)
>>> blk(torch.zeros(2, 5, 32)).shape
torch.Size([2, 5, 32])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradsight.errors import GradsightError


@dataclass
class BlockConfig:
    d_model: int = 64  # embedding width C
    n_heads: int = 4  # attention heads; must divide d_model
    mlp_ratio: int = 4  # hidden width of the MLP = mlp_ratio · d_model
    causal: bool = True  # mask future positions (language modelling)
    approximate: str = "none"  # F.gelu's approximate: "none" (erf) or "tanh"
    bias: bool = True  # biases in Linear layers


class SelfAttention(nn.Module):
    """Multi-head self-attention. Shape: (B, T, C) → (B, T, C)."""

    def __init__(self, d_model: int, n_heads: int, causal: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.n_heads, self.causal = n_heads, causal
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(y)


class FeedForward(nn.Module):
    """W₂ · gelu(W₁ x) with the functional ``F.gelu``. Shape: (B, T, C) → (B, T, C)."""

    def __init__(
        self, d_model: int, hidden: int, approximate: str = "none", bias: bool = True
    ) -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise GradsightError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self.fc = nn.Linear(d_model, hidden, bias=bias)
        self.proj = nn.Linear(hidden, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate=self.approximate))  # (B, T, C)


class Block(nn.Module):
    """A pre-norm transformer block (attention + functional-GELU MLP), residual around each.

    Args:
        d_model, n_heads, mlp_ratio, causal, approximate, bias: see :class:`BlockConfig`;
        or pass ``config=BlockConfig(...)``.

    Shape: (B, T, d_model) → (B, T, d_model).
    """

    def __init__(
        self,
        d_model: int = 64,
        n_heads: int = 4,
        mlp_ratio: int = 4,
        causal: bool = True,
        approximate: str = "none",
        bias: bool = True,
        config: BlockConfig | None = None,
    ) -> None:
        super().__init__()
        cfg = config or BlockConfig(d_model, n_heads, mlp_ratio, causal, approximate, bias)
        if cfg.d_model < 1 or cfg.n_heads < 1 or cfg.d_model % cfg.n_heads:
            raise GradsightError(
                f"d_model must be a positive multiple of n_heads; got d_model={cfg.d_model!r}, "
                f"n_heads={cfg.n_heads!r}"
            )
        self.config = cfg
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg.d_model, cfg.n_heads, cfg.causal, cfg.bias)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = FeedForward(cfg.d_model, cfg.mlp_ratio * cfg.d_model, cfg.approximate, cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # (B, T, C)
        return x + self.mlp(self.ln2(x))  # (B, T, C)
