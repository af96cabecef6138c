"""Shared test set-up: headless plots, fixed seeds, one torch thread per xdist worker."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "agg")

import numpy as np
import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers on two cores: one intra-op thread each avoids oversubscription
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fixed_seeds() -> None:
    np.random.seed(0)
    torch.manual_seed(0)
