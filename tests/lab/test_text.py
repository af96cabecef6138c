"""The pydoc_data.topics corpus: hash, split, batches, validation windows and n-gram floors."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from gradsight.errors import GradsightError
from gradsight.lab.text import (
    K_GRID,
    _bigram_bits,
    _unigram_bits,
    corpus_text,
    load_corpus,
    ngram_floors,
)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_text_is_the_sorted_topics_joined_by_newlines() -> None:
    from pydoc_data.topics import topics

    text = corpus_text()
    first = sorted(topics)[0]
    assert text.startswith(topics[first])
    assert len(text) == sum(len(v) for v in topics.values()) + len(topics) - 1


def test_hash_and_split_are_deterministic(corpus) -> None:
    load_corpus.cache_clear()
    again = load_corpus()
    assert again is not corpus
    assert again.sha256 == corpus.sha256 == hashlib.sha256(corpus_text().encode()).hexdigest()
    assert again.n_train == corpus.n_train == round(0.9 * len(corpus.text))
    assert torch.equal(again.ids, corpus.ids)
    assert len(corpus.train) + len(corpus.val) == len(corpus.text)
    # the split is contiguous: validation is the tail of the text
    assert corpus.decode(corpus.val[:50]) == corpus.text[corpus.n_train : corpus.n_train + 50]


def test_encode_decode_round_trip(corpus) -> None:
    s = corpus.text[1000:1400]
    assert corpus.decode(corpus.encode(s)) == s
    assert corpus.chars == tuple(sorted(set(corpus.text)))


def test_encode_rejects_unknown_characters(corpus) -> None:
    with pytest.raises(GradsightError, match=r"characters '\\x00' are not in the pydoc_data"):
        corpus.encode("a\x00")


def test_batches_same_seed_same_order_and_targets_shift_by_one(corpus) -> None:
    a, b, c = corpus.batches(4, 16, 7), corpus.batches(4, 16, 7), corpus.batches(4, 16, 8)
    for _ in range(3):
        (xa, ya), (xb, yb), (xc, _) = next(a), next(b), next(c)
        assert xa.shape == ya.shape == (4, 16) and xa.dtype == torch.int64
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert not torch.equal(xa, xc)
        assert torch.equal(xa[:, 1:], ya[:, :-1])
        assert int(xa.max()) < corpus.vocab_size


def test_batches_come_from_the_train_split_only(corpus) -> None:
    x, y = next(corpus.batches(64, 32, 0))
    train = corpus.text[: corpus.n_train]
    for row, target in zip(x[:8], y[:8], strict=True):
        assert corpus.decode(torch.cat([row, target[-1:]])) in train


def test_val_windows_cover_the_split_in_order(corpus) -> None:
    x, y = corpus.val_windows(64)
    n = (len(corpus.val) - 1) // 64
    assert x.shape == y.shape == (n, 64)
    assert torch.equal(x.reshape(-1), corpus.val[: n * 64])
    assert torch.equal(y.reshape(-1), corpus.val[1 : n * 64 + 1])


def test_val_windows_limit_spreads_over_the_split(corpus) -> None:
    full_x, _ = corpus.val_windows(64)
    x, y = corpus.val_windows(64, limit=5)
    assert x.shape == (5, 64)
    assert torch.equal(x[0], full_x[0]) and torch.equal(x[-1], full_x[-1])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: next(c.batches(0, 8, 0)), r"batch_size must be >= 1, got 0"),
        (lambda c: next(c.batches(2, 0, 0)), r"context must be in \[1, \d+\], got 0"),
        (lambda c: c.val_windows(64, limit=0), r"limit must be >= 1, got 0"),
        (lambda c: c.val_windows(10**6), r"context 1000000 is longer than the validation split"),
        (lambda c: load_corpus(0.7), r"val_fraction must be in \(0, 0.5\), got 0.7"),
    ],
    ids=["batch", "context", "limit", "long-context", "val-fraction"],
)
def test_errors(corpus, call, match) -> None:
    with pytest.raises(GradsightError, match=match):
        call(corpus)


def test_ngram_formulas_on_a_hand_computed_sequence() -> None:
    fit = np.array([0, 1, 0, 1, 1])
    ev = np.array([1, 0, 2])
    V, k = 3, 0.5
    # unigram counts 2, 3, 0 over N=5: p = (n + k) / (N + kV)
    p = {c: (n + k) / (5 + k * V) for c, n in zip(range(3), (2, 3, 0), strict=True)}
    expected = -np.mean([math.log2(p[1]), math.log2(p[0]), math.log2(p[2])])
    assert _unigram_bits(fit, ev, V, k) == pytest.approx(expected, rel=1e-12)
    # bigram pairs of fit: 01, 10, 01, 11 -> n(1|0)=2 of n(0)=2; n(0|1)=1 of n(1)=2
    p10 = (1 + k) / (2 + k * V)  # p(0 | 1)
    p20 = (0 + k) / (2 + k * V)  # p(2 | 0)
    assert _bigram_bits(fit, ev, V, k) == pytest.approx(
        -np.mean([math.log2(p10), math.log2(p20)]), rel=1e-12
    )


def test_floors_are_ordered_and_k_comes_from_the_grid(corpus) -> None:
    floors = ngram_floors(corpus)
    uni, bi = floors["unigram"], floors["bigram"]
    assert uni.k in K_GRID and bi.k in K_GRID
    assert 2.0 < bi.val_bits_per_char < uni.val_bits_per_char < math.log2(corpus.vocab_size)
    assert "train split" in bi.k_selection
