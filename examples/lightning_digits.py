"""gradsight in a Lightning run: a 10-layer sigmoid MLP on scikit-learn's digits, with
accumulate_grad_batches=2 and a CSV logger. Run: python examples/lightning_digits.py"""

import csv
import tempfile

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gradsight.integrations.lightning import GradsightCallback


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(64, 64), nn.Sigmoid()]
        for _ in range(9):
            layers += [nn.Linear(64, 64), nn.Sigmoid()]
        self.net = nn.Sequential(*layers, nn.Linear(64, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


torch.manual_seed(0)
d = load_digits()
data = TensorDataset(torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target))
cb = GradsightCallback(every=5)
trainer = pl.Trainer(
    max_steps=60, accumulate_grad_batches=2, log_every_n_steps=10, callbacks=[cb],
    logger=pl.loggers.CSVLogger(tempfile.mkdtemp()), enable_progress_bar=False,
    enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
)  # fmt: skip
trainer.fit(Classifier(), DataLoader(data, batch_size=32, shuffle=True))
print("optimizer steps:", trainer.global_step, "| monitor steps:", cb.report().meta["steps"])
with open(f"{trainer.log_dir}/metrics.csv") as fh:
    row = [r for r in csv.DictReader(fh) if r.get("gradsight_grad_norm/1")][-1]
print("metrics.csv, step", row["step"], {k: row[k] for k in ("loss", "gradsight_grad_norm/1", "gradsight_grad_norm/19")})
print(cb.report())
