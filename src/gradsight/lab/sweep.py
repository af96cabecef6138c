"""``gradsight sweep``: a user's grid of small MLPs on the lab's data, run as trials.

A :class:`SweepSpec` lists values per axis; its trials are the Cartesian product

    dataset × activation × depth × width × init × lr × optimizer × steps × seed

or, with ``samples = N``, N random points of that space (each axis drawn uniformly from its
values, the learning rate log-uniformly between the smallest and largest given), each run with
every seed. One trial trains ``MLP(depth, width, activation, init, seed)`` with
:func:`gradsight.lab.training.train` (constant learning rate, batch order from ``seed``) inside
``gradsight.watch`` and returns :func:`metrics_of`. Trials that share an architecture and
optimizer (they differ only in init, learning rate and seed) can train together as one
``torch.func`` ensemble (:func:`group`), which follows the same update rule to float rounding.

Everything a user typed is checked by :func:`validate` before anything runs.

>>> spec = SweepSpec(activation=["relu", "tanh"], lr=[0.01, 0.1], seed=[0, 1], steps=[50])
>>> len(configs(spec)), sorted(configs(spec)[0])
(8, ['activation', 'batch_size', 'dataset', 'depth', 'init', 'lr', 'optimizer', 'seed', 'steps', 'watch_every', 'width'])
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gradsight.errors import GradsightError, unknown_choice
from gradsight.lab import data
from gradsight.lab.ensemble import train_ensemble
from gradsight.lab.models import INITS, MLP
from gradsight.lab.models.mlp import resolve_activation
from gradsight.lab.training import OPTIMIZERS, TrainConfig, train
from gradsight.lab.trials.trial import Trial, code_version

__all__ = [
    "AXES",
    "KIND",
    "TARGET",
    "SweepSpec",
    "configs",
    "group",
    "load_toml",
    "metrics_of",
    "model_for",
    "run_batch",
    "spec_from",
    "train_config_for",
    "trials",
    "validate",
]

KIND = "sweep"
TARGET = "gradsight.lab.sweep:run_batch"
# the grid's axes, in the order a config lists them; "seed" is last so seeds of one config sit
# together
AXES: tuple[str, ...] = (
    "dataset", "activation", "depth", "width", "init", "lr", "optimizer", "steps", "seed"
)
ENSEMBLE_VARIES: tuple[str, ...] = ("init", "lr", "seed")  # what may differ inside an ensemble


@dataclass
class SweepSpec:
    """The grid: a list of values per axis, and the settings every trial shares."""

    dataset: list[str] = field(default_factory=lambda: ["digits"])  # gradsight.lab.data names
    activation: list[str] = field(default_factory=lambda: ["relu"])  # elementwise catalog names
    depth: list[int] = field(default_factory=lambda: [2])  # hidden layers
    width: list[int] = field(default_factory=lambda: [32])  # units per hidden layer
    init: list[str] = field(default_factory=lambda: ["pytorch_default"])  # models.INITS
    lr: list[float] = field(default_factory=lambda: [0.1])  # learning rates (> 0)
    optimizer: list[str] = field(default_factory=lambda: ["sgd"])  # training.OPTIMIZERS
    steps: list[int] = field(default_factory=lambda: [200])  # optimizer steps
    seed: list[int] = field(default_factory=lambda: [0])  # model init and batch order
    batch_size: int = 64  # samples per step
    watch_every: int = 10  # gradsight.watch measures every this many steps
    samples: int = 0  # > 0: this many random points instead of the full grid
    sample_seed: int = 0  # seeds the random points

    def size(self) -> int:
        """Number of trials."""
        return len(configs(self))


_SCALARS = ("batch_size", "watch_every", "samples", "sample_seed")


def _as_list(name: str, value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


def _number(axis: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise GradsightError(f"{axis} must be a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise GradsightError(f"{axis} must be a number, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != number:
        raise GradsightError(f"{axis} must be a whole number, got {value!r}")
    return number


def spec_from(values: dict[str, Any]) -> SweepSpec:
    """A :class:`SweepSpec` from a dict (a TOML table, or flags): list axes take a list, one
    value, or a comma-separated string; unknown keys are refused with a did-you-mean hint."""
    known = [f.name for f in fields(SweepSpec)]
    for key in values:
        if key not in known:
            raise unknown_choice("sweep setting", key, known)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key in _SCALARS:
            kwargs[key] = _number(key, value, int)
        elif key in ("depth", "width", "steps", "seed"):
            kwargs[key] = [_number(key, v, int) for v in _as_list(key, value)]
        elif key == "lr":
            kwargs[key] = [_number(key, v, float) for v in _as_list(key, value)]
        else:
            kwargs[key] = [str(v) for v in _as_list(key, value)]
    spec = SweepSpec(**kwargs)
    validate(spec)
    return spec


def load_toml(path: str | Path) -> dict[str, Any]:
    """The ``[sweep]`` table of a TOML file (or its top level when it has no such table)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    p = Path(path)
    if not p.is_file():
        raise GradsightError(f"--config {str(p)!r} is not a file")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise GradsightError(f"--config {str(p)!r} is not valid TOML: {exc}") from None
    table = doc.get("sweep", doc)
    if not isinstance(table, dict):
        raise GradsightError(f"--config {str(p)!r}: [sweep] must be a table, got {table!r}")
    return dict(table)


