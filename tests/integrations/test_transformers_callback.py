"""GradsightCallback in real Hugging Face Trainer runs: tiny GPT-2 and BERT built from configs
(no download), token ids made here, batches in order so a hand-written loop sees the same ones."""

from __future__ import annotations

import copy
import io
import os

import pytest
import torch
from tests.integrations.helpers import check_like_a_hand_loop
from torch import nn
from torch.utils.data import Dataset, SequentialSampler

import gradsight as gs

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from gradsight.integrations.transformers import GradsightCallback  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:transformers")

VOCAB, T, B = 50, 8, 4


class Tokens(Dataset):
    def __init__(self, n: int = 32, seed: int = 0) -> None:
        self.ids = torch.randint(0, VOCAB, (n, T), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class InOrder(transformers.Trainer):
    """Batches in dataset order, the model's own mean loss: what a plain loop does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)


def gpt2() -> nn.Module:
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=VOCAB, n_positions=16,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                                  eos_token_id=0)  # fmt: skip
    return transformers.GPT2LMHeadModel(cfg)


def bert() -> nn.Module:
    cfg = transformers.BertConfig(num_hidden_layers=2, num_attention_heads=2, hidden_size=16,
                                  intermediate_size=32, vocab_size=VOCAB, max_position_embeddings=16,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    return transformers.BertForMaskedLM(cfg)


def fit(model, tmp_path, callbacks=(), steps=4, accum=1, logging_steps=1, batch=B, report_to="none", **more):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=batch, max_steps=steps,
        gradient_accumulation_steps=accum, report_to=report_to, use_cpu=True, logging_steps=logging_steps,
        save_strategy="no", max_grad_norm=0.0, disable_tqdm=True, seed=0, **more,
    )  # fmt: skip
    trainer = InOrder(model=model, args=args, train_dataset=Tokens(), callbacks=list(callbacks),
                      optimizers=(opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)))  # fmt: skip
    trainer.train()
    return trainer


def hand_loop(model, steps=4, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ids = Tokens().ids
    model.train()
    with gs.watch(model, **kw) as mon:
        for s in range(steps):
            xb = ids[B * s : B * (s + 1)]
            model(input_ids=xb, labels=xb).loss.backward()
            opt.step()
            model.zero_grad()
            mon.step()
    return mon.report()


@pytest.mark.parametrize("build", [gpt2, bert], ids=["gpt2", "bert"])
def test_report_equals_a_hand_loop_and_training_is_unchanged(build, tmp_path, capsys):
    torch.manual_seed(0)
    check_like_a_hand_loop(GradsightCallback(every=1), build(), fit, hand_loop, tmp_path)


def test_gradient_accumulation_counts_optimizer_steps(tmp_path, capsys):
    torch.manual_seed(0)
    cb = GradsightCallback(every=1)
    fit(gpt2(), tmp_path, [cb], steps=3, accum=2)  # 6 micro-batches
    rep = cb.report()
    assert rep.meta["steps"] == 3
    assert [r.step for r in rep.history] == [0, 1, 2]
    assert rep.layers[0].steps == 3


class Reporter(transformers.TrainerCallback):
    """Stands in for report_to=...: records what every on_log hands the reporters."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append({**logs, "step": state.global_step})


def test_scalars_reach_log_history_and_the_reporters_at_the_loss_steps(tmp_path, capsys, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    torch.manual_seed(0)
    reporter, cb = Reporter(), GradsightCallback(every=2)
    trainer = fit(gpt2(), tmp_path, [reporter, cb], steps=6, logging_steps=2, report_to=["tensorboard"])
    site = "transformer.h.1.mlp.act"
    # what every on_log receives: the loss's entry, then ours at the same step (see the module
    # docstring for why not one entry)
    assert [(e["step"], "loss" in e, f"gradsight_grad_norm/{site}" in e) for e in reporter.logs[:-1]] == [
        (step, loss, not loss) for step in (2, 4, 6) for loss in (True, False)
    ]
    ours = [e for e in reporter.logs if any(k.startswith("gradsight_") for k in e)]
    last = cb.report().layer(site)
    assert ours[-1][f"gradsight_grad_norm/{site}"] == last.grad_norm
    assert ours[-1][f"gradsight_mean_derivative/{site}"] == last.mean_derivative
    assert ours[-1]["gradsight_findings/dead_units"] == 0.0
    history = [e for e in trainer.state.log_history if f"gradsight_grad_norm/{site}" in e]
    assert [e["step"] for e in history] == [2, 4, 6]
    # a real reporter (report_to="tensorboard"): our scalars and the loss at the same x
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    grad = acc.Scalars(f"train/gradsight_grad_norm/{site}")
    assert [e.step for e in grad] == [e.step for e in loss] == [2, 4, 6]
    assert grad[-1].value == pytest.approx(last.grad_norm, rel=1e-6)


class DynamoFrames(transformers.TrainerCallback):
    """The number of frames torch.compile has compiled so far, at the end of every step."""

    def __init__(self) -> None:
        self.frames: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        from torch._dynamo.utils import counters

        self.frames.append(counters["frames"]["total"])


# dynamo reads .grad of the non-leaf tensors it resumes a graph with (here GPT-2's masking code),
# with or without the callback
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_torch_compile_every_logged_step_has_every_site_and_nothing_recompiles(tmp_path, capsys):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    base = gpt2()
    cb, frames = GradsightCallback(every=3), DynamoFrames()
    try:
        fit(copy.deepcopy(base), tmp_path, [cb, frames], steps=7, torch_compile=True, torch_compile_backend="eager")
    finally:
        torch._dynamo.reset()
    rep = cb.report()
    assert rep.meta["steps"] == 7 and not rep.errors
    sites = ["transformer.h.0.mlp.act", "transformer.h.1.mlp.act"]
    assert [(h.step, [ls.name for ls in h.layers]) for h in rep.history] == [(s, sites) for s in (0, 3, 6)]
    # the Trainer compiled the model in step 0; the watch made nothing compile again after it
    assert frames.frames[0] > 0 and frames.frames == frames.frames[:1] * 7
    ref = hand_loop(copy.deepcopy(base), steps=7, every=3)  # the same batches, not compiled
    for a, b in zip(rep.layers, ref.layers, strict=True):
        assert (a.name, a.samples, a.dead_fraction) == (b.name, b.samples, b.dead_fraction)
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-5)
        assert a.mean_derivative == pytest.approx(b.mean_derivative, rel=1e-5)


class SigmoidStack(nn.Module):
    """20 sigmoid layers: gradients vanish (a critical finding), returned as the Trainer wants."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 32)
        layers = []
        for _ in range(20):
            layers += [nn.Linear(32, 32), nn.Sigmoid()]
        self.body = nn.Sequential(*layers, nn.Linear(32, VOCAB))

    def forward(self, input_ids, labels):
        logits = self.body(self.emb(input_ids))  # (B, T, VOCAB)
        return {"loss": nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten()), "logits": logits}


def test_critical_findings_are_printed_once_and_the_html_is_written(tmp_path, capsys):
    torch.manual_seed(0)
    console = io.StringIO()
    cb = GradsightCallback(every=1, html=True, console=console)
    fit(SigmoidStack(), tmp_path, [cb], steps=6)
    lines = console.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradsight: [critical] vanishing_gradients at body.1")
    assert cb.html_path == tmp_path / "gradsight.html"
    assert "vanishing_gradients" in cb.html_path.read_text()
    assert cb.report().findings[0].kind == "vanishing_gradients"


def test_report_before_training_says_what_to_do():
    with pytest.raises(gs.GradsightError, match=r"training has not started"):
        GradsightCallback().report()
    with pytest.raises(gs.GradsightError, match=r"html must be True .* got 3"):
        GradsightCallback(html=3)
