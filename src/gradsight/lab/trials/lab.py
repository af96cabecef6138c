"""The lab's experiments as trials.

An experiment registered whole (``registry.experiment``: one function ``run(quick, progress)``
whose seeds follow the lab's ``--seed``) is one trial: ``kind`` = the experiment's name,
``config`` = ``{"quick": quick, "seed": seed}``. Its metrics are the experiment's result as
JSON (rows, data, figures as SVG text, claims with their verdicts and evidence).

An experiment split into trials (``registry.split_experiment``: ``plan``, ``trial``,
``build``) is as many trials as its plan has configs: ``kind`` = the experiment's name,
``config`` = one planned config (e.g. ``{"form": "relu", "recipe": "quick", "seed": 0}`` for
``llm_ffn``), metrics = what its ``trial`` returned. :func:`build_result` then computes the
experiment's result from those metrics in the driver: figures, claims and verdicts come from
the trials only, and its ``seconds`` are the trials' seconds summed.

Either way the version is :func:`~gradsight.lab.trials.trial.code_version` of the module that
computes the trials, and the report is built from stored metrics only — the same way whether a
trial ran now or was read from the store, so a re-run that reuses every trial writes the same
numbers.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from gradsight.lab import registry
from gradsight.lab.registry import Claim, Experiment, ExperimentResult, Figure
from gradsight.lab.trials.store import Record
from gradsight.lab.trials.trial import Trial, code_version, normalize

__all__ = ["GALLERY", "TARGET", "build_result", "figures", "from_metrics", "gallery_trial",
           "run_batch", "to_metrics", "trial_for", "trials_for"]

TARGET = "gradsight.lab.trials.lab:run_batch"
GALLERY = "_gallery"  # the report's activation gallery: a trial too (no experiment has this name)


def trial_for(exp: Experiment, quick: bool, seed: int = 0) -> Trial:
    """The trial that runs whole experiment ``exp`` in ``quick`` mode under ``--seed seed``."""
    return Trial(exp.name, {"quick": bool(quick), "seed": int(seed)}, code_version(exp.module))


def trials_for(exp: Experiment, quick: bool, seed: int = 0) -> list[Trial]:
    """The trials of ``exp`` in ``quick`` mode under ``--seed seed``, in plan order: its plan's
    configs (normalized) for an experiment split into trials, else the one :func:`trial_for`."""
    if exp.split is None:
        return [trial_for(exp, quick, seed)]
    version = code_version(exp.module)
    return [Trial(exp.name, normalize(c), version) for c in exp.plan(quick, seed)]


def build_result(exp: Experiment, quick: bool, seed: int, records: list[Record]) -> ExperimentResult:
    """The result of ``exp`` from its trials' records (all done; :func:`trials_for` order).

    A whole experiment's result is its one record's metrics; a split one's is its ``build`` of
    the ``(config, metrics)`` pairs, with ``seconds`` = the trials' seconds summed (the time the
    work took, not the build's), so a re-run from the store gives the same result.
    """
    if exp.split is None:
        (rec,) = records
        return from_metrics(rec.metrics)
    result = registry.build(exp.name, quick, seed, [(r.config, r.metrics) for r in records])
    result.seconds = sum(r.seconds for r in records)
    return result


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
    """The worker side: one trial of experiment ``kind`` per config — its ``trial(config)`` for
    an experiment split into trials, the whole experiment (metrics by :func:`to_metrics`)
    otherwise — or the gallery (``kind`` = :data:`GALLERY`)."""
    if kind == GALLERY:
        from dataclasses import asdict

        from gradsight.report.html import _gallery  # the report sits above the lab: import late

        return [{"figures": [asdict(f) for f in _gallery()]} for _ in configs]
    exp = registry.get(kind)
    if exp.split is not None:
        return [exp.split.trial(dict(c)) for c in configs]
    return [to_metrics(registry.run(kind, quick=bool(c["quick"]), seed=int(c.get("seed", 0)))) for c in configs]
