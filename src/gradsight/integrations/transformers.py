"""``GradsightCallback`` for the Hugging Face ``Trainer`` (the ``gradsight[hf]`` extra).

Use (a whole run is ``python examples/hf_trainer.py``)::

    from gradsight.integrations.transformers import GradsightCallback
    cb = GradsightCallback(every=10, html=True)
    Trainer(model, args, train_dataset=ds, callbacks=[cb]).train()
    print(cb.report())

When it acts:
on_train_begin  ``gradsight.watch(model, **watch_kwargs)`` on the Trainer's model.
on_step_end     ``mon.step()``: the Trainer calls it once per optimizer step, after the
                backward of every micro-batch, the optimizer step and ``zero_grad`` (with
                ``gradient_accumulation_steps=k`` one step is k micro-batches).
on_log          when the Trainer logs (every ``logging_steps``) and a logged step closed since
                the last time, the per-site scalars (``gradsight_grad_norm/<site>`` ..., see
                ``integrations/_core.py``) go through ``Trainer.log``: to ``log_history`` and
                every reporter (``report_to``: TensorBoard, W&B ...), at the loss's step. New
                critical findings are printed once to stderr (main process only).
on_train_end    the watch closes; with ``html=True`` the report is written to
                ``<output_dir>/gradsight.html`` (or to the path given).

Why the scalars are a log entry of their own, beside the loss's and at its step, not keys of
the loss's entry: ``Trainer.log(logs)`` appends ``logs`` to ``state.log_history`` and only then
calls every callback's ``on_log`` in list order, the ``report_to`` reporters
(``TensorBoardCallback``, ``WandbCallback`` ...) before the callbacks a user passes; no callback
event sees that dict before it is recorded and reported, so keys added in ``on_log`` would
reach neither the history nor the reporters (only the console printer after us). A second
``Trainer.log`` at the same ``global_step`` reaches all of them, and the reporters plot by
``global_step``: in TensorBoard ``train/gradsight_grad_norm/<site>`` and ``train/loss`` share
their x values. Merging into the loss's entry would need ``Trainer.log`` overridden, which the
Trainer leaves to a subclass of its users.

The Trainer hands its callbacks no reference to itself, so the callback finds the Trainer
that calls ``on_train_begin`` on the call stack; a loop that calls the callback by hand with no
Trainer above it still gets the watch and the report, and logs nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

try:
    from transformers import Trainer, TrainerCallback
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"gradsight.integrations.transformers needs the transformers package ({exc}); "
        "install it with: pip install 'gradsight[hf]'"
    ) from None

from gradsight.integrations._core import CallbackCore, WatchAccess

__all__ = ["GradsightCallback"]


def _calling_trainer(max_depth: int = 12) -> Trainer | None:
    frame = sys._getframe(2)
    for _ in range(max_depth):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, Trainer):
            return owner
        frame = frame.f_back
    return None


class GradsightCallback(WatchAccess, TrainerCallback):
    """Watch the model a ``Trainer`` trains. Keyword arguments are ``gradsight.watch``'s
    (``every`` defaults to 10, ``include``, ``exclude``, ``jsonl``, ``wandb`` ...).

    Args:
        html: True writes ``gradsight.html`` to ``args.output_dir`` at the end of training; a
            path writes there; False (default) writes nothing.
        console: where new critical findings are printed (default ``sys.stderr``).
    """

    def __init__(self, *, html: bool | str | Path = False, console: TextIO | None = None, **watch_kwargs: Any) -> None:
        self._core = CallbackCore(html, console, watch_kwargs)
        self._trainer: Trainer | None = None
        self._logging = False

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._trainer = _calling_trainer()
        self._core.start(model)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._core.step()

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self._logging or self._trainer is None:
            return
        metrics = self._core.take(main=state.is_world_process_zero)
        if metrics:
            self._logging = True  # Trainer.log calls on_log again, with our own scalars
            try:
                self._trainer.log(metrics)
            finally:
                self._logging = False

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._core.end(args.output_dir, main=state.is_world_process_zero)
        self._trainer = None
