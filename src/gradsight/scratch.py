"""Backprop from scratch in NumPy: layers with explicit caches, the way courses and interviews
write them, checked against finite differences and torch autograd.

Every layer is a pair::

    out, cache = relu_forward(x)        # remember what backward needs
    dx = relu_backward(dout, cache)     # chain rule: dL/dx = dL/dout * f'(x)

There is such a pair for every catalog activation (``relu_forward``, ``gelu_forward``,
``swiglu_forward`` ...), generated from the registry by :func:`forward` / :func:`backward`, plus
:func:`affine_forward` / :func:`affine_backward`, :func:`softmax_cross_entropy`, an :class:`MLP`
that trains on scikit-learn's digits by manual backprop (:func:`train_digits`), and a numeric
gradient check (:func:`numeric_gradient`, :func:`gradient_check`). NumPy only: torch is never
imported here.

>>> import numpy as np
>>> from gradsight.scratch import relu_forward, relu_backward
>>> out, cache = relu_forward(np.array([-1.0, 0.0, 2.0]))
>>> relu_backward(np.ones(3), cache)      # ReLU'(0) = 0, as PyTorch
array([0., 0., 1.])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from gradsight.activations import Activation, activation, names
from gradsight.errors import GradsightError

# ---------------------------------------------------------------------------------------------
# activations: one forward/backward pair per catalog entry


class ActivationCache(NamedTuple):
    """What an activation's backward needs: its input and the activation itself."""

    x: np.ndarray  # the input (for gated forms: the full input, both halves)
    activation: Activation


