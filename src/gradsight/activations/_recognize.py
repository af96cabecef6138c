"""Recognising PyTorch's own activations as catalog entries: modules and functional calls.

This is the one place that maps PyTorch (and Hugging Face ``transformers.activations``) onto the
catalog; the monitor asks here and keeps no list of its own.

What a ``TorchFunctionMode`` sees was measured on torch 2.13 (tests/test_activations.py pins
it): ``F.relu``, ``F.leaky_relu``, ``F.elu``, ``F.selu``, ``F.silu``, ``F.mish`` arrive as the
Python functions of ``torch.nn.functional`` themselves (the mode is off while they run, so their
inner ``torch.relu`` is not seen again); ``F.gelu``, ``F.softplus``, ``F.relu_``,
``F.leaky_relu_``, ``F.elu_`` are builtins of ``torch._C._nn`` / ``torch``; ``F.sigmoid`` and
``F.tanh`` arrive as ``Tensor.sigmoid`` / ``Tensor.tanh``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gradsight.activations._core import Activation, activation

# ---------------------------------------------------------------------------------------------
# modules


def _hf(module: Any) -> Activation | None:
    """Hugging Face ``transformers.activations`` classes, by class name (transformers is never
    imported). Only classes whose math equals a catalog entry are mapped; ClippedGELU,
    Laplace, SqrtSoftplus, XIELU, Linear are not in the catalog and give None."""
    cls = type(module)
    if not cls.__module__.startswith("transformers."):
        return None
    name = cls.__name__
    if name == "GELUActivation":  # F.gelu, or x/2 (1 + erf(x / sqrt 2)): both exact gelu
        return activation("gelu")
    if name in ("NewGELUActivation", "GELUTanh", "PytorchGELUTanh", "AccurateGELUActivation"):
        return activation("gelu", approximate="tanh")
    if name == "FastGELUActivation":
        # the tanh form with sqrt(2/pi) rounded to 0.7978845608 (relative 4e-12: below float32)
        return activation("gelu", approximate="tanh")
    if name == "QuickGELUActivation":  # x * sigmoid(1.702 x)
        return activation("swish", beta=1.702)
    if name == "SiLUActivation":
        return activation("silu")
    if name == "MishActivation":
        return activation("mish")
    if name == "ReLUSquaredActivation":
        return activation("relu2")
    return None


def _torch_modules() -> dict[type, Callable[[Any], Activation | None]]:
    from torch import nn

    from gradsight.activations import _torch

    def prelu(m: Any) -> Activation | None:
        if m.weight.numel() != 1:
            return None  # per-channel slopes are not one catalog activation
        return activation("prelu", init=float(m.weight.detach().reshape(())))

    return {
        nn.ReLU: lambda m: activation("relu"),
        nn.LeakyReLU: lambda m: activation("leaky_relu", negative_slope=m.negative_slope),
        nn.PReLU: prelu,
        nn.ELU: lambda m: activation("elu", alpha=m.alpha),
        nn.SELU: lambda m: activation("selu"),
        nn.Sigmoid: lambda m: activation("sigmoid"),
        nn.Tanh: lambda m: activation("tanh"),
        nn.Softplus: lambda m: activation("softplus", beta=m.beta, threshold=m.threshold),
        nn.GELU: lambda m: activation("gelu", approximate=m.approximate),
        nn.SiLU: lambda m: activation("silu"),
        nn.Mish: lambda m: activation("mish"),
        _torch.ActivationModule: lambda m: m.activation,
        _torch.GatedActivationModule: lambda m: m.activation,
        _torch.Swish: lambda m: activation("swish", beta=float(m.beta.detach())),
    }


_module_table: dict[type, Callable[[Any], Activation | None]] | None = None


def from_module(module: Any) -> Activation | None:
    """The catalog activation a module computes, or None when it is not one.

    Recognises ``nn.ReLU``, ``nn.LeakyReLU``, ``nn.PReLU`` (one learned slope: its current
    value), ``nn.ELU``, ``nn.SELU``, ``nn.Sigmoid``, ``nn.Tanh``, ``nn.Softplus``, ``nn.GELU``,
    ``nn.SiLU``, ``nn.Mish``, gradsight's own modules (gated ones included) and the Hugging Face
    ``transformers.activations`` classes whose math is a catalog entry (by class name; e.g.
    ``NewGELUActivation`` -> gelu(approximate="tanh"), ``QuickGELUActivation`` ->
    swish(beta=1.702), ``ReLUSquaredActivation`` -> relu2). Exact classes only: a subclass may
    have changed ``forward``.

    >>> import torch.nn as nn
    >>> from_module(nn.LeakyReLU(0.2))
    Activation('leaky_relu', negative_slope=0.2, derivative_at_zero=0.2)
    """
    global _module_table
    if _module_table is None:
        _module_table = _torch_modules()
    make = _module_table.get(type(module))
    if make is not None:
        return make(module)
    return _hf(module)


# ---------------------------------------------------------------------------------------------
# functional calls, as a TorchFunctionMode receives them


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], i: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    if len(args) > i:
        return args[i]
    return default


def _num(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") else value)


_function_table: dict[Any, tuple[Callable[..., Activation], tuple[str, ...]]] | None = None


def _functions() -> dict[Any, tuple[Callable[..., Activation], tuple[str, ...]]]:
    import torch
    import torch.nn.functional as F

    T = torch.Tensor
    nn_ = torch._C._nn

    def fixed(name: str) -> Callable[..., Activation]:
        return lambda a, k: activation(name)

    def leaky(a: Sequence[Any], k: Mapping[str, Any]) -> Activation:
        return activation("leaky_relu", negative_slope=_num(_arg(a, k, 1, "negative_slope", 0.01)))

    def elu(a: Sequence[Any], k: Mapping[str, Any]) -> Activation:
        return activation("elu", alpha=_num(_arg(a, k, 1, "alpha", 1.0)))

    def softplus(a: Sequence[Any], k: Mapping[str, Any]) -> Activation:
        return activation(
            "softplus",
            beta=_num(_arg(a, k, 1, "beta", 1.0)),
            threshold=_num(_arg(a, k, 2, "threshold", 20.0)),
        )

    def gelu(a: Sequence[Any], k: Mapping[str, Any]) -> Activation:
        return activation("gelu", approximate=_arg(a, k, 1, "approximate", "none"))

    table: dict[Any, Callable[..., Activation]] = {}
    for f in (F.relu, torch.relu, T.relu, torch.relu_, T.relu_, F.relu_):
        table[f] = fixed("relu")
    for f in (F.leaky_relu, nn_.leaky_relu, F.leaky_relu_, nn_.leaky_relu_):
        table[f] = leaky
    for f in (F.elu, nn_.elu, F.elu_, nn_.elu_):
        table[f] = elu
    for f in (F.selu, torch.selu, torch.selu_, F.selu_):
        table[f] = fixed("selu")
    for f in (torch.sigmoid, T.sigmoid, torch.sigmoid_, T.sigmoid_, torch.special.expit):
        table[f] = fixed("sigmoid")
    for f in (torch.tanh, T.tanh, torch.tanh_, T.tanh_):
        table[f] = fixed("tanh")
    table[F.softplus] = softplus
    table[F.gelu] = gelu
    table[F.silu] = fixed("silu")
    table[F.mish] = fixed("mish")

    inplace = {torch.relu_, T.relu_, F.relu_, F.leaky_relu_, nn_.leaky_relu_, F.elu_}
    inplace |= {nn_.elu_, torch.selu_, F.selu_, torch.sigmoid_, T.sigmoid_, torch.tanh_, T.tanh_}
    return {f: (make, ("always",) if f in inplace else ()) for f, make in table.items()}


def _lookup(func: Any) -> tuple[Callable[..., Activation], tuple[str, ...]] | None:
    global _function_table
    if _function_table is None:
        _function_table = _functions()
    try:
        return _function_table.get(func)
    except TypeError:  # an unhashable callable is not one of ours
        return None


def from_function(
    func: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> tuple[Activation, Any] | None:
    """The catalog activation and its input tensor for a call seen by a TorchFunctionMode.

    ``func, args, kwargs`` are what ``__torch_function__`` receives. Recognises ``F.relu``,
    ``torch.relu``, ``Tensor.relu`` and the in-place ``relu_`` forms, ``F.leaky_relu``
    (``negative_slope``), ``F.elu`` (``alpha``), ``F.selu``, ``torch.sigmoid`` /
    ``Tensor.sigmoid`` / ``F.sigmoid`` / ``torch.special.expit``, ``torch.tanh`` /
    ``Tensor.tanh`` / ``F.tanh``, ``F.softplus`` (``beta``, ``threshold``), ``F.gelu``
    (``approximate``), ``F.silu`` and ``F.mish``. Anything else gives None.

    >>> import torch, torch.nn.functional as F
    >>> x = torch.zeros(2)
    >>> from_function(F.leaky_relu, (x,), {"negative_slope": 0.2, "inplace": False})[0]
    Activation('leaky_relu', negative_slope=0.2, derivative_at_zero=0.2)
    """
    entry = _lookup(func)
    if entry is None:
        return None
    kwargs = kwargs or {}
    x = args[0] if args else kwargs.get("input")
    if x is None:
        return None
    make, _ = entry
    return make(args, kwargs), x


def is_inplace_call(
    func: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> bool:
    """True when the recognised call overwrites its input (``relu_``, ``inplace=True``), so the
    derivative must come from the output (``Activation.output_derivative``)."""
    entry = _lookup(func)
    if entry is None:
        return False
    kwargs = kwargs or {}
    if entry[1]:
        return True
    import torch.nn.functional as F

    if func in (F.relu, F.selu, F.silu, F.mish):
        return bool(_arg(args, kwargs, 1, "inplace", False))
    if func in (F.leaky_relu, F.elu):
        return bool(_arg(args, kwargs, 2, "inplace", False))
    return False
