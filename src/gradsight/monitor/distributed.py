"""The monitor under torch.distributed (DDP, FSDP1, FSDP2, tensor parallel).

Conventions (what a user reads in a report is the same with 1 process or N):

- **Site gradients** are those of the loss the optimizer follows. DDP and FSDP average the
  ranks' gradients, so that loss is L = (1/N) sum_r L_r, and the gradient at a site output y_r
  of rank r is (1/N) dL_r/dy_r. Over all ranks' samples:

      grad_norm = sqrt(sum_r ||dL_r/dy_r||^2) / N

  which equals one process's norm on the same global batch (each rank's loss the mean over
  its equal share of it). :func:`reduce_site_sums` does the sum and the 1/N^2.
- **Parameter statistics** of sharded tensors are summed over the ranks from the squared norms
  of the pieces each rank holds (see params.py); a replicated tensor's own value is the whole.
- **Non-finite values**: the verdict of a step is agreed across ranks in one all_reduce before
  anything that communicates (:class:`NonFiniteGuard`); every rank keeps the step, all ranks
  locate it together, each replaying its own step with no collective (FSDP2's hooks are set
  aside and the parameters gathered beforehand by all ranks at once), and the origin found on
  the lowest rank that found one is reported by all.
- **Tensor parallelism** is detected, not measured: the site sums treat every rank as a
  data-parallel rank with its own samples, and a site reading a column-sharded output sees
  only its slice of the units. A GradsightWarning and ``report().errors`` say so and name
  those sites (:func:`warn_tensor_parallel`); parameter statistics are whole-tensor and right.

Every collective here is issued at the same point by every rank: at the end of each backward
(the verdict), on logged steps (site sums, parameter norms) and at ``mon.step()`` after a
non-finite step (locating it). ``report()`` never communicates, so one rank may call it alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from gradsight.monitor import nonfinite
from gradsight.monitor._util import ErrorLog, all_finite, clean_name

if TYPE_CHECKING:
    from gradsight.monitor.monitor import Monitor


# -- the process group -----------------------------------------------------------------------
def world_size() -> int:
    """Ranks in the default process group; 1 when there is none."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return int(dist.get_world_size())
    except Exception:  # noqa: BLE001
        pass
    return 1


def _device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_over_ranks(*arrays: Any) -> list[np.ndarray]:
    """Sum the arrays over the ranks of the default process group, in one all_reduce."""
    import torch.distributed as dist

    parts = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    sizes = [p.size for p in parts]
    packed = torch.from_numpy(np.concatenate(parts)).to(_device())
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    return np.split(packed.cpu().numpy(), np.cumsum(sizes)[:-1])


def reduce_site_sums(
    flat: np.ndarray, n: np.ndarray, numel: np.ndarray, gsq: np.ndarray, sat: np.ndarray
) -> list[np.ndarray]:
    """One step's site sums over all ranks: per-unit D, samples, elements and saturated counts
    summed; the squared site-gradient norms summed and divided by N^2 -- the gradient of the
    mean of the ranks' losses, the loss DDP and FSDP optimize (see the module docstring)."""
    flat, n, numel, gsq, sat = sum_over_ranks(flat, n, numel, gsq, sat)
    return [flat, n, numel, gsq / float(world_size()) ** 2, sat]


# -- sharded parameters ----------------------------------------------------------------------
def is_dtensor(t: Any) -> bool:
    return type(t).__name__ == "DTensor" and hasattr(t, "to_local")


def dtensor_divisor(p: torch.Tensor, world: int) -> float | None:
    """For a DTensor: how many times the sum over all ranks of its local squared norms
    counts the whole tensor's (world / ranks sharing it out); None for a plain tensor."""
    if not is_dtensor(p):
        return None
    mesh, shards = p.device_mesh, 1
    for dim, placement in enumerate(p.placements):
        if placement.is_shard():
            shards *= mesh.size(dim)
    return world / shards


def flat_param_divisor(flat: torch.Tensor, world: int) -> float:
    """The same for an FSDP1 flat parameter: world / ranks its padded whole is split over."""
    whole = getattr(flat, "_padded_unsharded_size", None)
    shard = getattr(flat, "_sharded_size", None)
    if whole is None or shard is None or shard.numel() == 0:
        return 1.0
    return world / max(1, round(whole.numel() / shard.numel()))


def fsdp1_orig_param_divisors(model: nn.Module) -> dict[int, float]:
    """FSDP1 with ``use_orig_params=True``: each original parameter is a view of its rank's
    slice of a flat parameter; id -> divisor of its flat parameter."""
    out: dict[int, float] = {}
    world = world_size()
    for mod in model.modules():
        handle = getattr(mod, "_handle", None)
        flat = getattr(handle, "flat_param", None)
        params = getattr(flat, "_params", None)
        if flat is None or params is None:
            continue
        div = flat_param_divisor(flat, world)
        for p in params:
            out[id(p)] = div
    return out


