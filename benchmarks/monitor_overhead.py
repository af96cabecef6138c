"""Step-time overhead of gradsight.watch on CPU workloads, measured interleaved in one process.

    python benchmarks/monitor_overhead.py [--steps 200] [--threads N] [--cockpit-steps 10]
                                          [--steady-malloc] [--floor] [--fixed] [--ablate]

For each workload every configuration runs one training step in turn (plain, a second plain
copy, watched at the default settings, watched with every=1, a naive hook monitor) for
--steps rounds, after a warm-up; the table shows median step time and the ratio to plain.
Interleaving makes the ratios robust to machine load that drifts during the run (the absolute
times are not); the second plain copy shows how far from 1.000x noise alone moves a ratio.
Each round runs the configurations in a fresh random order (seeded): with a fixed or
alternating order the step that runs right after a step of the same model finds it still in
the caches, and the configuration at the ends of the order gets that advantage every other
round (measured: 3-4 points between two copies of the same monitor).

Page faults: glibc's malloc gives freed heap back to the kernel when enough of it is free at
the top, and the next step faults it back in, ~2.4 us per 4 KiB page on the 2-core VM. Whether
a run does so is a lottery of heap layout: the plain 20x256 MLP measured 0 faults a step in one
process and 800 in the next (~2 ms of a 10 ms step), and a step time that flips between two
values makes a median flip too. The second table gives faults per step; ``--steady-malloc``
switches the returning off for the whole process, plain and watched alike.

The naive monitor is what people write first: a forward hook per activation module that
registers a tensor hook and calls ``.item()`` on the gradient norm, every step.

``--floor`` adds four configurations of bare hooks (BareHooks) that do only the arithmetic of
the monitor's logged step -- holding y and dLoss/dy, the per-unit derivative sums, the
gradient norms, both -- with none of its checks: how much of ``watch every=1`` any monitor
that measures every site every step pays, and how much is the monitor's own.

``--fixed`` adds the fixed cost of a step, in microseconds over plain (difference of medians):
the monitor at ``every=1000`` (what every unlogged step pays), the same without the non-finite
checks, and the hooks it uses on every step with empty bodies (EmptyHooks): the price of being
called at all.

``--ablate`` adds the monitor at the defaults (every=10) once per optimisation path with that
path switched off (ABLATE; the switches live here, in the benchmark, not in the library): a
path's gain is its column minus "watch (default every=10)", to be read against the noise
column. What was measured that way and removed: benchmarks/README.md.

Cockpit's economy configuration is measured when ``cockpit`` imports (BackPACK supports the
MLPs and the CNN, not attention). It installs beside the pinned torch without replacing it,
in a throwaway venv that sees this one's packages:

    python -m venv /tmp/ck && echo $PWD/.venv/lib/python3.11/site-packages \
        > /tmp/ck/lib/python3.11/site-packages/main.pth
    /tmp/ck/bin/pip install -c constraints.txt cockpit-for-pytorch "setuptools<81"
    /tmp/ck/bin/python benchmarks/monitor_overhead.py
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import random
import statistics
import time
from typing import Any

try:
    import resource  # Unix: minor page faults per step
except ImportError:  # pragma: no cover - Windows
    resource = None

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


class BareHooks:
    """The floor under any per-step, per-site measurement: hooks on the activation modules
    (ReLU, Sigmoid) that do only the arithmetic of the monitor's logged step, none of its
    checks (no non-finite checks, no window, no host copy, no error guard). ``kind``:

        hold   keep each site output y, and dLoss/dy (a node pre-hook that is a bare
               ``list.append``), to the end of the step; no kernel
        sums   at the end of the forward, per site D[u] = sum over samples of f'(z): one
               derivative kernel into a buffer kept per shape, one reduction (a
               matrix-vector product for feature-last outputs, as in the monitor)
        norms  ||dLoss/dy|| of every site, taken in a pre-hook on y's autograd node as the
               gradient passes (as the monitor does on the CPU; holding the gradients to
               the end of the backward and norming them together cost more, see "hold")
        both   sums and norms: the least a monitor can do that measures every site every step

    f' is read from the output (ReLU: sign(y), sigmoid: y - y^2). A unit is a channel for
    4-d outputs, the last dimension otherwise, as in the monitor. ``D`` and ``norms`` keep the
    last step's numbers (tests check them against the definitions)."""

    KINDS = ("hold", "sums", "norms", "both")

    def __init__(self, model: nn.Module, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"BareHooks kind {kind!r}: expected one of {self.KINDS}")
        self.kind = kind
        self.sites = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.Sigmoid))]
        self.outs: list[tuple[nn.Module, torch.Tensor]] = []
        self.grads: list[tuple[torch.Tensor | None, ...]] = []  # held ("hold")
        self.taken: list[torch.Tensor] = []  # this step's norms ("norms", "both")
        self.buffers: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = {}
        self.D: list[torch.Tensor] = []
        self.norms: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._site) for m in self.sites]
        self.handles.append(model.register_forward_hook(self._end_forward))

    def _site(self, module: nn.Module, args: object, y: torch.Tensor) -> None:
        if torch.is_grad_enabled():
            self.outs.append((module, y))

    def _end_forward(self, model: nn.Module, args: object, out: object) -> None:
        D = []
        for module, y in self.outs:
            if self.kind != "sums" and y.grad_fn is not None:
                y.grad_fn.register_prehook(self.grads.append if self.kind == "hold" else self._norm)
            if self.kind in ("sums", "both"):
                D.append(self._unit_sums(module, y.detach()))
        if self.kind != "hold":
            self.outs.clear()
        if D:
            self.D = D

    def _unit_sums(self, module: nn.Module, y: torch.Tensor) -> torch.Tensor:
        """f'(z) into a buffer kept per shape, then one reduction per unit, as the monitor
        takes it: for feature-last outputs a matrix-vector product with a ones vector (a
        column ``sum(0)`` of the same (128, 256) buffer measured 6-15x slower in a warm loop),
        over batch and space for 4-d ones."""
        entry = self.buffers.get(tuple(y.shape))
        if entry is None:
            buf = torch.empty_like(y)
            if y.ndim == 4:
                entry = (buf, None, None)
            else:
                rows = y.numel() // y.shape[-1]
                entry = (buf, buf.view(rows, -1).t(), torch.ones(rows, dtype=y.dtype))
            self.buffers[tuple(y.shape)] = entry
        buf, mat, ones = entry
        d = torch.sign(y, out=buf) if isinstance(module, nn.ReLU) else torch.addcmul(y, y, y, value=-1, out=buf)
        return d.sum((0, 2, 3)) if mat is None else torch.mv(mat, ones)

    def _norm(self, grads: tuple[torch.Tensor | None, ...]) -> None:
        if grads[0] is not None:
            self.taken.append(torch.linalg.vector_norm(grads[0]))

    def step(self) -> None:
        if self.taken:
            self.norms, self.taken = self.taken, []
        self.grads.clear()
        self.outs.clear()

    def close(self) -> None:
        for h in self.handles:
            h.remove()


