"""``GradsightCallback`` for Lightning (the ``gradsight[lightning]`` extra): for
``pytorch_lightning`` and for ``lightning.pytorch`` (``import lightning as L``), whichever of
the two is installed, or both.

Use (a whole run is ``python examples/lightning_digits.py``)::

    from gradsight.integrations.lightning import GradsightCallback
    cb = GradsightCallback(every=10, html=True)
    pl.Trainer(max_epochs=3, callbacks=[cb]).fit(module, loader)
    print(cb.report())

When it acts:
on_train_start      ``gradsight.watch(module, **watch_kwargs)``, where ``module`` is the one
                    whose forward the training step calls (the monitor's per-step work hangs on
                    that forward): the LightningModule when it defines ``forward``; else its one
                    child that holds trainable parameters (``self.net(x)`` in
                    ``training_step``: site names are then relative to it, ``"1"`` not
                    ``"net.1"``); or the submodule named by ``module="net"``.
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

import importlib
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from torch import nn

from gradsight.errors import unknown_choice
from gradsight.integrations._core import CallbackCore, WatchAccess
from gradsight.monitor import GradsightWarning


def _installed() -> list[ModuleType]:
    """The Lightning packages that import: ``pytorch_lightning``, ``lightning.pytorch``, or both
    (the ``lightning`` 2.6 wheel depends on ``pytorch-lightning``, so its users have both)."""
    found, why = [], []
    for name in ("pytorch_lightning", "lightning.pytorch"):
        try:
            found.append(importlib.import_module(name))
        except ImportError as exc:
            why.append(str(exc))
    if not found:
        raise ImportError(
            f"gradsight.integrations.lightning needs pytorch-lightning or lightning ({'; '.join(why)}); "
            "install it with: pip install 'gradsight[lightning]'"
        )
    return found


_LIGHTNING = _installed()

__all__ = ["GradsightCallback"]


def watched_module(pl_module: nn.Module, path: str | None = None) -> nn.Module:
    """The module to watch: ``path`` when given, else ``pl_module`` when it defines its own
    ``forward``, else its only child with trainable parameters (see the module docstring)."""
    if path is not None:
        try:
            return pl_module.get_submodule(path)
        except AttributeError:
            raise unknown_choice("submodule", path, [n for n, _ in pl_module.named_modules() if n]) from None
    if type(pl_module).forward not in {pl.LightningModule.forward for pl in _LIGHTNING}:
        return pl_module
    kids = [m for m in pl_module.children() if any(p.requires_grad for p in m.parameters())]
    if len(kids) == 1:
        return kids[0]
    warnings.warn(
        f"{type(pl_module).__name__} defines no forward() and has {len(kids)} children with "
        "parameters: gradsight watches it whole, which measures gradients only if training_step "
        "calls self(...); pass GradsightCallback(module='<child>') to watch the one it calls",
        GradsightWarning,
        stacklevel=3,
    )
    return pl_module


class GradsightCallback(WatchAccess, *(pl.Callback for pl in _LIGHTNING)):
    """Watch the LightningModule a ``Trainer`` fits (a ``Callback`` of each Lightning package
    installed, so ``pytorch_lightning.Trainer`` and ``lightning.pytorch.Trainer`` both take it). Keyword arguments are ``gradsight.watch``'s
    (``every`` defaults to 10, ``include``, ``exclude``, ``jsonl``, ``wandb`` ...).

    Args:
        html: True writes ``gradsight.html`` to the trainer's log directory at the end of
            training; a path writes there; False (default) writes nothing.
        console: where new critical findings are printed (default ``sys.stderr``).
        module: the attribute path of the submodule to watch (``"net"``); default: see the
            module docstring.
    """

    def __init__(self, *, html: bool | str | Path = False, console: TextIO | None = None,
                 module: str | None = None, **watch_kwargs: Any) -> None:  # fmt: skip
        super().__init__()
        self._core = CallbackCore(html, console, watch_kwargs)
        self._module = module
        self._steps_seen = 0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._core.start(watched_module(pl_module, self._module))
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
