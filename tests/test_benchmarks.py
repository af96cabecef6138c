"""What benchmarks/monitor_overhead.py prints beside its ratios: the page-fault count, and the
numbers its bare-hook floor computes."""

from __future__ import annotations

import importlib.util
import mmap
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "monitor_overhead.py"


def _bench():
    spec = importlib.util.spec_from_file_location("monitor_overhead", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="minor page faults are counted on Linux")
def test_minor_faults_counts_the_pages_a_fresh_mapping_touches() -> None:
    bench = _bench()
    pages = 1024
    with mmap.mmap(-1, pages * mmap.PAGESIZE) as m:  # fresh anonymous memory: no page yet
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            m.madvise(mmap.MADV_NOHUGEPAGE)  # one fault per 4 KiB page, not per 2 MiB
        before = bench.minor_faults()
        for i in range(pages):
            m[i * mmap.PAGESIZE] = 1
        after = bench.minor_faults()
    assert pages <= after - before < pages + 200


@pytest.mark.parametrize("kind", ["sums", "both"])
def test_the_floor_takes_the_unit_sums_of_f_prime(kind: str) -> None:
    """sign(y) for ReLU counts each unit's positive samples; y - y^2 for sigmoid is sigma'(z)."""
    bench = _bench()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].bias[:2] = -100.0  # units 0 and 1 of the ReLU: never positive
    hooks = bench.BareHooks(model, kind)
    x = torch.randn(32, 6)
    model(x).sum().backward()
    hooks.step()
    z1 = model[0](x)
    z2 = model[2](torch.relu(z1))
    assert [tuple(d.shape) for d in hooks.D] == [(5,), (4,)]
    assert torch.equal(hooks.D[0], (z1 > 0).sum(0).float())
    assert hooks.D[0][:2].tolist() == [0.0, 0.0]
    torch.testing.assert_close(hooks.D[1], (torch.sigmoid(z2) * (1 - torch.sigmoid(z2))).sum(0))
    assert len(hooks.norms) == (0 if kind == "sums" else 2)
    hooks.close()


def test_the_floor_sums_conv_outputs_per_channel_and_3d_outputs_per_feature() -> None:
    bench = _bench()
    torch.manual_seed(2)
    conv = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU())
    seq = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid())
    hooks = [bench.BareHooks(conv, "sums"), bench.BareHooks(seq, "sums")]
    x, t = torch.randn(4, 2, 5, 5), torch.randn(3, 7, 4)  # (N, C, H, W), (B, T, C)
    conv(x).sum().backward()
    seq(t).sum().backward()
    assert torch.equal(hooks[0].D[0], (conv[0](x) > 0).sum((0, 2, 3)).float())  # 4 * 5 * 5 each
    s = torch.sigmoid(seq[0](t))
    torch.testing.assert_close(hooks[1].D[0], (s * (1 - s)).sum((0, 1)))
    for h in hooks:
        h.close()


def test_the_floor_takes_the_norms_of_the_site_output_gradients() -> None:
    bench = _bench()
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    hooks = bench.BareHooks(model, "norms")
    x = torch.randn(16, 3)
    model(x).pow(2).sum().backward()
    hooks.step()
    assert hooks.D == []
    h1 = torch.relu(model[0](x)).detach().requires_grad_()
    h2 = torch.relu(model[2](h1))
    h2.retain_grad()
    model[4](h2).pow(2).sum().backward()
    # the backward meets the last site first
    torch.testing.assert_close(torch.stack(hooks.norms), torch.stack([h2.grad.norm(), h1.grad.norm()]))
    hooks.close()
    assert not model._forward_hooks and not model[1]._forward_hooks


def test_the_floor_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="'sum'.*expected one of"):
        _bench().BareHooks(nn.Sequential(nn.ReLU()), "sum")


def test_empty_hooks_run_one_end_of_backward_callback_per_backward_until_closed() -> None:
    """The fixed-cost baseline is only a baseline if its hooks really fire: the callback is
    queued from the output node's pre-hook, so it counts backward passes through the model."""
    bench = _bench()
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    hooks = bench.EmptyHooks(model)
    x = torch.randn(5, 3)
    for _ in range(3):
        model(x).sum().backward()
    with torch.no_grad():
        model(x)  # no graph: no node hook, no callback
    out = model(x)
    (out.sum() + out.sum()).backward()  # one backward, the output node reached once
    assert hooks.calls == 4
    hooks.close()
    model(x).sum().backward()
    assert hooks.calls == 4


def test_the_tables_print_each_measured_number_in_its_column(capsys) -> None:
    bench = _bench()
    r = {c: 1.0 + 0.001 * i for i, c in enumerate(["plain", *bench.COLUMNS, *bench.FLOOR, *bench.FIXED])}
    r["cockpit economy"] = 251.4
    r["_ms"] = 2.5
    r["_mean"] = {"watch (default every=10)": 1.02, "watch every=1": 1.1}
    r["_faults"] = {"plain": 3.0, "watch (default every=10)": 4.4, "watch every=1": 5.6}
    r["_us"] = {c: r[c] * 100 - 100 for c in bench.FIXED}
    del r["bare: hold y, g"]  # not measured: n/a
    bench.print_tables([("mlp", r)], "title", floor=True, fixed=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "title",
        "| workload | plain ms/step | plain again (noise) | watch (default every=10) | watch every=1 | "
        "naive .item() hooks | cockpit economy |",
        "|---|---:|---:|---:|---:|---:|---:|",
        "| mlp | 2.50 | 1.001x | 1.002x | 1.003x | 1.004x | 251x |",
    ]
    assert "| mlp | 1.020x | 1.100x | 3 | 4 | 6 |" in lines
    assert "| mlp | n/a | 1.007x | 1.008x | 1.009x | 1.003x |" in lines
    assert "| mlp | 2.50 | +1 us (1.010x) | +1 us (1.011x) | +1 us (1.012x) |" in lines


def test_an_ablation_switches_its_path_off_only_around_its_own_steps() -> None:
    """--ablate: a switched module global holds inside the ablation's steps and is restored
    after; the f'-from-z ablation makes the monitor's sites read their input."""
    from gradsight.monitor import guard, params

    bench = _bench()
    before = (guard.HOLD_OUTPUTS, params.SAMPLE)
    with bench.ABLATE["watch, outputs checked at once"]:
        assert guard.HOLD_OUTPUTS == 0
    with bench.ABLATE["watch, update ratio of whole tensors"]:
        assert params.SAMPLE > 1 << 40
    assert (guard.HOLD_OUTPUTS, params.SAMPLE) == before
    model = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2))
    mon = bench.gs.watch(model)
    bench.ABLATE["watch, f' from z"].prepare(mon)
    model(torch.randn(16, 4)).sum().backward()
    mon.step()
    assert [s.out_deriv is None for s in mon.sites] == [True]
    mon.close()
