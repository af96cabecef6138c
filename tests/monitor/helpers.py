"""Small models with known answers, and a training loop, for the monitor tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mlp(act: type[nn.Module] = nn.ReLU, depth: int = 4, width: int = 32, d_in: int = 16,
        d_out: int = 4, init: str | None = None, **act_kw) -> nn.Sequential:  # fmt: skip
    layers: list[nn.Module] = []
    for i in range(depth):
        lin = nn.Linear(width if i else d_in, width)
        if init == "he":
            nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
            nn.init.zeros_(lin.bias)
        elif init == "xavier":
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        layers += [lin, act(**act_kw)]
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


def train(model: nn.Module, mon, steps: int = 4, batch: int = 32, d_in: int = 16, d_out: int = 4,
          opt: torch.optim.Optimizer | None = None, lr: float = 1e-2, seed: int = 0,
          shape: tuple[int, ...] | None = None) -> torch.optim.Optimizer:  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        x = torch.randn(*(shape or (batch, d_in)), generator=g)
        y = torch.randint(0, d_out, (x.shape[0],), generator=g)
        out = model(x)
        loss = F.cross_entropy(out.reshape(x.shape[0], -1)[:, :d_out], y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        mon.step()
    return opt


class Block(nn.Module):
    """A transformer-style MLP block with a functional GELU: x + fc2(gelu(fc1(x)))."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, 2 * d)
        self.fc2 = nn.Linear(2 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(x)))  # (B, T, d)


class Stack(nn.Module):
    def __init__(self, n: int = 3, d: int = 16, d_out: int = 4) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(n)])
        self.head = nn.Linear(d, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return self.head(x.relu())
