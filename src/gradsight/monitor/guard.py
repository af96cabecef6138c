"""The hooks of every step: the root's forward hooks, the end-of-backward callback, and the
non-finite guard with its replay.

Every step keeps the model's inputs and outputs; at the end of the backward the outputs, the
entry layers' gradients (a backward NaN reaches them) and, without entry layers, the loss
gradient are checked for NaN/Inf in one host read. The first non-finite forward and backward
are snapshotted and replayed later with every op checked (nonfinite.py) to find the origin.
"""

from __future__ import annotations

import contextlib
import functools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gradsight.monitor import compiled, nonfinite
from gradsight.monitor._util import all_finite, float_tensors, guarded, no_compile

HOLD_OUTPUTS = 1 << 20  # model outputs up to this many elements are checked at the end of the backward


@dataclass
class HeldOutputs:
    """A forward's outputs, checked for NaN/Inf at the end of its backward."""

    outputs: list[torch.Tensor]
    inputs: tuple[Any, Any] | None  # (args, kwargs) of the forward, to replay it
    rng: torch.Tensor | None  # the CPU RNG state before it (forwards that draw random numbers)


@dataclass
class PendingReplay:
    """A non-finite step snapshotted, to be replayed (outside the step) to find the origin."""

    phase: str  # "forward" | "backward"
    event: nonfinite.NonFiniteEvent
    snapshot: nonfinite.Snapshot


