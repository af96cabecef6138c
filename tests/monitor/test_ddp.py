"""watch() under torch.distributed: 2 gloo processes on CPU against a one-process reference.

One spawn runs every scenario (a spawn costs seconds): DDP, FSDP1 (nested wrap, flat and
original parameters) and FSDP2 (``fully_shard``) on the same seeds and global batch as one
process; a NaN planted on one rank only -- in the forward, the backward, one rank's shard of a
parameter -- under DDP and FSDP2 (and FSDP1, which cannot replay); tensor parallelism
(ColwiseParallel + RowwiseParallel). Each rank writes what its report says to a JSON file; the
tests read them. A hang fails the spawn after TIMEOUT seconds instead of blocking the suite.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from tests.monitor.helpers import Block
from torch import nn

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")

TIMEOUT = 150  # seconds for the whole spawn; the collectives time out after COLLECTIVE_TIMEOUT
COLLECTIVE_TIMEOUT = 40
WORLD = 2
GLOBAL_BATCH = 16
STEPS = 3


class Net(nn.Module):
    """fc1 -> relu (a module site) -> Block (a functional GELU site) -> head. Unit 0 of the
    relu is relu(x0), alive only on the second half of the global batch (rank 1's share);
    unit 1 is dead everywhere: 1 of 16 units dead over all ranks, 2 on rank 0 alone."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.act = nn.ReLU()
        self.blk = Block(16)
        self.head = nn.Linear(16, 4)
        with torch.no_grad():
            self.fc1.weight[0] = torch.eye(8)[0]
            self.fc1.bias[0] = 0.0
            self.fc1.bias[1] = -1e6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blk(self.act(self.fc1(x))))


class Planted(nn.Module):
    """fc1 -> tanh -> op -> head, where op is log(1 + h) (forward: log 0 = -inf where tanh
    saturates at -1), sqrt(1 + h) (backward: d sqrt/dx = inf at 0) or nothing."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.act = nn.Tanh()
        self.op = op
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = 1.0 + self.act(self.fc1(x))
        ops = {"log": torch.log, "sqrt": torch.sqrt}
        return self.head(ops[self.op](h) if self.op in ops else h)


def _batch(step: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of the global batch of ``step`` (the whole batch when world == 1)."""
    g = torch.Generator().manual_seed(100 + step)
    x, y = torch.randn(GLOBAL_BATCH, 8, generator=g), torch.randint(0, 4, (GLOBAL_BATCH,), generator=g)
    x[:, 0] = x[:, 0].abs() * torch.where(torch.arange(GLOBAL_BATCH) < GLOBAL_BATCH // 2, -1.0, 1.0)
    n = GLOBAL_BATCH // world
    return x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]


def _train(model: nn.Module, wrapped: nn.Module, rank: int, world: int) -> dict:
    import gradsight as gs

    opt = torch.optim.SGD(wrapped.parameters(), lr=0.1)
    with gs.watch(wrapped, every=1) as mon:
        for step in range(STEPS):
            x, y = _batch(step, rank, world)
            out = wrapped(x)
            if world > 1 and rank == 0 and step == 1:
                mon.report()  # one rank alone, mid-step: must neither wait for the others nor change a number
            F.cross_entropy(out, y).backward()
            opt.step()
            opt.zero_grad()
            mon.step()
    rep = mon.report()
    return {
        "layers": [ls.to_dict() for ls in rep.layers],
        "params": [p.to_dict() for p in rep.params],
        "errors": rep.errors,
    }


def _wrap(kind: str, model: nn.Module) -> nn.Module:
    if kind == "ddp":
        return nn.parallel.DistributedDataParallel(model)
    if kind.startswith("fsdp1"):  # "fsdp1_orig": use_orig_params=True
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        return FSDP(
            model,
            device_id=torch.device("cpu"),
            auto_wrap_policy=ModuleWrapPolicy({Block}),
            use_orig_params=kind == "fsdp1_orig",
        )
    from torch.distributed.fsdp import fully_shard

    for sub in model.children():
        if any(True for _ in sub.parameters()):
            fully_shard(sub)
    fully_shard(model)
    return model


