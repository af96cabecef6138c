"""The Lightning callback with each Lightning package: ``lightning.pytorch`` alone (in a fresh
interpreter where ``import pytorch_lightning`` fails), ``lightning.pytorch`` beside
``pytorch_lightning`` (the ``lightning`` 2.6 wheel installs both), and neither."""

from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from tests.integrations.digits import B, digits, hand_loop, mlp_net
from tests.integrations.helpers import report_dict
from torch import nn
from torch.utils.data import DataLoader

pytestmark = [
    pytest.mark.filterwarnings("ignore:The '\\w+_dataloader' does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated:FutureWarning"),
]


def lightning_run(L, GradsightCallback, tmp: str) -> dict:  # noqa: N803 - L as in "import lightning as L"
    """4 steps of an MLP with a forward and one without (training_step calls self.net) in a
    ``lightning.pytorch`` Trainer, each with the callback, beside the hand loop's reports."""

    class WithForward(L.LightningModule):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class NoForward(WithForward):
        forward = L.LightningModule.forward

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self.net(batch[0]), batch[1])

    torch.manual_seed(0)
    base = mlp_net()
    out: dict = {"isinstance": []}
    for kind, module in (("forward", WithForward), ("no_forward", NoForward)):
        cb = GradsightCallback(every=1)
        out["isinstance"].append(isinstance(cb, L.Callback))
        L.Trainer(
            max_steps=4, accelerator="cpu", devices=1, callbacks=[cb], logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp,
        ).fit(module(copy.deepcopy(base)), DataLoader(digits(), batch_size=B, shuffle=False))  # fmt: skip
        out[kind] = report_dict(cb.report())
    out["ref_forward"] = report_dict(hand_loop(WithForward(copy.deepcopy(base)), every=1))
    out["ref_no_forward"] = report_dict(hand_loop(copy.deepcopy(base), every=1))
    return out


def lightning_only(tmp: str) -> None:
    """Run in a fresh interpreter: ``pytorch_lightning`` cannot be imported there."""
    sys.modules["pytorch_lightning"] = None  # as if only the `lightning` package were installed
    import lightning.pytorch as L

    from gradsight.integrations.lightning import GradsightCallback

    out = lightning_run(L, GradsightCallback, tmp)
    out["bases"] = [f"{c.__module__}.{c.__name__}" for c in GradsightCallback.__mro__ if c.__name__ == "Callback"]
    print(json.dumps(out))


def check(out: dict) -> None:
    assert out["isinstance"] == [True, True]
    assert [ls["name"] for ls in out["forward"]["layers"]] == ["net.1", "net.3"]
    assert [ls["name"] for ls in out["no_forward"]["layers"]] == ["1", "3"]  # the child training_step calls
    for kind in ("forward", "no_forward"):
        assert out[kind] == out[f"ref_{kind}"]  # the hand loop's report, number for number
        assert out[kind]["steps"] == 4 and out[kind]["errors"] == []
        assert all(ls["grad_norm"] > 0 for ls in out[kind]["layers"])


def test_lightning_pytorch_alone(tmp_path):
    pytest.importorskip("lightning")
    code = f"from tests.integrations.test_lightning_packages import lightning_only; lightning_only({str(tmp_path)!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["bases"] == ["lightning.pytorch.callbacks.callback.Callback"]
    check(out)


def test_lightning_pytorch_beside_pytorch_lightning(tmp_path):
    L = pytest.importorskip("lightning.pytorch")  # noqa: N806
    pl = pytest.importorskip("pytorch_lightning")
    from gradsight.integrations.lightning import GradsightCallback

    assert isinstance(GradsightCallback(), pl.Callback)
    check(lightning_run(L, GradsightCallback, str(tmp_path)))


def test_neither_package_says_what_to_install(monkeypatch):
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "gradsight.integrations.lightning", raising=False)
    with pytest.raises(ImportError, match=r"needs pytorch-lightning or lightning \(.*pytorch_lightning.*\); "
                                          r"install it with: pip install 'gradsight\[lightning\]'"):  # fmt: skip
        importlib.import_module("gradsight.integrations.lightning")
