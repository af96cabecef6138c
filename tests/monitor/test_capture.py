"""Capture: module and functional sites, naming, inplace, hooks removed, wrapped models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tests.monitor.helpers import Stack, mlp, train
from torch import nn

import gradsight as gs
from gradsight.errors import GradsightError


def _hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def test_module_sites_named_by_path_in_forward_order():
    model = mlp(depth=3)
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2)
    assert [ls.name for ls in mon.report().layers] == ["1", "3", "5"]
    assert {ls.activation for ls in mon.report().layers} == {"relu"}


def test_functional_activations_in_nested_modules_are_named():
    model = Stack(n=3)
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2, shape=(8, 5, 16))
    names = [ls.name for ls in mon.report().layers]
    assert names == ["blocks.0/gelu#0", "blocks.1/gelu#0", "blocks.2/gelu#0", "relu#0"]
    # the unit of a (B, T, C) output is the last-dim feature
    assert mon.report().layer("blocks.0/gelu#0").units == 32


def test_same_function_twice_in_one_module_gets_two_indices():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)

        def forward(self, x):
            return self.b(torch.tanh(torch.tanh(self.a(x)) + 1))

    model = Twice()
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=1, d_in=8)
    assert [ls.name for ls in mon.report().layers] == ["tanh#0", "tanh#1"]


def test_functional_calls_inside_activation_modules_are_not_extra_sites():
    from gradsight.activations import activation

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.act, self.out = nn.Linear(8, 8), activation("relu2").module(), nn.Linear(8, 4)

        def forward(self, x):
            return self.out(self.act(self.fc(x)))

    model = Model()
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2, d_in=8)
    assert [ls.name for ls in mon.report().layers] == ["act"]


def test_inplace_relu_measured_from_output():
    torch.manual_seed(1)
    plain = mlp(depth=2, width=16)
    inplace = mlp(depth=2, width=16, inplace=True)
    inplace.load_state_dict(plain.state_dict())
    reports = []
    for model in (plain, inplace):
        with gs.watch(model, every=1) as mon:
            train(model, mon, steps=3)
        reports.append(mon.report())
    a, b = reports
    assert not b.errors
    for la, lb in zip(a.layers, b.layers, strict=False):
        assert la.dead_fraction == lb.dead_fraction
        assert la.mean_derivative == pytest.approx(lb.mean_derivative, abs=0)
        assert la.grad_norm == pytest.approx(lb.grad_norm, rel=1e-6)


def test_inplace_functional_relu():
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 4)

        def forward(self, x):
            h = self.a(x)
            F.relu(h, inplace=True)
            return self.b(h)

    model = M()
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2)
    rep = mon.report()
    assert [ls.name for ls in rep.layers] == ["relu#0"]
    assert 0.2 < rep.layers[0].mean_derivative < 0.8


class _ScaledELU(nn.Module):
    """Linear -> ELU -> (scaled in place from step ``scale_from`` on) -> Linear. Scaling is
    legal (ELU's backward reads its input), and elu'(z) read from the scaled output would be
    wrong (and negative)."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.a, self.act, self.b = nn.Linear(16, 16), nn.ELU(), nn.Linear(16, 4)
        self.functional, self.scale = functional, False

    def forward(self, x):
        h = F.elu(self.a(x)) if self.functional else self.act(self.a(x))
        if self.scale:
            h.mul_(-3.0)
        return self.b(h)


@pytest.mark.parametrize(
    ("functional", "scale_from", "measured"),
    [
        # sites are measured at the end of the forward: the first step's output was read
        # changed, so it is dropped; from then on the site is measured in its hook
        (True, 0, [1, 2, 3]),
        # from the second step on a module site's hook only notes (site, y, y's version):
        # the step whose y changed is dropped, then the site is measured in its hook
        (False, 1, [0, 2, 3]),
    ],
    ids=["functional", "module"],
)
def test_an_output_changed_in_place_after_the_activation_is_never_read_changed(functional, scale_from, measured):
    torch.manual_seed(0)
    model = _ScaledELU(functional)
    expected = []
    with gs.watch(model, every=1) as mon:
        g = torch.Generator().manual_seed(0)
        for step in range(4):
            model.scale = step >= scale_from
            x = torch.randn(32, 16, generator=g)
            with torch.no_grad():
                z = model.a(x)
                expected.append(torch.where(z > 0, 1.0, torch.exp(z)).mean().item())
            model(x).sum().backward()
            mon.step()
    rep = mon.report()
    assert not rep.errors
    layer = rep.layer("elu#0" if functional else "act")
    assert layer.steps == len(measured)
    assert layer.mean_derivative == pytest.approx(sum(expected[i] for i in measured) / len(measured), rel=1e-6)


def test_a_replayed_forward_adds_no_observations():
    """The replay that locates a NaN runs the model's forward again with the site hooks armed;
    what they note there is not an observation of the step."""

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.act, self.b = nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)
            self.fault = False

        def forward(self, x):
            h = self.act(self.a(x))
            if self.fault:  # forward: sqrt(0) = 0; backward: 0 * 1/(2 sqrt 0) = nan
                h = h + 0.0 * torch.sqrt(h - h)
            return self.b(h)

    torch.manual_seed(0)
    model = M()
    g = torch.Generator().manual_seed(0)
    with gs.watch(model, every=1, window=8) as mon:
        for step in range(3):
            model.fault = step == 1
            model(torch.randn(8, 16, generator=g)).pow(2).mean().backward()
            model.zero_grad()
            mon.step()
    # the backward origin is found by replaying the forward with gradients on
    assert mon.events["backward"].op == "sqrt"
    assert mon.report().layer("act").samples == 3 * 8