class EmptyHooks:
    """The hooks the monitor uses on every step, with nothing in them: a forward pre-hook and
    a forward hook on the model (with kwargs, ``always_call``), a pre-hook on the output's
    autograd node that queues an end-of-backward callback, and the callback. ``calls`` counts
    the callbacks run (one per backward)."""

    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        self.handles = [
            model.register_forward_pre_hook(self._pre, with_kwargs=True),
            model.register_forward_hook(self._post, with_kwargs=True, always_call=True),
        ]

    def _pre(self, module: nn.Module, args: object, kwargs: object) -> None:
        return None

    def _post(self, module: nn.Module, args: object, kwargs: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.grad_fn is not None:
            out.grad_fn.register_prehook(self._on_output_node)

    def _on_output_node(self, grads: tuple[torch.Tensor | None, ...]) -> None:
        torch.autograd.Variable._execution_engine.queue_callback(self._end_of_backward)

    def _end_of_backward(self) -> None:
        self.calls += 1

    def step(self) -> None:
        return None

    def close(self) -> None:
        for h in self.handles:
            h.remove()


class CockpitRunner:
    """Cockpit (Schneider et al. 2021) with configuration("economy"), tracked every step."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer) -> None:
        import warnings

        from backpack import extend
        from cockpit import Cockpit
        from cockpit.utils.configuration import configuration

        warnings.filterwarnings("ignore")
        self.model = extend(model)
        self.loss = extend(nn.CrossEntropyLoss())
        self.individual = nn.CrossEntropyLoss(reduction="none")
        self.cockpit = Cockpit(model.parameters(), quantities=configuration("economy"))
        self.opt = opt
        self.global_step = 0

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        out = self.model(x)
        loss = self.loss(out, y)
        losses = self.individual(out, y)
        info = {"batch_size": x.shape[0], "individual_losses": losses, "loss": loss, "optimizer": self.opt}
        with self.cockpit(self.global_step, info=info):
            loss.backward(create_graph=self.cockpit.create_graph(self.global_step))
        self.opt.step()
        self.opt.zero_grad()
        self.global_step += 1


def have_cockpit() -> bool:
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cockpit  # noqa: F401
        return True
    except Exception:  # noqa: BLE001 - any failure: not measured
        return False


class Ablation:
    """The monitor at the defaults with one path switched off: ``patches`` are module globals
    (module, name, value) set around each of its steps only, ``prepare`` changes the Monitor
    once, when it is made. Nothing here is used by the library or its tests."""

    def __init__(self, doc: str, patches: tuple[tuple[str, str, Any], ...] = (), prepare: Any = None) -> None:
        self.doc, self.prepare = doc, prepare
        self.patches = [(importlib.import_module(f"gradsight.monitor.{m}"), n, v) for m, n, v in patches]

    def __enter__(self) -> None:
        self.saved = [getattr(mod, name) for mod, name, _ in self.patches]
        for mod, name, value in self.patches:
            setattr(mod, name, value)

    def __exit__(self, *exc: object) -> None:
        for (mod, name, _), value in zip(self.patches, self.saved, strict=True):
            setattr(mod, name, value)


def _input_derivative(mon: gs.Monitor) -> None:
    """Every new site reads f' from its input z where it could read it from its output y
    (in-place sites keep y: their input is overwritten)."""
    make = mon._new_site

    def new_site(*args: Any, **kw: Any) -> Any:
        site = make(*args, **kw)
        if not site.inplace and not site.act.is_gated:
            site.out_deriv = None
        return site

    mon._new_site = new_site


ABLATE = {
    "watch, f' from z": Ablation("sites.py: f' from the input where the output has it", prepare=_input_derivative),
    "watch, outputs checked at once": Ablation(
        "guard.py: model outputs checked at the end of the forward", (("guard", "HOLD_OUTPUTS", 0),)
    ),
    "watch, update ratio of whole tensors": Ablation(
        "params.py: no SAMPLE, every weight copied across the step", (("params", "SAMPLE", 1 << 62),)
    ),
}

AA = "plain again (noise)"
COLUMNS = [AA, "watch (default every=10)", "watch every=1", "naive .item() hooks", "cockpit economy"]
FLOOR = {"bare: hold y, g": "hold", "bare: f' sums": "sums", "bare: grad norms": "norms",
         "bare: sums + norms": "both"}  # fmt: skip
FIXED = ["empty hooks", "watch every=1000, no non-finite checks", "watch every=1000"]


def run(
    steps: int, cockpit_steps: int, floor: bool = False, fixed: bool = False, ablate: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for wname, (make, shape) in WORKLOADS.items():
        torch.manual_seed(0)
        base = make()
        configs = {}
        g = torch.Generator().manual_seed(0)
        x = torch.randn(*shape, generator=g)
        y = torch.randint(0, 10, (shape[0],), generator=g)
        extra_columns = [*(FLOOR if floor else ()), *(FIXED if fixed else ()), *(ABLATE if ablate else ())]
        for cname in ["plain", *COLUMNS, *extra_columns]:
            m = make()
            m.load_state_dict(base.state_dict())
            opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
            if cname.startswith("watch every=1000"):
                mon = gs.watch(m, every=1000, check_nonfinite="no non-finite" not in cname)
            elif cname in ABLATE:
                mon = gs.watch(m)  # the defaults
                if ABLATE[cname].prepare is not None:
                    ABLATE[cname].prepare(mon)
            elif cname.startswith("watch"):
                mon = gs.watch(m, every=1 if cname == "watch every=1" else 10)
            elif cname == "empty hooks":
                mon = EmptyHooks(m)
            elif cname.startswith("naive"):
                mon = NaiveMonitor(m)
            elif cname in FLOOR:
                mon = BareHooks(m, FLOOR[cname])
                if not mon.sites:  # functional activations: module hooks see none
                    mon.close()
                    continue
            elif cname.startswith("cockpit"):
                if not have_cockpit() or cockpit_steps <= 0:
                    continue
                try:
                    mon = CockpitRunner(m, opt)
                    mon.step(x, y)
                except Exception:  # noqa: BLE001 - BackPACK does not support every layer
                    continue
            else:
                mon = None
            configs[cname] = (m, opt, mon)
        slow = {c for c, (_, _, mon) in configs.items() if isinstance(mon, CockpitRunner)}
        fast = [c for c in configs if c not in slow]
        times: dict[str, list[float]] = {c: [] for c in configs}
        faults: dict[str, list[int]] = {c: [] for c in configs}

        def timed(c: str, faults=faults) -> float:
            f0 = minor_faults()
            dt = one(c)
            faults[c].append(minor_faults() - f0)
            return dt

        def one(c: str, configs=configs, x=x, y=y) -> float:
            m, opt, mon = configs[c]
            with ABLATE.get(c) or contextlib.nullcontext():  # its switch set outside the timing
                t0 = time.perf_counter()
                if isinstance(mon, CockpitRunner):
                    mon.step(x, y)
                    return time.perf_counter() - t0
                F.cross_entropy(m(x), y).backward()
                opt.step()
                opt.zero_grad()
                if isinstance(mon, (gs.Monitor, BareHooks, EmptyHooks)):
                    mon.step()
                return time.perf_counter() - t0

        for _ in range(10):
            for c in fast:
                one(c)
        shuffle = random.Random(0).shuffle
        for _ in range(steps):
            order = list(fast)
            shuffle(order)
            for c in order:
                times[c].append(timed(c))
        medians = {c: statistics.median(times[c]) for c in fast}
        ratios = {c: medians[c] / medians["plain"] for c in fast}
        means = {c: statistics.fmean(times[c]) / statistics.fmean(times["plain"]) for c in fast}
        per_step_faults = {c: statistics.fmean(faults[c]) for c in fast}
        for c in slow:  # seconds per step on a CPU: few rounds, each beside a plain step
            pairs = [(one("plain"), one(c)) for _ in range(cockpit_steps)]
            ratios[c] = statistics.median(b for _, b in pairs) / statistics.median(a for a, _ in pairs)
        for _, _, mon in configs.values():
            if isinstance(mon, (gs.Monitor, NaiveMonitor, BareHooks, EmptyHooks)):
                mon.close()
        extra = {
            "_ms": medians["plain"] * 1e3,
            "_mean": means,
            "_faults": per_step_faults,
            "_us": {c: (medians[c] - medians["plain"]) * 1e6 for c in fast},
        }
        rows.append((wname, ratios | extra))
    return rows


def steady_malloc() -> str:
    """Stop glibc's malloc from handing freed heap back to the kernel (and from serving large
    blocks by mmap), so that no step pays page faults for memory a step before it freed: the
    whole process, plain and watched alike. Returns what was done, for the table's title."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "--steady-malloc: no glibc mallopt here, malloc left as it is"
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_trim_threshold, 1 << 30) == 1 and mallopt(m_mmap_threshold, 32 << 20) == 1
    return "glibc malloc steady (M_TRIM_THRESHOLD 1 GiB, M_MMAP_THRESHOLD 32 MiB)" if ok else "mallopt refused"


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is missing)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource is not None else 0


