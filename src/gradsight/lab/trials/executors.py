"""Where trials run: in this process, in local worker processes, or on a Ray cluster.

Workers compute, the driver stores. Every executor runs the same worker entry point,
:func:`execute`, on a *batch* of trial configs (one config, or several that train together as
one ``torch.func`` ensemble) and hands back one outcome per config; it never touches the store.

- ``LocalExecutor(workers=1)``: in this process, one batch after another.
- ``LocalExecutor(workers=N)``: N worker processes (``concurrent.futures``, forked from a
  ``forkserver`` that imported the trial's module once).
- ``RayExecutor(address=None, workers=N)``: a local Ray with N CPUs, or the cluster at
  ``address`` (``"auto"``, ``"ray://host:port"``). Ray is imported only here (the ``[ray]`` extra).

An outcome is a dict: ``metrics`` (or None), ``failure`` (None, ``"diverged"``, ``"raised"``),
``error``, ``seconds`` (the batch's wall time divided among its trials), ``started``,
``finished`` (unix times), ``host``, ``versions``.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import logging
import multiprocessing
import os
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from gradsight.errors import GradsightError, unknown_choice

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "execute", "make_executor"]

EXECUTORS: tuple[str, ...] = ("local", "ray")
RAY_OBJECT_STORE_BYTES = 200 * 1024**2  # a local Ray's object store: results are small JSON

Batch = Sequence[dict[str, Any]]
Task = tuple[str, Batch]  # (kind, configs): one call of the target


def _failed(configs: Batch, error: str, started: float) -> list[dict[str, Any]]:
    from gradsight.lab.trials.store import host, library_versions

    now = time.time()
    share = (now - started) / max(len(configs), 1)
    return [
        {"metrics": None, "failure": "raised", "error": error, "seconds": share,
         "started": started, "finished": now, "host": host(), "versions": library_versions()}
        for _ in configs
    ]


def execute(target: str, kind: str, configs: Batch) -> list[dict[str, Any]]:
    """Run ``target`` (``"module:function"``, called as ``function(kind, configs)`` and returning
    one metrics dict per config) and wrap its answer into outcomes. An exception fails every
    config of the batch with its message; a metrics dict with a true ``"diverged"`` is a
    ``"diverged"`` failure that keeps its metrics."""
    from gradsight.lab.trials.store import host, library_versions

    started = time.time()
    try:
        module, _, name = target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        results = fn(kind, list(configs))
        if len(results) != len(configs):
            raise GradsightError(
                f"{target} returned {len(results)} results for {len(configs)} configs"
            )
    except Exception as exc:  # a failing trial must not stop the others
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})"
        return _failed(configs, f"{type(exc).__name__}: {exc}{where}", started)
    finished = time.time()
    share = (finished - started) / len(configs)
    out = []
    for metrics in results:
        diverged = bool(metrics.get("diverged")) if isinstance(metrics, dict) else False
        error = metrics.get("error") if diverged else None
        out.append({
            "metrics": metrics, "failure": "diverged" if diverged else None,
            "error": (error or "the loss became non-finite") if diverged else None,
            "seconds": share, "started": started, "finished": finished,
            "host": host(), "versions": library_versions(),
        })
    return out


class Executor(Protocol):
    """Runs tasks ``(kind, configs)``; yields ``(task index, outcomes)`` as each finishes."""

    workers: int

    def run(
        self, target: str, tasks: Sequence[Task]
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """``workers`` = 1: batches run here, in order; > 1: in that many worker processes."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise GradsightError(f"--workers must be a whole number >= 1, got {workers!r}")
        self.workers = workers
        self._pool: cf.ProcessPoolExecutor | None = None

    def run(
        self, target: str, tasks: Sequence[Task]
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        if self.workers == 1:
            for i, (kind, batch) in enumerate(tasks):
                yield i, execute(target, kind, batch)
            return
        if self._pool is None:
            # workers fork from a server that imported the target's module (torch included)
            # once, instead of each importing it from scratch as "spawn" would
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["torch", target.partition(":")[0]])
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=context)
        futures: dict[cf.Future, int] = {}
        for i, (kind, batch) in enumerate(tasks):
            try:
                futures[self._pool.submit(execute, target, kind, batch)] = i
            except cf.process.BrokenProcessPool as exc:
                yield i, _failed(batch, f"worker process died: {exc}", time.time())
        for future in cf.as_completed(futures):
            i = futures[future]
            started = time.time()
            try:
                yield i, future.result()
            except cf.process.BrokenProcessPool as exc:  # a worker died (killed, out of memory)
                self.close()
                yield i, _failed(tasks[i][1], f"worker process died: {exc}", started)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise GradsightError(
            "--executor ray needs Ray: pip install 'gradsight[ray]'"
        ) from None
    return ray


class RayExecutor:
    """Trials as Ray tasks (one CPU each). ``address`` None starts a local Ray with ``workers``
    CPUs, no dashboard and a bounded object store; otherwise connects to the cluster there
    (``"auto"``: the one ``ray start`` set up on this machine). Every node needs gradsight
    installed. A Ray this executor started is shut down by :meth:`close`."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        ray = _import_ray()
        self._ray = ray
        self._owned = not ray.is_initialized()
        if self._owned:
            quiet = {"include_dashboard": False, "log_to_driver": False,
                     "logging_level": logging.ERROR, "configure_logging": True}
            try:
                if address:
                    ray.init(address=address, **quiet)
                else:
                    ray.init(num_cpus=workers or os.cpu_count() or 1,
                             object_store_memory=RAY_OBJECT_STORE_BYTES, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise GradsightError(
                    f"cannot start or reach Ray at --address {address!r}: {exc}"
                ) from None
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self._remote = ray.remote(num_cpus=1)(execute)

    def run(
        self, target: str, tasks: Sequence[Task]
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        ray = self._ray
        refs = {
            self._remote.remote(target, kind, list(b)): i for i, (kind, b) in enumerate(tasks)
        }
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                i = refs[ref]
                started = time.time()
                try:
                    yield i, ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died or was lost
                    yield i, _failed(tasks[i][1], f"Ray task failed: {exc}", started)

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            import gc

            # Ray leaves Popen objects of processes it has just killed to the garbage
            # collector, which warns that they were "still running"; they are not.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                self._ray.shutdown()
                gc.collect()


def make_executor(name: str, workers: int = 1, address: str | None = None) -> Executor:
    """The executor called ``name`` (:data:`EXECUTORS`)."""
    if name not in EXECUTORS:
        raise unknown_choice("executor", name, EXECUTORS)
    if name == "local":
        if address:
            raise GradsightError(f"--address {address!r} needs --executor ray")
        return LocalExecutor(workers)
    return RayExecutor(address, workers)