def test_hooks_and_mode_removed_on_exit():
    model = Stack()
    before = _hooks(model)
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2, shape=(4, 3, 16))
        assert _hooks(model) > before
    assert _hooks(model) == before
    assert torch._C._len_torch_function_stack() == 0


def test_hooks_removed_when_the_body_raises():
    model = Stack()
    before = _hooks(model)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with gs.watch(model, every=1):
            model(torch.randn(2, 3, 16)).sum().backward()
            raise Boom
    assert _hooks(model) == before
    assert torch._C._len_torch_function_stack() == 0


def test_hooks_removed_when_forward_raises_inside_an_owner():
    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            h = F.gelu(self.fc(x))
            if h.shape[0] == 3:
                raise RuntimeError("bad batch")
            return h

    model = Bad()
    with gs.watch(model, every=1) as mon:
        model(torch.randn(2, 4)).sum().backward()
        mon.step()
        with pytest.raises(RuntimeError, match="bad batch"):
            model(torch.randn(3, 4))
        assert torch._C._len_torch_function_stack() == 0
        model(torch.randn(2, 4)).sum().backward()
        mon.step()
    assert mon.report().layers[0].name == "gelu#0"
    assert mon.report().layers[0].steps == 2


def test_transformer_encoder_sites():
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0,
                                       batch_first=True, activation="gelu")  # fmt: skip
    enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    with gs.watch(enc, every=1) as mon:
        for _ in range(2):
            enc(torch.randn(4, 5, 16)).pow(2).mean().backward()
            mon.step()
    names = [ls.name for ls in mon.report().layers]
    assert names == ["layers.0/gelu#0", "layers.1/gelu#0"]
    assert all(ls.units == 32 and ls.grad_norm > 0 for ls in mon.report().layers)


def test_transformer_encoder_relu_module_default():
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0,
                                       batch_first=True)  # fmt: skip
    enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    with gs.watch(enc, every=1) as mon:
        enc(torch.randn(2, 3, 8)).sum().backward()
        mon.step()
    assert [ls.name for ls in mon.report().layers] == ["layers.0/relu#0", "layers.1/relu#0"]


def test_conv_units_are_channels():
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 8 * 8, 4))
    with torch.no_grad():
        model[0].bias[:2] = -1e6  # channels 0 and 1 dead
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2, shape=(4, 3, 8, 8))
    ls = mon.report().layers[0]
    assert ls.units == 6
    assert ls.dead_fraction == 2 / 6
    assert ls.samples == 2 * 4 * 8 * 8


# dynamo reads .grad of non-leaf tensors while it traces a frame with a TorchFunctionMode active
_DYNAMO_GRAD_WARNING = "ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning"


@pytest.mark.filterwarnings(_DYNAMO_GRAD_WARNING)
@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize(
    ("make", "shape"),
    [(lambda: Stack(n=2), (4, 3, 16)), (lambda: mlp(act=nn.Sigmoid, depth=3), (8, 16))],
    ids=["functional", "modules"],
)
def test_torch_compile(backend, make, shape):
    torch._dynamo.reset()
    model = make()
    compiled = torch.compile(model, backend=backend)
    ref = make()
    ref.load_state_dict(model.state_dict())
    x = torch.randn(*shape)
    # three steps: the first discovers the sites, the later ones run the armed site hooks
    with gs.watch(model, every=1) as mon:
        for _ in range(3):
            compiled(x).pow(2).mean().backward()
            mon.step()
    with gs.watch(ref, every=1) as mon_ref:
        for _ in range(3):
            ref(x).pow(2).mean().backward()
            mon_ref.step()
    got, want = mon.report(), mon_ref.report()
    assert not got.errors
    assert [ls.name for ls in got.layers] == [ls.name for ls in want.layers]
    assert [ls.steps for ls in got.layers] == [3] * len(want.layers)
    for a, b in zip(got.layers, want.layers, strict=False):
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-5)
        assert a.mean_derivative == pytest.approx(b.mean_derivative, rel=1e-5)
    torch._dynamo.reset()


@pytest.mark.filterwarnings(_DYNAMO_GRAD_WARNING)
def test_watch_a_compiled_module_directly():
    torch._dynamo.reset()
    model = mlp(depth=2)
    compiled = torch.compile(model, backend="eager")
    with gs.watch(compiled, every=1) as mon:
        train(compiled, mon, steps=2)
    assert [ls.name for ls in mon.report().layers] == ["1", "3"]
    torch._dynamo.reset()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3", True])
def test_every_must_be_a_positive_integer(bad):
    with pytest.raises(GradsightError, match=r"every must be a positive integer .* got " + repr(bad).replace(".", r"\.")):
        gs.watch(nn.Linear(2, 2), every=bad)


def test_watch_needs_a_module():
    with pytest.raises(GradsightError, match="watch\\(\\) needs a torch.nn.Module, got 'str'"):
        gs.watch("model")


def test_no_grad_forward_is_not_measured_and_does_not_crash():
    model = mlp(depth=2)
    with gs.watch(model, every=1) as mon:
        with torch.no_grad():
            model(torch.randn(4, 16))
        train(model, mon, steps=1)
    assert mon.report().layers[0].steps == 1


def test_first_forward_raising_leaves_nothing_behind():
    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            F.relu(self.fc(x))
            raise ValueError("first forward fails")

    model = Bad()
    n_pre, n_post = len(_global_optimizer_pre_hooks), len(_global_optimizer_post_hooks)
    with pytest.raises(ValueError, match="first forward fails"):
        with gs.watch(model):
            model(torch.randn(2, 4))
    assert _hooks(model) == 0
    assert torch._C._len_torch_function_stack() == 0
    assert (len(_global_optimizer_pre_hooks), len(_global_optimizer_post_hooks)) == (n_pre, n_post)
