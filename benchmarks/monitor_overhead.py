"""Step-time overhead of gradsight.watch on CPU workloads, measured interleaved in one process.

    python benchmarks/monitor_overhead.py [--steps 200] [--threads N]

For each workload every configuration runs one training step in turn (plain, watched at the
default settings, watched with every=1, a naive hook monitor) for --steps rounds, after a
warm-up; the table shows median step time and the ratio to plain. Interleaving makes the
ratios robust to machine load that drifts during the run (the absolute times are not).

The naive monitor is what people write first: a forward hook per activation module that
registers a tensor hook and calls ``.item()`` on the gradient norm, every step.
Cockpit (``cockpit-for-pytorch``) is not included: installing it replaces the pinned torch.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import gradsight as gs


def relu_mlp() -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(20):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


def sigmoid_mlp() -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(8):
        layers += [nn.Linear(256, 256), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


class Block(nn.Module):
    """Pre-norm transformer block, functional GELU in the MLP: (B, T, C) -> (B, T, C)."""

    def __init__(self, d: int = 128, heads: int = 4) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x).mean(1))


WORKLOADS = {
    "relu_mlp 20x256": (relu_mlp, (128, 256)),
    "sigmoid_mlp 8x256": (sigmoid_mlp, (128, 256)),
    "small_cnn": (small_cnn, (64, 3, 32, 32)),
    "transformer block F.gelu": (TinyTransformer, (16, 64, 128)),
}


class NaiveMonitor:
    """One .item() per activation site per step: a host sync in every backward hook."""

    def __init__(self, model: nn.Module) -> None:
        self.norms: dict[str, list[float]] = {}
        self.handles = []
        for name, mod in model.named_modules():
            if isinstance(mod, (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU)):
                self.handles.append(mod.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def fwd(mod, args, out):
            out.register_hook(lambda g: self.norms.setdefault(name, []).append(g.norm().item()))

        return fwd

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def run(steps: int) -> list[tuple[str, dict[str, float]]]:
    rows = []
    for wname, (make, shape) in WORKLOADS.items():
        torch.manual_seed(0)
        base = make()
        configs = {}
        for cname in ("plain", "watch (default every=10)", "watch every=1", "naive .item() hooks"):
            m = make()
            m.load_state_dict(base.state_dict())
            opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
            if cname.startswith("watch"):
                mon = gs.watch(m, every=1 if cname == "watch every=1" else 10)
            elif cname.startswith("naive"):
                mon = NaiveMonitor(m)
            else:
                mon = None
            configs[cname] = (m, opt, mon)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(*shape, generator=g)
        y = torch.randint(0, 10, (shape[0],), generator=g)
        times: dict[str, list[float]] = {c: [] for c in configs}

        def one(c: str, configs=configs, x=x, y=y) -> float:
            m, opt, mon = configs[c]
            t0 = time.perf_counter()
            F.cross_entropy(m(x), y).backward()
            opt.step()
            opt.zero_grad()
            if isinstance(mon, gs.Monitor):
                mon.step()
            return time.perf_counter() - t0

        for _ in range(10):
            for c in configs:
                one(c)
        for i in range(steps):
            order = list(configs) if i % 2 == 0 else list(reversed(configs))
            for c in order:
                times[c].append(one(c))
        for _, _, mon in configs.values():
            if mon is not None:
                mon.close()
        base_t = statistics.median(times["plain"])
        rows.append((wname, {c: statistics.median(t) / base_t for c, t in times.items()} | {"_ms": base_t * 1e3}))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200, help="measured steps per configuration")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args.steps)
    cols = ["watch (default every=10)", "watch every=1", "naive .item() hooks"]
    print(f"gradsight.watch overhead: median step time ratio to plain, {args.steps} interleaved "
          f"steps, torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"| workload | plain ms/step | {' | '.join(cols)} |")
    print("|---|---:|" + "---:|" * len(cols))
    for wname, r in rows:
        print(f"| {wname} | {r['_ms']:.2f} | " + " | ".join(f"{r[c]:.3f}x" for c in cols) + " |")
    print("Cockpit economy: not measured (pip install -c constraints.txt cockpit-for-pytorch "
          "fails: it needs backpack-for-pytorch, whose torch requirement conflicts with the pin)")


if __name__ == "__main__":
    main()