def _as_float(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise GradsightError(f"{what} must be a real array, got dtype {str(arr.dtype)!r}")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def _split(x: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[-1] if x.ndim else 0
    if n % 2 or n == 0:
        raise GradsightError(
            f"{name} splits the last dimension in halves (a, b); it must be even and > 0, "
            f"got shape {x.shape}"
        )
    return x[..., : n // 2], x[..., n // 2 :]


def _math(name: str) -> str:
    from gradsight.activations import REGISTRY

    return REGISTRY[name].math if name in REGISTRY else ""


def forward(name: str, **params: Any) -> Callable[[Any], tuple[np.ndarray, ActivationCache]]:
    """The forward half of the catalog activation ``name``: ``x -> (out, cache)``.

    Plain activations keep the shape. Gated forms (reglu, geglu, swiglu) split the last
    dimension in halves like their torch module: ``a, b = x[..., :n], x[..., n:]``,
    ``out = f(a) * b``, shape (..., 2n) -> (..., n). Parameters are fixed numbers here (prelu's
    slope and swish's beta are not learned in this NumPy layer).

    >>> out, cache = forward("leaky_relu", negative_slope=0.1)(np.array([-2.0, 3.0]))
    >>> out
    array([-0.2,  3. ])
    """
    act = activation(name, **params)

    def layer_forward(x: Any) -> tuple[np.ndarray, ActivationCache]:
        x = _as_float(x, f"{name}_forward input")
        if act.is_gated:
            a, b = _split(x, name)  # (..., n), (..., n)
            return act(a, b), ActivationCache(x, act)  # (..., n)
        return act(x), ActivationCache(x, act)

    layer_forward.__name__ = layer_forward.__qualname__ = f"{name}_forward"
    layer_forward.__doc__ = (
        f"out, cache = {name}_forward(x): {act.summary}\n{_math(name)}\n"
        f"The cache holds x; {name}_backward(dout, cache) gives dx."
    )
    return layer_forward


def backward(name: str) -> Callable[[Any, ActivationCache], np.ndarray]:
    """The backward half for ``name``: ``(dout, cache) -> dx = dout * f'(x)``.

    For gated forms dx = concat(dout * f'(a) * b, dout * f(a)) along the last dimension.
    The parameters come from the cache, i.e. from the forward call.

    >>> out, cache = forward("sigmoid")(np.array([0.0]))
    >>> backward("sigmoid")(np.array([1.0]), cache)
    array([0.25])
    """
    if name not in names():
        activation(name)  # raises the did-you-mean error

    def layer_backward(dout: Any, cache: ActivationCache) -> np.ndarray:
        x, act = cache
        if act.name != name:
            raise GradsightError(
                f"{name}_backward got the cache of {act.name!r}; pass the cache its own "
                f"{act.name}_forward returned"
            )
        dout = _as_float(dout, f"{name}_backward dout")
        if act.is_gated:
            a, b = _split(x, name)
            da, db = act.derivative(a, b)  # (..., n) each
            if dout.shape != da.shape:
                raise GradsightError(f"dout has shape {dout.shape}, expected {da.shape}")
            return np.concatenate([dout * da, dout * db], axis=-1)  # (..., 2n)
        if dout.shape != x.shape:
            raise GradsightError(f"dout has shape {dout.shape}, expected {x.shape}")
        return dout * act.derivative(x)

    layer_backward.__name__ = layer_backward.__qualname__ = f"{name}_backward"
    layer_backward.__doc__ = (
        f"dx = {name}_backward(dout, cache) = dout * f'(x), the chain rule through {name}.\n"
        f"{_math(name)}"
    )
    return layer_backward


for _name in names():
    globals()[f"{_name}_forward"] = forward(_name)
    globals()[f"{_name}_backward"] = backward(_name)
del _name


# ---------------------------------------------------------------------------------------------
# affine and loss


def affine_forward(x: Any, w: Any, b: Any) -> tuple[np.ndarray, tuple]:
    """out = x @ w + b, with x of shape (N, D) (or (N, d1, ..., dk), flattened to D).

    Shapes: x (N, D), w (D, M), b (M,) -> out (N, M).

    >>> out, cache = affine_forward(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4))
    >>> out.shape
    (2, 4)
    """
    x, w, b = (_as_float(v, n) for v, n in ((x, "x"), (w, "w"), (b, "b")))
    x2 = x.reshape(x.shape[0], -1)  # (N, D)
    if w.ndim != 2 or x2.shape[1] != w.shape[0] or b.shape != (w.shape[1],):
        raise GradsightError(
            f"affine_forward needs x (N, D), w (D, M), b (M,); got x {x.shape}, w {w.shape}, "
            f"b {b.shape}"
        )
    return x2 @ w + b, (x, w, b)  # (N, M)


def affine_backward(dout: Any, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx, dw, db for out = x @ w + b; dx has the shape of the original x.

    dx = dout @ w.T, dw = x.T @ dout, db = sum of dout over the batch.
    """
    x, w, _ = cache
    dout = _as_float(dout, "dout")
    x2 = x.reshape(x.shape[0], -1)  # (N, D)
    dx = (dout @ w.T).reshape(x.shape)  # (N, D) -> x's shape
    dw = x2.T @ dout  # (D, M)
    db = dout.sum(axis=0)  # (M,)
    return dx, dw, db


def softmax_cross_entropy(logits: Any, y: Any) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(logits) against integer labels, and d loss / d logits.

    loss = -mean_i log softmax(logits_i)[y_i];  dlogits = (softmax(logits) - onehot(y)) / N.
    Shapes: logits (N, C), y (N,) integers in [0, C).

    >>> loss, d = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 6), d.shape
    (1.386294, (2, 4))
    """
    logits = _as_float(logits, "logits")
    y = np.asarray(y)
    if logits.ndim != 2 or y.shape != (logits.shape[0],) or y.dtype.kind not in "iu":
        raise GradsightError(
            f"softmax_cross_entropy needs logits (N, C) and integer labels (N,); got logits "
            f"{logits.shape} and labels {y.shape} of dtype {str(y.dtype)!r}"
        )
    if y.size and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise GradsightError(f"labels must lie in [0, {logits.shape[1]}), got {y.min()}..{y.max()}")
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)  # exp never overflows
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, C)
    loss = float(-log_probs[np.arange(n), y].mean())
    dlogits = np.exp(log_probs)
    dlogits[np.arange(n), y] -= 1.0
    return loss, dlogits / n


# ---------------------------------------------------------------------------------------------
# the MLP


@dataclass
class MLP:
    """A multilayer perceptron trained by hand-written backprop.

    affine -> activation -> ... -> affine -> logits. For gated activations each hidden affine
    produces twice the width and the gate halves it, so ``sizes`` are the widths after it.
    Weights start at N(0, gain^2 / fan_in) with gain sqrt(2) for rectifiers (``act.rectifier``: He) and 1
    otherwise, biases at 0.

    >>> mlp = MLP([64, 32, 10], "relu", seed=0)
    >>> loss, grads = mlp.loss(np.zeros((5, 64)), np.zeros(5, dtype=int))
    >>> sorted(grads)
    ['b0', 'b1', 'w0', 'w1']
    """

    sizes: Sequence[int]  # input width, hidden widths ..., number of classes
    activation: str = "relu"
    seed: int = 0
    params: dict[str, np.ndarray] = field(default_factory=dict)  # w0, b0, w1, b1, ...
    dtype: Any = np.float64

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(int(s) < 1 for s in self.sizes):
            raise GradsightError(f"sizes must be >= 2 positive widths, got {list(self.sizes)!r}")
        self.act = activation(self.activation)
        if not self.params:
            rng = np.random.default_rng(self.seed)
            gain = np.sqrt(2.0) if self.act.rectifier else 1.0  # He for the relu family
            last = len(self.sizes) - 2
            for i, (d_in, d_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
                width = 2 * d_out if (self.act.is_gated and i < last) else d_out
                w = rng.normal(0.0, gain / np.sqrt(d_in), size=(d_in, width))
                self.params[f"w{i}"] = w.astype(self.dtype)
                self.params[f"b{i}"] = np.zeros(width, dtype=self.dtype)
        self._fwd, self._bwd = forward(self.act.name), backward(self.act.name)

    @property
    def depth(self) -> int:
        return len(self.sizes) - 1

    def logits(self, x: Any) -> tuple[np.ndarray, list]:
        """Logits (N, classes) and the caches of every layer, in order."""
        h, caches = _as_float(x, "x").astype(self.dtype, copy=False), []
        for i in range(self.depth):
            h, c = affine_forward(h, self.params[f"w{i}"], self.params[f"b{i}"])
            caches.append(c)
            if i < self.depth - 1:
                h, c = self._fwd(h)
                caches.append(c)
        return h, caches

    def loss(self, x: Any, y: Any) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy and the gradient of every parameter, by backprop."""
        scores, caches = self.logits(x)
        loss, d = softmax_cross_entropy(scores, y)
        grads: dict[str, np.ndarray] = {}
        for i in reversed(range(self.depth)):
            d, grads[f"w{i}"], grads[f"b{i}"] = affine_backward(d, caches.pop())
            if i > 0:
                d = self._bwd(d, caches.pop())
        return loss, grads

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class per row."""
        return self.logits(x)[0].argmax(axis=1)


# ---------------------------------------------------------------------------------------------
# gradient check


def numeric_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``x``, which is perturbed in
    place (and restored): (f(x + h e_i) - f(x - h e_i)) / 2h for every entry i.

    >>> x = np.array([1.0, 2.0])
    >>> numeric_gradient(lambda: float((x ** 2).sum()), x).round(6)
    array([2., 4.])
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: writes reach x and grad
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f()
        flat[i] = old - h
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a| + |b|, 1e-12), elementwise: 1e-7 or less means they agree."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)))


def gradient_check(mlp: MLP, x: Any, y: Any, h: float = 1e-6) -> dict[str, float]:
    """The relative error between backprop and central differences for every parameter."""
    _, grads = mlp.loss(x, y)
    return {
        k: relative_error(grads[k], numeric_gradient(lambda: mlp.loss(x, y)[0], p, h))
        for k, p in mlp.params.items()
    }


# ---------------------------------------------------------------------------------------------
# training on digits


@dataclass
class TrainResult:
    """What :func:`train_digits` measured."""

    activation: str
    train_accuracy: float
    test_accuracy: float
    losses: list[float]  # mean training loss per epoch
    seconds: float
    mlp: MLP = field(repr=False)


def load_digits_split(seed: int = 0, test_fraction: float = 0.25) -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled 8x8 digits (1797 images, no download), scaled to [0, 1] and split
    with a fixed seed: x_train (N, 64), y_train (N,), x_test, y_test."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise GradsightError("the digits need scikit-learn: pip install 'gradsight[lab]'") from None
    data = load_digits()
    x = data.data.astype(np.float64) / 16.0  # (1797, 64)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def train_digits(
    activation: str = "relu",
    hidden: Sequence[int] = (64,),
    epochs: int = 30,
    lr: float = 0.1,
    momentum: float = 0.9,
    batch_size: int = 32,
    seed: int = 0,
) -> TrainResult:
    """Train an MLP on the digits with SGD + momentum, every gradient by hand-written backprop.

    >>> r = train_digits("relu", epochs=30)      # about a second on a laptop CPU
    >>> r.test_accuracy > 0.95
    True
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise GradsightError(
            f"need epochs >= 1, batch_size >= 1 and lr > 0; got {epochs!r}, {batch_size!r}, {lr!r}"
        )
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    mlp = MLP([x_train.shape[1], *hidden, 10], activation, seed=seed)
    velocity = {k: np.zeros_like(v) for k, v in mlp.params.items()}
    rng = np.random.default_rng(seed + 1)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(y_train))
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss, grads = mlp.loss(x_train[idx], y_train[idx])
            total += loss * len(idx)
            for k, g in grads.items():
                velocity[k] = momentum * velocity[k] - lr * g
                mlp.params[k] += velocity[k]
        losses.append(total / len(y_train))
    return TrainResult(
        activation=activation,
        train_accuracy=float((mlp.predict(x_train) == y_train).mean()),
        test_accuracy=float((mlp.predict(x_test) == y_test).mean()),
        losses=losses,
        seconds=time.perf_counter() - start,
        mlp=mlp,
    )


__all__ = [
    "MLP",
    "ActivationCache",
    "TrainResult",
    "affine_backward",
    "affine_forward",
    "backward",
    "forward",
    "gradient_check",
    "load_digits_split",
    "numeric_gradient",
    "relative_error",
    "softmax_cross_entropy",
    "train_digits",
    *(f"{n}_{half}" for n in names() for half in ("forward", "backward")),
]
