"""Per parameterized layer: weight-gradient norm (after the backward) and the update-to-weight
ratio ||W_after - W_before|| / ||W_before|| measured across the actual optimizer step.

Both run on logged steps only. The gradient norms are one ``torch._foreach_norm`` over all
gradients at the end of the backward (before ``zero_grad`` can clear them); the update is seen
through PyTorch's global optimizer step hooks, so any optimizer works and no optimizer has to be
passed in. A tensor with more than ``SAMPLE`` entries is measured on ``SAMPLE`` of them, evenly
strided through it (the stride coprime with the row length, so every column is visited; the
same entries before and after the step):

    update_ratio ~= ||W_S,after - W_S,before|| / ||W_S,before||

which keeps the cost at a few hundred small gathers instead of a copy of every weight (a copy
of all parameters per logged step costs more than the rest of the monitor together).

Sharded parameters (FSDP2 and tensor-parallel DTensors, FSDP1's flat parameters) are measured
piece by piece on the shard each rank holds, and the squared norms of the pieces are summed
over the ranks in one all_reduce (``distributed.sum_over_ranks``), so a layer's numbers are
those of the whole tensor -- the same as one process's. FSDP1's flat parameters are split back
into the layers they were flattened from. A sharded tensor above ``SAMPLE`` entries is sampled
per shard: its update ratio is close to, not equal to, one process's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gradsight.monitor import distributed
from gradsight.monitor._util import clean_name, local_tensor, named_modules
from gradsight.monitor.records import ParamStats

SAMPLE = 4096  # entries per tensor for the update ratio


@dataclass(eq=False)
class _Piece:
    """What one rank holds of one layer's parameter: all of a plain parameter, its shard of a
    DTensor, or the slice [start, stop) of an FSDP1 flat parameter's local shard."""

    layer: int
    param: nn.Parameter
    divisor: float | None  # sharded: (sum over ranks of the squared norms) / divisor = whole
    start: int | None = None
    stop: int | None = None

    def _local(self, t: torch.Tensor) -> torch.Tensor:
        t = local_tensor(t).detach()
        if self.start is None:
            return t
        return t.view(-1)[self.start : self.stop]  # (stop - start,)

    def data(self) -> torch.Tensor:
        return self._local(self.param)

    def grad(self) -> torch.Tensor | None:
        g = self.param.grad
        return None if g is None else self._local(g)


def _layers(model: nn.Module) -> tuple[list[str], list[_Piece]]:
    """Layer names in module order and the pieces of their parameters."""
    world = distributed.world_size()
    orig_divisor = distributed.fsdp1_orig_param_divisors(model)  # FSDP1 use_orig_params=True
    names: list[str] = []
    index: dict[str, int] = {}
    pieces: list[_Piece] = []
    seen: set[int] = set()

    def layer(name: str) -> int:
        if name not in index:
            index[name] = len(names)
            names.append(name)
        return index[name]

    for path, mod in model.named_modules():
        for p in mod.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if getattr(p, "_is_flat_param", False) and getattr(p, "_params", None) is None:
                # an FSDP1 flat parameter: the slices of this rank's shard, per original tensor
                div = distributed.flat_param_divisor(p, world)
                for fqn, info in zip(p._fqns, p._shard_param_infos, strict=True):
                    i = layer(clean_name(".".join(s for s in (path, fqn.rpartition(".")[0]) if s)))
                    a = info.offset_in_shard if info.in_shard else 0
                    b = a + info.numel_in_shard if info.in_shard else 0
                    pieces.append(_Piece(i, p, div, a, b))
                continue
            div = orig_divisor.get(id(p), distributed.dtensor_divisor(p, world))
            pieces.append(_Piece(layer(clean_name(path)), p, div))
    # module order (a flat parameter sits on its FSDP unit's root, ahead of nested units)
    rank = {n: i for i, (n, _) in reversed(list(enumerate(named_modules(model))))}
    order = sorted(range(len(names)), key=lambda i: rank.get(names[i], len(rank)))
    new_index = {old: new for new, old in enumerate(order)}
    for piece in pieces:
        piece.layer = new_index[piece.layer]
    return [names[i] for i in order], pieces


