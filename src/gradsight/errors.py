"""The one exception family of gradsight, and the helper that makes errors teach.

Every error a user can trigger is a :class:`GradsightError` (or a subclass): the message
quotes the bad value, says what is allowed and suggests the closest valid choice.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GradsightError(ValueError):
    """Raised for every invalid input to gradsight: unknown names, bad parameters, bad shapes."""


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The choice nearest to ``value`` by edit similarity, or None when nothing is close.

    >>> closest("rellu", ["relu", "elu", "gelu"])
    'relu'
    """
    matches = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_choice(kind: str, value: object, choices: Iterable[str]) -> GradsightError:
    """A GradsightError for ``value`` not among ``choices``, with a did-you-mean hint.

    >>> str(unknown_choice("activation", "rellu", ["relu", "elu"]))
    "unknown activation 'rellu'; did you mean 'relu'? known: elu, relu"
    """
    choices = sorted(choices)
    hint = closest(str(value), choices)
    did_you_mean = f"; did you mean {hint!r}?" if hint else ";"
    return GradsightError(f"unknown {kind} {value!r}{did_you_mean} known: {', '.join(choices)}")
