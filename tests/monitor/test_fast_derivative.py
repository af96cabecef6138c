"""The one-kernel output derivatives of relu / sigmoid / tanh agree with the catalog's."""

import pytest
import torch
from torch import nn

from gradsight.activations import from_module
from gradsight.monitor.sites import _fast_output_derivative


@pytest.mark.parametrize("module", [nn.ReLU(), nn.Sigmoid(), nn.Tanh()])
def test_fast_output_derivative_matches_catalog(module: nn.Module) -> None:
    act = from_module(module)
    x = torch.cat([torch.randn(64, 32) * 6, torch.zeros(1, 32), -torch.zeros(1, 32)])
    y = module(x)
    fast = _fast_output_derivative(act)(y)
    ref = act.output_derivative(y)
    assert fast.shape == ref.shape and fast.dtype == ref.dtype
    torch.testing.assert_close(fast, ref, atol=1e-6, rtol=0)
    if act.name == "relu":  # dead-unit counts must be exact
        assert torch.equal(fast.sum(0), ref.sum(0))


KERNEL_CASES = [
    ("relu", {}),
    ("leaky_relu", {"negative_slope": 0.2}),
    ("elu", {"alpha": 0.5}),
    ("selu", {}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("silu", {}),
    ("swish", {}),
    ("softplus", {"beta": 2.0, "threshold": 5.0}),
]


@pytest.mark.parametrize(("name", "params"), KERNEL_CASES)
def test_backward_kernel_derivative_equals_the_catalog_kink_included(name, params):
    import gradsight as gs
    from gradsight.monitor.sites import _kernel_derivative

    act = gs.activation(name, **params)
    kernel = _kernel_derivative(act)
    assert kernel is not None
    x = torch.cat([torch.linspace(-30, 30, 601, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)])
    got = kernel(x)
    want = torch.as_tensor(act.derivative(x))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert got[-1] == want[-1]  # f'(0): PyTorch's convention, the catalog's default


def test_backward_kernel_is_not_used_for_a_non_pytorch_kink_convention():
    import gradsight as gs
    from gradsight.monitor.sites import _kernel_derivative

    assert _kernel_derivative(gs.activation("relu", derivative_at_zero=1.0)) is None
    assert _kernel_derivative(gs.activation("mish")) is None  # no aten kernel with an out=


@pytest.mark.parametrize("module", [nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.GELU(), nn.SiLU(), nn.ELU()])
@pytest.mark.parametrize("shape", [(32, 16), (4, 8, 16)])
def test_the_per_shape_reducer_equals_the_generic_per_unit_sum(module, shape):
    from gradsight.monitor.sites import Site

    site = Site(index=0, name="s", act=from_module(module), kind="module")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g) * 3
    x[0, ..., :3] = 0.0
    y = module(x)
    want, n = site.per_unit_sum(site.derivative(x, y))
    first, n1 = site.unit_sums(x, y)  # builds the reducer for this shape
    assert site._reducer is not None and site._reducer.fits(y)
    again, n2 = site.unit_sums(x, y)  # runs it
    assert n == n1 == n2 == x.numel() // 16
    assert again.dtype == torch.float32 and again.shape == (16,)
    torch.testing.assert_close(again, want, rtol=1e-5, atol=1e-5)
    if isinstance(module, nn.ReLU):  # counts are exact
        assert torch.equal(again, want)


def test_running_window_sums_equal_the_exact_sums():
    from tests.monitor.helpers import mlp, train

    import gradsight as gs

    torch.manual_seed(0)
    model = mlp(nn.GELU, depth=2, width=16)
    with gs.watch(model, every=1, window=3) as mon:
        train(model, mon, steps=11)
        mon.report()  # closes the logged steps still waiting for the host
        w = mon._window
        exact = sum(e.flat for e in w.ring)
        assert len(w.ring) == 3
        assert (abs(w.last_W - exact) <= 1e-9 * abs(exact).max()).all()
        assert w.last_N == [sum(e.n[i] for e in w.ring) for i in range(len(w.layout))]


