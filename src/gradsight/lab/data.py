"""The lab's data sets: small, local, deterministic.

Every loader returns a :class:`Dataset` of float32 features and int64 labels, already split
into train and test and standardised with the *training* statistics only. Nothing here
downloads anything:

- ``digits``  scikit-learn's bundled 8×8 handwritten digits (1797 images, 64 features, 10 classes)
- ``mnist1d`` MNIST-1D made by the ``mnist1d`` package's local generator
  (``mnist1d.data.make_dataset`` with its default arguments: 5000 signals of length 40,
  10 classes, its own 80/20 split); generated once per process and cached in memory
  (about 1.5 s on one CPU core)
- ``spiral``, ``circles``, ``xor``, ``gauss``  2-D toys with a fixed seed

>>> ds = load("digits")
>>> tuple(ds.X_train.shape), ds.n_classes
((1438, 64), 10)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gradsight.errors import GradsightError, unknown_choice

__all__ = [
    "Dataset",
    "load",
    "names",
    "batches",
    "digits",
    "mnist1d",
    "spiral",
    "circles",
    "xor",
    "gauss",
]


@dataclass
class Dataset:
    """A classification data set split into train and test."""

    X_train: torch.Tensor  # (N_train, D) float32, standardised with training statistics
    y_train: torch.Tensor  # (N_train,) int64 class indices in [0, n_classes)
    X_test: torch.Tensor  # (N_test, D) float32, standardised with the same statistics
    y_test: torch.Tensor  # (N_test,) int64
    n_classes: int  # number of classes
    name: str  # loader name ("digits", "mnist1d", ...)

    @property
    def n_features(self) -> int:
        """Number of input features D."""
        return int(self.X_train.shape[1])

    def to(self, dtype: torch.dtype) -> Dataset:
        """The same data with features cast to ``dtype`` (float64 for exact comparisons)."""
        return Dataset(
            self.X_train.to(dtype),
            self.y_train,
            self.X_test.to(dtype),
            self.y_test,
            self.n_classes,
            self.name,
        )


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z = (x − μ_train) / σ_train per feature; constant features (σ = 0) are only centred."""
    mean = x_train.mean(axis=0, keepdims=True)
    std = x_train.std(axis=0, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def _split(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random permutation split: the last ``test_fraction`` of the permutation is test."""
    if not 0.0 < test_fraction < 1.0:
        raise GradsightError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    train, test = perm[: len(y) - n_test], perm[len(y) - n_test :]
    return x[train], y[train], x[test], y[test]


def _make(
    name: str,
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_te: np.ndarray,
    y_te: np.ndarray,
    n_classes: int,
    standardise: bool,
) -> Dataset:
    x_tr, x_te = x_tr.astype(np.float64), x_te.astype(np.float64)
    if standardise:
        x_tr, x_te = _standardise(x_tr, x_te)
    return Dataset(
        X_train=torch.as_tensor(x_tr, dtype=torch.float32),
        y_train=torch.as_tensor(y_tr, dtype=torch.int64),
        X_test=torch.as_tensor(x_te, dtype=torch.float32),
        y_test=torch.as_tensor(y_te, dtype=torch.int64),
        n_classes=n_classes,
        name=name,
    )


def digits(seed: int = 0, test_fraction: float = 0.2, standardise: bool = True) -> Dataset:
    """scikit-learn's bundled 8×8 digits: 1797 samples, 64 features (pixel values 0–16), 10 classes.

    Features are flattened row-major, so ``X.view(-1, 1, 8, 8)`` recovers the image.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = np.asarray(bunch.data), np.asarray(bunch.target)
    return _make("digits", *_split(x, y, test_fraction, seed), 10, standardise)


@functools.lru_cache(maxsize=4)
def _mnist1d_raw(num_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate MNIST-1D locally, once per process and size (the generator reseeds numpy's
    global RNG with its own seed 42; we restore the caller's global state afterwards)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    state = np.random.get_state()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    return (
        np.asarray(d["x"]),
        np.asarray(d["y"]),
        np.asarray(d["x_test"]),
        np.asarray(d["y_test"]),
    )


def mnist1d(num_samples: int = 5000, standardise: bool = True) -> Dataset:
    """MNIST-1D from the ``mnist1d`` package's local generator (default arguments, seed 42):
    ``num_samples`` signals of length 40, 10 classes, the generator's own 80/20 split.

    ``num_samples`` = 5000 is the package default; a smaller value gives a smaller but otherwise
    identically generated set (quick runs).
    """
    if num_samples < 10:
        raise GradsightError(
            f"mnist1d needs num_samples >= 10 (one per class), got {num_samples!r}"
        )
    x_tr, y_tr, x_te, y_te = _mnist1d_raw(int(num_samples))
    return _make("mnist1d", x_tr, y_tr, x_te, y_te, 10, standardise)


def spiral(
    n: int = 600, n_classes: int = 3, noise: float = 0.2, seed: int = 0, test_fraction: float = 0.25
) -> Dataset:
    """Interleaved spirals in 2-D: class k has angle θ = 4·r + 2πk/K + noise, radius r ∈ [0, 1]."""
    rng = np.random.default_rng(seed)
    per = n // n_classes
    xs, ys = [], []
    for k in range(n_classes):
        r = np.linspace(0.0, 1.0, per)
        theta = 4.0 * r + 2.0 * np.pi * k / n_classes + rng.normal(0.0, noise, per)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(per, k))
    x, y = np.concatenate(xs), np.concatenate(ys)
    return _make("spiral", *_split(x, y, test_fraction, seed), n_classes, True)


def circles(
    n: int = 600, noise: float = 0.08, seed: int = 0, test_fraction: float = 0.25
) -> Dataset:
    """Two concentric circles (radius 1 and 0.5) with Gaussian noise: 2 classes."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    y = np.arange(n) % 2
    radius = np.where(y == 0, 1.0, 0.5)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x = x + rng.normal(0.0, noise, x.shape)
    return _make("circles", *_split(x, y, test_fraction, seed), 2, True)


def xor(n: int = 600, noise: float = 0.1, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """XOR in 2-D: points near the four corners (±1, ±1); label = sign(x₀) ≠ sign(x₁)."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n, 2)) * 2 - 1
    x = corners + rng.normal(0.0, noise, (n, 2))
    y = (corners[:, 0] != corners[:, 1]).astype(np.int64)
    return _make("xor", *_split(x, y, test_fraction, seed), 2, True)


def gauss(n: int = 600, noise: float = 0.5, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """Two Gaussian blobs in 2-D centred at (+1, +1) and (−1, −1), standard deviation ``noise``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    centre = np.where(y[:, None] == 0, 1.0, -1.0) * np.ones((n, 2))
    x = centre + rng.normal(0.0, noise, (n, 2))
    return _make("gauss", *_split(x, y, test_fraction, seed), 2, True)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "mnist1d": mnist1d,
    "spiral": spiral,
    "circles": circles,
    "xor": xor,
    "gauss": gauss,
}


def names() -> list[str]:
    """Every data set name :func:`load` accepts."""
    return list(_LOADERS)


def load(name: str, **kwargs: object) -> Dataset:
    """Load a data set by name; keyword arguments go to its loader.

    >>> load("xor").n_classes
    2
    """
    if name not in _LOADERS:
        raise unknown_choice("data set", name, _LOADERS)
    return _LOADERS[name](**kwargs)


def batches(n: int, batch_size: int, steps: int, seed: int) -> torch.Tensor:
    """Index batches for ``steps`` optimizer steps: epochs of seeded permutations, concatenated.

    Returns a (steps, batch_size) int64 tensor; the same ``(n, batch_size, steps, seed)`` always
    gives the same batches, so two trainers fed from it see identical data.
    """
    if batch_size < 1 or steps < 0 or n < 1:
        raise GradsightError(
            f"need n >= 1, batch_size >= 1, steps >= 0; got n={n!r}, batch_size={batch_size!r}, "
            f"steps={steps!r}"
        )
    batch_size = min(batch_size, n)
    per_epoch = n // batch_size
    gen = torch.Generator().manual_seed(seed)
    epochs = -(-steps // per_epoch) if steps else 0
    rows = [
        torch.randperm(n, generator=gen)[: per_epoch * batch_size].view(per_epoch, batch_size)
        for _ in range(epochs)
    ]
    if not rows:
        return torch.empty(0, batch_size, dtype=torch.int64)
    return torch.cat(rows)[:steps]  # (steps, batch_size)
