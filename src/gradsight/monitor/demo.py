"""Built-in healthy and broken models for ``gradsight watch-demo``: each trains for a few
steps on synthetic data under ``watch`` and shows what the monitor finds.

    healthy    He-initialised 12-layer ReLU MLP                    -> no findings
    sigmoid    20-layer sigmoid MLP, PyTorch default init          -> vanishing_gradients
    dead       ReLU MLP, 60 % of layer-3 units behind bias -1e6    -> dead_units
    saturated  tanh MLP whose layer-2 biases are +-40              -> saturation
    nan        5 blocks, block 2 takes sqrt of a negative number   -> non_finite at blocks.2/sqrt#0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradsight.errors import unknown_choice
from gradsight.monitor.monitor import watch
from gradsight.monitor.report import Report


def _mlp(act: type[nn.Module], depth: int, width: int = 64, d_in: int = 32) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(width if i else d_in, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, 4))


def healthy() -> nn.Module:
    model = _mlp(nn.ReLU, 12)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def sigmoid() -> nn.Module:
    return _mlp(nn.Sigmoid, 20)


def dead() -> nn.Module:
    model = healthy()
    with torch.no_grad():
        model[4].bias[: int(0.6 * 64)] = -1e6  # feeds site "5"
    return model


def saturated() -> nn.Module:
    model = _mlp(nn.Tanh, 6)
    with torch.no_grad():
        model[2].bias.copy_(40.0 * torch.sign(torch.randn(64)))
    return model


class _SqrtBlock(nn.Module):
    def __init__(self, d: int, broken: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.broken = broken

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc(x))
        return torch.sqrt(h - 1.0) if self.broken else h  # (B, d)


class _NanNet(nn.Module):
    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_SqrtBlock(d, i == 2) for i in range(5)])
        self.head = nn.Linear(d, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return self.head(x)


@dataclass(frozen=True)
class Demo:
    name: str
    summary: str
    make: Callable[[], nn.Module]


DEMOS = {
    d.name: d
    for d in (
        Demo("healthy", "He-initialised 12-layer ReLU MLP: expect no findings", healthy),
        Demo("sigmoid", "20-layer sigmoid MLP: expect vanishing gradients", sigmoid),
        Demo("dead", "ReLU MLP with 60% of one layer's units killed: expect dead units", dead),
        Demo("saturated", "tanh MLP with +-40 biases: expect saturation", saturated),
        Demo("nan", "sqrt of a negative number in block 2: expect non_finite at blocks.2", _NanNet),
    )
}


def run(name: str, steps: int = 20, every: int = 1, seed: int = 0) -> Report:
    """Train demo ``name`` for ``steps`` SGD steps on random data under watch; its report."""
    if name not in DEMOS:
        raise unknown_choice("demo", name, DEMOS)
    torch.manual_seed(seed)
    model = DEMOS[name].make()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(seed)
    with watch(model, every=every) as mon:
        for _ in range(steps):
            x = torch.randn(64, 32, generator=g)
            y = torch.randint(0, 4, (64,), generator=g)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
            mon.step()
    return mon.report()
