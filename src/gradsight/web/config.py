"""The playground's run configuration: one dataclass, its limits, and validation that names
every bad field.

``parse_config(body)`` takes the JSON object a page (or anyone) posts and returns a
:class:`RunConfig` or raises :class:`ConfigError` whose ``errors`` maps each bad field to a
message that quotes the value, says what is allowed and, for names, suggests the closest one.
Every choice list is read from its registry (activation catalog, lab data sets, lab inits,
lab optimizers); nothing here keeps a second list.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gradsight import activations
from gradsight.errors import GradsightError, unknown_choice
from gradsight.lab import data
from gradsight.lab.models.mlp import INITS
from gradsight.lab.training import OPTIMIZERS

# the playground's one init beyond the lab's: N(0, weight_var / fan_in) with a σ_w² you pick
SIGMA_INIT = "sigma_w2"


@dataclass(frozen=True)
class Limits:
    """What the server accepts; answered with 422 (a field) or 429 (too many runs) beyond."""

    max_depth: int = 64  # hidden layers
    max_width: int = 512  # units per hidden layer
    max_steps: int = 5000  # optimizer steps per run
    max_batch_size: int = 1024  # samples per step
    max_concurrent: int = 4  # runs training (running or paused) at once
    max_stored: int = 32  # runs kept (finished ones are dropped oldest first)
    max_body_bytes: int = 16384  # request body size
    max_lr: float = 100.0  # learning rate
    max_noise: float = 2.0  # data noise (standard deviation)
    max_seed: int = 2**31 - 1


LIMITS = Limits()


@dataclass
class RunConfig:
    """One playground run. Field names are the API's and the page URL's query keys."""

    dataset: str = "circles"  # a lab data set name (gradsight.lab.data.names())
    noise: float | None = None  # 2-D toys: noise of the generator; None = the loader's default
    test_fraction: float = 0.25  # share of the points held out for the test curve (2-D toys)
    activation: str = "relu"  # catalog name, for every hidden layer
    activation_params: dict[str, Any] = field(default_factory=dict)  # e.g. {"negative_slope": 0.1}
    layer_activations: list[str] | None = None  # per hidden layer names (overrides activation)
    # per hidden layer parameters, one object per layer (e.g. [{"negative_slope": 0.2}, {}]);
    # None = layers of the main activation take activation_params, others their defaults
    layer_activation_params: list[dict[str, Any]] | None = None
    depth: int = 4  # hidden layers
    width: int = 16  # units per hidden layer
    init: str = "he"  # a lab init (pytorch_default, xavier, he, lecun, orthogonal) or sigma_w2
    weight_var: float = 2.0  # σ_w² for init="sigma_w2": weights ~ N(0, weight_var / fan_in)
    residual: bool = False  # x + f(Wx + b) for hidden layers after the first
    layer_norm: bool = False  # LayerNorm on each hidden pre-activation
    optimizer: str = "sgd"  # "sgd", "momentum" (0.9) or "adam" (lab.training.OPTIMIZERS)
    lr: float = 0.1  # learning rate (changeable while training)
    batch_size: int = 32  # samples per step
    steps: int = 1000  # optimizer steps
    seed: int = 0  # seeds the data split, the weights and the batch order

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def layer_names(self) -> list[str]:
        """The activation name of each hidden layer."""
        return list(self.layer_activations or [self.activation] * self.depth)

    def layer_params(self) -> list[dict[str, Any]]:
        """The activation parameters of each hidden layer: ``layer_activation_params`` when set,
        else ``activation_params`` for layers of the main activation and {} for the others."""
        if self.layer_activation_params is not None:
            return [dict(p) for p in self.layer_activation_params]
        return [dict(self.activation_params) if n == self.activation else {} for n in self.layer_names()]


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RunConfig))


class ConfigError(GradsightError):
    """A run configuration with bad fields; ``errors`` maps field name -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def dataset_noise_default(name: str) -> float | None:
    """The ``noise`` default of a lab loader, or None when it takes no noise (digits)."""
    param = inspect.signature(getattr(data, name)).parameters.get("noise")
    return None if param is None else float(param.default)


def is_2d(name: str) -> bool:
    """A 2-D toy (drawn as points over a decision surface): its loader takes ``noise``."""
    return dataset_noise_default(name) is not None


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise GradsightError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    if not lo <= value <= hi:
        raise GradsightError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return int(value)


