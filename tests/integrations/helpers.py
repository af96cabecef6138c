"""What the trainer-callback tests share: a trainer run with the callback checked against a
hand-written loop, and two gloo ranks on CPU for the DDP tests."""

from __future__ import annotations

import copy
import json
import math
import os
import random
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

import gradsight

WORLD = 2


def check_like_a_hand_loop(
    cb: Any, base: torch.nn.Module, fit: Callable[..., Any], hand_loop: Callable[..., Any], tmp_path: Path
) -> None:
    """Train a copy of ``base`` with the callback ``cb`` (``every=1``) and one without, 4 steps
    each: the callback's report equals ``hand_loop``'s on a third copy, and both trained copies
    end with bit-identical parameters."""
    watched = copy.deepcopy(base)
    fit(watched, tmp_path, [cb])
    plain = copy.deepcopy(base)
    fit(plain, tmp_path)
    rep, ref = cb.report(), hand_loop(copy.deepcopy(base), every=1)
    assert rep.layers and rep.layers == ref.layers
    assert rep.findings == ref.findings and rep.params == ref.params
    assert rep.meta == ref.meta and rep.meta["steps"] == 4
    for (name, a), b in zip(watched.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b), name  # bit for bit
    assert cb.monitor.closed and not rep.errors


def assert_same_records(got: list[dict], ref: list[dict], rel: float = 1e-5) -> None:
    """Records (``LayerStats.to_dict()``, ``ParamStats.to_dict()``) equal field by field: floats
    to ``rel`` (sums over ranks add in another order), everything else exactly."""
    assert [r["name"] for r in got] == [r["name"] for r in ref]
    for g, r in zip(got, ref, strict=True):
        assert g.keys() == r.keys()
        for key, want in r.items():
            have = g[key]
            if isinstance(want, float) and not isinstance(have, bool) and math.isfinite(want):
                assert have == pytest.approx(want, rel=rel, abs=1e-12), (r["name"], key, have, want)
            else:
                assert have == want, (r["name"], key, have, want)


def is_ours(w: warnings.WarningMessage) -> bool:
    """A warning gradsight raised: a GradsightWarning, or one issued from a file of the package
    (not merely from a path with "gradsight" in it: a clone's .venv is one)."""
    package = Path(gradsight.__file__).resolve().parent
    return "Gradsight" in w.category.__name__ or Path(w.filename).resolve().is_relative_to(package)


def assert_rank_equals_one_process(rank: dict, ref: dict, steps: int) -> None:
    """A DDP rank's run (``rank``, what ``write_and_exit`` wrote) against the one-process
    reference report ``ref``: really DDP, one step per optimizer step (not per micro-batch),
    no error, and site names (no ``module.`` from the wrapper) and every number equal."""
    assert (rank["wrapper"], rank["world_size"]) == ("DistributedDataParallel", WORLD)
    assert rank["global_step"] == rank["optimizer_steps"] == rank["steps"] == steps
    assert rank["history"] == list(range(steps))
    assert rank["errors"] == [] and rank["ours"] == [], (rank["errors"], rank["ours"])
    assert_same_records(rank["layers"], ref["layers"])
    assert_same_records(rank["params"], ref["params"])


def report_dict(rep: Any) -> dict:
    """What a rank writes of its report for the parent test to read."""
    return {
        "layers": [ls.to_dict() for ls in rep.layers],
        "params": [p.to_dict() for p in rep.params],
        "history": [h.step for h in rep.history],
        "steps": rep.meta["steps"],
        "errors": rep.errors,
    }


def free_port() -> int:
    """A free port below the range the kernel hands out for outgoing connections (Linux: from
    32768), so gloo's own connections cannot take it between this check and the rendezvous."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000..32000")


def set_rank_env(rank: int, port: int) -> None:
    """The variables torchrun sets for one of WORLD processes on this host."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), NODE_RANK="0",
        WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD), OMP_NUM_THREADS="1",
    )  # fmt: skip
    torch.set_num_threads(1)


def write_and_exit(tmp: str, rank: int, out: dict) -> None:
    """Write this rank's results, then leave without the interpreter's teardown, where gloo's
    threads now and then abort the process after the work is done."""
    with open(os.path.join(tmp, f"rank{rank}.json"), "w") as fh:
        json.dump(out, fh)
    os._exit(0)


def run_ranks(worker: Callable[..., None], tmp: Path, timeout: float, tries: int = 3) -> list[dict]:
    """Spawn WORLD processes ``worker(rank, port, str(tmp))``; a hang fails after ``timeout``
    seconds and every process is killed; returns what each rank wrote with write_and_exit. A
    rendezvous port taken by another program in the meantime (EADDRINUSE) is tried again on
    another port."""
    for attempt in range(tries):
        ctx = mp.start_processes(worker, args=(free_port(), str(tmp)), nprocs=WORLD, join=False, start_method="spawn")
        deadline = time.monotonic() + timeout
        try:
            while not ctx.join(timeout=1.0):
                if time.monotonic() > deadline:
                    pytest.fail(f"the {WORLD}-process run did not finish in {timeout} s (a hang)")
            break
        except mp.ProcessRaisedException as exc:
            if "EADDRINUSE" not in str(exc) or attempt == tries - 1:
                raise
        finally:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
                    p.join()
    return [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(WORLD)]
