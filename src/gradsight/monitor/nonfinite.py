"""Where did the first NaN/Inf come from? Detection is cheap and runs every step; locating
replays the one step where it first appeared, with every op checked.

Detection (every step, a few reductions): the model outputs (forward), the gradient that
reaches the model outputs (the loss), and the gradient that reaches the outputs of the entry
layers (the first weight layers, whose output gradient every backward path passes through).

Locating (once per phase, after the fact): the step's inputs, parameters, buffers and RNG state
were kept; the forward is replayed through ``torch.func.functional_call`` under a
``TorchFunctionMode`` that sees every op:

- forward: the origin is the first op, in forward order, whose output is non-finite while all
  its inputs are finite;
- backward: the forward is replayed with a hook on every op's autograd node and the kept output
  gradient is propagated; the origin is the first node, in backward order, whose incoming
  gradient is finite and whose outgoing gradient is not.

An op is named like a functional site: ``"<module path>/<op>#<k>"`` (``"blocks.2/sqrt#0"``),
and its module (``"blocks.2"``) is reported beside it. The user's model is never mutated.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from gradsight.errors import GradsightError
from gradsight.monitor._util import all_finite, float_tensors, named_modules, nonfinite_counts
from gradsight.monitor.sites import functional_name


@dataclass
class NonFiniteEvent:
    """The first non-finite value of one phase.

    phase    "forward" | "backward" | "input" | "parameters" | "loss"
    site     op-level name (``"blocks.2/sqrt#0"``), a parameter name, or None
    module   the module whose forward ran the op (``"blocks.2"``; ``""`` is the root)
    op       the op (``"sqrt"``) or None
    """

    phase: str
    step: int
    site: str | None = None
    module: str | None = None
    op: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    later_steps: int = 0  # further steps with non-finite values in this phase


@dataclass
class Snapshot:
    """What is needed to replay one step without touching the model."""

    args: Any
    kwargs: Any
    state: dict[str, torch.Tensor]
    rng: torch.Tensor | None
    grad_outputs: list[torch.Tensor | None] | None = None  # per float output, in tensors_in order


def clone_tree(obj: Any) -> Any:
    return tree_map(lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t, obj)


def snapshot_state(model: nn.Module) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        state[name] = p.detach().clone().requires_grad_(p.requires_grad)
    for name, b in model.named_buffers():
        state[name] = b.detach().clone()
    return state


_SKIP_OPS = frozenset({"get", "set", "size", "dim", "numel", "len", "item", "tolist", "is_floating_point", "requires_grad_", "detach"})


def op_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or type(func).__name__
    if name.startswith("__") and name.endswith("__") and len(name) > 4:
        name = name[2:-2]
        if name.startswith(("i", "r")) and name[1:] in ("add", "sub", "mul", "truediv", "pow"):
            name = name[1:]
    return name


class _Frames:
    """Module stack during a replay: (path, per-op call counters)."""

    def __init__(self, model: nn.Module) -> None:
        self.stack: list[tuple[str, dict[str, int]]] = [("", defaultdict(int))]
        self.handles: list[Any] = []
        for name, mod in named_modules(model):
            if mod is model:
                continue
            self.handles.append(mod.register_forward_pre_hook(functools.partial(self._push, name)))
            self.handles.append(mod.register_forward_hook(self._pop, always_call=True))

    def _push(self, name: str, mod: nn.Module, args: Any) -> None:
        self.stack.append((name, defaultdict(int)))

    def _pop(self, mod: nn.Module, args: Any, out: Any) -> None:
        if len(self.stack) > 1:
            self.stack.pop()

    def label(self, op: str) -> tuple[str, str]:
        path, counts = self.stack[-1]
        k = counts[op]
        counts[op] += 1
        return functional_name(path, op, k), path

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class _Locator(TorchFunctionMode):
    def __init__(self, frames: _Frames, backward: bool) -> None:
        super().__init__()
        self.frames = frames
        self.backward = backward
        self.origin: dict[str, Any] | None = None
        self.nodes: list[Any] = []  # keep nodes alive while hooked
        self._seen: set[int] = set()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = op_name(func)
        if name in _SKIP_OPS:
            return func(*args, **kwargs)
        ins = float_tensors((args, kwargs))
        ins_finite = None if self.backward or self.origin is not None else all_finite(ins)
        out = func(*args, **kwargs)
        outs = float_tensors(out)
        if not outs:
            return out
        label, path = self.frames.label(name)
        if not self.backward:
            if self.origin is None and ins_finite and not all_finite(outs):
                self.origin = {
                    "site": label,
                    "module": path,
                    "op": name,
                    "evidence": {
                        "inputs": [nonfinite_counts(t) for t in ins[:4]],
                        "output": nonfinite_counts(outs[0]),
                    },
                }
        else:
            for t in outs:
                node = t.grad_fn
                if node is not None and id(node) not in self._seen:
                    self._seen.add(id(node))
                    self.nodes.append(node)
                    node.register_hook(functools.partial(self._on_node, label, path, name))
        return out

    def _on_node(self, label: str, path: str, name: str, grad_inputs: Any, grad_outputs: Any) -> None:
        if self.origin is not None:
            return
        g_out = [g for g in grad_outputs if isinstance(g, torch.Tensor)]
        g_in = [g for g in grad_inputs if isinstance(g, torch.Tensor)]
        if g_in and all_finite(g_out) and not all_finite(g_in):
            self.origin = {
                "site": label,
                "module": path,
                "op": name,
                "evidence": {
                    "grad_output": [nonfinite_counts(g) for g in g_out[:2]],
                    "grad_input": [nonfinite_counts(g) for g in g_in[:4]],
                },
            }


def _replay(
    model: nn.Module,
    snap: Snapshot,
    backward: bool,
    guard: Callable[[], Any],
) -> dict[str, Any] | None:
    _check_replayable(model, snap)
    frames = _Frames(model)
    locator = _Locator(frames, backward)
    try:
        with guard(), torch.random.fork_rng(devices=[]):
            if snap.rng is not None:
                torch.set_rng_state(snap.rng)
            grad_mode = torch.enable_grad() if backward else torch.no_grad()
            with grad_mode, locator:
                out = torch.func.functional_call(
                    model, snap.state, tuple(snap.args), dict(snap.kwargs), strict=False
                )
            if backward:
                outs = float_tensors(out)
                pairs = [
                    (o, g)
                    for o, g in zip(outs, snap.grad_outputs or [], strict=False)
                    if g is not None and o.requires_grad
                ]
                leaves = [t for t in snap.state.values() if t.requires_grad]
                if pairs and leaves:
                    torch.autograd.grad(
                        [o for o, _ in pairs],
                        leaves,
                        [g for _, g in pairs],
                        allow_unused=True,
                    )
    finally:
        frames.remove()
    return locator.origin


def _check_replayable(model: nn.Module, snap: Snapshot) -> None:
    """A replay must issue no collective: one rank runs it alone, and a collective no other
    rank joins waits forever. FSDP1 gathers parameters inside its wrapper's forward; a
    sharded (DTensor) parameter would be gathered by the replay's ops. Under
    torch.distributed the monitor gathers the parameters with every rank first
    (``distributed.NonFiniteGuard``); a step kept by one rank alone cannot be replayed."""
    if any(type(m).__name__ == "FullyShardedDataParallel" for m in model.modules()):
        raise GradsightError(
            "FSDP1 (FullyShardedDataParallel) gathers parameters inside its forward, so the step "
            "cannot be replayed on one rank; the op that made the first NaN/Inf is not located "
            "(with FSDP2's fully_shard it is)"
        )
    sharded = [name for name, t in snap.state.items() if type(t).__name__ == "DTensor"]
    if sharded:
        raise GradsightError(
            f"parameters {sharded[:3]!r} are sharded (DTensor) and this step was kept by one rank "
            "alone (a forward without a backward); replaying it would wait for the other ranks, "
            "so its non-finite origin is not located"
        )


def locate_forward(model: nn.Module, snap: Snapshot, guard: Callable[[], Any]) -> dict[str, Any] | None:
    """The first op in forward order with finite inputs and a non-finite output."""
    return _replay(model, snap, backward=False, guard=guard)


def locate_backward(model: nn.Module, snap: Snapshot, guard: Callable[[], Any]) -> dict[str, Any] | None:
    """The first autograd node in backward order with a finite incoming and a non-finite
    outgoing gradient."""
    return _replay(model, snap, backward=True, guard=guard)


def first_nonfinite_parameter(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    for name, p in model.named_parameters():
        if not all_finite([p]):
            return name, nonfinite_counts(p)
    return None


def first_nonfinite_input(args: Any, kwargs: Any) -> dict[str, Any] | None:
    for i, t in enumerate(float_tensors((args, kwargs))):
        if not all_finite([t]):
            return {"input": i, **nonfinite_counts(t)}
    return None


def remedy_for(op: str | None, phase: str) -> str:
    """A concrete fix for the usual culprits."""
    hints = {
        "sqrt": "the input of sqrt went negative (forward) or hit 0 (backward: d sqrt(x)/dx = "
        "1/(2 sqrt x)); use torch.sqrt(x.clamp_min(1e-12)) or sqrt(x + eps)",
        "log": "log of a value <= 0; use torch.log(x.clamp_min(1e-12)) or torch.log1p / "
        "F.log_softmax instead of log(softmax(x))",
        "div": "division by (near) zero; add an eps to the denominator: x / (d + 1e-12)",
        "truediv": "division by (near) zero; add an eps to the denominator: x / (d + 1e-12)",
        "exp": "exp overflowed; subtract the max first (torch.logsumexp, F.softmax) or clamp the "
        "argument: torch.exp(x.clamp_max(80))",
        "pow": "pow of a negative base or a huge value; clamp the base or work in log space",
        "rsqrt": "rsqrt of a value <= 0; use torch.rsqrt(x.clamp_min(1e-12))",
        "norm": "the gradient of a norm at the zero vector is 0/0; add an eps inside: "
        "torch.sqrt((x * x).sum(-1) + 1e-12)",
        "linalg_vector_norm": "the gradient of a norm at the zero vector is 0/0; add an eps: "
        "torch.sqrt((x * x).sum(-1) + 1e-12)",
    }
    if op in hints:
        return hints[op]
    if phase == "parameters":
        return (
            "a weight became non-finite in the previous optimizer step: lower the learning rate, "
            "add warm-up, clip gradients (torch.nn.utils.clip_grad_norm_(model.parameters(), "
            "1.0)) and check the loss for NaN before opt.step()"
        )
    if phase == "input":
        return "the batch itself contains NaN/Inf: check the data pipeline (torch.isfinite(x).all())"
    if phase == "loss":
        return (
            "the loss produced a non-finite gradient: use the fused, stable forms "
            "(F.cross_entropy on logits, F.binary_cross_entropy_with_logits) and clamp logs"
        )
    return (
        "guard the op with a clamp or an eps, lower the learning rate, or compute in float32 "
        "(torch.autocast(..., enabled=False)) around it"
    )