def test_history_stays_bounded_and_keeps_the_recent_steps_dense(monkeypatch):
    from tests.monitor.helpers import mlp, train

    import gradsight as gs
    from gradsight.monitor import flush

    monkeypatch.setattr(flush, "MAX_HISTORY", 8)
    model = mlp(depth=1, width=8)
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=30)
    steps = [r.step for r in mon.history]
    assert len(steps) <= 8
    assert steps[-4:] == [26, 27, 28, 29]  # the recent ones, every step
    assert steps[0] < 10  # the start is still represented, sparser


def test_the_reducer_is_rebuilt_when_the_dtype_changes_at_the_same_shape():
    from gradsight.monitor.sites import Site

    site = Site(index=0, name="s", act=from_module(nn.Sigmoid()), kind="module")
    y32 = torch.sigmoid(torch.randn(8, 4))
    site.unit_sums(None, y32)
    y64 = y32.double()
    got, n = site.unit_sums(None, y64)  # a float32 reducer would fail on float64 input
    want, _ = site.per_unit_sum(site.derivative(None, y64))
    assert n == 8 and site._reducer.dtype == torch.float64
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("module", [nn.ReLU(), nn.Sigmoid(), nn.GELU(), nn.Mish()])
@pytest.mark.parametrize("shape", [(), (7,), (6, 5), (2, 3, 4, 4)])
def test_derivatives_in_the_shared_scratch_equal_fresh_ones_and_do_not_alias(module, shape):
    from gradsight.monitor.sites import Site

    g = torch.Generator().manual_seed(1)
    sites, refs, got = [], [], []
    for k in range(3):
        site = Site(index=k, name=str(k), act=from_module(module), kind="module")
        site.channel_layout = len(shape) >= 3
        x = torch.randn(shape, generator=g) * 3
        y = module(x)
        fresh = site.derivative(x, y)
        torch.testing.assert_close(site.derivative(x, y, scratch=True), fresh, rtol=0, atol=0)
        sites.append(site)
        refs.append(site.per_unit_sum(fresh)[0])
        got.append(site.unit_sums(x, y)[0])  # each writes the same scratch buffer
    for want, have in zip(refs, got, strict=True):  # earlier results were not overwritten
        torch.testing.assert_close(have, want, rtol=1e-6, atol=1e-6)


def test_each_thread_has_its_own_scratch_buffer():
    import threading

    from gradsight.monitor.sites import scratch_like

    t = torch.zeros(4, 5)
    here = scratch_like(t)
    there: list[torch.Tensor] = []
    worker = threading.Thread(target=lambda: there.append(scratch_like(t)))
    worker.start()
    worker.join()
    assert here.shape == there[0].shape == (4, 5)
    assert here.data_ptr() != there[0].data_ptr()
    assert scratch_like(t).data_ptr() == here.data_ptr()  # reused within a thread


def test_a_reducer_follows_its_threads_scratch_buffer():
    import threading

    from gradsight.monitor import sites
    from gradsight.monitor.sites import Site, scratch_like

    site = Site(index=0, name="s", act=from_module(nn.Sigmoid()), kind="module")
    y = torch.sigmoid(torch.randn(8, 4))
    want = site.per_unit_sum(site.derivative(None, y))[0]
    site.unit_sums(None, y)
    r = site._reducer
    assert r.fits(y) and r.out is not None
    elsewhere: list[bool] = []
    worker = threading.Thread(target=lambda: elsewhere.append(r.fits(y)))
    worker.start()
    worker.join()
    assert elsewhere == [False]  # another thread has a buffer of its own
    held = sites._SCRATCH.buffers[(y.dtype, y.device)]
    scratch_like(torch.zeros(held.numel() + 1))  # the buffer grows: the old one is let go
    assert not r.fits(y)
    torch.testing.assert_close(site.unit_sums(None, y)[0], want)  # rebuilt
    torch.testing.assert_close(site.unit_sums(None, y)[0], want)  # run
    new = site._reducer
    assert new is not r and new.out.data_ptr() == scratch_like(y).data_ptr()
