"""The lab: small, reproducible experiments with theory beside each measurement.

``gradsight.lab.run(name, quick=True)`` runs one registered experiment;
``gradsight.lab.names()`` lists them in report order, ``registered()`` gives their records.
"""

from __future__ import annotations

from gradsight.lab.registry import (
    Claim,
    ExperimentResult,
    Figure,
    experiment,
    names,
    registered,
    run,
)

__all__ = ["Claim", "ExperimentResult", "Figure", "experiment", "names", "registered", "run"]
