"""A character-level English corpus that ships with every CPython, and its n-gram floors.

The corpus is the prose of ``pydoc_data.topics`` (the text behind ``help("assert")`` and
friends): the values of ``pydoc_data.topics.topics`` joined with ``"\\n"`` in sorted-key
order, about 465 K characters of Python documentation. Nothing is downloaded. The text
differs between Python versions, so every result records :attr:`Corpus.sha256` and the
Python version beside it.

Layout:

* :func:`load_corpus` -> :class:`Corpus`: text, hash, vocabulary, encoded ids, a fixed
  contiguous split (the first ``1 - val_fraction`` of the characters train, the rest
  validate: the split never depends on a seed).
* :meth:`Corpus.batches` yields random ``(x, y)`` windows of the train split from a seeded
  generator: the same seed gives the same data order for every model.
* :meth:`Corpus.val_windows` cuts the validation split into non-overlapping windows, the
  fixed set every validation loss here is measured on.
* :func:`ngram_floors` -> unigram and bigram validation bits/char: the floors a model must
  beat. Both use add-k smoothing with k chosen on the train split only.

>>> c = load_corpus()
>>> c.vocab_size, len(c.train) + len(c.val) == len(c.text)
(103, True)
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from gradsight.errors import GradsightError

CORPUS_NAME = "pydoc_data.topics"

# add-k grid searched for the n-gram floors (chosen on a held-out tail of the train split)
K_GRID: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)


def corpus_text() -> str:
    """The raw corpus: ``"\\n".join(topics[k] for k in sorted(topics))``."""
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics))


@dataclass(frozen=True)
class Corpus:
    """The encoded corpus with its fixed train/validation split.

    ``ids`` holds one int64 id per character (``stoi[ch]``); the vocabulary is every
    character of the whole text, sorted, so validation never meets an unknown id.
    """

    text: str  # the raw corpus
    sha256: str  # hex SHA-256 of text.encode("utf-8")
    chars: tuple[str, ...]  # the vocabulary, sorted; id i <-> chars[i]
    ids: torch.Tensor = field(repr=False)  # (N,) int64 ids of the whole text
    n_train: int = 0  # first n_train ids are the train split, the rest validation
    val_fraction: float = 0.1  # fraction of characters in the validation split

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def train(self) -> torch.Tensor:
        return self.ids[: self.n_train]  # (N_train,)

    @property
    def val(self) -> torch.Tensor:
        return self.ids[self.n_train :]  # (N_val,)

    @property
    def python_version(self) -> str:
        return sys.version.split()[0]

    def encode(self, s: str) -> torch.Tensor:
        """Ids of ``s``; a character outside the vocabulary is a :class:`GradsightError`."""
        stoi = {c: i for i, c in enumerate(self.chars)}
        bad = sorted({c for c in s if c not in stoi})
        if bad:
            raise GradsightError(
                f"characters {''.join(bad)!r} are not in the {CORPUS_NAME} vocabulary "
                f"({self.vocab_size} characters)"
            )
        return torch.tensor([stoi[c] for c in s], dtype=torch.int64)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def batches(
        self, batch_size: int, context: int, seed: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless random train windows: ``x = train[o:o+T]``, ``y = train[o+1:o+T+1]``.

        Offsets ``o`` come from ``torch.Generator().manual_seed(seed)``, so two models fed
        with the same seed see the same characters in the same order.

        Yields ``(x, y)``, both ``(batch_size, context)`` int64.
        """
        _check_window(batch_size, context, self.n_train)
        gen = torch.Generator().manual_seed(seed)
        train = self.train
        idx = torch.arange(context)  # (T,)
        while True:
            o = torch.randint(0, self.n_train - context - 1, (batch_size, 1), generator=gen)
            x = train[o + idx]  # (B, T)
            y = train[o + idx + 1]  # (B, T)
            yield x, y

    def val_windows(
        self, context: int, limit: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation split cut into consecutive non-overlapping windows.

        Window ``j`` is ``x = val[jT : jT+T]``, ``y = val[jT+1 : jT+T+1]``; the first
        character of each window is predicted with no context, exactly as in training.
        ``limit`` keeps ``limit`` windows spread evenly over the whole split (quick runs):
        the topics at the end of the corpus differ in style, so a prefix would be biased.

        Returns ``(x, y)``, both ``(n_windows, context)`` int64.
        """
        val = self.val
        n = (len(val) - 1) // context
        if n < 1:
            raise GradsightError(f"context {context} is longer than the validation split")
        x = val[: n * context].view(n, context)  # (n, T)
        y = val[1 : n * context + 1].view(n, context)  # (n, T)
        if limit is not None:
            if limit < 1:
                raise GradsightError(f"limit must be >= 1, got {limit!r}")
            keep = torch.linspace(0, n - 1, min(n, limit)).round().long()  # (limit,)
            x, y = x[keep], y[keep]
        return x, y


def _check_window(batch_size: int, context: int, n: int) -> None:
    if batch_size < 1:
        raise GradsightError(f"batch_size must be >= 1, got {batch_size!r}")
    if not 1 <= context < n - 1:
        raise GradsightError(f"context must be in [1, {n - 2}], got {context!r}")


@lru_cache(maxsize=4)
def load_corpus(val_fraction: float = 0.1) -> Corpus:
    """Load, hash, encode and split the corpus (cached).

    ``val_fraction`` of the characters at the end of the text form the validation split.
    """
    if not 0.0 < val_fraction < 0.5:
        raise GradsightError(f"val_fraction must be in (0, 0.5), got {val_fraction!r}")
    text = corpus_text()
    chars = tuple(sorted(set(text)))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor(np.fromiter((stoi[c] for c in text), dtype=np.int64, count=len(text)))
    n_train = int(round(len(text) * (1.0 - val_fraction)))
    return Corpus(
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        chars=chars,
        ids=ids,
        n_train=n_train,
        val_fraction=val_fraction,
    )


# ---------------------------------------------------------------------------- n-gram floors


@dataclass(frozen=True)
class NgramFloor:
    """One n-gram model's validation bits/char and the add-k it used."""

    name: str  # "unigram" or "bigram"
    val_bits_per_char: float  # -mean log2 p(val[i] | context) over the validation split
    k: float  # add-k smoothing constant, chosen on the train split only
    k_selection: str  # how k was chosen, in words

    def to_dict(self) -> dict[str, float | str]:
        return {
            "name": self.name,
            "val_bits_per_char": self.val_bits_per_char,
            "k": self.k,
            "k_selection": self.k_selection,
        }


def _unigram_bits(fit: np.ndarray, ev: np.ndarray, V: int, k: float) -> float:
    """``p(c) = (n(c) + k) / (N + kV)``; returns ``-mean log2 p(ev[i])``."""
    counts = np.bincount(fit, minlength=V).astype(np.float64)
    logp = np.log2(counts + k) - math.log2(len(fit) + k * V)
    return float(-logp[ev].mean())


def _bigram_bits(fit: np.ndarray, ev: np.ndarray, V: int, k: float) -> float:
    """``p(c | a) = (n(a, c) + k) / (n(a) + kV)`` over consecutive pairs of ``ev``."""
    pairs = np.bincount(fit[:-1] * V + fit[1:], minlength=V * V).reshape(V, V).astype(np.float64)
    logp = np.log2(pairs + k) - np.log2(pairs.sum(axis=1, keepdims=True) + k * V)  # (V, V)
    return float(-logp[ev[:-1], ev[1:]].mean())


def ngram_floors(corpus: Corpus, holdout_fraction: float = 0.1) -> dict[str, NgramFloor]:
    """Unigram and bigram validation bits/char with add-k smoothing; k chosen on train only.

    For each model, k is the value in :data:`K_GRID` with the lowest bits/char on the last
    ``holdout_fraction`` of the *train* split when counts come from the rest of it; the model
    is then refit on the whole train split with that k and scored on the validation split.
    The bigram scores the ``N_val - 1`` consecutive pairs inside the validation split.

    Returns ``{"unigram": NgramFloor, "bigram": NgramFloor}``.
    """
    V = corpus.vocab_size
    train = corpus.train.numpy()
    val = corpus.val.numpy()
    cut = int(len(train) * (1.0 - holdout_fraction))
    fit, hold = train[:cut], train[cut:]
    how = (
        f"best of k in {list(K_GRID)} on the last {holdout_fraction:.0%} of the train split "
        f"(counts from the first {1 - holdout_fraction:.0%}), then refit on all of train"
    )
    out = {}
    for name, fn in (("unigram", _unigram_bits), ("bigram", _bigram_bits)):
        k = min(K_GRID, key=lambda k, fn=fn: fn(fit, hold, V, k))
        out[name] = NgramFloor(name, fn(train, val, V, k), k, how)
    return out