def validate(spec: SweepSpec) -> None:
    """Raise :class:`GradsightError` for anything that cannot run: an empty axis, an unknown
    name (with a did-you-mean hint), a size < 1, a learning rate that is not a finite number
    > 0, a negative seed."""
    for axis in AXES:
        if not getattr(spec, axis):
            raise GradsightError(
                f"the grid is empty: no value for {axis!r}; give at least one (e.g. --{axis} ...)"
            )
    for name in spec.dataset:
        if name not in data.names():
            raise unknown_choice("data set", name, data.names())
    for name in spec.activation:
        resolve_activation(name)  # unknown: did-you-mean; gated: refused
    for name in spec.init:
        if name not in INITS:
            raise unknown_choice("init", name, INITS)
    for name in spec.optimizer:
        if name not in OPTIMIZERS:
            raise unknown_choice("optimizer", name, OPTIMIZERS)
    for axis in ("depth", "width", "steps"):
        bad = [v for v in getattr(spec, axis) if v < 1]
        if bad:
            raise GradsightError(f"{axis} must be >= 1, got {bad[0]!r}")
    bad_lr = [v for v in spec.lr if not (math.isfinite(v) and v > 0)]
    if bad_lr:
        raise GradsightError(f"learning rate must be a finite number > 0, got {bad_lr[0]!r}")
    if any(s < 0 for s in spec.seed):
        raise GradsightError(f"seeds must be >= 0, got {min(spec.seed)!r}")
    for key in ("batch_size", "watch_every"):
        if getattr(spec, key) < 1:
            raise GradsightError(f"{key} must be >= 1, got {getattr(spec, key)!r}")
    if spec.samples < 0:
        raise GradsightError(f"samples must be >= 0 (0: the full grid), got {spec.samples!r}")


def _config(point: dict[str, Any], spec: SweepSpec) -> dict[str, Any]:
    return {**point, "batch_size": spec.batch_size, "watch_every": spec.watch_every}


