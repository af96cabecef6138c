"""Backprop from scratch against torch autograd (float64, 1e-8) and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradsight as gs
from gradsight import scratch
from gradsight.errors import GradsightError

NAMES = gs.activations.names()


@pytest.mark.parametrize("name", NAMES)
def test_every_catalog_activation_has_a_named_pair(name):
    fwd, bwd = getattr(scratch, f"{name}_forward"), getattr(scratch, f"{name}_backward")
    assert fwd.__name__ == f"{name}_forward" and f"{name}_forward" in scratch.__all__
    assert bwd.__name__ == f"{name}_backward" and f"{name}_backward" in scratch.__all__
    act = gs.activation(name)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6)) * 3
    dout_shape = (4, 3) if act.is_gated else (4, 6)
    dout = rng.normal(size=dout_shape)
    out, cache = fwd(x)
    dx = bwd(dout, cache)
    assert out.shape == dout_shape and dx.shape == x.shape
    # against torch autograd of the native module (PyTorch's own functions where they exist)
    xt = torch.from_numpy(x).requires_grad_()
    yt = act.module().double()(xt)
    (gt,) = torch.autograd.grad(yt, xt, torch.from_numpy(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        dx, gt.numpy(), rtol=1e-8 if name != "leaky_relu" else 3e-8, atol=1e-14
    )


def test_relu_pair_in_the_course_style():
    out, cache = scratch.relu_forward(np.array([-1.0, 0.0, 2.0]))
    assert out.tolist() == [0.0, 0.0, 2.0]
    assert scratch.relu_backward(np.array([5.0, 5.0, 5.0]), cache).tolist() == [0.0, 0.0, 5.0]


def test_forward_factory_takes_parameters_and_backward_reads_them_from_the_cache():
    out, cache = scratch.forward("leaky_relu", negative_slope=0.1)(np.array([-2.0, 3.0]))
    assert out.tolist() == pytest.approx([-0.2, 3.0])
    assert scratch.leaky_relu_backward(np.ones(2), cache).tolist() == pytest.approx([0.1, 1.0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: scratch.relu_backward(np.ones(2), scratch.tanh_forward(np.ones(2))[1]),
            "relu_backward got the cache of 'tanh'",
        ),
        (
            lambda: scratch.swiglu_forward(np.ones((2, 3))),
            r"must be even and > 0, got shape \(2, 3\)",
        ),
        (
            lambda: scratch.relu_backward(np.ones(3), scratch.relu_forward(np.ones(2))[1]),
            r"dout has shape \(3,\), expected \(2,\)",
        ),
        (lambda: scratch.forward("rellu"), "did you mean 'relu'"),
        (lambda: scratch.backward("rellu"), "did you mean 'relu'"),
        (
            lambda: scratch.affine_forward(np.ones((2, 3)), np.ones((4, 5)), np.zeros(5)),
            r"got x \(2, 3\), w \(4, 5\)",
        ),
        (
            lambda: scratch.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 3])),
            r"labels must lie in \[0, 3\), got 0..3",
        ),
        (
            lambda: scratch.softmax_cross_entropy(np.ones((2, 3)), np.array([0.0, 1.0])),
            "integer labels",
        ),
        (lambda: scratch.MLP([64]), r"sizes must be >= 2 positive widths, got \[64\]"),
        (lambda: scratch.train_digits(epochs=0), "need epochs >= 1"),
    ],
    ids=[
        "wrong-cache",
        "odd-gate",
        "dout-shape",
        "fwd-name",
        "bwd-name",
        "affine",
        "labels",
        "label-dtype",
        "sizes",
        "epochs",
    ],
)
def test_errors_teach(call, message):
    with pytest.raises(GradsightError, match=message):
        call()


def test_affine_backward_against_numeric_gradient():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(3, 2, 2)), rng.normal(size=(4, 5)), rng.normal(size=5)
    dout = rng.normal(size=(3, 5))
    out, cache = scratch.affine_forward(x, w, b)
    assert out.shape == (3, 5)
    dx, dw, db = scratch.affine_backward(dout, cache)
    assert dx.shape == x.shape

    def f():
        return float((scratch.affine_forward(x, w, b)[0] * dout).sum())

    for got, var in ((dx, x), (dw, w), (db, b)):
        assert scratch.relative_error(got, scratch.numeric_gradient(f, var)) < 1e-8


def test_softmax_cross_entropy_against_torch_and_stable_for_huge_logits():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(6, 4)) * 5, np.array([0, 1, 2, 3, 0, 1])
    loss, d = scratch.softmax_cross_entropy(logits, y)
    lt = torch.from_numpy(logits).requires_grad_()
    ref = F.cross_entropy(lt, torch.from_numpy(y))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-14)
    np.testing.assert_allclose(d, lt.grad.numpy(), rtol=1e-12, atol=1e-15)
    loss, d = scratch.softmax_cross_entropy(
        np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([1, 1])
    )
    assert loss == pytest.approx(500.0) and np.isfinite(d).all()


def _torch_mlp_grads(mlp, x, y):
    """The same network in torch, activation from act.module() (PyTorch's own where it exists)."""
    params = {k: torch.tensor(v, requires_grad=True) for k, v in mlp.params.items()}
    act = mlp.act.module().double()
    h = torch.from_numpy(x)
    for i in range(mlp.depth):
        h = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < mlp.depth - 1:
            h = act(h)
    loss = F.cross_entropy(h, torch.from_numpy(y))
    grads = torch.autograd.grad(loss, list(params.values()))
    return loss.item(), {k: g.numpy() for k, g in zip(params, grads, strict=True)}


@pytest.mark.parametrize("name", NAMES)
def test_mlp_gradients_equal_torch_autograd(name):
    rng = np.random.default_rng(7)
    mlp = scratch.MLP([5, 7, 6, 3], name, seed=3)
    x, y = rng.normal(size=(9, 5)) * 2, rng.integers(0, 3, size=9)
    loss, grads = mlp.loss(x, y)
    ref_loss, ref = _torch_mlp_grads(mlp, x, y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k in mlp.params:
        np.testing.assert_allclose(grads[k], ref[k], rtol=1e-8, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "mish", "geglu", "relu"])
def test_gradient_check_agrees(name):
    rng = np.random.default_rng(2)
    mlp = scratch.MLP([4, 5, 3], name, seed=1)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    errors = scratch.gradient_check(mlp, x, y)
    assert set(errors) == {"w0", "b0", "w1", "b1"}
    assert max(errors.values()) < 1e-6, errors


def test_gradient_check_catches_a_planted_wrong_backward(monkeypatch):
    rng = np.random.default_rng(2)
    # the classic slip: tanh' written as 1 - tanh(x) instead of 1 - tanh(x)^2
    monkeypatch.setattr(scratch, "backward", lambda name: lambda dout, cache: dout * (1 - np.tanh(cache.x)))
    mlp = scratch.MLP([4, 5, 3], "tanh", seed=1)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    errors = scratch.gradient_check(mlp, x, y)
    assert errors["w0"] > 1e-2 and errors["w1"] < 1e-6  # the last layer is above the slip


def test_mlp_trains_on_digits_to_over_90_percent():
    result = scratch.train_digits("relu", hidden=(64,), epochs=20, seed=0)
    assert result.test_accuracy > 0.90
    assert result.losses[-1] < result.losses[0] / 10
    x_train, y_train, x_test, y_test = scratch.load_digits_split(0)
    assert x_train.shape == (1348, 64) and x_test.shape == (449, 64)
    assert set(np.unique(y_test)) == set(range(10))


def test_numeric_gradient_restores_its_input():
    x = np.array([1.0, -2.0, 3.0])
    g = scratch.numeric_gradient(lambda: float((x**3).sum()), x)
    assert x.tolist() == [1.0, -2.0, 3.0]
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-8)
