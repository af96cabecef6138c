"""One-click remedies: for each kind of finding the monitor makes (the ``kind`` of every
diagnostic in :data:`gradsight.monitor.diagnostics.REGISTRY`), the playground settings that act
on it. The finding's own ``remedy`` text says what to do in one's own code; this table says
which of those things is a setting here. ``GET /api/catalog`` serves it as ``"remedies"``; the
page offers and applies them with generic code (``remedies()`` and ``applyRemedy()`` in
static/app.js follow :func:`offered` and :func:`apply` here).

A remedy is data:

    label   the button's text
    set     run-config fields to set, e.g. {"init": "he"}
    scale   run-config numbers to multiply, e.g. {"lr": 0.1}: new = old × factor, rounded to
            3 significant digits
    action  a run action instead of a config change ("revive": POST /api/runs/{id}/revive)
    when    conditions that must all hold for the remedy to be offered: a run-config field and
            its value ({"residual": False}), or "activation.<property>" and the value of that
            property of the run's activation as /api/catalog serves it
            ({"activation.saturates": True}); the page reads the property from the catalog

A remedy that would change nothing (He init on a He-initialised run) is not offered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gradsight import activations

ACTIVATION = "activation."  # prefix of a ``when`` key that reads an activation property


def whole_net(name: str) -> dict[str, Any]:
    """The run-config fields that switch every hidden layer to catalog activation ``name`` with
    its default parameters (per-layer choices dropped)."""
    return {"activation": name, "activation_params": {}, "layer_activations": None,
            "layer_activation_params": None}  # fmt: skip


@dataclass(frozen=True)
class Remedy:
    label: str
    set: dict[str, Any] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    action: str | None = None
    when: dict[str, Any] = field(default_factory=dict)


LOWER_LR = Remedy("lower the learning rate ×0.1", scale={"lr": 0.1})
RELU_HE = Remedy("ReLU + He init", set={**whole_net("relu"), "init": "he"})

# finding kind -> the remedies that are playground settings (an empty tuple: none is)
REMEDIES: dict[str, tuple[Remedy, ...]] = {
    "vanishing_gradients": (
        Remedy(RELU_HE.label, set=RELU_HE.set, when={ACTIVATION + "saturates": True}),
        Remedy("He init", set={"init": "he"}, when={ACTIVATION + "saturates": False}),
        Remedy("add residual connections", set={"residual": True}, when={"residual": False}),
    ),
    "exploding_gradients": (LOWER_LR,),
    "dead_units": (
        Remedy("Leaky ReLU", set=whole_net("leaky_relu"), when={ACTIVATION + "can_die": True}),
        LOWER_LR,
        Remedy("revive dead units", action="revive"),
    ),
    "saturation": (Remedy("Xavier init", set={"init": "xavier"}), RELU_HE),
    "non_finite": (LOWER_LR,),
}


def catalog() -> dict[str, list[dict[str, Any]]]:
    """The table as JSON: ``{kind: [{"label", "set", "scale", "action", "when"}, ...]}``."""
    return {kind: [asdict(r) for r in rs] for kind, rs in REMEDIES.items()}


def offered(remedy: Remedy, config: dict[str, Any]) -> bool:
    """Whether the remedy is offered for the run config ``config`` (a JSON object as POST
    /api/runs takes it, with every field present): every ``when`` condition holds, and it would
    change something (an action, a scale, or a ``set`` field that differs from the config).
    Activation properties are read as /api/catalog serves them: those of the activation with
    its default parameters."""
    act = activations.activation(config["activation"])
    holds = all((getattr(act, key[len(ACTIVATION):]) if key.startswith(ACTIVATION) else config.get(key)) == value
                for key, value in remedy.when.items())  # fmt: skip
    changes = bool(remedy.action or remedy.scale) or any(config.get(k) != v for k, v in remedy.set.items())
    return holds and changes


def apply(remedy: Remedy, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the remedy's settings changed (an ``action`` remedy changes none)."""
    out = {**config, **remedy.set}
    for key, factor in remedy.scale.items():
        out[key] = float(f"{config[key] * factor:.3g}")
    return out
