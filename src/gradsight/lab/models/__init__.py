"""The lab's models: an MLP with named inits, a small CNN, a transformer block (functional GELU).

>>> from gradsight.lab.models import MLP
>>> MLP(64, 10, depth=5, width=128, activation="tanh", init="xavier").variances()[1]
(1.0, 0.0)
"""

from __future__ import annotations

from gradsight.lab.models.block import Block, BlockConfig, FeedForward, SelfAttention
from gradsight.lab.models.char_transformer import CharTransformer, CharTransformerConfig  # noqa: F401
from gradsight.lab.models.cnn import CNN
from gradsight.lab.models.mlp import INITS, MLP, check_init, init_linear, weight_variance

__all__ = [
    "CNN",
    "INITS",
    "MLP",
    "Block",
    "BlockConfig",
    "FeedForward",
    "SelfAttention",
    "check_init",
    "init_linear",
    "weight_variance",
]
