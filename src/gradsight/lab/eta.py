"""How long the rest of a lab run will take: typical times, scaled by the pace so far.

Each registered experiment carries its typical wall time on 2 CPU cores, quick and full
(:meth:`gradsight.lab.registry.Experiment.typical_s`). While a run goes on, the remaining
time is the typical time of what is left, scaled by how the finished experiments compared
with their own typical times, shrunk towards 1 by a prior of ``PRIOR_S`` seconds run at the
typical pace (so a 1-second experiment that took 3 s does not triple the estimate):

    remaining = r · Σ_{e left} typical_e,   r = (Σ_{e done} actual_e + P) / (Σ_{e done} typical_e + P)

>>> est = Estimate({"a": 10.0, "b": 100.0})
>>> est.remaining()
110.0
>>> est.finish("a", 20.0)            # twice as slow as typical: r = (20 + 30) / (10 + 30)
>>> round(est.remaining(), 1)
125.0
>>> describe(125.0)
'about 2 min'
"""

from __future__ import annotations

from collections.abc import Mapping

from gradsight.errors import GradsightError

__all__ = ["PRIOR_S", "Estimate", "describe"]

PRIOR_S = 30.0  # seconds of "typical pace" the observed pace is averaged with


class Estimate:
    """Remaining-time estimate over a set of experiments; see the module docstring.

    Args:
        typical: experiment name -> typical seconds (the experiments of this run).
        prior_s: the prior weight P in seconds (0: the plain ratio of sums).
    """

    def __init__(self, typical: Mapping[str, float], prior_s: float = PRIOR_S) -> None:
        bad = {k: v for k, v in typical.items() if not v >= 0}
        if bad:
            raise GradsightError(f"typical times must be >= 0 seconds, got {bad!r}")
        if not prior_s >= 0:
            raise GradsightError(f"prior_s must be >= 0 seconds, got {prior_s!r}")
        self.typical = dict(typical)
        self.prior_s = prior_s
        self.left = set(self.typical)
        self.done_actual = 0.0
        self.done_typical = 0.0

    @property
    def total(self) -> float:
        """Typical seconds of the whole run (what to expect before anything ran)."""
        return sum(self.typical.values())

    @property
    def pace(self) -> float:
        """r: how much slower (> 1) or faster (< 1) than typical the finished experiments ran."""
        denominator = self.done_typical + self.prior_s
        if denominator == 0:
            return 1.0
        return (self.done_actual + self.prior_s) / denominator

    def finish(self, name: str, seconds: float, *, completed: bool = True) -> None:
        """Mark ``name`` done after ``seconds``. A failed experiment (``completed=False``) is
        no longer waited for, but its truncated time says nothing about the pace."""
        if name not in self.typical:
            raise GradsightError(
                f"experiment {name!r} is not part of this estimate; known: {', '.join(self.typical)}"
            )
        if name not in self.left:
            raise GradsightError(f"experiment {name!r} was already marked finished")
        if not seconds >= 0:
            raise GradsightError(f"seconds must be >= 0, got {seconds!r}")
        self.left.discard(name)
        if completed:
            self.done_actual += seconds
            self.done_typical += self.typical[name]

    def remaining(self) -> float:
        """Estimated seconds until every experiment not yet finished is done."""
        return self.pace * sum(self.typical[n] for n in self.left)


def describe(seconds: float) -> str:
    """Seconds in words at the precision an estimate deserves: 'about 40 s', 'about 3 min'.

    >>> describe(42.4), describe(89.0), describe(90.0), describe(2220.0)
    ('about 42 s', 'about 89 s', 'about 2 min', 'about 37 min')
    """
    if seconds < 90:
        return f"about {max(seconds, 0):.0f} s"
    return f"about {int(seconds / 60 + 0.5)} min"
