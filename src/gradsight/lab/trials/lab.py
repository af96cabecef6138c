"""The lab's experiments as trials.

Today an experiment is one function ``run(quick, progress)`` whose seeds follow the lab's
``--seed`` (``registry.run(name, quick, seed=...)``), so the lab's trial is one whole experiment: ``kind`` = the experiment's name, ``config`` =
``{"quick": quick, "seed": seed}``, version = :func:`~gradsight.lab.trials.trial.code_version` of the
experiment's module. Its metrics are the experiment's result as JSON (rows, data, figures as
SVG text, claims with their verdicts and evidence); the report is built from those metrics
only — the same way whether the trial ran now or was read from the store, so a re-run that
reuses every trial writes the same numbers.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from gradsight.lab import registry
from gradsight.lab.registry import Claim, Experiment, ExperimentResult, Figure
from gradsight.lab.trials.trial import Trial, code_version

__all__ = ["GALLERY", "TARGET", "figures", "from_metrics", "gallery_trial", "run_batch",
           "to_metrics", "trial_for"]

TARGET = "gradsight.lab.trials.lab:run_batch"
GALLERY = "_gallery"  # the report's activation gallery: a trial too (no experiment has this name)


def trial_for(exp: Experiment, quick: bool, seed: int = 0) -> Trial:
    """The trial that runs ``exp`` in ``quick`` mode under ``--seed seed``."""
    return Trial(exp.name, {"quick": bool(quick), "seed": int(seed)}, code_version(exp.fn.__module__))


def to_metrics(result: ExperimentResult) -> dict[str, Any]:
    """An experiment's result as a JSON-able dict (figures and full claims included)."""
    out = result.to_dict(with_figures=True)
    out["claims"] = [c.to_dict() for c in result.claims]
    out["seconds"] = result.seconds
    return out


def from_metrics(metrics: dict[str, Any]) -> ExperimentResult:
    """The :class:`ExperimentResult` that :func:`to_metrics` wrote (every field it holds)."""
    keys = {f.name for f in fields(ExperimentResult)} - {"figures", "claims"}
    return ExperimentResult(
        **{k: metrics[k] for k in keys if k in metrics},
        figures=[Figure(**f) for f in metrics.get("figures", [])],
        claims=[Claim(**c) for c in metrics.get("claims", [])],
    )


def gallery_trial() -> Trial:
    """The trial that draws the report's activation gallery (f and f' of every catalog entry):
    it depends only on the catalog and the plotting code, so a re-run reuses it."""
    return Trial(GALLERY, {}, code_version("gradsight.report.html"))


def figures(metrics: dict[str, Any]) -> list[Figure]:
    """The gallery trial's figures."""
    return [Figure(**f) for f in metrics["figures"]]


def run_batch(kind: str, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worker side: run experiment ``kind`` once per config (metrics by :func:`to_metrics`),
    or draw the gallery (``kind`` = :data:`GALLERY`)."""
    if kind == GALLERY:
        from dataclasses import asdict

        from gradsight.report.html import _gallery  # the report sits above the lab: import late

        return [{"figures": [asdict(f) for f in _gallery()]} for _ in configs]
    return [to_metrics(registry.run(kind, quick=bool(c["quick"]), seed=int(c.get("seed", 0)))) for c in configs]
