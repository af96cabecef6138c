"""Small helpers shared by the monitor: the never-crash guard, model unwrapping, tensor walks."""

from __future__ import annotations

import functools
import math
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import nn

F = TypeVar("F", bound=Callable[..., Any])


class GradsightWarning(RuntimeWarning):
    """Something inside the monitor failed; the user's training went on, the failure is in
    ``report.errors``."""


class ErrorLog:
    """Failures inside hooks: recorded in full, warned about once per place."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._warned: set[str] = set()

    def record(self, where: str, exc: BaseException) -> None:
        line = f"{where}: {type(exc).__name__}: {exc}"
        self.errors.append(line + "\n" + "".join(traceback.format_exception(exc)[-3:]))
        if where not in self._warned:
            self._warned.add(where)
            warnings.warn(
                f"gradsight monitor: {line} (training continues; see report().errors)",
                GradsightWarning,
                stacklevel=3,
            )

    def note(self, where: str, message: str) -> None:
        """A limit of what the monitor can measure (no exception): in ``errors`` and warned
        once per place, like a failure."""
        line = f"{where}: {message}"
        self.errors.append(line)
        if where not in self._warned:
            self._warned.add(where)
            warnings.warn(f"gradsight monitor: {line} (see report().errors)", GradsightWarning, stacklevel=3)


def guarded(where: str) -> Callable[[F], F]:
    """Decorate a Monitor method used as a hook: an exception becomes a record, never a crash
    in the user's loop. The method's object must have ``self.log: ErrorLog``."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the contract: never crash the loop
                self.log.record(where, exc)
                return None

        return inner  # type: ignore[return-value]

    return wrap


def unwrap(model: nn.Module) -> nn.Module:
    """The module whose ``named_modules`` give the names users know: DDP's ``.module`` and
    ``torch.compile``'s ``._orig_mod`` are stripped."""
    seen = 0
    while seen < 8:
        seen += 1
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
            continue
        if isinstance(model, nn.parallel.DistributedDataParallel) or type(model).__name__ in (
            "DataParallel",
            "DistributedDataParallel",
        ):
            model = model.module
            continue
        break
    return model


# module-path segments that wrappers insert between a model's own modules: FSDP1's
# FullyShardedDataParallel, activation checkpointing's wrapper, torch.compile's OptimizedModule
WRAPPER_SEGMENTS = frozenset({"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"})


def clean_name(path: str) -> str:
    """A module path without the segments wrappers insert: FSDP1's
    ``"_fsdp_wrapped_module.0._fsdp_wrapped_module"`` is ``"0"``, the name of the same layer in
    the model the user wrote.

    >>> clean_name("_fsdp_wrapped_module.blocks.0._checkpoint_wrapped_module.mlp")
    'blocks.0.mlp'
    """
    if not any(seg in path for seg in WRAPPER_SEGMENTS):
        return path
    return ".".join(p for p in path.split(".") if p not in WRAPPER_SEGMENTS)


def named_modules(root: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``root.named_modules()`` with :func:`clean_name` names. A wrapper and the module it
    wraps get the same name (FSDP1's ``FullyShardedDataParallel`` and its inner module)."""
    for name, mod in root.named_modules():
        yield clean_name(name), mod


def tensors_in(obj: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """Every tensor in a (nested) output: tensors, tuples, lists, dicts (ModelOutput too)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth > 4:
        return
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from tensors_in(item, depth + 1)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors_in(item, depth + 1)


def float_tensors(obj: Any) -> list[torch.Tensor]:
    return [t for t in tensors_in(obj) if t.is_floating_point() or t.is_complex()]


# devices where reading a number on the host waits for nothing (no queue of kernels to drain)
SYNC_FREE_DEVICES = ("cpu",)


def _sums_finite_at_once(ts: list[torch.Tensor]) -> bool:
    """True when the sum of the tensors' float32 sums is finite, read with one host sync;
    False also when it cannot tell that way (several devices, complex or unsupported dtypes)."""
    dev = ts[0].device
    if not all(t.device == dev and t.is_floating_point() for t in ts):
        return False
    try:
        total = torch.stack([t.sum(dtype=torch.float32) for t in ts]).sum()
    except RuntimeError:  # a dtype the device cannot sum to float32
        return False
    return math.isfinite(float(total))


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The part of ``t`` held by this process: a DTensor's local shard (no communication),
    any other tensor itself."""
    return t.to_local() if type(t).__name__ == "DTensor" else t


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """True when every element of every tensor is finite, judged from one sum per tensor (a
    non-finite sum, which overflow can also give, is confirmed elementwise). On an
    accelerator the sums of tensors on one device reach the host together: one
    synchronisation for the list, not one per tensor, each of which would drain the queue.

    Never communicates: a DTensor (FSDP2, tensor parallel) is judged by this process's shard.
    Under torch.distributed the monitor makes the verdict one for the whole tensor by
    agreeing it across ranks in one all_reduce (see ``distributed.NonFiniteGuard``); reading
    a sharded sum here instead would start a collective on one rank alone and hang."""
    ts = [d for d in (local_tensor(t).detach() for t in tensors) if d.numel() > 0]
    if len(ts) > 1 and ts[0].device.type not in SYNC_FREE_DEVICES and _sums_finite_at_once(ts):
        return True
    for t in ts:
        s = t.sum()  # one reduction, one scalar to the host
        total = abs(complex(s)) if s.is_complex() else float(s)
        if not math.isfinite(total) and not bool(torch.isfinite(t).all()):
            return False
    return True


def nonfinite_counts(t: torch.Tensor) -> dict[str, Any]:
    """nan/inf counts and the finite range of a tensor (of this rank's shard of a DTensor),
    for evidence."""
    d = local_tensor(t).detach()
    if not d.is_floating_point():
        return {"shape": list(d.shape), "nan": 0, "inf": 0}
    fin = torch.isfinite(d)
    out: dict[str, Any] = {
        "shape": list(d.shape),
        "nan": int(torch.isnan(d).sum()),
        "inf": int(torch.isinf(d).sum()),
    }
    if bool(fin.any()):
        vals = d[fin]
        out["min"] = float(vals.min())
        out["max"] = float(vals.max())
    return out


def no_compile(fn: F) -> F:
    """Keep torch.compile from tracing a hook: it runs eagerly at a graph break, so its Python
    side effects (recording, registering tensor hooks) happen for real."""
    try:
        return torch.compiler.disable(fn)  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - very old torch: nothing to disable
        return fn
