"""The Hugging Face GradsightCallback under DDP as the Trainer sets it up: 2 gloo processes on
CPU, launched as torchrun would (RANK/LOCAL_RANK/WORLD_SIZE/MASTER_* in the environment, so
``TrainingArguments(ddp_backend="gloo", use_cpu=True)`` starts the process group and the
Trainer wraps the model in DistributedDataParallel), against one process on the same global
batches.

The Trainer's data loader, sharded by accelerate, gives rank r batches r, r+2, r+4 ... of the
in-order token ids: micro-batch k of 4 on the two ranks covers samples 8k .. 8k+7, the one
process's micro-batch k of 8. The monitor reports the gradient of the loss the optimizer follows
(the ranks' mean), so every per-site number on every rank equals the one process's.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.distributed as dist
from tests.integrations.helpers import (
    WORLD,
    assert_rank_equals_one_process,
    is_ours,
    report_dict,
    run_ranks,
    set_rank_env,
    write_and_exit,
)
from tests.integrations.test_transformers_callback import B, fit, gpt2

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from gradsight.integrations.transformers import GradsightCallback  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:transformers"),
]

STEPS, ACCUM = 3, 2  # 3 optimizer steps of 2 micro-batches each
TIMEOUT = 90  # seconds for the whole spawn (imports included); collectives give up after 30
SITE = "transformer.h.1.mlp.act"


class OptimizerSteps(transformers.TrainerCallback):
    """Counts the optimizer steps the Trainer takes."""

    def __init__(self) -> None:
        self.n = 0

    def on_optimizer_step(self, args, state, control, **kwargs) -> None:
        self.n += 1


def _rank(rank: int, port: int, tmp: str) -> None:
    set_rank_env(rank, port)
    torch.manual_seed(0)
    model, cb, counted = gpt2(), GradsightCallback(every=1), OptimizerSteps()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = fit(model, tmp, [cb, counted], steps=STEPS, accum=ACCUM, ddp_backend="gloo", ddp_timeout=30)
    out = report_dict(cb.report())
    out.update(
        global_step=trainer.state.global_step, optimizer_steps=counted.n, world_size=trainer.args.world_size,
        wrapper=type(trainer.model_wrapped).__name__,
        logged=[e["step"] for e in trainer.state.log_history if f"gradsight_grad_norm/{SITE}" in e],
        last_logged=[e for e in trainer.state.log_history if f"gradsight_grad_norm/{SITE}" in e][-1],
        ours=[str(w.message) for w in caught if is_ours(w)],
    )  # fmt: skip
    write_and_exit(tmp, rank, out)


def test_ddp_counts_optimizer_steps_and_equals_one_process(tmp_path, capsys):
    ranks = run_ranks(_rank, tmp_path, TIMEOUT)
    torch.manual_seed(0)
    ref_cb = GradsightCallback(every=1)
    fit(gpt2(), tmp_path / "one", [ref_cb], steps=STEPS, accum=ACCUM, batch=WORLD * B)  # one process
    ref = report_dict(ref_cb.report())
    assert [ls["name"] for ls in ref["layers"]] == ["transformer.h.0.mlp.act", SITE]
    for r in ranks:
        assert_rank_equals_one_process(r, ref, STEPS)
        # the scalars the Trainer's reporters got are the report's numbers
        assert r["logged"] == [1, 2, 3]
        assert r["last_logged"][f"gradsight_grad_norm/{SITE}"] == pytest.approx(ref["layers"][1]["grad_norm"], rel=1e-5)
