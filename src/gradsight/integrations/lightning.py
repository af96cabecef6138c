"""``GradsightCallback`` for Lightning (the ``gradsight[lightning]`` extra: ``pytorch_lightning``,
or ``lightning.pytorch`` when that is the package installed).

    >>> from gradsight.integrations.lightning import GradsightCallback
    >>> cb = GradsightCallback(every=10, html=True)                # doctest: +SKIP
    >>> pl.Trainer(max_epochs=3, callbacks=[cb]).fit(module, loader)   # doctest: +SKIP
    >>> print(cb.report())                                         # doctest: +SKIP

When it acts:
on_train_start      ``gradsight.watch(pl_module, **watch_kwargs)``.
on_train_batch_end  ``mon.step()`` once for each optimizer step taken since the last batch:
                    the trainer's ``global_step`` counts optimizer steps, so with
                    ``accumulate_grad_batches=k`` k batches make one step (a callback that
                    stepped the monitor on every batch would count k times too many). On the
                    batches where Lightning writes its logs (``log_every_n_steps``), when a
                    logged step closed since the last time, the per-site scalars
                    (``gradsight_grad_norm/<site>`` ..., see ``integrations/_core.py``) go through
                    ``pl_module.log_dict``: to every logger of the trainer, beside the loss. New
                    critical findings are printed once to stderr (global rank zero only).
on_train_end        the watch closes; with ``html=True`` the report is written to
                    ``<trainer.log_dir>/gradsight.html`` (or to the path given).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

try:
    import pytorch_lightning as pl
except ImportError:  # pragma: no cover - depends on the installed extras
    try:
        import lightning.pytorch as pl
    except ImportError as exc:
        raise ImportError(
            f"gradsight.integrations.lightning needs pytorch-lightning or lightning ({exc}); "
            "install it with: pip install 'gradsight[lightning]'"
        ) from None

from gradsight.integrations._core import CallbackCore
from gradsight.monitor import Monitor, Report

__all__ = ["GradsightCallback"]


class GradsightCallback(pl.Callback):
    """Watch the LightningModule a ``Trainer`` fits. Keyword arguments are ``gradsight.watch``'s
    (``every`` defaults to 10, ``include``, ``exclude``, ``jsonl``, ``wandb`` ...).

    Args:
        html: True writes ``gradsight.html`` to the trainer's log directory at the end of
            training; a path writes there; False (default) writes nothing.
        console: where new critical findings are printed (default ``sys.stderr``).
    """

    def __init__(self, *, html: bool | str | Path = False, console: TextIO | None = None, **watch_kwargs: Any) -> None:
        super().__init__()
        self._core = CallbackCore(html, console, watch_kwargs)
        self._steps_seen = 0

    @property
    def monitor(self) -> Monitor | None:
        """The live :class:`~gradsight.monitor.Monitor` (None before training starts)."""
        return self._core.monitor

    @property
    def html_path(self) -> Path | None:
        """Where the HTML report was written at the end of training, if it was."""
        return self._core.html_path

    def report(self) -> Report:
        """What the watch measured so far (during or after training)."""
        return self._core.report()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._core.start(pl_module)
        self._steps_seen = trainer.global_step

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        stepped = trainer.global_step - self._steps_seen
        if stepped <= 0:
            return  # a micro-batch of gradient accumulation: the step is not over
        self._steps_seen = trainer.global_step
        for _ in range(stepped):
            self._core.step()
        every = trainer.log_every_n_steps
        if every and (trainer.global_step % every == 0 or trainer.should_stop):
            metrics = self._core.take(main=trainer.is_global_zero)
            if metrics:
                pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        out = trainer.log_dir or trainer.default_root_dir
        self._core.end(out, main=trainer.is_global_zero)
