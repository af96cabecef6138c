"""Step time of watch() under DDP and FSDP2: 2 gloo processes on CPU, watched / plain.

Each rank trains a ReLU MLP on its own batch; plain and watched runs alternate in blocks of
steps (the same processes, the same warm allocator), and the median step time of each is
compared. Under torch.distributed the monitor adds one 2-int all_reduce per step (the agreed
non-finite verdict) and, on logged steps, one all_reduce of the site sums (and of the
parameter norms of sharded tensors).

    python benchmarks/distributed_overhead.py [--kinds ddp,fsdp2] [--steps 200] [--width 256]
                                              [--depth 8] [--every 10]

On a shared 2-core VM the FSDP2 step (gloo on CPU) varies by 2x from block to block; read its
ratio from several runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn


def _model(width: int, depth: int) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(width if i else 64, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def _wrap(kind: str, model: nn.Module) -> nn.Module:
    if kind == "ddp":
        return nn.parallel.DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    for sub in model:
        if isinstance(sub, nn.Linear):
            fully_shard(sub)
    fully_shard(model)
    return model


def _times(wrapped: nn.Module, steps: int, every: int, watched: bool) -> list[float]:
    import gradsight as gs

    opt = torch.optim.SGD(wrapped.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(dist.get_rank())
    x, y = torch.randn(64, 64, generator=g), torch.randint(0, 10, (64,), generator=g)
    mon = gs.watch(wrapped, every=every) if watched else None
    out = []
    try:
        for _ in range(steps):
            dist.barrier()
            t0 = time.perf_counter()
            F.cross_entropy(wrapped(x), y).backward()
            opt.step()
            opt.zero_grad()
            if mon is not None:
                mon.step()
            out.append(time.perf_counter() - t0)
    finally:
        if mon is not None:
            mon.close()
    return out


def _worker(rank: int, args: argparse.Namespace, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rdv", rank=rank, world_size=2)
    try:
        for kind in args.kinds.split(","):
            wrapped = _wrap(kind, _model(args.width, args.depth))
            plain: list[float] = []
            watched: list[float] = []
            for _ in range(4):  # alternate, so drift of the shared machine hits both alike
                plain += _times(wrapped, args.steps // 4, args.every, False)
                watched += _times(wrapped, args.steps // 4, args.every, True)
            p, w = statistics.median(plain[10:]), statistics.median(watched[10:])
            if rank == 0:
                sys.stdout.write(
                    f"{kind:6s} {args.depth}x{args.width} ReLU, every={args.every}: plain {p * 1e3:.2f} ms, "
                    f"watched {w * 1e3:.2f} ms, watched/plain {w / p:.3f}\n"
                )
                sys.stdout.flush()
    finally:
        dist.destroy_process_group()
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="ddp,fsdp2", help="comma-separated: ddp, fsdp2")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(args, tmp), nprocs=2, join=True)


if __name__ == "__main__":
    main()
