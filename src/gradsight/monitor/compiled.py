"""How the monitor stays truthful under ``torch.compile``.

Dynamo reads a module's hooks when it traces the module and, by default
(``torch._dynamo.config.skip_nnmodule_hook_guards``), does not look at them again: a hook added
after the first compiled call never runs, and swapping hooks between logged and other steps
either goes unseen or costs a recompile. So once a forward is seen coming from compiled code the
monitor switches to *stable hooks*: the sites are discovered by one extra eager forward inside
the root pre-hook (buffers and RNG restored, so training is unchanged), and the full set of site
and owner hooks is registered before dynamo traces the submodules. From then on the set never
changes; the hooks (graph breaks, run eagerly) do nothing on steps that are not logged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_WRAPPER = "compile_wrapper"  # the function torch.compile wraps a callable in (torch/_dynamo/eval_frame.py)
_DEPTH = 32  # caller frames looked at, at most


def called_from_compiled_code() -> bool:
    """Whether a frame of ``torch.compile``'s wrapper is on the caller's stack (cheap: a walk of at
    most _DEPTH frames)."""
    f = sys._getframe(1)
    for _ in range(_DEPTH):
        if f is None:
            return False
        code = f.f_code
        if code.co_name == _WRAPPER and code.co_filename.endswith("eval_frame.py"):
            return True
        f = f.f_back
    return False


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model`` was compiled before it was watched: ``torch.compile(model)`` or
    ``model.compile()``."""
    return isinstance(getattr(model, "_orig_mod", None), nn.Module) or any(
        getattr(m, "_compiled_call_impl", None) is not None for m in model.modules()
    )


@contextmanager
def side_effect_free(model: nn.Module) -> Iterator[None]:
    """Run an extra forward of ``model`` that leaves no trace: the random number generator of the
    model's device and every buffer (BatchNorm's running statistics) are put back afterwards."""
    dev = next((t.device for t in model.parameters()), torch.device("cpu"))
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    devices: list[Any] = [] if dev.type == "cpu" else [dev]  # the CPU generator is always forked
    with torch.random.fork_rng(devices=devices, device_type=None if dev.type == "cpu" else dev.type):
        try:
            yield
        finally:
            with torch.no_grad():
                for b, old in saved:
                    b.copy_(old)