def print_table(title: str, head: list[str], body: list[list[str]], note: str) -> None:
    """A titled markdown table (first column left-aligned, the others right-aligned) and its
    footnote."""
    print(title)
    print(f"| {' | '.join(head)} |")
    print("|---|" + "---:|" * (len(head) - 1))
    for cells in body:
        print(f"| {' | '.join(cells)} |")
    print(note)


def ratio(r: float) -> str:
    return f"{r:.3f}x" if r < 10 else f"{r:.0f}x"


def print_tables(
    rows: list[tuple[str, dict[str, Any]]], title: str, floor: bool, fixed: bool, ablate: bool = False
) -> None:
    """The ratio table, the means-and-faults table, and the floor, fixed-cost and ablation
    tables when they were measured."""
    print_table(
        title,
        ["workload", "plain ms/step", *COLUMNS],
        [[w, f"{r['_ms']:.2f}", *(ratio(r[c]) if c in r else "n/a" for c in COLUMNS)] for w, r in rows],
        f"{AA}: a second copy of the plain model, timed the same way: the noise floor.",
    )
    watched = [c for c in COLUMNS if c.startswith("watch")]
    print()
    print_table(
        "Means and the allocator: mean step time ratio to plain (flushes to the host included), "
        "and minor page faults per step",
        ["workload", *(f"{c} mean" for c in watched), "faults/step plain", *(f"faults/step {c}" for c in watched)],
        [
            [w, *(ratio(r["_mean"][c]) for c in watched), *(f"{r['_faults'][c]:.0f}" for c in ["plain", *watched])]
            for w, r in rows
        ],
        "A page fault costs ~2.4 us here; glibc's malloc returns freed heap to the kernel and a "
        "later step faults it back in, in some runs on every step, in others never.",
    )
    if floor:
        cols = [*FLOOR, "watch every=1"]
        print()
        print_table(
            "The floor: bare hooks doing only the arithmetic of a logged step (BareHooks), median "
            "step time ratio to plain, in the same rounds",
            ["workload", *cols],
            [[w, *(ratio(r[c]) if c in r else "n/a" for c in cols)] for w, r in rows],
            "n/a: the activations are functional calls, which module hooks do not see.",
        )
    if fixed:
        print()
        print_table(
            "The fixed cost of a step: median step time over plain in microseconds (ratio), in "
            "the same rounds",
            ["workload", "plain ms/step", *FIXED],
            [[w, f"{r['_ms']:.2f}", *(f"{r['_us'][c]:+.0f} us ({ratio(r[c])})" for c in FIXED)] for w, r in rows],
            "empty hooks: the model's forward pre/post hooks, a pre-hook on the output's autograd "
            "node and an end-of-backward callback, all with empty bodies (EmptyHooks).",
        )
    if ablate:
        base = "watch (default every=10)"
        print()
        print_table(
            "Ablation at the defaults: the gain of each path = (ratio with it off) - (ratio with it "
            "on), of the median (and of the mean) step time, in the same rounds",
            ["workload", f"{AA} median (mean)", f"{base} median (mean)", *(f"{c}: gain" for c in ABLATE)],
            [
                [
                    w,
                    *(f"{ratio(r[c])} ({ratio(r['_mean'][c])})" for c in (AA, base)),
                    *(f"{r[c] - r[base]:+.3f} ({r['_mean'][c] - r['_mean'][base]:+.3f})" for c in ABLATE),
                ]
                for w, r in rows
            ],
            f"{AA}: the noise (a second plain copy). " + "; ".join(f"{c}: {a.doc}" for c, a in ABLATE.items()),
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200, help="measured steps per configuration")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--cockpit-steps", type=int, default=10, help="steps for Cockpit (slow on CPU)")
    ap.add_argument("--steady-malloc", action="store_true",
                    help="keep freed heap in the process (glibc mallopt), see steady_malloc()")  # fmt: skip
    ap.add_argument("--floor", action="store_true",
                    help="also time bare hooks doing only the monitor's arithmetic (BareHooks)")  # fmt: skip
    ap.add_argument("--fixed", action="store_true",
                    help="also time the fixed cost of a step: every=1000, and empty hooks (EmptyHooks)")  # fmt: skip
    ap.add_argument("--ablate", action="store_true",
                    help="also time the defaults with each optimisation path switched off (ABLATE)")  # fmt: skip
    args = ap.parse_args()
    malloc_note = steady_malloc() if args.steady_malloc else "glibc malloc as it comes"
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args.steps, args.cockpit_steps, args.floor, args.fixed, args.ablate)
    title = (f"gradsight.watch overhead: median step time ratio to plain, {args.steps} interleaved "
             f"steps, torch {torch.__version__}, {torch.get_num_threads()} threads, {malloc_note}")  # fmt: skip
    print_tables(rows, title, args.floor, args.fixed, args.ablate)
    if not have_cockpit():
        print("cockpit economy: n/a, cockpit-for-pytorch is not installed here (see the docstring)")
    else:
        print(f"cockpit economy: {args.cockpit_steps} steps each beside a plain step (its quantities "
              "need per-sample gradients every step); n/a where BackPACK cannot extend the model")  # fmt: skip


if __name__ == "__main__":
    main()
