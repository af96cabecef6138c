"""The lab's data sets: shapes, determinism, standardisation, no hidden global-RNG side effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradsight.errors import GradsightError
from gradsight.lab import data


def test_digits_shapes_split_and_standardisation() -> None:
    ds = data.load("digits")
    assert ds.X_train.shape == (1438, 64) and ds.X_test.shape == (359, 64)
    assert ds.n_classes == 10 and ds.name == "digits" and ds.n_features == 64
    assert ds.X_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    mean, std = ds.X_train.mean(0), ds.X_train.std(0, unbiased=False)
    assert torch.allclose(mean, torch.zeros(64), atol=1e-5)
    # pixels that are zero in every training image stay zero (only centred), the rest have std 1
    nonconstant = std > 0
    assert torch.allclose(std[nonconstant], torch.ones(int(nonconstant.sum())), atol=1e-4)
    assert set(ds.y_train.unique().tolist()) == set(range(10))


def test_split_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    a, b, c = data.digits(seed=3), data.digits(seed=3), data.digits(seed=4)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)


def test_mnist1d_is_generated_locally_with_default_arguments() -> None:
    ds = data.load("mnist1d")
    assert ds.X_train.shape == (4000, 40) and ds.X_test.shape == (1000, 40)
    assert ds.n_classes == 10
    # the generator's own seed 42 fixes the data: identical on every call (and cached)
    assert torch.equal(ds.X_train, data.mnist1d().X_train)


def test_mnist1d_restores_the_callers_global_numpy_rng() -> None:
    data._mnist1d_raw.cache_clear()
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    data.mnist1d(num_samples=200)
    assert np.random.rand() == expected


@pytest.mark.parametrize(("name", "classes"), [("spiral", 3), ("circles", 2), ("xor", 2)])
def test_toys(name: str, classes: int) -> None:
    ds = data.load(name)
    assert ds.X_train.shape[1] == 2 and ds.n_classes == classes
    assert len(ds.y_train) + len(ds.y_test) == 600
    assert torch.equal(ds.X_test, data.load(name).X_test)


def test_xor_labels_follow_the_quadrant() -> None:
    ds = data.xor(noise=0.0)
    x, y = ds.X_train, ds.y_train
    assert torch.equal(((x[:, 0] > 0) != (x[:, 1] > 0)).long(), y)


def test_batches_are_epochs_of_permutations() -> None:
    idx = data.batches(n=10, batch_size=3, steps=7, seed=0)
    assert idx.shape == (7, 3)
    # 3 full batches per epoch: every epoch's 9 indices are distinct
    for epoch in range(2):
        block = idx[3 * epoch : 3 * epoch + 3].flatten()
        assert len(set(block.tolist())) == 9
    assert torch.equal(idx, data.batches(10, 3, 7, 0))
    assert not torch.equal(idx, data.batches(10, 3, 7, 1))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: data.load("digit"), "unknown data set 'digit'; did you mean 'digits'"),
        (lambda: data.digits(test_fraction=1.5), r"test_fraction must lie in \(0, 1\), got 1.5"),
        (lambda: data.mnist1d(num_samples=3), "num_samples >= 10"),
        (lambda: data.batches(10, 0, 5, 0), "batch_size=0"),
    ],
)
def test_errors(call, match: str) -> None:
    with pytest.raises(GradsightError, match=match):
        call()


def test_gauss_blobs_sit_on_either_side_of_the_diagonal() -> None:
    ds = data.gauss(n=400, noise=0.1, seed=3)
    x = torch.cat([ds.X_train, ds.X_test])
    y = torch.cat([ds.y_train, ds.y_test])
    assert (len(ds.y_train), len(ds.y_test), ds.n_classes) == (300, 100, 2)
    assert int((y == 0).sum()) == 200  # balanced
    # class 0 centred at (+1, +1), class 1 at (-1, -1): with noise 0.1 the sign of x0 + x1
    # separates them exactly (standardising keeps the sign: the mean is ~0)
    assert torch.equal((x.sum(dim=1) < 0).long(), y)