def _nan_run(kind: str, op: str, rank: int, world: int) -> dict:
    """Plant a non-finite value on rank 1 only, at step 1 of 3; the loss the optimizer follows
    is clamped so the run goes on."""
    import gradsight as gs

    torch.manual_seed(0)
    model = Planted(op)
    wrapped = _wrap(kind, model)
    opt = torch.optim.SGD(wrapped.parameters(), lr=0.0)  # lr 0: later steps stay as they were
    with gs.watch(wrapped, every=2) as mon:
        for step in range(STEPS):
            x, y = _batch(step, rank, world)
            if step == 1 and rank == 1 and op == "param":
                with torch.no_grad():  # this rank's shard only (all of it under DDP)
                    local = getattr(model.head.weight, "to_local", lambda: model.head.weight)()
                    local.view(-1)[-1] = math.nan
            elif step == 1 and rank == 1:
                x[3] = -1e4  # tanh(fc1(x)) = -1 exactly for some units: log(0), sqrt'(0)
            out = wrapped(x)
            F.cross_entropy(torch.nan_to_num(out), y).backward()
            opt.step()
            opt.zero_grad()
            mon.step()
    rep = mon.report()
    return {"findings": [f.to_dict() for f in rep.findings if f.kind == "non_finite"], "errors": rep.errors}


def _tp_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 4))


