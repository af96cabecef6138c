"""One-click remedies: per kind of finding, the remedies that are playground settings, read from
the monitor's diagnostics (each declares its ``setting_remedies``, see
:class:`gradsight.monitor.diagnostics.base.SettingRemedy`). ``GET /api/catalog`` serves them as
``"remedies"``; the page offers and applies them with generic code (``remedies()`` and
``applyRemedy()`` in static/app.js follow :func:`offered` and :func:`apply` here):

- offered when every ``when`` condition holds -- a run-config field and its value, or
  ``"activation.<property>"`` and that property of the run's activation as /api/catalog serves
  it (the activation with its default parameters) -- and it would change something (an
  action, a scale, or a ``set`` field that differs from the config);
- applied: ``set`` fields set (setting ``activation`` switches every hidden layer to it with its
  default parameters), ``scale`` fields multiplied and rounded to 3 significant digits, or the
  ``action`` run (POST /api/runs/{id}/{action}).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from gradsight import activations
from gradsight.monitor.diagnostics import REGISTRY
from gradsight.monitor.diagnostics.base import SettingRemedy

ACTIVATION = "activation."  # prefix of a ``when`` key that reads an activation property
WHOLE_NET = {"activation_params": {}, "layer_activations": None, "layer_activation_params": None}


def by_kind() -> dict[str, tuple[SettingRemedy, ...]]:
    """``{finding kind: its setting remedies}`` over the registered diagnostics, in their order
    (a kind without any maps to ``()``)."""
    out: dict[str, tuple[SettingRemedy, ...]] = {}
    for diag in REGISTRY:
        out[diag.kind] = out.get(diag.kind, ()) + tuple(diag.setting_remedies)
    return out


def catalog() -> dict[str, list[dict[str, Any]]]:
    """As JSON: ``{kind: [{"label", "set", "scale", "action", "when"}, ...]}``, ``set`` being
    every field the remedy writes (:func:`changes`): the page assigns it as it is."""
    return {kind: [{**asdict(r), "set": changes(r)} for r in rs] for kind, rs in by_kind().items()}


def changes(remedy: SettingRemedy) -> dict[str, Any]:
    """The run-config fields ``remedy.set`` writes: an activation comes with WHOLE_NET."""
    return {**(WHOLE_NET if "activation" in remedy.set else {}), **remedy.set}


def offered(remedy: SettingRemedy, config: dict[str, Any]) -> bool:
    """Whether ``remedy`` is offered for the run config ``config`` (a JSON object as POST
    /api/runs takes it, with every field present)."""
    act = activations.activation(config["activation"])
    holds = all((getattr(act, key[len(ACTIVATION):]) if key.startswith(ACTIVATION) else config.get(key)) == value
                for key, value in remedy.when.items())  # fmt: skip
    changed = bool(remedy.action or remedy.scale) or any(config.get(k) != v for k, v in changes(remedy).items())
    return holds and changed


def apply(remedy: SettingRemedy, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the remedy's settings changed (an ``action`` remedy changes none)."""
    out = {**config, **changes(remedy)}
    for key, factor in remedy.scale.items():
        out[key] = float(f"{config[key] * factor:.3g}")
    return out