def configs(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every trial config of ``spec`` (see the module docstring), duplicates removed."""
    validate(spec)
    axes = [a for a in AXES if a != "seed"]
    if spec.samples:
        rng = random.Random(spec.sample_seed)
        lo, hi = min(spec.lr), max(spec.lr)
        points = []
        for _ in range(spec.samples):
            point = {a: rng.choice(getattr(spec, a)) for a in axes}
            if hi > lo:
                point["lr"] = float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.4g}")
            points.append(point)
    else:
        points = [dict(zip(axes, values, strict=True))
                  for values in itertools.product(*(getattr(spec, a) for a in axes))]
    out = [_config({**p, "seed": s}, spec) for p in points for s in spec.seed]
    unique = {tuple(sorted(c.items())): c for c in out}
    return list(unique.values())


def trials(spec: SweepSpec) -> list[Trial]:
    """The spec's trials (kind ``"sweep"``, versioned by this module's code)."""
    version = code_version(__name__)
    return [Trial(KIND, c, version) for c in configs(spec)]


def group(todo: list[Trial], size: int | None = None) -> list[list[Trial]]:
    """Batches of trials that can train as one ensemble: equal in every setting except
    ``init``, ``lr`` and ``seed``; each cut into pieces of at most ``size`` trials."""
    groups: dict[tuple, list[Trial]] = {}
    for t in todo:
        key = tuple(sorted((k, v) for k, v in t.config.items() if k not in ENSEMBLE_VARIES))
        groups.setdefault(key, []).append(t)
    out = []
    for members in groups.values():
        step = size or len(members)
        out.extend(members[i:i + step] for i in range(0, len(members), step))
    return out


@functools.lru_cache(maxsize=4)
def _data(name: str) -> Any:
    return data.load(name)


def model_for(c: dict[str, Any], ds: Any) -> MLP:
    """The MLP that sweep config ``c`` trains on data set ``ds`` (its initial weights drawn
    from ``c["seed"]``)."""
    return MLP(ds.n_features, ds.n_classes, depth=c["depth"], width=c["width"],
               activation=c["activation"], init=c["init"], seed=c["seed"])


def train_config_for(c: dict[str, Any]) -> TrainConfig:
    """The training settings of sweep config ``c``: evaluated once, at its last step, and
    watched every ``c["watch_every"]`` steps."""
    return TrainConfig(steps=c["steps"], batch_size=c["batch_size"], lr=c["lr"],
                       optimizer=c["optimizer"], seed=c["seed"], eval_every=c["steps"],
                       watch=True, watch_every=c["watch_every"])


def metrics_of(result: Any) -> dict[str, Any]:
    """A trial's metrics from its :class:`~gradsight.lab.training.TrainResult`:

    test_acc, train_acc, test_loss, train_loss  at the last evaluation
    diverged, step                              the loss turned non-finite (at that step)
    dead_fraction                               share of hidden units dead at the end (watch)
    grad_ratio                                  ‖∂L/∂y‖ of the first activation site over the
                                                last's, end window (< 1: vanishing toward the input)
    mean_derivative                             E[f'] over every hidden unit, end window
    findings                                    watch's finding kinds at the end
    train_seconds                               wall time of the training steps
    """
    final = result.final
    out: dict[str, Any] = {
        "test_acc": final.test_acc, "train_acc": final.train_acc,
        "test_loss": final.test_loss, "train_loss": final.train_loss,
        "diverged": bool(result.diverged), "step": final.step,
        "train_seconds": final.seconds,
        "dead_fraction": None, "grad_ratio": None, "mean_derivative": None, "findings": [],
    }
    if result.diverged:
        out["error"] = f"diverged: the loss became non-finite at step {final.step}"
    s = result.watch
    if s is not None:
        dead, mean_d = s.pooled("dead_fraction"), s.pooled("mean_derivative")
        out["dead_fraction"] = None if math.isnan(dead) else dead
        out["mean_derivative"] = None if math.isnan(mean_d) else mean_d
        first = s.layers[0].get("grad_norm") if s.layers else None
        last = s.layers[-1].get("grad_norm") if s.layers else None
        if first is not None and last:
            out["grad_ratio"] = first / last
        out["findings"] = list(s.findings)
    return out


def run_batch(kind: str, cfgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worker side: one config trains alone; several (one :func:`group`) as an ensemble."""
    if kind != KIND:
        raise GradsightError(f"run_batch computes {KIND!r} trials, got kind {kind!r}")
    ds = _data(cfgs[0]["dataset"])
    if len(cfgs) == 1:
        return [metrics_of(train(model_for(cfgs[0], ds), ds, train_config_for(cfgs[0])))]
    results = train_ensemble([model_for(c, ds) for c in cfgs], ds, train_config_for(cfgs[0]),
                             lrs=[c["lr"] for c in cfgs], seeds=[c["seed"] for c in cfgs])
    return [metrics_of(r) for r in results]
