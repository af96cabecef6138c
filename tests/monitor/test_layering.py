"""The monitor sits below the integrations: no module of gradsight.monitor imports a trainer or
wandb (checked in a fresh interpreter where importing them fails), and watch() still works."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = ("transformers", "pytorch_lightning", "lightning", "accelerate", "wandb")

SCRIPT = textwrap.dedent(
    f"""
    import importlib, pkgutil, sys
    for name in {BLOCKED!r}:
        sys.modules[name] = None  # any import of it raises ImportError
    import torch, gradsight.monitor as monitor
    names = [m.name for m in pkgutil.walk_packages(monitor.__path__, "gradsight.monitor.")]
    for name in names:
        importlib.import_module(name)
    import gradsight as gs
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with gs.watch(model, every=1) as mon:
        model(torch.randn(8, 4)).sum().backward(); mon.step()
    try:
        monitor.WandbSink()
    except gs.GradsightError as exc:
        print("wandb:", exc)
    print(len(names), [l.name for l in mon.report().layers])
    """
)


def test_the_monitor_imports_and_runs_with_every_trainer_blocked():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("wandb: the W&B sink needs the wandb package")
    n, sites = lines[1].split(" ", 1)
    assert int(n) >= 15 and sites == "['1']"
