"""The first NaN/Inf: planted in block k, in the forward and in the backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gradsight as gs


class Block(nn.Module):
    def __init__(self, d: int, fault: str | None = None) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.fault = fault

    def forward(self, x):
        h = F.gelu(self.fc(x))
        if self.fault == "forward":
            h = torch.sqrt(h - 1.0)  # negative entries: NaN in the forward
        elif self.fault == "backward":
            # forward: sqrt(0) = 0, finite; backward: 0 * 1/(2 sqrt 0) = nan
            h = h + 0.0 * torch.sqrt(h - h)
        return h


class Net(nn.Module):
    def __init__(self, fault: str | None, k: int, n: int = 5, d: int = 8) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(d, fault if i == k else None) for i in range(n)])
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def _train(model, mon, steps=3, fault_at=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    planned = [b.fault for b in model.blocks]
    for step in range(steps):
        if fault_at is not None:
            for b, fault in zip(model.blocks, planned, strict=False):
                b.fault = fault if step >= fault_at else None
        x, y = torch.randn(6, 8), torch.randint(0, 2, (6,))
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        mon.step()


@pytest.mark.parametrize("k", [1, 3])
def test_forward_nan_origin_is_block_k(k):
    model = Net("forward", k)
    with gs.watch(model) as mon:  # default settings: every=10
        _train(model, mon, steps=3)
    (f,) = [f for f in mon.report().findings if f.kind == "non_finite" and f.evidence["phase"] == "forward"]
    assert f.evidence["module"] == f"blocks.{k}"
    assert f.layers == (f"blocks.{k}/sqrt#0",)
    assert f.evidence["step"] == 0
    assert f.evidence["op"] == "sqrt"
    assert "clamp_min" in f.remedy
    assert f.severity == "critical"


@pytest.mark.parametrize("k", [0, 2])
def test_backward_nan_origin_is_block_k(k):
    model = Net("backward", k)
    with gs.watch(model) as mon:
        _train(model, mon, steps=1)
    findings = [f for f in mon.report().findings if f.kind == "non_finite"]
    (f,) = [f for f in findings if f.evidence["phase"] == "backward"]
    assert f.evidence["module"] == f"blocks.{k}"
    assert f.layers == (f"blocks.{k}/sqrt#0",)
    assert not [f for f in findings if f.evidence["phase"] == "forward"]  # the forward was finite


def test_nan_first_appearing_at_a_later_unlogged_step_is_found_at_that_step():
    model = Net(None, 0)
    model.blocks[2].fault = "forward"
    with gs.watch(model, every=10) as mon:
        _train(model, mon, steps=6, fault_at=4)
    (f,) = [f for f in mon.report().findings if f.kind == "non_finite" and f.evidence["phase"] == "forward"]
    assert f.evidence["step"] == 4
    assert f.evidence["module"] == "blocks.2"


def test_nan_in_the_input_batch():
    model = Net(None, 0)
    with gs.watch(model) as mon:
        x = torch.randn(4, 8)
        x[1, 3] = float("nan")
        model(x).sum().backward()
        mon.step()
    (f,) = [f for f in mon.report().findings if f.kind == "non_finite"]
    assert f.evidence["phase"] == "input" and f.evidence["nan"] == 1


def test_non_finite_loss_gradient_is_blamed_on_the_loss():
    model = Net(None, 0)
    with gs.watch(model) as mon:
        out = model(torch.randn(4, 8))
        torch.sqrt(out - out.detach()).sum().backward()  # d sqrt(0) = inf, outside the model
        mon.step()
    found = {f.evidence["phase"] for f in mon.report().findings if f.kind == "non_finite"}
    assert found == {"loss"}


def test_the_model_is_not_changed_by_locating():
    model = Net("forward", 2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with gs.watch(model) as mon:
        model(torch.randn(4, 8)).sum()
        mon.step()
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]) or torch.isnan(v).any()
    assert [f.evidence["module"] for f in mon.report().findings] == ["blocks.2"]


def test_functional_origin_at_the_root_forward():
    class Root(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.log(self.fc(x) - 100.0)

    model = Root()
    with gs.watch(model) as mon:
        model(torch.randn(3, 4)).sum().backward()
        mon.step()
    (f,) = [f for f in mon.report().findings if f.kind == "non_finite"]
    assert f.layers == ("log#0",) and f.evidence["module"] == ""


class DropNet(nn.Module):
    """Dropout before every layer; after layer k, sqrt(tanh(.) - 0.5): NaN where it is < 0.5."""

    def __init__(self, k: int, n: int = 4, d: int = 16) -> None:
        super().__init__()
        self.k = k
        self.fcs = nn.ModuleList([nn.Linear(d, d) for _ in range(n)])
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        for i, fc in enumerate(self.fcs):
            x = torch.tanh(fc(self.drop(x)))
            if i == self.k:
                x = torch.sqrt(x - 0.5)
        return self.head(x)


def _count_rng_reads(monkeypatch) -> list[int]:
    """Counts torch.get_rng_state calls: the monitor keeps the RNG state of a step it may
    replay, and only when the model has a random op."""
    reads: list[int] = []
    real = torch.get_rng_state
    monkeypatch.setattr(torch, "get_rng_state", lambda: reads.append(1) or real())
    return reads


def test_a_model_with_dropout_is_replayed_from_its_rng_state_and_the_origin_found(monkeypatch):
    torch.manual_seed(0)
    model = DropNet(k=2)
    reads = _count_rng_reads(monkeypatch)
    with gs.watch(model) as mon:
        F.cross_entropy(model(torch.randn(8, 16)), torch.randint(0, 2, (8,))).backward()
        mon.step()
    assert reads  # dropout draws random numbers: the replay needs the state they came from
    (f,) = [f for f in mon.report().findings if f.kind == "non_finite" and f.evidence["phase"] == "forward"]
    assert f.layers == ("sqrt#0",) and f.evidence["op"] == "sqrt"


def test_no_rng_capture_without_random_ops(monkeypatch):
    model = Net(None, 0)
    reads = _count_rng_reads(monkeypatch)
    with gs.watch(model) as mon:
        for step in range(3):
            if step == 1:
                reads.clear()  # the first step, before the model's ops are known, keeps it
            F.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 2, (16,))).backward()
            mon.step()
    assert not reads  # nothing random: nothing to capture
    assert not mon.report().findings


class EmbedNet(nn.Module):
    def __init__(self, fault: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(50_000, 8)  # the weight (400k) far outsizes the output (6x8)
        self.block = Block(8, "backward" if fault else None)
        self.head = nn.Linear(8, 2)

    def forward(self, idx):
        return self.head(self.block(self.emb(idx)))


def test_an_embedding_entry_is_checked_by_a_gradient_hook_and_a_backward_nan_is_found():
    model = EmbedNet(fault=True)
    with gs.watch(model) as mon:
        F.cross_entropy(model(torch.randint(0, 50_000, (6,))), torch.randint(0, 2, (6,))).backward()
        mon.step()
    (f,) = [f for f in mon.report().findings if f.kind == "non_finite"]
    assert f.evidence["phase"] == "backward" and f.evidence["module"] == "block"


@pytest.mark.parametrize("bias", [True, False])
def test_a_backward_nan_is_found_through_the_entry_bias_or_weight_gradient(bias):
    model = Net("backward", 2)
    if not bias:
        model.blocks[0].fc = nn.Linear(8, 8, bias=False)
    with gs.watch(model) as mon:
        F.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 2, (16,))).backward()
        mon.step()
    (f,) = [f for f in mon.report().findings if f.kind == "non_finite"]
    assert f.evidence["phase"] == "backward" and f.evidence["module"] == "blocks.2"


def _forward_findings(mon) -> list:
    return [f for f in mon.report().findings if f.kind == "non_finite" and f.evidence["phase"] == "forward"]


def test_a_nan_in_an_output_the_loss_does_not_use_is_still_a_forward_nan():
    """Outputs are checked at the end of the backward; here every gradient is finite."""

    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.head = nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            h = self.body(x)
            return self.head(h), torch.log(h - 100.0)  # an auxiliary output, all NaN

    model = TwoHeads()
    with gs.watch(model) as mon:
        logits, _ = model(torch.randn(6, 8))
        logits.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        mon.step()
    (f,) = _forward_findings(mon)
    assert (f.evidence["op"], f.evidence["step"]) == ("log", 0)
    assert not [f for f in mon.report().findings if f.kind == "non_finite" and f.evidence["phase"] != "forward"]


def test_a_forward_with_gradients_and_no_backward_is_checked_at_step():
    model = Net(None, 0)
    with gs.watch(model) as mon:
        _train(model, mon, steps=2)
        model.blocks[1].fault = "forward"
        model(torch.randn(6, 8))  # an evaluation that forgot no_grad
        assert not mon.events
        mon.step()
    (f,) = _forward_findings(mon)
    assert (f.evidence["module"], f.evidence["step"]) == ("blocks.1", 2)


def test_a_large_output_is_checked_at_the_end_of_the_forward(monkeypatch):
    from gradsight.monitor import guard

    monkeypatch.setattr(guard, "HOLD_OUTPUTS", 0)
    model = Net("forward", 2)
    with gs.watch(model) as mon:
        model(torch.randn(6, 8))
        assert mon.events["forward"].step == 0  # before any backward
        mon.step()
    (f,) = _forward_findings(mon)
    assert f.evidence["module"] == "blocks.2"


# ---- one host read for the whole check (one synchronisation on an accelerator) -----------
@pytest.fixture
def one_sync(monkeypatch):
    """all_finite as it runs off the CPU (sums stacked, one read), here on the CPU, and a
    count of the host reads of tensors."""
    from gradsight.monitor import _util

    monkeypatch.setattr(_util, "SYNC_FREE_DEVICES", ())
    reads = []
    for name in ("__float__", "__bool__", "item"):
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=orig, **k):
            reads.append(tuple(self.shape))
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


def test_all_finite_reads_a_list_at_once_and_confirms_a_nonfinite_sum(one_sync):
    from gradsight.monitor._util import all_finite

    ok = [torch.randn(4, 3), torch.randn(7), torch.randn(2, 2, dtype=torch.float64)]
    assert all_finite(ok) and len(one_sync) == 1
    big = [torch.full((2,), 3e38), torch.full((3,), 3e38)]  # finite, but the sums overflow
    assert all_finite(big)
    huge64 = [torch.tensor([1e300], dtype=torch.float64), torch.ones(2, dtype=torch.float64)]  # > float32 range
    assert all_finite(huge64)
    for bad in (float("nan"), float("inf"), -float("inf")):
        t = torch.randn(5)
        t[3] = bad
        assert not all_finite([torch.randn(4), t])
    assert not all_finite([torch.ones(2, dtype=torch.complex64) * float("nan"), torch.ones(3)])
    assert all_finite([torch.ones(2, dtype=torch.complex64), torch.ones(3)])
    assert all_finite([]) and all_finite([torch.empty(0), torch.ones(1)])


@pytest.mark.parametrize("model", ["bias-entry", "hooked-entry"])
def test_a_step_reads_the_host_once_to_check_for_nan(one_sync, model):
    net = Net(None, 0) if model == "bias-entry" else EmbedNet(fault=False)
    make_x = (lambda: torch.randn(6, 8)) if model == "bias-entry" else (lambda: torch.randint(0, 50_000, (6,)))
    with gs.watch(net, every=10) as mon:
        for step in range(3):
            one_sync.clear()
            F.cross_entropy(net(make_x()), torch.randint(0, 2, (6,))).backward()
            mon.step()
            if step > 0:  # step 0 is logged and finds the model's layout
                assert len(one_sync) == 1, one_sync
    assert not [f for f in mon.report().findings if f.kind == "non_finite"]


@pytest.mark.parametrize("where", ["forward", "backward-bias", "backward-embedding"])
def test_nan_origins_are_found_when_the_check_reads_the_host_once(one_sync, where):
    if where == "backward-embedding":
        model, x = EmbedNet(fault=True), torch.randint(0, 50_000, (6,))
        want = ("backward", "block")
    else:
        model, x = Net(where.split("-")[0], 2), torch.randn(16, 8)
        want = (where.split("-")[0], "blocks.2")
    with gs.watch(model) as mon:
        F.cross_entropy(model(x), torch.randint(0, 2, (x.shape[0],))).backward()
        mon.step()
    (f,) = [f for f in mon.report().findings if f.kind == "non_finite" and f.evidence["phase"] == want[0]]
    assert f.evidence["module"] == want[1]