class ParamTracker:
    """Layers = modules owning parameters directly, named by their module path (wrapper
    segments such as FSDP1's ``_fsdp_wrapped_module`` removed)."""

    def __init__(self, model: nn.Module) -> None:
        self.names, self.pieces = _layers(model)
        self.layer_set = frozenset(self.names)
        self.by_param: dict[int, list[_Piece]] = {}
        for piece in self.pieces:
            self.by_param.setdefault(id(piece.param), []).append(piece)
        self.param_ids = frozenset(self.by_param)  # what an optimizer of this model steps
        # a layout summed over the ranks: every rank lists the same pieces in the same order
        self.sharded = [k for k, pc in enumerate(self.pieces) if pc.divisor is not None]
        self.grad_norms: list[float] | None = None  # per layer, last logged backward
        self.weight_norms: list[float] | None = None
        self.update_ratio: dict[int, float] = {}
        self.want_update = False
        self._before: list[tuple[int, _Piece, torch.Tensor]] = []
        self._stride: dict[int, int] = {}  # piece index -> stride

    def _view(self, k: int, piece: _Piece) -> torch.Tensor:
        """A view of the sampled entries of the piece (all of them for small tensors): (k,)."""
        t = piece.data()
        if k not in self._stride:
            stride = t.numel() // SAMPLE
            # a stride coprime with the row length visits every column
            while stride > 1 and t.ndim and math.gcd(stride, int(t.shape[-1])) != 1:
                stride -= 1
            self._stride[k] = stride
        stride = self._stride[k]
        flat = t.view(-1) if t.is_contiguous() else t.reshape(-1)  # (numel,)
        return flat if stride <= 1 else flat[::stride][:SAMPLE]  # (<= SAMPLE,)

    def _whole(self, *per_piece: list[float]) -> list[list[float]]:
        """Squared norms per piece -> those of the whole tensors: the sharded pieces' summed
        over the ranks (one all_reduce) and divided by their divisor."""
        if not self.sharded or distributed.world_size() <= 1:
            return [list(v) for v in per_piece]
        sh = self.sharded
        summed = distributed.sum_over_ranks(*[[v[k] for k in sh] for v in per_piece])
        out = []
        for v, s in zip(per_piece, summed, strict=True):
            v = list(v)
            for j, k in enumerate(sh):
                v[k] = float(s[j]) / self.pieces[k].divisor  # type: ignore[operator]
            out.append(v)
        return out

    # -- end of a logged backward ----------------------------------------------------------
    def read_grads(self) -> bool:
        """Per-layer gradient norms (one host sync; one all_reduce with sharded parameters,
        so every rank must call it at the same step); True when all are finite."""
        grads = [pc.grad() for pc in self.pieces]
        present = [k for k, g in enumerate(grads) if g is not None and g.numel() > 0]
        if not present and not self.sharded:
            return True
        values = _host_norms([grads[k] for k in present] + [self.pieces[k].data() for k in present])  # type: ignore[misc]
        P = len(self.pieces)
        gsq, wsq, has = [0.0] * P, [0.0] * P, [0.0] * P
        for j, k in enumerate(present):
            gsq[k], wsq[k], has[k] = values[j] ** 2, values[len(present) + j] ** 2, 1.0
        if self.sharded and distributed.world_size() > 1:
            # a rank whose shard of a tensor is empty has no gradient for it; another has
            has = [1.0 if h else 0.0 for h in self._whole(has)[0]]
        gsq, wsq = self._whole(gsq, wsq)
        L = len(self.names)
        lg, lw, lh = [0.0] * L, [0.0] * L, [False] * L
        for k, pc in enumerate(self.pieces):
            if has[k]:
                lg[pc.layer] += gsq[k]
                lw[pc.layer] += wsq[k]
                lh[pc.layer] = True
        self.grad_norms = [math.sqrt(s) if h else math.nan for s, h in zip(lg, lh, strict=True)]
        self.weight_norms = [math.sqrt(w) if h else math.nan for w, h in zip(lw, lh, strict=True)]
        if not any(lh):
            self.grad_norms = None
            return True
        self.want_update = True
        return all(math.isfinite(g) for g, h in zip(gsq, has, strict=True) if h)

    # -- around the optimizer step ---------------------------------------------------------
    def before_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.want_update:
            return
        index = {id(pc): k for k, pc in enumerate(self.pieces)}
        mine = [pc for g in optimizer.param_groups for p in g["params"] for pc in self.by_param.get(id(p), ())]
        views = [self._view(index[id(pc)], pc) for pc in mine]
        copies = torch._foreach_mul(views, 1.0) if views else []  # one launch for every copy
        self._before = [(index[id(pc)], pc, c) for pc, c in zip(mine, copies, strict=True)]

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self._before:
            return
        before, self._before = self._before, []
        olds = [b for _, _, b in before]
        deltas = torch._foreach_sub([self._view(k, pc) for k, pc, _ in before], olds)
        vals = _host_norms([*deltas, *olds])
        P = len(self.pieces)
        dsq_p, wsq_p, seen = [0.0] * P, [0.0] * P, [False] * P
        for (k, _, _), d, w in zip(before, vals[: len(olds)], vals[len(olds) :], strict=True):
            dsq_p[k], wsq_p[k], seen[k] = d * d, w * w, True
        dsq_p, wsq_p = self._whole(dsq_p, wsq_p)
        dsq: dict[int, float] = {}
        wsq: dict[int, float] = {}
        for k, pc in enumerate(self.pieces):
            if seen[k]:
                dsq[pc.layer] = dsq.get(pc.layer, 0.0) + dsq_p[k]
                wsq[pc.layer] = wsq.get(pc.layer, 0.0) + wsq_p[k]
        for i in dsq:
            w = math.sqrt(wsq[i])
            self.update_ratio[i] = math.sqrt(dsq[i]) / w if w > 0 else math.inf
        self.want_update = False

    # -- a logged step closes --------------------------------------------------------------
    def take(self, step: int) -> list[ParamStats]:
        """ParamStats of this step (layers whose gradient was seen), then reset."""
        if self.grad_norms is None:
            return []
        out = []
        for i, name in enumerate(self.names):
            g = self.grad_norms[i]
            if math.isnan(g):
                continue
            w = self.weight_norms[i] if self.weight_norms is not None else math.nan
            out.append(ParamStats(name, g, w, self.update_ratio.get(i), step))
        self.grad_norms = None
        self.weight_norms = None
        self.update_ratio = {}
        return out


def _host_norms(tensors: list[torch.Tensor]) -> list[float]:
    """The 2-norm of each tensor, in one ``_foreach_norm`` and one copy to the host."""
    if not tensors:
        return []
    norms = torch._foreach_norm(tensors)
    device = norms[0].device
    if any(n.device != device or n.dtype != torch.float32 for n in norms):
        norms = [n.to(device, torch.float32) for n in norms]
    return torch.stack(norms).tolist()
