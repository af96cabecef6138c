"""Which activation sites a watch measures: ``watch(model, include=..., exclude=...)``.

A site is measured when its name matches at least one ``include`` glob (every site when
``include`` is None) and no ``exclude`` glob. Globs are :func:`fnmatch.fnmatchcase` patterns on
the site names of the design (``"blocks.0.mlp.act"``, ``"blocks.0/gelu#0"``): ``*`` matches any
run of characters, dots and slashes included, so ``"blocks.1*"`` takes blocks 1, 10-19 ...
and ``"*/gelu#*"`` every functional GELU.

A pattern that matches no site of the model is a GradsightWarning at the end of the first
forward (when the functional sites are known), naming the sites there are: a typo must not
silently measure nothing.

    >>> f = SiteFilter(include="blocks.*", exclude=["*.act"])
    >>> [f(n) for n in ("blocks.0/gelu#0", "blocks.0.mlp.act", "head")]
    [True, False, False]
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from fnmatch import fnmatchcase

from gradsight.errors import GradsightError, closest
from gradsight.monitor._util import GradsightWarning

MAX_NAMED = 24  # site names quoted in a warning before "... and N more"


def _patterns(arg: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        pats = tuple(value)
        if all(isinstance(p, str) for p in pats):
            return pats
    raise GradsightError(
        f"watch() {arg} must be a glob string or a list of them (e.g. {arg}='blocks.*'), "
        f"got {value!r}"
    )


class SiteFilter:
    """``filter(name)`` says whether the site ``name`` is measured; answers are cached (the
    functional-activation mode asks on every call)."""

    def __init__(self, include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> None:
        self.include = _patterns("include", include)
        self.exclude = _patterns("exclude", exclude) or ()
        self._cache: dict[str, bool] = {}

    @property
    def active(self) -> bool:
        return self.include is not None or bool(self.exclude)

    def __call__(self, name: str) -> bool:
        ok = self._cache.get(name)
        if ok is None:
            ok = (self.include is None or any(fnmatchcase(name, p) for p in self.include)) and not any(
                fnmatchcase(name, p) for p in self.exclude
            )
            self._cache[name] = ok
        return ok

    def unmatched(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """(argument, pattern) of every pattern that matches none of ``names``."""
        names = list(names)
        out = []
        for arg, pats in (("include", self.include or ()), ("exclude", self.exclude)):
            for p in pats:
                if not any(fnmatchcase(n, p) for n in names):
                    out.append((arg, p))
        return out

    def warn_unmatched(self, names: Iterable[str]) -> None:
        """A GradsightWarning per pattern that matches no site, quoting the known sites."""
        names = list(names)
        for arg, p in self.unmatched(names):
            hint = closest(p, names)
            shown = ", ".join(names[:MAX_NAMED]) + (
                f" ... and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
            )
            warnings.warn(
                f"watch({arg}=...): pattern {p!r} matches no activation site"
                + (f"; did you mean {hint!r}?" if hint else ";")
                + f" known sites: {shown or 'none'}",
                GradsightWarning,
                stacklevel=2,
            )


def hooked_owners(owners: Iterable[str], measured: set[str]) -> set[str]:
    """The owner modules (whose own forward calls a functional activation) to hook on logged
    steps: those with a measured site, and those inside one of them, where the functional mode
    is active anyway and must name the calls by the right owner."""
    kept = set(measured)
    return {o for o in owners if o in kept or any(k == "" or o.startswith(k + ".") for k in kept)}
