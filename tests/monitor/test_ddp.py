"""DDP with gloo, 2 processes on CPU: statistics are summed across ranks."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")


def _worker(rank: int, world: int, tmp: str) -> None:
    import gradsight as gs

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
        with torch.no_grad():
            model[0].weight[0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
            model[0].bias[0] = 0.0  # unit 0 = relu(x0): alive only where x0 > 0
            model[0].bias[1] = -1e6  # unit 1: dead everywhere
        ddp = nn.parallel.DistributedDataParallel(model)
        g = torch.Generator().manual_seed(10 + rank)
        x = torch.randn(8 + 4 * rank, 4, generator=g)  # ranks see 8 and 12 samples
        x[:, 0] = x[:, 0].abs() * (1.0 if rank == 1 else -1.0)
        # the local gradient at the site, by hand
        h = torch.relu(model[0](x))
        h.retain_grad()
        model[2](h).pow(2).mean().backward()
        local_sq = float(h.grad.square().sum())
        model.zero_grad()
        with gs.watch(ddp, every=1) as mon:
            ddp(x).pow(2).mean().backward()
            mon.step()
        ls = mon.report().layers[0]
        with open(os.path.join(tmp, f"rank{rank}.json"), "w") as fh:
            json.dump({"local_sq": local_sq, "layer": ls.to_dict()}, fh)
    finally:
        dist.destroy_process_group()
    # the results are on disk; skip the interpreter's teardown, where gloo's threads now and
    # then abort the process ("terminate called without an active exception", no Python frame)
    os._exit(0)


def test_ddp_gloo_two_processes_sum_across_ranks(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    for r in (r0, r1):
        ls = r["layer"]
        assert ls["name"] == "1"  # the DDP wrapper's "module." prefix is not part of the name
        assert ls["samples"] == 8 + 12
        assert ls["dead_fraction"] == 1 / 6  # unit 0 lives on rank 1 only: not dead globally
        assert ls["grad_norm"] == pytest.approx(math.sqrt(r0["local_sq"] + r1["local_sq"]), rel=1e-5)
    assert r0["layer"] == r1["layer"]
