"""The Diagnostic base class, the registry it fills, the Context diagnostics read, and the
SettingRemedy records with which a diagnostic names the remedies that are training settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from gradsight.errors import GradsightError
from gradsight.monitor.records import Finding, LayerStats, ParamStats

REGISTRY: list[Diagnostic] = []


@dataclass
class Context:
    """What diagnostics see: the window stats per site (forward order), the logged-step
    history, the last parameter stats and the non-finite events."""

    step: int
    layers: list[LayerStats]
    history: list[Any] = field(default_factory=list)  # StepRecord
    params: list[ParamStats] = field(default_factory=list)
    events: dict[str, Any] = field(default_factory=dict)  # phase -> NonFiniteEvent

    def restricted(self, needs: tuple[str, ...]) -> Context:
        """The context with only ``needs`` (and ``step``) filled in: the rest empty."""
        return replace(self, **{n: type(getattr(self, n))() for n in NEEDS if n not in needs})

    def with_gradients(self) -> list[LayerStats]:
        """Sites whose gradient RMS is known and positive, in forward order."""
        return [
            s for s in self.layers if isinstance(s.grad_rms, float) and math.isfinite(s.grad_rms) and s.grad_rms > 0
        ]


NEEDS = tuple(f.name for f in fields(Context) if f.name != "step")  # what a diagnostic may read


@dataclass(frozen=True)
class SettingRemedy:
    """A remedy that is a setting of the training run, as data (the playground's one-click
    "apply"; gradsight.web.remedies applies it). Setting names are the playground's run-config
    fields (gradsight.web.config.RunConfig).

    label   what it does, in a few words
    set     settings to set, e.g. {"init": "he"}; setting "activation" switches every hidden
            layer to it with its default parameters
    scale   numeric settings to multiply, e.g. {"lr": 0.1}
    action  an action on the run instead ("revive": Monitor.revive_dead)
    when    conditions for it to apply, all of them: a setting and its value
            ({"residual": False}) or "activation.<property>" and that catalog property of the
            run's activation ({"activation.saturates": True})
    """

    label: str
    set: dict[str, Any] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    action: str | None = None
    when: dict[str, Any] = field(default_factory=dict)


LOWER_LR = SettingRemedy("lower the learning rate ×0.1", scale={"lr": 0.1})
RELU_HE = SettingRemedy("ReLU + He init", set={"activation": "relu", "init": "he"})


class Diagnostic:
    """One diagnosis. Subclasses set the class attributes and implement ``check``; defining the
    subclass registers one instance. ``needs`` names the parts of the Context it reads (of
    ``NEEDS``); ``check`` is given a Context with only those filled in, so a diagnostic that
    reads what it did not declare finds nothing there. ``setting_remedies``: those of its
    findings' remedies that are training settings (what the playground can apply)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("layers",)
    setting_remedies: ClassVar[tuple[SettingRemedy, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for need in cls.needs:
            if need not in NEEDS:
                raise GradsightError(f"diagnostic {cls.name!r} needs {need!r}; allowed: {', '.join(NEEDS)}")
        if cls.name:
            REGISTRY.append(cls())

    def check(self, ctx: Context) -> list[Finding]:
        raise NotImplementedError


def sites_have(n: int) -> str:
    """``"1 site has"`` or ``"N sites have"``: the subject of a finding's message."""
    return "1 site has" if n == 1 else f"{n} sites have"


def severity(value: float, warning: float, critical: float, larger_is_worse: bool = True) -> str | None:
    """'critical' / 'warning' / None by thresholds."""
    if not math.isfinite(value):
        return None
    if larger_is_worse:
        if value >= critical:
            return "critical"
        if value >= warning:
            return "warning"
        return None
    if value <= critical:
        return "critical"
    if value <= warning:
        return "warning"
    return None
