"""Measurements against values computed by hand on the same tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tests.monitor.helpers import mlp, train
from torch import nn

import gradsight as gs


def test_dead_units_planted_by_a_huge_negative_bias_give_the_exact_fraction():
    model = mlp(depth=3, width=64, init="he")
    killed = [0, 5, 9, 17, 33, 40, 41, 63]
    with torch.no_grad():
        model[2].bias[killed] = -1e6  # units of site "3" can never turn on
    with gs.watch(model, every=1, window=4) as mon:
        train(model, mon, steps=6)
    rep = mon.report()
    assert rep.layer("3").dead_fraction == len(killed) / 64
    assert rep.layer("1").dead_fraction == 0.0
    assert rep.layer("3").samples == 4 * 32  # window of 4 steps, batch 32
    assert rep.layer("3").steps == 4


def test_grad_norm_and_mean_derivative_equal_hand_computation():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, 3))
    x, y = torch.randn(10, 8), torch.randint(0, 3, (10,))
    # by hand
    h = torch.tanh(model[0](x))
    h.retain_grad()
    F.cross_entropy(model[2](h), y).backward()
    want_g = h.grad.norm().item()
    want_md = (1 - h.detach() ** 2).mean().item()
    model.zero_grad()
    with gs.watch(model, every=1) as mon:
        F.cross_entropy(model(x), y).backward()
        mon.step()
    ls = mon.report().layers[0]
    assert ls.grad_norm == pytest.approx(want_g, rel=1e-6)
    assert ls.mean_derivative == pytest.approx(want_md, rel=1e-5)
    assert ls.grad_rms == pytest.approx(want_g / math.sqrt(10 * 12), rel=1e-6)
    assert ls.units == 12 and ls.samples == 10


def test_saturated_fraction_counts_units_with_a_closed_valve():
    model = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([30.0, -30.0, 30.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2, d_in=4, d_out=2, lr=0.0)
    ls = mon.report().layers[0]
    assert ls.saturated_fraction == 3 / 8
    assert ls.active_fraction == 5 / 8
    assert ls.dead_fraction == 0.0  # sigmoid'(30) is 0 in float32: saturated, not dead


def test_relu_reports_no_saturation():
    model = mlp(depth=2)
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2)
    assert all(ls.saturated_fraction == 0.0 for ls in mon.report().layers)


def test_dead_means_dead_for_every_sample_in_the_window():
    # unit 0 fires only for the samples of step 0: with a 2-step window it is alive at
    # step 1 and dead at step 2
    lin = nn.Linear(1, 2)
    model = nn.Sequential(lin, nn.ReLU())
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [1.0]]))
        lin.bias.copy_(torch.tensor([0.0, 10.0]))
    xs = [torch.ones(4, 1), -torch.ones(4, 1), -torch.ones(4, 1)]
    dead = []
    with gs.watch(model, every=1, window=2) as mon:
        for x in xs:
            model(x).sum().backward()
            mon.step()
            dead.append(mon.history[-1].layers[0].dead_fraction)
    assert dead == [0.0, 0.0, 0.5]


def test_every_n_measures_sites_only_on_logged_steps():
    model = mlp(depth=2)
    with gs.watch(model, every=3) as mon:
        train(model, mon, steps=7)
    assert [rec.step for rec in mon.history] == [0, 3, 6]
    assert mon.report().layers[0].steps == 3


def test_param_stats_measure_the_actual_update():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    with gs.watch(model, every=1) as mon:
        F.cross_entropy(model(x), y).backward()
        g = torch.cat([model[0].weight.grad.flatten(), model[0].bias.grad.flatten()])
        w = torch.cat([model[0].weight.detach().flatten(), model[0].bias.detach().flatten()])
        opt.step()
        opt.zero_grad()
        mon.step()
    p0 = {p.name: p for p in mon.report().params}["0"]
    assert p0.grad_norm == pytest.approx(g.norm().item(), rel=1e-6)
    assert p0.update_ratio == pytest.approx((0.1 * g).norm().item() / w.norm().item(), rel=1e-5)
    assert mon.report().layers[0].incoming == "0"
    assert mon.report().layers[0].update_ratio == p0.update_ratio


def test_gated_module_site_measures_the_gate():
    model = nn.Sequential(nn.Linear(6, 8), gs.activation("reglu").module(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].bias[:4] = torch.tensor([-1e6, -1e6, 0.0, 0.0])  # gate units 0, 1 closed
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2, d_in=6, d_out=2)
    ls = mon.report().layers[0]
    assert ls.activation == "reglu" and ls.units == 4
    assert ls.dead_fraction == 0.5


def test_gradient_accumulation_sums_microbatches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    xs = [torch.randn(5, 4), torch.randn(7, 4)]
    with gs.watch(model, every=1) as mon:
        for x in xs:
            model(x).sum().backward()
        mon.step()
    ls = mon.report().layers[0]
    assert ls.samples == 12


def _watched_run(monkeypatch, flush_steps: int, tmp_path, tag: str) -> tuple[dict, list[str]]:
    from gradsight.monitor import flush

    monkeypatch.setattr(flush, "FLUSH_STEPS", flush_steps)
    torch.manual_seed(0)
    model = mlp(nn.Tanh, depth=3, width=16)
    with torch.no_grad():
        model[2].bias[:4] = 30.0  # saturated units, so the window has something to say
    path = tmp_path / f"{tag}.jsonl"
    with gs.watch(model, every=2, window=3, jsonl=path) as mon:
        train(model, mon, steps=25)
    return mon.report().to_dict(), path.read_text().splitlines()


def test_closing_logged_steps_together_changes_no_number(monkeypatch, tmp_path):
    one, lines_one = _watched_run(monkeypatch, 1, tmp_path, "one")
    batched, lines_batched = _watched_run(monkeypatch, 5, tmp_path, "batched")
    assert len(lines_one) == 13  # steps 0, 2, ..., 24
    assert lines_batched == lines_one
    assert batched == one
    assert one["layers"][1]["saturated_fraction"] == 0.25


def test_waiting_steps_reach_the_sinks_after_flush_seconds(monkeypatch, tmp_path):
    from gradsight.monitor import flush

    monkeypatch.setattr(flush, "FLUSH_STEPS", 1000)
    model = mlp(depth=1, width=8)
    path = tmp_path / "live.jsonl"

    def lines() -> list[str]:
        return path.read_text().splitlines() if path.exists() else []

    with gs.watch(model, every=1, jsonl=path) as mon:
        train(model, mon, steps=3)
        assert lines() == []  # waiting for the host
        monkeypatch.setattr(flush, "FLUSH_SECONDS", 0.0)
        train(model, mon, steps=1)
        assert len(lines()) == 4  # the waiting steps and this one
        assert [r.step for r in mon.history] == [0, 1, 2, 3]


def test_a_step_closed_late_does_not_know_of_a_later_nan(monkeypatch, tmp_path):
    import json

    from gradsight.monitor import flush

    monkeypatch.setattr(flush, "FLUSH_STEPS", 1000)
    monkeypatch.setattr(flush, "FLUSH_SECONDS", 1e9)
    model = mlp(depth=2, width=8)
    path = tmp_path / "nan.jsonl"
    with gs.watch(model, every=1, jsonl=path) as mon:
        train(model, mon, steps=3)
        with torch.no_grad():
            model[2].weight[0, 0] = math.nan
        train(model, mon, steps=2)
    kinds = [[f["kind"] for f in json.loads(line)["findings"]] for line in path.read_text().splitlines()]
    assert ["non_finite" in k for k in kinds] == [False, False, False, True, True]


class _TanhGelu(nn.Module):
    """A module site (tanh) and a functional one (gelu), each output kept by the test."""

    def __init__(self, scale_after: float | None = None) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2, self.fc3 = nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Linear(8, 3)
        self.scale_after = scale_after
        self.kept: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.act(self.fc1(x))
        h2 = F.gelu(self.fc2(h1))
        self.kept = [h1, h2]
        if self.scale_after is not None:
            h2.mul_(self.scale_after)  # changes the gelu output in place after its site
        return self.fc3(h2)


def _site_grads_by_hand(model: _TanhGelu, xs: list[torch.Tensor]) -> list[float]:
    """||dLoss/dy|| per site, micro-batches summed in quadrature, with the monitor off."""
    sq = [0.0, 0.0]
    for x in xs:
        h1 = model.act(model.fc1(x))
        h2 = F.gelu(model.fc2(h1))
        h1.retain_grad()
        h2.retain_grad()
        out = h2 * model.scale_after if model.scale_after is not None else h2
        model.fc3(out).sum().backward()
        for i, h in enumerate((h1, h2)):
            sq[i] += h.grad.norm().item() ** 2
    model.zero_grad()
    return [math.sqrt(s) for s in sq]


@pytest.mark.parametrize(
    "in_hook_devices, hold_grads",
    [((), None), ((), 0), (("cpu",), None)],
    ids=["held-off-cpu", "off-cpu-beyond-HOLD_GRADS", "normed-in-hook-on-cpu"],
)
def test_site_gradient_norms_are_exact_held_or_taken_in_the_hook(monkeypatch, in_hook_devices, hold_grads):
    from gradsight.monitor import buffer

    monkeypatch.setattr(buffer, "NORM_IN_HOOK_DEVICES", in_hook_devices)  # () holds, as off the CPU
    if hold_grads is not None:
        monkeypatch.setattr(buffer, "HOLD_GRADS", hold_grads)
    torch.manual_seed(0)
    model = _TanhGelu()
    xs = [torch.randn(5, 6), torch.randn(7, 6)]
    want = _site_grads_by_hand(model, xs)
    with gs.watch(model, every=1) as mon:
        for x in xs:  # two micro-batches, one step
            model(x).sum().backward()
        mon.step()
    got = {ls.name: ls.grad_norm for ls in mon.report().layers}
    assert got["act"] == pytest.approx(want[0], rel=1e-6)
    assert got["gelu#0"] == pytest.approx(want[1], rel=1e-6)
    assert not any(h.retains_grad for h in model.kept)  # the model's tensors are left alone


def test_a_gradient_the_user_keeps_stays_theirs():
    torch.manual_seed(0)
    model = _TanhGelu()
    x = torch.randn(5, 6)
    want = _site_grads_by_hand(model, [x])
    with gs.watch(model, every=1) as mon:
        model.act.register_forward_hook(lambda m, a, out: out.retain_grad())
        model(x).sum().backward()
        h1 = model.kept[0]
        assert h1.grad is not None and h1.grad.norm().item() == pytest.approx(want[0], rel=1e-6)
        mon.step()
        assert h1.grad is not None  # still the user's after the step
    assert mon.report().layer("act").grad_norm == pytest.approx(want[0], rel=1e-6)


def test_an_output_changed_in_place_later_is_measured_as_its_site_made_it():
    torch.manual_seed(0)
    model = _TanhGelu(scale_after=3.0)
    x = torch.randn(5, 6)
    want = _site_grads_by_hand(model, [x])
    with gs.watch(model, every=1) as mon:
        for _ in range(3):
            model(x).sum().backward()
            mon.step()
    rep = mon.report()
    assert [r.step for r in mon.history] == [0, 1, 2]
    # GELU's f' reads its input, which nothing changed, and the gradient is taken where the
    # site's own autograd node receives it: every step is measured
    assert rep.layer("gelu#0").steps == 3
    assert rep.layer("gelu#0").grad_norm == pytest.approx(want[1], rel=1e-6)
    assert rep.layer("act").grad_norm == pytest.approx(want[0], rel=1e-6)


def test_the_input_of_a_site_whose_derivative_reads_its_output_is_let_go():
    """ReLU's f' reads y: its input must be freed when the site returns, as without the
    monitor (autograd keeps only y), not held to the end of the forward."""
    import weakref

    seen: list[bool] = []

    class Probe(nn.Module):
        def forward(self, h: torch.Tensor) -> torch.Tensor:
            seen.append(self.pre() is None)
            return h

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.act, self.probe, self.out = nn.Linear(4, 8), nn.ReLU(), Probe(), nn.Linear(8, 1)
            self.fc.register_forward_hook(lambda m, a, z: setattr(self.probe, "pre", weakref.ref(z)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.probe(self.act(self.fc(x))))

    model = Net()
    with gs.watch(model, every=1) as mon:
        for _ in range(3):
            model(torch.randn(16, 4)).sum().backward()
            mon.step()
    assert seen[1:] == [True, True]  # the first forward, which finds the sites, may keep it
    assert mon.report().layer("act").units == 8
