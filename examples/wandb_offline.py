"""gradsight's W&B sink in an offline run (nothing leaves the machine; `wandb sync` uploads it
later). Run: WANDB_MODE=offline python examples/wandb_offline.py"""

import tempfile

import torch
import wandb
from torch import nn

import gradsight as gs

torch.manual_seed(0)
layers: list[nn.Module] = []
for _ in range(12):
    layers += [nn.Linear(32, 32), nn.Sigmoid()]
model = nn.Sequential(*layers, nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.1)

run = wandb.init(project="gradsight-demo", mode="offline", dir=tempfile.mkdtemp())
with gs.watch(model, every=5, wandb=run) as mon:
    for _ in range(50):
        x, y = torch.randn(64, 32), torch.randint(0, 4, (64,))
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        mon.step()
        run.log({"loss": loss.item()})
s = run.summary
print({k: s[k] for k in ("loss", "gradsight_step", "gradsight_grad_norm/1", "gradsight_grad_norm/23",
                         "gradsight_findings/vanishing_gradients")})  # fmt: skip
print("findings table:", s["gradsight_findings_table"]["path"], s["gradsight_findings_table"]["nrows"], "row(s)")
run.finish()