class NonFiniteGuard:
    """The Monitor's every-step hooks and non-finite guard (a mixin)."""

    @no_compile
    @guarded("forward pre-hook")
    def _on_root_pre(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        if self._replaying:
            return
        self._root_depth += 1
        if self._root_depth > 1:
            return
        if not self._stable and compiled.called_from_compiled_code():
            self._stable = True
            self._disarm(force=True)  # the stable set replaces the armed hooks
        if self._stable and not self._armed:
            self._stabilise(args, kwargs)
        self._frames = [("", defaultdict(int))]
        self._inputs = (args, kwargs)
        self._rng = torch.get_rng_state() if self.check_nonfinite and self._random else None
        if torch.is_grad_enabled() and (not self._discovered or (self._rediscover and self._logged)):
            self._begin_discovery()

    @no_compile
    @guarded("forward hook")
    def _on_root_post(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if self._replaying:
            return
        self._root_depth = max(self._root_depth - 1, 0)
        if self._root_depth > 0:
            return
        self._settle()
        if self._discovering:
            self._end_discovery()
        if output is None:
            return  # the forward raised
        outs = [output] if type(output) is torch.Tensor else float_tensors(output)
        backward = torch.is_grad_enabled() and any(t.requires_grad for t in outs)
        self._grad_forwards += backward
        if self.check_nonfinite and outs:
            if backward and sum(t.numel() for t in outs) <= HOLD_OUTPUTS:
                # checked at the end of the backward, beside the entry gradients: one
                # interruption of the step with torch work instead of two
                self._held.append(HeldOutputs(outs, self._inputs, self._rng))
                if len(self._held) > 4:  # forwards without a backward: check as they go
                    self._check_held(self._held.pop(0))
            elif not all_finite(outs):
                self._fwd_bad_step = self.step_index
                self._forward_nonfinite(self._inputs, self._rng)
        if backward:
            self._out_grads = [None] * len(outs)
            self._bwd_queued = False
            for i, t in enumerate(outs):
                if not t.requires_grad:
                    continue
                if t.grad_fn is not None:  # a node pre-hook costs less to register than a tensor hook
                    t.grad_fn.register_prehook(functools.partial(self._on_output_node, i, t.output_nr))
                else:
                    t.register_hook(functools.partial(self._on_output_grad, i))

    def _check_held(self, held: HeldOutputs) -> None:
        if not all_finite(held.outputs):
            self._fwd_bad_step = self.step_index
            self._forward_nonfinite(held.inputs, held.rng)

    def _check_all_held(self) -> None:
        held, self._held = self._held, []
        for h in held:
            self._check_held(h)

    @no_compile
    @guarded("output gradient hook")
    def _on_output_node(self, i: int, nr: int, grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
        g = grad_outputs[nr] if nr < len(grad_outputs) else None
        if not self._replaying and g is not None:
            self._got_output_grad(i, g)

    @no_compile
    @guarded("output gradient hook")
    def _on_output_grad(self, i: int, g: torch.Tensor) -> None:
        if not self._replaying:
            self._got_output_grad(i, g)

    def _got_output_grad(self, i: int, g: torch.Tensor) -> None:
        if i < len(self._out_grads):
            self._out_grads[i] = g
        if not self._bwd_queued:
            self._bwd_queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._on_backward_end)

    @guarded("end of backward")
    def _on_backward_end(self, deferred: bool = False) -> None:
        if self._replaying:
            self._bwd_queued = False
            return
        if not deferred and self._logged and self._distributed():
            # DDP averages the gradients in its own end-of-backward callback, queued after
            # ours: go to the back of the queue once so the parameter stats see the result
            torch.autograd.Variable._execution_engine.queue_callback(
                functools.partial(self._on_backward_end, True)
            )
            return
        self._bwd_queued = False
        grads, self._out_grads = self._out_grads, []
        if self._grad_obs:
            self._read_held_grads()
        loss = [g for g in grads if g is not None]
        if self.check_nonfinite and self._rank_guard.active():  # one verdict for all ranks
            entry = [p.grad for p in self._entry_params if p.grad is not None] + self._entry_grads
            self._entry_grads.clear()
            params_ok = not (self._logged and self._param_step()) or self._params.read_grads()
            self._rank_guard.backward_end(self, grads, entry, params_ok)
            return
        ok, bad = True, False
        if self.check_nonfinite:
            # the forward outputs held to here, the entry layers' gradients (a backward NaN
            # reaches them) and, with no entry layers, the loss gradient: everything finite,
            # the common case, is known from one host read (one sync on an accelerator)
            entry = [p.grad for p in self._entry_params if p.grad is not None] + self._entry_grads
            outs = [t for held in self._held for t in held.outputs]
            ok = all_finite(outs + entry + ([] if self._entries else loss))
            if ok:
                self._held = []
            else:
                self._check_all_held()
                bad = not all_finite(entry)
        self._entry_grads.clear()
        if self._logged and self._param_step():
            bad = (not self._params.read_grads()) or bad
        if not self.check_nonfinite:
            return
        # a non-finite loss gradient reaches the entry layers too: check it only to blame it
        loss_finite = ok and not self._entries  # already part of the check above
        bad_loss = (bad or not self._entries) and not loss_finite and not all_finite(loss)
        if bad or bad_loss:
            self._backward_nonfinite(grads, bad_loss)

    @no_compile
    @guarded("entry layer hook")
    def _on_entry_out(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._replaying or not torch.is_grad_enabled() or not self.check_nonfinite:
            return
        for t in float_tensors(output):
            if t.requires_grad:  # kept to the end of the backward and checked there
                t.register_hook(self._entry_grads.append)

    def _snapshot(
        self,
        grads: list[torch.Tensor | None] | None = None,
        inputs: tuple[Any, Any] | None = None,
        rng: torch.Tensor | None = None,
    ) -> nonfinite.Snapshot:
        if inputs is None:
            inputs, rng = self._inputs, self._rng
        args, kwargs = inputs if inputs is not None else ((), {})
        return nonfinite.Snapshot(
            args=nonfinite.clone_tree(args),
            kwargs=nonfinite.clone_tree(kwargs),
            state=nonfinite.snapshot_state(self.root),
            rng=rng,
            grad_outputs=[g.detach().clone() if g is not None else None for g in grads]
            if grads is not None
            else None,
        )

    def _forward_nonfinite(self, inputs: tuple[Any, Any] | None, rng: torch.Tensor | None) -> None:
        ev = self.events.get("forward")
        if ev is not None:
            ev.later_steps += 1
            return
        ev = nonfinite.NonFiniteEvent("forward", self.step_index)
        self.events["forward"] = ev
        args, kwargs = inputs if inputs is not None else ((), {})
        bad_in = nonfinite.first_nonfinite_input(args, kwargs)
        if bad_in is not None:
            ev.phase, ev.site, ev.module, ev.evidence = "input", "input", "", bad_in
            return
        bad_p = nonfinite.first_nonfinite_parameter(self.root)
        if bad_p is not None:
            name, ev_counts = bad_p
            ev.phase, ev.site, ev.module = "parameters", name, name.rpartition(".")[0]
            ev.evidence = {"parameter": name, **ev_counts}
            return
        self._pending.append(PendingReplay("forward", ev, self._snapshot(inputs=inputs, rng=rng)))

    def _backward_nonfinite(self, grads: list[torch.Tensor | None], bad_loss: bool) -> None:
        if self._fwd_bad_step == self.step_index:
            return  # a non-finite forward explains its backward; the forward event has it
        ev = self.events.get("backward")
        if ev is not None:
            ev.later_steps += 1
            return
        ev = nonfinite.NonFiniteEvent("backward", self.step_index)
        self.events["backward"] = ev
        if bad_loss:
            ev.phase, ev.site, ev.module = "loss", "loss", ""
            ev.evidence = {
                "grad_of_output": [
                    nonfinite.nonfinite_counts(g) for g in grads if g is not None
                ][:2]
            }
            return
        self._pending.append(PendingReplay("backward", ev, self._snapshot(grads)))

    @contextlib.contextmanager
    def _replay_guard(self) -> Iterator[None]:
        self._replaying = True
        n = len(self._obs)
        try:
            yield
        finally:
            self._replaying = False
            del self._obs[n:]  # nothing a hook noted of the replay stays
            self._settled = min(self._settled, n)

    def _process_pending(self) -> None:
        pending, self._pending = self._pending, []
        for p in pending:
            phase, ev, snap = p.phase, p.event, p.snapshot
            try:
                if phase == "forward":
                    origin = nonfinite.locate_forward(self.root, snap, self._replay_guard)
                else:
                    origin = nonfinite.locate_backward(self.root, snap, self._replay_guard)
            except Exception as exc:  # noqa: BLE001
                self.log.record(f"locating the {phase} non-finite origin", exc)
                origin = None
            if origin is not None:
                ev.site, ev.module, ev.op = origin["site"], origin["module"], origin["op"]
                ev.evidence = origin["evidence"]
            else:
                ev.evidence = {"located": False}
