"""Capture: which modules are activation sites, and the TorchFunctionMode that sees functional
activations (``F.gelu``, ``torch.tanh``, ``x.relu()`` ...).

The mode is pushed only while it is needed: during the discovery forward (the first forward
with gradients: every op is seen, sites are named, "owners" — the modules whose own forward
calls an activation function — are found), and afterwards on logged steps only inside the
owners' forward calls. Other steps run with no mode at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from gradsight.activations import from_function, from_module


def module_sites(root: nn.Module) -> dict[nn.Module, tuple[str, Any]]:
    """Activation modules of ``root`` -> (path, catalog Activation). A module inside a
    recognised activation module (an inner ``nn.SiLU`` of a gated module) is not a site of its
    own: its parent already measures it."""
    found: dict[nn.Module, tuple[str, Any]] = {}
    covered: set[int] = set()
    for name, mod in root.named_modules():
        if id(mod) in covered:
            continue
        act = from_module(mod)
        if act is None:
            continue
        found[mod] = (name, act)
        for sub in mod.modules():
            covered.add(id(sub))
    return found


class SiteMode(TorchFunctionMode):
    """Hands recognised activation calls to ``on_activation``; everything else runs as is.

    ``skip()`` says when to stay out (inside a module site, inside the monitor's own math);
    functions that are not activations are remembered so the next call costs a set lookup.
    """

    def __init__(
        self,
        on_activation: Callable[[Any, Any, Any, tuple[Any, Any]], Any],
        skip: Callable[[], bool],
        on_other: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__()
        self.on_activation = on_activation
        self.skip = skip
        self.on_other = on_other  # discovery: layout hints from every other op
        self.not_activation: set[Any] = set()

    @torch.compiler.disable
    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.skip():
            return func(*args, **kwargs)
        try:
            known_other = func in self.not_activation
        except TypeError:  # unhashable callable: not an activation
            known_other = True
        if not known_other:
            rec = from_function(func, args, kwargs)
            if rec is not None:
                return self.on_activation(func, args, kwargs, rec)
            self.not_activation.add(func)
        if self.on_other is not None:
            self.on_other(func)
        return func(*args, **kwargs)
