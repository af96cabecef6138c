"""The activation catalog: one Activation type and one registry, f and f' exact in NumPy and torch.

    >>> import gradsight as gs
    >>> act = gs.activation("relu")
    >>> act([-1.0, 0.0, 2.0]), act.derivative([-1.0, 0.0, 2.0])   # ReLU'(0) = 0, as PyTorch
    (array([0., 0., 2.]), array([0., 0., 1.]))
    >>> gs.activations.names()[:4]
    ['relu', 'leaky_relu', 'prelu', 'elu']

Every other part of gradsight (CLI, plots, scratch backprop, monitor, tests) reads this
registry; nothing keeps a second list. ``from_module`` / ``from_function`` map PyTorch's own
activations (modules and functional calls) onto the catalog.

The catalog (generated from the registry):
"""

from __future__ import annotations

from gradsight.activations import _catalog  # noqa: F401  (registers the entries)
from gradsight.activations._core import (
    REGISTRY,
    Activation,
    GatedActivation,
    activation,
    describe,
    names,
    parse_params,
)
from gradsight.activations._recognize import from_function, from_module, is_inplace_call

__all__ = [
    "Activation",
    "GatedActivation",
    "activation",
    "describe",
    "from_function",
    "from_module",
    "is_inplace_call",
    "names",
    "parse_params",
]

__doc__ = (__doc__ or "") + "\n\n".join(
    "\n".join("    " + line if line else "" for line in describe(spec).splitlines())
    for spec in REGISTRY.values()
)