def _tp_run(world: int) -> dict:
    """fc "0" column-parallel, fc "2" row-parallel, fc "4" plain (a mix of DTensor and plain
    parameters); one step on the same batch on every rank (world 1: the reference)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    import gradsight as gs

    model = _tp_model()
    if world > 1:
        mesh = init_device_mesh("cpu", (world,))
        parallelize_module(model, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gs.watch(model, every=1) as mon:
            x, y = _batch(0, 0, 1)  # tensor parallel: every rank sees the same batch
            F.cross_entropy(model(x), y).backward()
            opt.step()
            mon.step()
    rep = mon.report()
    return {
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        "errors": rep.errors,
        "sites": mon.site_names,
        "params": [p.to_dict() for p in rep.params],
    }


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    out: dict = {}
    # the one-process reference, before any process group exists
    torch.manual_seed(0)
    model = Net()
    out["ref"] = _train(model, model, 0, 1)
    out["tp_ref"] = _tp_run(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{tmp}/rendezvous",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT),
    )
    try:
        for kind in ("ddp", "fsdp1", "fsdp1_orig", "fsdp2"):
            torch.manual_seed(0)
            model = Net()
            out[kind] = _train(model, _wrap(kind, model), rank, world)
        for kind in ("ddp", "fsdp2"):
            for op in ("log", "sqrt", "param"):
                out[f"nan_{kind}_{op}"] = _nan_run(kind, op, rank, world)
        out["nan_fsdp1_log"] = _nan_run("fsdp1", "log", rank, world)
        out["tp"] = _tp_run(world)
        with open(os.path.join(tmp, f"rank{rank}.json"), "w") as fh:
            json.dump(out, fh)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # the results are on disk; skip the interpreter's teardown, where gloo's threads now and
    # then abort the process ("terminate called without an active exception", no Python frame)
    os._exit(0)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("dist")
    ctx = mp.start_processes(_worker, args=(WORLD, str(tmp)), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"the 2-process run did not finish in {TIMEOUT} s (a hang)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(WORLD)]


@pytest.mark.parametrize("kind", ["ddp", "fsdp1", "fsdp1_orig", "fsdp2"])
def test_sites_and_layers_equal_one_process(ranks, kind):
    ref = ranks[0]["ref"]
    for r in ranks:
        got = r[kind]
        assert got["errors"] == []
        assert [ls["name"] for ls in got["layers"]] == ["act", "blk/gelu#0"]
        assert [ls["name"] for ls in got["layers"]] == [ls["name"] for ls in ref["layers"]]
        for a, b in zip(ref["layers"], got["layers"], strict=True):
            # the gradient of the loss the optimizer follows: not world_size x the reference
            assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
            assert b["grad_rms"] == pytest.approx(a["grad_rms"], rel=1e-5)
            assert b["weight_grad_norm"] == pytest.approx(a["weight_grad_norm"], rel=1e-5)
            assert b["update_ratio"] == pytest.approx(a["update_ratio"], rel=1e-4)
            assert b["incoming"] == a["incoming"]
            assert (b["samples"], b["units"], b["dead_fraction"]) == (a["samples"], a["units"], a["dead_fraction"])
            assert b["mean_derivative"] == pytest.approx(a["mean_derivative"], rel=1e-5)
        assert got["layers"][0]["dead_fraction"] == ref["layers"][0]["dead_fraction"] == 1 / 16
        assert [p["name"] for p in got["params"]] == ["fc1", "blk.fc1", "blk.fc2", "head"]
        assert [p["name"] for p in got["params"]] == [p["name"] for p in ref["params"]]
        for a, b in zip(ref["params"], got["params"], strict=True):
            for key in ("grad_norm", "weight_norm", "update_ratio"):
                assert b[key] == pytest.approx(a[key], rel=1e-4), (b["name"], key)
    assert [ls["grad_norm"] for ls in ranks[0][kind]["layers"]] == [ls["grad_norm"] for ls in ranks[1][kind]["layers"]]


@pytest.mark.parametrize("kind", ["ddp", "fsdp2"])
@pytest.mark.parametrize(("op", "phase"), [("log", "forward"), ("sqrt", "backward")])
def test_nan_on_one_rank_is_located_by_both(ranks, kind, op, phase):
    r0, r1 = (r[f"nan_{kind}_{op}"]["findings"] for r in ranks)
    assert r0 == r1  # both ranks finished and tell the same story
    first = [f for f in r0 if f["evidence"]["phase"] == phase]
    assert len(first) == 1, r0
    ev = first[0]["evidence"]
    assert (ev["step"], ev["site"], ev["module"], ev["op"], ev["rank"]) == (1, f"{op}#0", "", op, 1)



def test_tensor_parallel_is_named_in_a_warning_and_its_parameters_are_whole(ranks):
    ref = ranks[0]["tp_ref"]
    assert ref["errors"] == [] and ref["warnings"] == []
    for r in ranks:
        tp = r["tp"]
        assert tp["sites"] == ["1", "3"]
        said = [w for w in tp["warnings"] if w.startswith("GradsightWarning")]
        assert len(said) == 1, said
        # "1" reads fc "0"'s column-sharded output (8 of 16 units per rank); "3" reads the
        # row-parallel layer's whole output
        assert "layers ['0', '2'] hold DTensor parameters" in said[0]
        assert "sites ['1'] read a column-sharded output" in said[0]
        assert len(tp["errors"]) == 1 and tp["errors"][0] in said[0]
        # DTensor and plain parameters side by side: whole-tensor norms, as one process
        assert [p["name"] for p in tp["params"]] == [p["name"] for p in ref["params"]] == ["0", "2", "4"]
        for a, b in zip(ref["params"], tp["params"], strict=True):
            for key in ("grad_norm", "weight_norm", "update_ratio"):
                assert b[key] == pytest.approx(a[key], rel=1e-5), (b["name"], key)


@pytest.mark.parametrize("kind", ["ddp", "fsdp2"])
def test_nan_in_one_ranks_shard_of_a_parameter(ranks, kind):
    r0, r1 = (r[f"nan_{kind}_param"]["findings"] for r in ranks)
    assert r0 == r1
    assert len(r0) == 1, r0
    ev = r0[0]["evidence"]
    assert (ev["phase"], ev["step"], ev["site"], ev["module"], ev["nan"]) == ("parameters", 1, "head.weight", "head", 1)
    # DDP: only rank 1 holds the NaN. FSDP2: rank 0's own shard is finite, yet it finds the
    # NaN, because the parameter is judged whole (rank 0 is the lowest rank that found it)
    assert ev["rank"] == (1 if kind == "ddp" else 0)


def test_nan_under_fsdp1_is_agreed_and_said_unlocatable(ranks):
    r0, r1 = (r["nan_fsdp1_log"]["findings"] for r in ranks)
    assert r0 == r1
    ev = r0[0]["evidence"]
    assert (ev["phase"], ev["step"], ev["site"], ev["located"]) == ("forward", 1, None, False)
    for r in ranks:  # FSDP1 gathers inside its forward: replaying on one rank would hang
        assert any("FSDP1" in e and "cannot be replayed" in e for e in r["nan_fsdp1_log"]["errors"])
