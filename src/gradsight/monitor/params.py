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
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gradsight.monitor.records import ParamStats

SAMPLE = 4096  # entries per tensor for the update ratio


class ParamTracker:
    """Layers = modules owning parameters directly, named by their module path."""

    def __init__(self, model: nn.Module) -> None:
        self.layers: list[tuple[str, list[nn.Parameter]]] = []
        seen: set[int] = set()
        for name, mod in model.named_modules():
            ps = [p for p in mod.parameters(recurse=False) if id(p) not in seen]
            seen.update(id(p) for p in ps)
            if ps:
                self.layers.append((name, ps))
        self.param_ids = seen
        self.layer_of = {id(p): i for i, (_, ps) in enumerate(self.layers) for p in ps}
        self.grad_norms: list[float] | None = None  # per layer, last logged backward
        self.weight_norms: list[float] | None = None
        self.update_ratio: dict[int, float] = {}
        self.want_update = False
        self._before: list[tuple[int, nn.Parameter, torch.Tensor]] = []
        self._sample: dict[int, int] = {}  # param id -> stride

    def _view(self, p: torch.Tensor) -> torch.Tensor:
        """A view of the sampled entries of ``p`` (all of them for small tensors): (k,)."""
        key = id(p)
        if key not in self._sample:
            stride = p.numel() // SAMPLE
            # a stride coprime with the row length visits every column
            while stride > 1 and math.gcd(stride, int(p.shape[-1])) != 1:
                stride -= 1
            self._sample[key] = stride
        stride = self._sample[key]
        flat = p.detach().view(-1) if p.is_contiguous() else p.detach().reshape(-1)  # (numel,)
        return flat if stride <= 1 else flat[::stride][:SAMPLE]  # (<= SAMPLE,)

    # -- end of a logged backward ----------------------------------------------------------
    def read_grads(self) -> bool:
        """Per-layer gradient norms (one host sync); True when all are finite."""
        grads, owner = [], []
        for i, (_, ps) in enumerate(self.layers):
            for p in ps:
                if p.grad is not None:
                    grads.append(p.grad.detach())
                    owner.append(i)
        if not grads:
            return True
        weights = [p.detach() for _, ps in self.layers for p in ps if p.grad is not None]
        values = _host_norms([*grads, *weights])
        k = len(grads)
        sq = [0.0] * len(self.layers)
        wsq = [0.0] * len(self.layers)
        has = [False] * len(self.layers)
        for i, v, w in zip(owner, values[:k], values[k:], strict=False):
            sq[i] += v * v
            wsq[i] += w * w
            has[i] = True
        self.grad_norms = [math.sqrt(s) if h else math.nan for s, h in zip(sq, has, strict=False)]
        self.weight_norms = [math.sqrt(w) if h else math.nan for w, h in zip(wsq, has, strict=False)]
        values = values[:k]
        self.want_update = True
        return all(math.isfinite(v) for v in values)

    # -- around the optimizer step ---------------------------------------------------------
    def before_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.want_update:
            return
        mine = [
            p
            for g in optimizer.param_groups
            for p in g["params"]
            if id(p) in self.param_ids
        ]
        views = [self._view(p) for p in mine]
        copies = torch._foreach_mul(views, 1.0) if views else []  # one launch for every copy
        self._before = [(self.layer_of[id(p)], p, c) for p, c in zip(mine, copies, strict=True)]

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self._before:
            return
        before, self._before = self._before, []
        olds = [b for _, _, b in before]
        deltas = torch._foreach_sub([self._view(p) for _, p, _ in before], olds)
        vals = _host_norms([*deltas, *olds])
        d_vals, w_vals = vals[: len(olds)], vals[len(olds) :]
        dsq: dict[int, float] = {}
        wsq: dict[int, float] = {}
        for (i, _, _), d, w in zip(before, d_vals, w_vals, strict=False):
            dsq[i] = dsq.get(i, 0.0) + d * d
            wsq[i] = wsq.get(i, 0.0) + w * w
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
        for i, (name, _) in enumerate(self.layers):
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
    norms = torch._foreach_norm(tensors)
    device = norms[0].device
    if any(n.device != device or n.dtype != torch.float32 for n in norms):
        norms = [n.to(device, torch.float32) for n in norms]
    return torch.stack(norms).tolist()
