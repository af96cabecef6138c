"""The one-kernel output derivatives of relu / sigmoid / tanh agree with the catalog's."""

import pytest
import torch
from torch import nn

from gradsight.activations import from_module
from gradsight.monitor.sites import _fast_output_derivative


@pytest.mark.parametrize("module", [nn.ReLU(), nn.Sigmoid(), nn.Tanh()])
def test_fast_output_derivative_matches_catalog(module: nn.Module) -> None:
    act = from_module(module)
    x = torch.cat([torch.randn(64, 32) * 6, torch.zeros(1, 32), -torch.zeros(1, 32)])
    y = module(x)
    fast = _fast_output_derivative(act)(y)
    ref = act.output_derivative(y)
    assert fast.shape == ref.shape and fast.dtype == ref.dtype
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=0)
    if act.name == "relu":  # dead-unit counts must be exact
        assert torch.equal(fast.sum(0), ref.sum(0))
