"""The Lightning GradsightCallback under DDP as Lightning sets it up: 2 gloo processes on CPU,
launched as torchrun would (``strategy="ddp"``, RANK/LOCAL_RANK/WORLD_SIZE in the environment),
against one process on the same global batches.

The training loader is Lightning's own: it replaces the sampler with a DistributedSampler that
shuffles with seed 0, i.e. takes the order p = randperm(n) of a generator seeded 0 (epoch 0) and
gives rank r the samples p[r], p[r+2], p[r+4] ... Micro-batch k of 16 on the two ranks then
covers p[32k .. 32k+31], the one process's micro-batch k of 32 when it reads the digits in the
order p. The monitor reports the gradient of the loss the optimizer follows (the ranks' mean),
so every per-site number on every rank equals the one process's.
"""

from __future__ import annotations

import csv
import datetime
import warnings

import pytest
import torch
import torch.distributed as dist
from tests.integrations.digits import B, digits
from tests.integrations.helpers import (
    WORLD,
    assert_rank_equals_one_process,
    is_ours,
    report_dict,
    run_ranks,
    set_rank_env,
    write_and_exit,
)
from tests.integrations.test_lightning_callback import fit, mlp
from torch.utils.data import DataLoader

pl = pytest.importorskip("pytorch_lightning")
from gradsight.integrations.lightning import GradsightCallback  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built"),
    pytest.mark.filterwarnings("ignore:The '\\w+_dataloader' does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated:FutureWarning"),
]

STEPS, ACCUM = 3, 2  # 3 optimizer steps of 2 micro-batches each
TIMEOUT = 90  # seconds for the whole spawn (imports included); collectives give up after 30


class OptimizerSteps(pl.Callback):
    """Counts the optimizer steps Lightning takes and notes the wrapper the model trains in."""

    def __init__(self) -> None:
        self.n = 0
        self.wrapper = ""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.n += 1
        self.wrapper = type(trainer.strategy.model).__name__  # what the training step runs through


def _rank(rank: int, port: int, tmp: str) -> None:
    set_rank_env(rank, port)
    from pytorch_lightning.strategies import DDPStrategy

    torch.manual_seed(0)
    module, cb, counted = mlp(), GradsightCallback(every=1), OptimizerSteps()
    trainer = pl.Trainer(
        max_steps=STEPS, accelerator="cpu", devices=WORLD, accumulate_grad_batches=ACCUM,
        strategy=DDPStrategy(process_group_backend="gloo", timeout=datetime.timedelta(seconds=30)),
        callbacks=[cb, counted], logger=pl.loggers.CSVLogger(tmp, name="run"), log_every_n_steps=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, DataLoader(digits(), batch_size=B // WORLD, shuffle=False))
    out = report_dict(cb.report())
    out.update(
        global_step=trainer.global_step, optimizer_steps=counted.n, world_size=trainer.world_size,
        wrapper=counted.wrapper, log_dir=trainer.log_dir,
        ours=[str(w.message) for w in caught if is_ours(w)],
    )  # fmt: skip
    write_and_exit(tmp, rank, out)


def test_ddp_counts_optimizer_steps_and_equals_one_process(tmp_path):
    ranks = run_ranks(_rank, tmp_path, TIMEOUT)
    torch.manual_seed(0)
    ref_cb = GradsightCallback(every=1)
    order = torch.randperm(len(digits()), generator=torch.Generator().manual_seed(0)).tolist()
    fit(mlp(), tmp_path / "one", [ref_cb], steps=STEPS, accum=ACCUM, order=order)  # one process, batch B
    ref = report_dict(ref_cb.report())
    assert [ls["name"] for ls in ref["layers"]] == ["net.1", "net.3"]
    for r in ranks:
        assert_rank_equals_one_process(r, ref, STEPS)
    # what rank 0's logger wrote at the last step is the number in the report
    with open(f"{ranks[0]['log_dir']}/metrics.csv") as fh:
        rows = [row for row in csv.DictReader(fh) if row.get("gradsight_grad_norm/net.1")]
    assert [int(row["step"]) for row in rows] == [0, 1, 2]
    assert float(rows[-1]["gradsight_grad_norm/net.1"]) == pytest.approx(ref["layers"][0]["grad_norm"], rel=1e-5)
