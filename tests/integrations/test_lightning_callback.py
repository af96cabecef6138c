"""GradsightCallback in real Lightning runs: an MLP and a CNN on scikit-learn's digits, batches
in order so a hand-written loop sees the same ones."""

from __future__ import annotations

import copy
import csv
import io

import pytest
import torch
import torch.nn.functional as F
from tests.integrations.digits import B, cnn_net, digits, hand_loop, mlp_net
from tests.integrations.helpers import check_like_a_hand_loop
from torch import nn
from torch.utils.data import DataLoader

import gradsight as gs

pl = pytest.importorskip("pytorch_lightning")
from gradsight.integrations.lightning import GradsightCallback  # noqa: E402

pytestmark = [
    # Lightning's advice for real data loaders, not about anything under test
    pytest.mark.filterwarnings("ignore:The '\\w+_dataloader' does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated:FutureWarning"),
]

class Classifier(pl.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def mlp() -> Classifier:
    return Classifier(mlp_net())


def cnn() -> Classifier:
    return Classifier(cnn_net())


def fit(module, tmp_path, callbacks=(), steps=4, accum=1, log_every=1, order=None):
    trainer = pl.Trainer(
        max_steps=steps, accelerator="cpu", devices=1, accumulate_grad_batches=accum,
        callbacks=list(callbacks), logger=pl.loggers.CSVLogger(tmp_path, name="run"),
        log_every_n_steps=log_every, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, DataLoader(digits(), batch_size=B, sampler=order))  # order: sample indices
    return trainer


@pytest.mark.parametrize("build", [mlp, cnn], ids=["mlp", "cnn"])
def test_report_equals_a_hand_loop_and_training_is_unchanged(build, tmp_path):
    torch.manual_seed(0)
    check_like_a_hand_loop(GradsightCallback(every=1), build(), fit, hand_loop, tmp_path)


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    torch.manual_seed(0)
    cb = GradsightCallback(every=1)
    trainer = fit(mlp(), tmp_path, [cb], steps=3, accum=2)  # 6 batches
    assert trainer.global_step == 3
    rep = cb.report()
    assert rep.meta["steps"] == 3
    assert [r.step for r in rep.history] == [0, 1, 2]


def test_scalars_reach_the_loggers_beside_the_loss(tmp_path):
    torch.manual_seed(0)
    cb = GradsightCallback(every=2)
    trainer = fit(mlp(), tmp_path, [cb], steps=6, log_every=2)
    with open(f"{trainer.log_dir}/metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    site = "net.1"
    ours = [r for r in rows if r.get(f"gradsight_grad_norm/{site}")]
    assert [int(r["step"]) for r in ours] == [1, 3, 5]
    assert all(r["loss"] for r in ours)  # the same row as the loss: same step, same logger
    last = cb.report().layer(site)
    assert float(ours[-1][f"gradsight_grad_norm/{site}"]) == pytest.approx(last.grad_norm, rel=1e-6)
    assert float(ours[-1][f"gradsight_dead_fraction/{site}"]) == pytest.approx(last.dead_fraction)


def test_critical_findings_are_printed_once_and_the_html_is_written(tmp_path):
    layers: list[nn.Module] = [nn.Linear(64, 32), nn.Sigmoid()]
    for _ in range(15):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    torch.manual_seed(0)
    console = io.StringIO()
    cb = GradsightCallback(every=1, html=True, console=console)
    trainer = fit(Classifier(nn.Sequential(*layers, nn.Linear(32, 10))), tmp_path, [cb], steps=6, log_every=1)
    lines = console.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradsight: [critical] vanishing_gradients at net.1")
    assert str(cb.html_path) == f"{trainer.log_dir}/gradsight.html"
    assert "vanishing_gradients" in cb.html_path.read_text()


class NoForward(pl.LightningModule):
    """The other common style: training_step calls the network, the module has no forward."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_module_without_forward_is_watched_through_the_network_it_calls(tmp_path):
    torch.manual_seed(0)
    base = mlp().net
    cb = GradsightCallback(every=1)
    fit(NoForward(copy.deepcopy(base)), tmp_path, [cb])
    rep, ref = cb.report(), hand_loop(copy.deepcopy(base), every=1)
    assert [ls.name for ls in rep.layers] == ["1", "3"]
    assert rep.layers == ref.layers and all(ls.grad_norm > 0 for ls in rep.layers)
    with pytest.raises(gs.GradsightError, match=r"unknown submodule 'nett'; did you mean 'net'\?"):
        fit(NoForward(copy.deepcopy(base)), tmp_path, [GradsightCallback(module="nett")])