@contextlib.contextmanager
def without_fsdp_hooks(model: nn.Module) -> Iterator[None]:
    """Set FSDP2's forward hooks aside (they all-gather parameters) while a step is replayed
    on one rank with its parameters already whole (:func:`whole_state`)."""
    kinds = ("_forward_pre_hooks", "_forward_hooks")
    saved: list[tuple[dict[int, Any], int, Any]] = []
    for mod in model.modules():
        for kind in kinds:
            hooks = getattr(mod, kind)
            for key, hook in list(hooks.items()):
                if "torch.distributed.fsdp" in (getattr(hook, "__module__", "") or ""):
                    saved.append((hooks, key, hook))
                    del hooks[key]
    try:
        yield
    finally:
        for hooks, key, hook in saved:
            hooks[key] = hook


def whole_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every DTensor of a snapshot gathered whole (one all-gather each, in the state's order:
    every rank must call this at the same time, with the same model)."""
    out = {}
    for name, t in state.items():
        if is_dtensor(t):
            t = t.full_tensor().detach().requires_grad_(t.requires_grad)
        out[name] = t
    return out


# -- non-finite values -----------------------------------------------------------------------
class NonFiniteGuard:
    """The non-finite check of a monitor under torch.distributed (see the module docstring).

    At the end of every backward each rank judges its own step (model outputs, entry-layer and
    loss gradients, parameter gradients on logged steps) and one all_reduce MAX of two flags
    makes that verdict the group's. A bad step is kept by every rank; at the next
    ``mon.step()`` all ranks locate it together. Once the first forward and the first backward
    event are both agreed, nothing more is communicated (later steps only count)."""

    def __init__(self) -> None:
        self.agreed: set[str] = set()
        self.pending: list[tuple[str, nonfinite.NonFiniteEvent, nonfinite.Snapshot, bool]] = []
        self._world: int | None = None

    def active(self) -> bool:
        if self._world is None:
            self._world = world_size()
        return self._world > 1 and len(self.agreed) < 2

    def _agree(self, *flags: bool) -> list[bool]:
        import torch.distributed as dist

        t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def backward_end(self, mon: Monitor, grads: list[torch.Tensor | None], entry: list[torch.Tensor], params_ok: bool) -> None:
        """The end of a backward on every rank: judge, agree, keep a bad step."""
        held, mon._held = mon._held, []
        bad_held = next((h for h in held if not all_finite(h.outputs)), None)
        loss = [g for g in grads if g is not None]
        loss_bad = not all_finite(loss)
        bwd_bad = loss_bad or not all_finite(entry) or not params_ok
        fwd, bwd = self._agree(bad_held is not None, bwd_bad)
        if fwd:
            mon._fwd_bad_step = mon.step_index
            source = bad_held or (held[-1] if held else None)
            inputs, rng = (source.inputs, source.rng) if source is not None else (mon._inputs, mon._rng)
            self._keep(mon, "forward", mon._snapshot(inputs=inputs, rng=rng), False)
        elif bwd:
            self._keep(mon, "backward", mon._snapshot(grads), loss_bad)

    def _keep(self, mon: Monitor, phase: str, snap: nonfinite.Snapshot, loss_bad: bool) -> None:
        if phase in self.agreed:
            ev = mon.events.get(phase)
            if ev is not None:
                ev.later_steps += 1
            return
        self.agreed.add(phase)
        ev = nonfinite.NonFiniteEvent(phase, mon.step_index)
        mon.events[phase] = ev
        self.pending.append((phase, ev, snap, loss_bad))

    def settle(self, mon: Monitor) -> None:
        """Locate the kept steps, all ranks together (called from ``mon.step()``)."""
        if not self.pending:
            return
        import torch.distributed as dist

        pending, self.pending = self.pending, []
        for phase, ev, snap, loss_bad in pending:
            found: dict[str, Any] | None = None
            try:
                snap.state = whole_state(snap.state)  # collectives: every rank, same order
            except Exception as exc:  # noqa: BLE001 - the gathers failed alike on every rank
                mon.log.record(f"gathering the parameters to locate the {phase} non-finite origin", exc)
            else:
                try:
                    found = _locate_here(mon.root, phase, snap, loss_bad, mon._replay_guard)
                except Exception as exc:  # noqa: BLE001
                    mon.log.record(f"locating the {phase} non-finite origin", exc)
            everyone: list[Any] = [None] * world_size()
            dist.all_gather_object(everyone, found)
            rank = next((r for r, f in enumerate(everyone) if f is not None), None)
            if rank is None:
                ev.evidence = {"located": False}
                continue
            origin = everyone[rank]
            ev.phase = origin.get("phase", ev.phase)
            ev.site, ev.module, ev.op = origin["site"], origin["module"], origin.get("op")
            ev.evidence = {**origin["evidence"], "rank": rank}


def _locate_here(
    model: nn.Module, phase: str, snap: nonfinite.Snapshot, loss_bad: bool, guard: Any
) -> dict[str, Any] | None:
    """This rank's own account of a kept step, with no collective: a non-finite input,
    parameter or loss gradient, else the op found by replaying the step; None when this
    rank's step was finite."""
    if phase == "forward":
        bad_in = nonfinite.first_nonfinite_input(snap.args, snap.kwargs)
        if bad_in is not None:
            return {"phase": "input", "site": "input", "module": "", "evidence": bad_in}
        for name, t in snap.state.items():
            if t.is_floating_point() and not all_finite([t]):
                return {
                    "phase": "parameters",
                    "site": name,
                    "module": name.rpartition(".")[0],
                    "evidence": {"parameter": name, **nonfinite.nonfinite_counts(t)},
                }
        with without_fsdp_hooks(model):
            return nonfinite.locate_forward(model, snap, guard)
    if loss_bad:
        counts = [nonfinite.nonfinite_counts(g) for g in snap.grad_outputs or [] if g is not None]
        return {"phase": "loss", "site": "loss", "module": "", "evidence": {"grad_of_output": counts[:2]}}
    with without_fsdp_hooks(model):
        return nonfinite.locate_backward(model, snap, guard)


