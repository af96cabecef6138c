"""The Lightning tests' data, networks and hand-written loop, with no Lightning import (the
fallback test runs them where ``pytorch_lightning`` cannot be imported): scikit-learn's digits
in order, batches of B, SGD with lr 0.1."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gradsight as gs

sklearn_datasets = pytest.importorskip("sklearn.datasets")

B = 32


def digits(n: int = 256) -> TensorDataset:
    d = sklearn_datasets.load_digits()
    x = torch.tensor(d.data[:n] / 16.0, dtype=torch.float32)
    return TensorDataset(x, torch.tensor(d.target[:n]))


def mlp_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))


def cnn_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.GELU(),
        nn.Flatten(), nn.Linear(8 * 6 * 6, 10),
    )  # fmt: skip


def hand_loop(module: nn.Module, steps: int = 4, **kw) -> gs.Report:
    """What the Lightning runs do, written by hand: the watch's report after ``steps`` steps."""
    opt = torch.optim.SGD(module.parameters(), lr=0.1)  # as configure_optimizers
    loader = iter(DataLoader(digits(), batch_size=B, shuffle=False))
    module.train()
    with gs.watch(module, **kw) as mon:
        for _ in range(steps):
            x, y = next(loader)
            F.cross_entropy(module(x), y).backward()
            opt.step()
            opt.zero_grad()
            mon.step()
    return mon.report()
