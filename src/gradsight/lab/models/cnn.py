"""A small convolutional network, 1-D (MNIST-1D signals) or 2-D (8×8 digits).

``CNN(input_shape, n_classes, channels, activation, init)`` is

    x → [Conv(k=3, pad=1) → f] per entry of ``channels``, with a 2× max-pool after every
        second conv → global average pool → Linear(channels[-1], n_classes)

``input_shape`` is (C, L) for 1-D or (C, H, W) for 2-D; inputs may come flattened (B, C·L)
or (B, C·H·W), as the lab's data sets store them, and are reshaped inside. Conv weights
follow the same init names as :class:`~gradsight.lab.models.MLP` (fan-in = C_in·k).

>>> net = CNN((1, 8, 8), 10, channels=(8, 16), activation="relu")
>>> net(torch.zeros(4, 64)).shape
torch.Size([4, 10])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from gradsight.errors import GradsightError
from gradsight.lab.models.mlp import check_init, init_linear, resolve_activation


class CNN(nn.Module):
    """A small CNN for 1-D or 2-D inputs.

    Args:
        input_shape: (C, L) or (C, H, W) of one sample.
        n_classes: number of outputs.
        channels: output channels of each conv layer (default (16, 32)).
        activation: catalog name or :class:`gradsight.Activation`.
        init: one of ``pytorch_default | xavier | he | lecun | orthogonal``.
        bias_init: None (init's default) or a constant for every bias.
        seed: when given, initialisation uses its own generator.

    Shape: (B, C·L…) or (B, C, L…) → (B, n_classes).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        n_classes: int,
        channels: Sequence[int] = (16, 32),
        activation: Any = "relu",
        init: str = "pytorch_default",
        bias_init: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) not in (2, 3) or min(self.input_shape) < 1:
            raise GradsightError(
                f"input_shape must be (C, L) or (C, H, W) with positive sizes, got {input_shape!r}"
            )
        if not channels or min(channels) < 1:
            raise GradsightError(
                f"channels must be a non-empty list of positive ints, got {channels!r}"
            )
        self.init = check_init(init)
        self.bias_init = bias_init
        self.act = resolve_activation(activation)
        dims = len(self.input_shape) - 1
        conv_cls = nn.Conv1d if dims == 1 else nn.Conv2d
        pool_cls = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
        layers: list[nn.Module] = []
        c_in, size = self.input_shape[0], min(self.input_shape[1:])
        for i, c_out in enumerate(channels):
            layers += [conv_cls(c_in, c_out, kernel_size=3, padding=1), self.act.module()]
            if i % 2 == 1 and size >= 4:
                layers.append(pool_cls(2))
                size //= 2
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, n_classes)
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int | None = None) -> None:
        """Re-draw every weight and bias under the model's ``init`` and ``bias_init``."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        for m in self.features:
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                init_linear(m, self.init, self.bias_init, gen)
        init_linear(self.head, self.init, self.bias_init, gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.input_shape)  # (B, C, L) or (B, C, H, W)
        x = self.features(x)  # (B, C_last, L'…)
        x = x.flatten(2).mean(dim=2)  # (B, C_last) global average pool
        return self.head(x)  # (B, n_classes)
