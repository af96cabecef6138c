"""torch.compile: every logged step measures what the eager model measures, for any ``every``,
with no recompile caused by watching; a site that cannot be seen is said so, never silently
dropped (issue 18)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from tests.monitor.helpers import Stack
from torch import nn
from torch._dynamo.utils import counters

import gradsight as gs
from gradsight.monitor import GradsightWarning

# dynamo reads .grad of non-leaf tensors while it traces a frame with a TorchFunctionMode active
# (and importing inductor imports torch.jit, which warns)
pytestmark = [
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]


class MLP(nn.Module):
    """nanoGPT's MLP: the activation module sits inside a custom submodule."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d)
        self.act = nn.Tanh()
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))  # (B, d)


class Nested(nn.Module):
    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([MLP(d), MLP(d)])
        self.relu = nn.ReLU()
        self.head = nn.Linear(d, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = x + b(x)
        return self.head(self.relu(x))


MODELS = {"module_sites": lambda: Nested(), "functional_sites": lambda: Stack(n=2, d=8)}
SHAPES = {"module_sites": (6, 8), "functional_sites": (3, 2, 8)}


def _run(kind: str, every: int, steps: int, backend: str | None, watch: bool = True):
    """Train a fresh, seeded model; returns (history dicts, report, frames compiled per step)."""
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = MODELS[kind]()
    run = torch.compile(model, backend=backend) if backend else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    compiled_frames = []
    mon = gs.watch(run, every=every) if watch else None
    for _ in range(steps):
        x = torch.randn(*SHAPES[kind], generator=g)
        loss = F.cross_entropy(run(x).reshape(-1, 4), torch.randint(0, 4, (x.numel() // 8,), generator=g))
        loss.backward()
        opt.step()
        opt.zero_grad()
        if mon is not None:
            mon.step()
        compiled_frames.append(counters["frames"]["total"])
    if mon is None:
        return None, None, compiled_frames
    mon.close()
    rep = mon.report()
    torch._dynamo.reset()
    return [r.layers for r in rep.history], rep, compiled_frames


FIELDS = ("grad_norm", "grad_rms", "dead_fraction", "saturated_fraction", "mean_derivative", "active_fraction")


def _assert_same(got, want):
    assert [[ls.name for ls in step] for step in got] == [[ls.name for ls in step] for step in want]
    for g_step, w_step in zip(got, want, strict=True):
        for g, w in zip(g_step, w_step, strict=True):
            for f in FIELDS:
                assert getattr(g, f) == pytest.approx(getattr(w, f), rel=1e-5, abs=1e-7), (g.name, f)
            assert (g.units, g.samples, g.step) == (w.units, w.samples, w.step)


@pytest.mark.parametrize(
    ("backend", "kind", "every"),
    [
        ("eager", "module_sites", 1),
        ("eager", "module_sites", 3),
        ("eager", "functional_sites", 3),
        ("aot_eager", "functional_sites", 1),
        ("inductor", "module_sites", 3),
    ],
)
def test_every_logged_step_equals_the_eager_model(backend, kind, every):
    steps = 5 if every > 1 else 3  # every=3: logged 0 and 3, unlogged between and after
    want, _, _ = _run(kind, every, steps, backend=None)
    got, rep, frames = _run(kind, every, steps, backend=backend)
    assert len(want) == len(range(0, steps, every))  # each logged step has a record ...
    assert all(want)  # ... with every site in it
    _assert_same(got, want)
    assert not rep.errors
    # watching compiles nothing after the first step: no recompile, no new frame
    assert frames[1:] == [frames[0]] * (steps - 1)


@pytest.mark.parametrize("kind", ["module_sites", "functional_sites"])
def test_watching_adds_no_recompile(kind):
    _, _, plain = _run(kind, 3, 5, backend="eager", watch=False)
    _, _, watched = _run(kind, 3, 5, backend="eager")
    # the plain run compiles once and never again; so does the watched one (its hooks are
    # graph breaks, compiled in the first step, never re-guarded)
    assert plain[1:] == [plain[0]] * 4
    assert watched[1:] == [watched[0]] * 4


def test_a_model_compiled_after_it_was_watched_eagerly_keeps_being_measured():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model, ref = Nested(), Nested()
    ref.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(6, 8, generator=g) for _ in range(8)]
    with gs.watch(model, every=3) as mon, gs.watch(ref, every=3) as mon_ref:
        compiled = torch.compile(model, backend="eager")
        for i, x in enumerate(xs):
            (model if i < 2 else compiled)(x).pow(2).mean().backward()  # compiled from a non-logged step
            ref(x).pow(2).mean().backward()
            mon.step()
            mon_ref.step()
    got, want = mon.report(), mon_ref.report()
    _assert_same([r.layers for r in got.history], [r.layers for r in want.history])
    assert [r.step for r in got.history] == [0, 3, 6]
    torch._dynamo.reset()


def test_sites_that_cannot_be_observed_are_reported_not_silently_dropped():
    """torch.compile of the bound forward runs the model without its module hooks: the sites
    found in the eager steps go unseen on later logged steps. One warning, one error entry."""
    torch._dynamo.reset()
    model = Nested()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fast_forward = torch.compile(model.forward, backend="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gs.watch(model, every=3) as mon:
            for i in range(7):
                out = model(torch.randn(6, 8)) if i == 0 else fast_forward(torch.randn(6, 8))
                out.pow(2).mean().backward()
                opt.step()
                opt.zero_grad()
                mon.step()
    told = [w for w in caught if issubclass(w.category, GradsightWarning)]
    assert len(told) == 1
    assert "none of its 3 activation sites" in str(told[0].message)
    rep = mon.report()
    assert len([e for e in rep.errors if "activation sites" in e]) == 1
    assert [r.step for r in rep.history][:1] == [0] and rep.history[0].layers
    torch._dynamo.reset()