def _float(name: str, value: Any, lo: float, hi: float, open_lo: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        value_f = float(value)
        ok = math.isfinite(value_f) and (value_f > lo if open_lo else value_f >= lo)
        ok = ok and value_f <= hi
    if not ok:
        lo_s = f"> {lo:g}" if open_lo else f">= {lo:g}"
        raise GradsightError(f"{name} must be a number {lo_s} and <= {hi:g}, got {value!r}")
    return float(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise GradsightError(f"{name} must be true or false, got {value!r}")
    return value


def _choice(kind: str, value: Any, choices: list[str] | tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise unknown_choice(kind, value, choices)
    return value


def inits() -> list[str]:
    """Every init name a run accepts: the lab's, then ``sigma_w2``."""
    return [*INITS, SIGMA_INIT]


def elementwise_activations() -> list[str]:
    """Catalog names the playground's layers take (gated forms halve the width; left out)."""
    return [n for n in activations.names() if not activations.activation(n).is_gated]


def _activation_params(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GradsightError(f"activation_params must be an object like {{}}, got {value!r}")
    return activations.activation(name, **value).params


def _layer_activation_params(names: list[str], value: Any) -> list[dict[str, Any]] | None:
    """One validated parameter object per hidden layer, each against that layer's activation."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise GradsightError(
            f"layer_activation_params must be a list of objects (one per hidden layer, e.g. "
            f"[{{\"negative_slope\": 0.2}}, {{}}]) or null, got {value!r:.120}"
        )
    if len(value) != len(names):
        raise GradsightError(
            f"layer_activation_params must hold one object per hidden layer ({len(names)}), "
            f"got {len(value)}: {value!r:.120}"
        )
    out = []
    for i, (name, params) in enumerate(zip(names, value, strict=True)):
        try:
            out.append(activations.activation(name, **params).params)
        except GradsightError as exc:
            raise GradsightError(f"layer {i} ({name}): {exc}") from None
    return out


def _check(key: str, value: Any, cfg: dict[str, Any], lim: Limits) -> Any:
    """The validated value of one field (raises GradsightError with a teaching message)."""
    if key == "dataset":
        return _choice("dataset", value, data.names())
    if key == "noise":
        return None if value is None else _float("noise", value, 0.0, lim.max_noise)
    if key == "test_fraction":
        return _float("test_fraction", value, 0.05, 0.9)
    if key == "activation":
        return _choice("activation", value, elementwise_activations())
    if key == "layer_activations":
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise GradsightError(f"layer_activations must be a list of names or null, got {value!r}")
        known = elementwise_activations()
        return [_choice("activation", v, known) for v in value]
    if key in ("depth", "width", "batch_size", "steps", "seed"):
        hi = {"depth": lim.max_depth, "width": lim.max_width, "batch_size": lim.max_batch_size,
              "steps": lim.max_steps, "seed": lim.max_seed}[key]  # fmt: skip
        return _int(key, value, 0 if key == "seed" else 1, hi)
    if key == "init":
        return _choice("init", value, inits())
    if key == "weight_var":
        return _float("weight_var", value, 0.0, 100.0, open_lo=True)
    if key in ("residual", "layer_norm"):
        return _bool(key, value)
    if key == "optimizer":
        return _choice("optimizer", value, OPTIMIZERS)
    if key == "lr":
        return _float("lr", value, 0.0, lim.max_lr, open_lo=True)
    raise AssertionError(key)  # pragma: no cover - keys come from FIELDS


def parse_config(body: Any, lim: Limits = LIMITS) -> RunConfig:
    """A validated :class:`RunConfig` from a JSON object; missing fields take their defaults.

    Raises :class:`ConfigError` with one message per bad field (unknown keys included).
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ConfigError({"body": f"a run config must be a JSON object, got {body!r:.80}"})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key in body:
        if key not in FIELDS:
            errors[str(key)] = str(unknown_choice("run-config field", key, FIELDS))
    for key in FIELDS:
        if key not in body or key in ("activation_params", "layer_activation_params"):
            continue
        try:
            out[key] = _check(key, body[key], out, lim)
        except GradsightError as exc:
            errors[key] = str(exc)
    cfg = RunConfig(**{k: v for k, v in out.items()})
    if "activation_params" in body and "activation" not in errors:
        try:
            cfg.activation_params = _activation_params(cfg.activation, body["activation_params"])
        except GradsightError as exc:
            errors["activation_params"] = str(exc)
    if cfg.layer_activations is not None and len(cfg.layer_activations) != cfg.depth:
        if "layer_activations" not in errors and "depth" not in errors:
            errors["layer_activations"] = (
                f"layer_activations must name one activation per hidden layer ({cfg.depth}), "
                f"got {len(cfg.layer_activations)}: {cfg.layer_activations!r}"
            )
    if "layer_activation_params" in body and not errors.keys() & {"activation", "layer_activations", "depth"}:
        try:
            cfg.layer_activation_params = _layer_activation_params(
                cfg.layer_names(), body["layer_activation_params"])
        except GradsightError as exc:
            errors["layer_activation_params"] = str(exc)
    if cfg.noise is not None and "dataset" not in errors and not is_2d(cfg.dataset):
        errors["noise"] = (
            f"noise applies to the 2-D toys ({', '.join(n for n in data.names() if is_2d(n))}), "
            f"not to {cfg.dataset!r}; got {cfg.noise!r}"
        )
    if errors:
        raise ConfigError(errors)
    return cfg
