"""Where logged steps go while training runs: JSONL lines, TensorBoard scalars, a console
table. A sink has ``write(line: dict)`` (one logged step: ``{"step", "layers", "params",
"findings"}``, JSON-safe) and ``close()``. A sink that raises is dropped with a warning; the
report keeps everything regardless.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

from gradsight.errors import GradsightError
from gradsight.monitor.records import layer_fields


class Sink(Protocol):
    def write(self, line: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JSONLSink:
    """One JSON object per logged step, appended to ``path`` and flushed at once, so a crashed
    run keeps every line written so far. The monitor closes logged steps in batches: a line
    arrives at most about a second after its step, and every line when the monitor closes (also
    when the training loop raises).

    >>> # each line: {"step": 0, "layers": [{"name": "1", "grad_norm": ...}], ...}
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: TextIO | None = None

    def write(self, line: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(json.dumps(line) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _num(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


class TensorBoardSink:
    """Scalars per site and layer: ``<field>/<site>`` for each LayerStats field marked
    ``scalar`` (``grad_norm``, ``dead_fraction``, ``saturated_fraction``, ``mean_derivative``),
    ``update_ratio/<layer>``, ``weight_grad_norm/<layer>``, and ``findings/count``. Needs the
    ``gradsight[tensorboard]`` extra."""

    FIELDS = tuple(f.name for f in layer_fields("scalar"))

    def __init__(self, logdir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise GradsightError(
                f"the TensorBoard sink needs the tensorboard package ({exc}); "
                "install it with: pip install 'gradsight[tensorboard]'"
            ) from None
        self.logdir = Path(logdir)
        self.writer = SummaryWriter(log_dir=str(self.logdir))

    def write(self, line: dict[str, Any]) -> None:
        step = int(line["step"])
        for ls in line.get("layers", []):
            for f in self.FIELDS:
                v = _num(ls.get(f))
                if v is not None:
                    self.writer.add_scalar(f"{f}/{ls['name']}", v, step)
        for p in line.get("params", []):
            for f, key in (("grad_norm", "weight_grad_norm"), ("update_ratio", "update_ratio")):
                v = _num(p.get(f))
                if v is not None:
                    self.writer.add_scalar(f"{key}/{p['name'] or 'root'}", v, step)
        self.writer.add_scalar("findings/count", len(line.get("findings", [])), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class ConsoleSink:
    """Prints the per-site table of every ``every``-th logged step to ``file``."""

    def __init__(self, every: int = 1, file: TextIO | None = None) -> None:
        self.every = max(1, int(every))
        self.file = file
        self._n = 0

    def write(self, line: dict[str, Any]) -> None:
        self._n += 1
        if (self._n - 1) % self.every:
            return
        from gradsight.monitor.records import Finding, LayerStats
        from gradsight.monitor.report import format_table

        def _f(v: Any) -> Any:
            return float(v) if isinstance(v, str) and v in ("nan", "inf", "-inf") else v

        layers = [LayerStats(**{k: _f(v) for k, v in d.items()}) for d in line.get("layers", [])]
        findings = [Finding(**{**d, "layers": tuple(d["layers"])}) for d in line.get("findings", [])]
        out = self.file or sys.stdout
        print(f"-- step {line['step']} --", file=out)
        print(format_table(layers, findings, {}), file=out)

    def close(self) -> None:
        pass


def make_sinks(
    *, jsonl: str | Path | None = None, tensorboard: str | Path | None = None, console: bool = False
) -> list[Any]:
    sinks: list[Any] = []
    if jsonl is not None:
        sinks.append(JSONLSink(jsonl))
    if tensorboard is not None:
        sinks.append(TensorBoardSink(tensorboard))
    if console:
        sinks.append(ConsoleSink())
    return sinks
