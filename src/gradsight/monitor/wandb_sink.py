"""Weights & Biases sink: ``watch(model, wandb=True)`` or ``watch(model, sinks=[WandbSink(run)])``
(the ``gradsight[wandb]`` extra; ``wandb`` is imported only when the sink is made).

What one logged step becomes in the run (W&B groups panels into sections by the part of a
name before the first ``/``, so each statistic is one section with one chart per site)::

    gradsight_step                         the monitor's step (the x-axis of every chart below)
    gradsight_grad_norm/<site>             ||dL/dy|| of the site output (window median)
    gradsight_dead_fraction/<site>         gradsight_saturated_fraction/<site>
    gradsight_mean_derivative/<site>       E[f']
    gradsight_update_ratio/<layer>         ||dW|| / ||W|| of the last parameter measurement
    gradsight_findings/<kind>              sites the finding concerns (0 when there is none)
    gradsight_findings_table               a wandb.Table (step, severity, kind, sites, message,
                                           remedy), logged again whenever the findings change

NaN and Inf statistics are logged as the floats they are (W&B draws gaps). The sink never
passes ``step=`` to ``run.log``: the user's own step counter stays theirs.
"""

from __future__ import annotations

from typing import Any

from gradsight.errors import GradsightError
from gradsight.monitor.records import KINDS

STATS = ("grad_norm", "dead_fraction", "saturated_fraction", "mean_derivative")
STEP_KEY = "gradsight_step"
TABLE_KEY = "gradsight_findings_table"
TABLE_COLUMNS = ["step", "severity", "kind", "sites", "message", "remedy"]


def _float(v: Any) -> float | None:
    """A JSON-line value as a float: the strings 'nan', 'inf', '-inf' back to floats."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if v in ("nan", "inf", "-inf"):
        return float(v)
    return None


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise GradsightError(
            f"the W&B sink needs the wandb package ({exc}); install it with: pip install 'gradsight[wandb]'"
        ) from None
    return wandb


class WandbSink:
    """Logs each logged step to a W&B run.

    Args:
        run: a ``wandb.Run`` (``wandb.init(...)``'s result). None: the active run
            (``wandb.run``), or a new ``wandb.init()`` when there is none -- which this sink
            then finishes when the monitor closes.

    Use (a whole offline run is ``python examples/wandb_offline.py``)::

        run = wandb.init(project="demo")
        with gs.watch(model, sinks=[WandbSink(run)]) as mon: ...
    """

    def __init__(self, run: Any = None) -> None:
        self._wandb = _import_wandb()
        self._owned = False
        if run is None:
            run = self._wandb.run
            if run is None:
                run = self._wandb.init()
                self._owned = True
        if not hasattr(run, "log") or not hasattr(run, "define_metric"):
            raise GradsightError(
                f"WandbSink needs a wandb run (the result of wandb.init()), got {type(run).__name__!r}; "
                "pass WandbSink(wandb.init(...)) or watch(model, wandb=True)"
            )
        self.run = run
        run.define_metric(STEP_KEY)
        run.define_metric("gradsight_*", step_metric=STEP_KEY)
        self._findings_key: tuple[tuple[str, str, tuple[str, ...]], ...] | None = None

    @staticmethod
    def scalars(line: dict[str, Any]) -> dict[str, float]:
        """The scalars of one JSON line (see the module docstring for the names)."""
        out: dict[str, float] = {STEP_KEY: float(line["step"])}
        for stat in STATS:
            for ls in line.get("layers", []):
                v = _float(ls.get(stat))
                if v is not None:
                    out[f"gradsight_{stat}/{ls['name']}"] = v
        for p in line.get("params", []):
            v = _float(p.get("update_ratio"))
            if v is not None:
                out[f"gradsight_update_ratio/{p['name'] or 'root'}"] = v
        findings = line.get("findings", [])
        for kind in KINDS:
            out[f"gradsight_findings/{kind}"] = float(sum(len(f["layers"]) or 1 for f in findings if f["kind"] == kind))
        return out

    def write(self, line: dict[str, Any]) -> None:
        data: dict[str, Any] = self.scalars(line)
        findings = line.get("findings", [])
        key = tuple((f["kind"], f["severity"], tuple(f["layers"])) for f in findings)
        if findings and key != self._findings_key:
            self._findings_key = key
            data[TABLE_KEY] = self._wandb.Table(
                columns=TABLE_COLUMNS,
                data=[
                    [int(line["step"]), f["severity"], f["kind"], ", ".join(f["layers"]), f["message"], f["remedy"]]
                    for f in findings
                ],
            )
        self.run.log(data)

    def close(self) -> None:
        if self._owned:
            self.run.finish()