# -- tensor parallel -------------------------------------------------------------------------
def _column_sharded(site: Any) -> bool:
    """Whether the weight layer that feeds ``site`` writes only a slice of its output units on
    this rank: its weight is a DTensor (FSDP2, tensor parallel) whose whole size along the
    output-unit dimension (dim 0 of a Linear / conv weight, dim 1 of an Embedding's) is larger
    than the units the site sees. FSDP2 alone gathers the weight for the forward, so its sites
    see every unit and are not flagged."""
    chain = getattr(site, "chain", None) or []
    if not chain or not site.units:
        return False
    module = chain[-1][1]
    weight = getattr(module, "weight", None)
    if not is_dtensor(weight) or weight.ndim < 2:
        return False
    units = weight.shape[1 if isinstance(module, nn.Embedding) else 0]
    return site.units < units


def tensor_parallel_sites(sites: list[Any]) -> list[str]:
    """Names of the sites that read a column-sharded (tensor-parallel) output."""
    return [s.name for s in sites if _column_sharded(s)]


def _tensor_parallel_params(model: nn.Module) -> list[str]:
    """Layers with DTensor parameters that no FSDP2 ``fully_shard`` manages (FSDP2 alone
    shards every parameter as a DTensor; tensor parallelism is the other source)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without FSDP2
        return []
    out: list[str] = []

    def walk(mod: nn.Module, path: str, under_fsdp: bool) -> None:
        under_fsdp = under_fsdp or isinstance(mod, FSDPModule)
        if not under_fsdp and any(is_dtensor(p) for p in mod.parameters(recurse=False)):
            out.append(clean_name(path))
        for name, child in mod.named_children():
            walk(child, f"{path}.{name}" if path else name, under_fsdp)

    walk(model, "", False)
    return out


def warn_tensor_parallel(sites: list[Any], model: nn.Module, log: ErrorLog) -> None:
    """Say in a GradsightWarning and ``report().errors`` (once) what tensor parallelism does to
    the site statistics, naming the sites that read a column-sharded output. The site sums
    are reduced over all ranks as data-parallel ranks with their own samples; ranks of one
    tensor-parallel group share their samples."""
    column = tensor_parallel_sites(sites)
    layers = _tensor_parallel_params(model)
    if not column and not layers:
        return
    message = (
        f"tensor parallelism found (layers {layers!r} hold DTensor parameters outside FSDP2; "
        f"sites {column!r} read a column-sharded output, e.g. of ColwiseParallel). Site "
        "statistics are summed over all ranks as if each rank saw its own samples: ranks of a "
        "tensor-parallel group share theirs, so samples are counted once per rank and site "
        "gradient norms are off by sqrt(world size), and a site reading a column-sharded "
        "output sees only this rank's slice of the units, whose sums across ranks add "
        "different units. Parameter statistics (weight_grad_norm, update_ratio) are whole-tensor "
        "and correct"
    )
    if not any(message in line for line in log.errors):
        log.note("tensor parallel", message)
