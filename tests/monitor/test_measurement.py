"""What watch() reports equals statistics computed by hand from the activations' inputs, through
the shapes, dtypes, batch sizes, threads and windows that change how the monitor computes them
(kept buffers, per-shape reducers, the window's running sums). Public API only: the numbers in
``Report.layers`` against numbers from forward hooks of the test's own."""

from __future__ import annotations

import threading

import pytest
import torch
from tests.monitor.helpers import mlp, train
from torch import nn

import gradsight as gs

ACTS = [nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.ELU, nn.Mish]


def _inputs_of_activations(model: nn.Module) -> tuple[dict[str, list[torch.Tensor]], list]:
    """Record each activation module's input (the pre-activation z), keyed by site name."""
    seen: dict[str, list[torch.Tensor]] = {}
    handles = []
    for name, m in model.named_modules():
        if type(m) in ACTS:
            hook = lambda mod, args, out, name=name: seen.setdefault(name, []).append(args[0].detach())  # noqa: E731
            handles.append(m.register_forward_hook(hook))
    return seen, handles


def _by_hand(module: nn.Module, zs: list[torch.Tensor]) -> dict[str, float]:
    """mean_derivative, dead_fraction and saturated_fraction of one site over the steps ``zs``
    (each (..., C), units on the last dim), from the catalog's f' in float64."""
    act = gs.activations.from_module(module)
    d = torch.cat([act.derivative(z.double()).reshape(-1, z.shape[-1]) for z in zs])  # (N, C)
    bound = act.derivative_bound
    sat = (d.abs() < 0.01 * bound).double().mean().item() if act.saturates else 0.0
    return {
        "mean_derivative": d.mean().item(),
        "dead_fraction": 0.0 if act.saturates else (d.sum(0) == 0).double().mean().item(),
        "saturated_fraction": sat,
    }


def _check(rep: gs.monitor.Report, model: nn.Module, seen: dict, window: int) -> None:
    modules = dict(model.named_modules())
    assert [ls.name for ls in rep.layers] == list(seen)
    for ls in rep.layers:
        want = _by_hand(modules[ls.name], seen[ls.name][-window:])
        assert ls.mean_derivative == pytest.approx(want["mean_derivative"], rel=1e-5, abs=1e-7)
        assert ls.dead_fraction == want["dead_fraction"]
        # f' from the float32 output (1 - y^2) may fall on the other side of the 1 % line
        # than the float64 f'(z) for an element or two
        assert ls.saturated_fraction == pytest.approx(want["saturated_fraction"], abs=2e-3)


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.__name__)
@pytest.mark.parametrize("shape", [(24,), (4, 6)], ids=["2d", "3d"])
def test_window_statistics_equal_a_hand_computation(act, shape):
    torch.manual_seed(0)
    model = mlp(act, depth=2, width=16, d_in=8)
    with torch.no_grad():
        model[0].weight.mul_(4.0)  # pre-activations out to the tails: some dead, some saturated
        model[0].bias[:3] = -1e4  # three units that never turn on: f' = 0 in any precision
    seen, handles = _inputs_of_activations(model)
    with gs.watch(model, every=1, window=3) as mon:
        train(model, mon, steps=5, d_in=8, shape=(*shape, 8))
    for h in handles:
        h.remove()
    _check(mon.report(), model, seen, window=3)


def test_statistics_stay_exact_when_the_batch_grows_and_the_dtype_changes():
    torch.manual_seed(1)
    model = mlp(nn.Tanh, depth=2, width=16, d_in=8)
    with torch.no_grad():
        model[0].weight.mul_(5.0)
    seen, handles = _inputs_of_activations(model)
    with gs.watch(model, every=1, window=1) as mon:
        for step, batch in enumerate([4, 64, 1024, 1024, 8]):  # buffers and reducers outgrown
            if step == 3:
                model.double()  # same shape, another dtype
            x = torch.randn(batch, 8, dtype=next(model.parameters()).dtype)
            model(x).square().mean().backward()
            model.zero_grad()
            mon.step()
            _check(mon.report(), model, seen, window=1)
    for h in handles:
        h.remove()


def test_two_models_watched_in_two_threads_each_measure_their_own():
    torch.manual_seed(2)
    models = [mlp(nn.Sigmoid, depth=2, width=32, d_in=16), mlp(nn.GELU, depth=2, width=16, d_in=16)]
    with torch.no_grad():
        models[0][0].weight.mul_(8.0)
    seen = [_inputs_of_activations(m)[0] for m in models]
    reports: list = [None, None]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with gs.watch(models[i], every=1, window=2) as mon:
                train(models[i], mon, steps=6, batch=32 + 16 * i, seed=i)
            reports[i] = mon.report()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for rep, model, s in zip(reports, models, seen, strict=True):
        _check(rep, model, s, window=2)


def test_history_stays_bounded_and_keeps_the_recent_steps_dense(monkeypatch):
    from gradsight.monitor import flush

    monkeypatch.setattr(flush, "MAX_HISTORY", 8)
    model = mlp(depth=1, width=8)
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=30)
    steps = [r.step for r in mon.report().history]
    assert len(steps) <= 8
    assert steps[-4:] == [26, 27, 28, 29]  # the recent ones, every step
    assert steps[0] < 10  # the start is still represented, sparser
