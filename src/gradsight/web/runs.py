"""Playground runs: each trains in its own thread through ``gradsight.watch(model, every=1)``
and publishes a view snapshot at most every ``VIEW_SECONDS``; a :class:`RunStore` holds them
under the server's limits.

States: ``running`` → ``paused`` ⇄ ``running`` → ``done`` (all steps, or stopped) or
``failed`` (the training raised, or the loss went NaN/Inf; ``reason`` says which and where
the monitor traced the first NaN). A run that ends drops its model, optimizer and monitor and
keeps its last snapshot and report, so finished runs hold no tensors.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import itertools
import math
import threading
import time
from typing import Any

import torch
import torch.nn.functional as F

import gradsight as gs
from gradsight.errors import GradsightError
from gradsight.lab import data
from gradsight.lab.training import TrainConfig, evaluate, make_optimizer
from gradsight.web import views
from gradsight.web.config import LIMITS, Limits, RunConfig, is_2d
from gradsight.web.model import PlayNet

VIEW_SECONDS = 0.08  # at most ~12 snapshots a second per run
VIEW_SHARE = 0.25  # views take at most this share of the run thread's time; training the rest
EVAL_MAX = 512  # samples of the training set for the train curve
UNITS_MAX = 256  # samples of the training set for the unit map and the histograms, at most
UNITS_VALUES = 1 << 20  # ... and at most this many pre-activation values (64 × 512 nets: 32)
HEAVY_SECONDS = 0.25  # unit map, histograms and decision surface: at most this often (and at
#                       the first and last step, and on every step while paused)
_ids = itertools.count(1)


class LimitError(GradsightError):
    """Too many runs at once (answered 429)."""


@functools.lru_cache(maxsize=16)
def _dataset(name: str, noise: float | None, test_fraction: float, seed: int) -> data.Dataset:
    if name == "mnist1d":
        return data.load(name)
    kwargs: dict[str, Any] = {"seed": seed, "test_fraction": test_fraction}
    if noise is not None:
        kwargs["noise"] = noise
    return data.load(name, **kwargs)


def dataset_for(cfg: RunConfig) -> data.Dataset:
    """The run's data: 2-D toys with its noise, split and seed; digits with its seed."""
    if is_2d(cfg.dataset):
        return _dataset(cfg.dataset, cfg.noise, cfg.test_fraction, cfg.seed)
    if cfg.dataset == "digits":
        return _dataset(cfg.dataset, None, 0.2, cfg.seed)
    return _dataset(cfg.dataset, None, 0.2, 0)


class Run:
    """One training run in a background thread. Thread-safe public methods."""

    def __init__(self, cfg: RunConfig) -> None:
        self.id = f"r{next(_ids)}"
        self.cfg = cfg
        self.status = "paused"
        self.reason = ""
        self.step = 0
        self.lr = cfg.lr
        self.metrics: list[dict[str, float]] = []  # eval points: step, losses, accuracies
        self._report: Any = None  # the monitor's last Report (to_dict on request: it grows)
        self.snapshot: dict[str, Any] = {}
        self.version = 0  # bumps with every published snapshot
        self.revived: dict[str, list[int]] = {}
        self._heavy_at = -math.inf
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._want = "run"  # "run" | "pause" | "stop"
        self._single = 0  # single steps asked for while paused
        self._revive = False
        self._thread: threading.Thread | None = None
        self.listeners = 0  # open event streams (pages) on this run

    # -- control (any thread) -------------------------------------------------------------
    def start(self, paused: bool = False) -> None:
        self._want = "pause" if paused else "run"
        self.status = "paused" if paused else "running"
        self._thread = threading.Thread(target=self._main, name=f"gradsight-{self.id}", daemon=True)
        self._thread.start()

    def control(self, action: str) -> None:
        with self._wake:
            if self.status in ("done", "failed"):
                return
            if action == "pause":
                self._want = "pause"
            elif action == "resume":
                self._want = "run"
            elif action == "step":
                self._want, self._single = "pause", self._single + 1
            elif action == "stop":
                self._want = "stop"
            elif action == "revive":
                self._revive = True
            self._wake.notify_all()

    def set_lr(self, lr: float) -> None:
        with self._lock:
            self.lr = lr

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """The training thread is still running (also after a stop, until it has unwound)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def active(self) -> bool:
        return self.status in ("running", "paused")

    def state(self, with_report: bool = True, history: int | None = None) -> dict[str, Any]:
        """``{id, status, step, config, metrics, reason, lr, report}``; ``report`` is the
        monitor's ``Report.to_dict()``, its ``history`` cut to the last ``history`` records
        when given (a 64-layer run's full history is ~64 LayerStats per step)."""
        with self._lock:
            out = {"id": self.id, "status": self.status, "step": self.step,
                   "config": self.cfg.to_dict(), "metrics": list(self.metrics),
                   "reason": self.reason, "lr": self.lr}  # fmt: skip
            rep = self._report
        if with_report:
            # before the first step is measured: the empty report, same keys
            rep = rep if rep is not None else gs.Report(layers=[], findings=[])
            if history is not None:
                rep = dataclasses.replace(rep, history=rep.history[len(rep.history) - history:] if history else [])
            out["report"] = rep.to_dict()
        return out

    def view(self) -> dict[str, Any]:
        """The latest snapshot with the run's current status (what the stream sends). The
        snapshot is JSON-safe as published; only the status fields are made so here."""
        with self._lock:
            snap = dict(self.snapshot)
            snap.update(views.json_safe({"id": self.id, "status": self.status, "reason": self.reason,
                                         "lr": self.lr, "step": self.step, "steps": self.cfg.steps}))  # fmt: skip
        return snap

    # -- the training thread --------------------------------------------------------------
    def _wait(self) -> str:
        """Block while paused; returns "step" (do one), or "stop"."""
        with self._wake:
            while True:
                if self._want == "stop":
                    return "stop"
                if self._want == "run":
                    self.status = "running"
                    return "step"
                if self._single:
                    self._single -= 1
                    self.status = "paused"
                    return "step"
                self.status = "paused"
                self._wake.wait(0.5)

    def _main(self) -> None:
        try:
            self._train()
        except Exception as exc:  # noqa: BLE001 - a run that raises ends failed; the server lives
            self._finish("failed", f"{type(exc).__name__}: {exc}")

    def _train(self) -> None:
        cfg = self.cfg
        ds = dataset_for(cfg)
        torch.manual_seed(cfg.seed)
        net = PlayNet(cfg, ds.n_features, ds.n_classes)
        x_tr, y_tr, x_te, y_te = ds.X_train, ds.y_train, ds.X_test, ds.y_test
        x_ev, y_ev = x_tr[:EVAL_MAX], y_tr[:EVAL_MAX]
        idx = data.batches(len(y_tr), cfg.batch_size, cfg.steps, cfg.seed)  # (steps, B)
        opt = make_optimizer(net.parameters(), TrainConfig(optimizer=cfg.optimizer, lr=cfg.lr))
        two_d = is_2d(cfg.dataset)
        static = views.json_safe({"theory": views.theory_profile(net, x_tr),
                                  "points": views.points(x_tr, y_tr) if two_d else None,
                                  "test_points": views.points(x_te, y_te) if two_d else None})  # fmt: skip
        next_view = 0.0
        with gs.watch(net, every=1) as mon:
            self._publish(net, mon, x_ev, y_ev, x_te, y_te, static, two_d)
            while self.step < cfg.steps:
                if self._wait() == "stop":
                    break
                for group in opt.param_groups:
                    group["lr"] = self.lr
                b = idx[self.step]  # (B,)
                loss = F.cross_entropy(net(x_tr[b]), y_tr[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                mon.step()
                with self._lock:
                    self.step += 1
                if self._revive:
                    self._revive = False
                    self.revived = mon.revive_dead(opt)
                finite = math.isfinite(loss.item())
                now = time.monotonic()
                if not finite or now >= next_view or self.status == "paused" \
                        or self.step == cfg.steps:  # fmt: skip
                    self._publish(net, mon, x_ev, y_ev, x_te, y_te, static, two_d)
                    cost = time.monotonic() - now
                    next_view = now + max(VIEW_SECONDS, cost / VIEW_SHARE)
                if not finite:
                    self._finish("failed", self._nan_reason())
                    return
            self._publish(net, mon, x_ev, y_ev, x_te, y_te, static, two_d)
        stopped = self.step < cfg.steps
        self._finish("done", f"stopped at step {self.step}" if stopped else f"{self.step} steps")

    def _nan_reason(self) -> str:
        where = ""
        for f in getattr(self._report, "findings", []):
            if f.kind == "non_finite":
                where = f" — {f.message}"
                break
        return f"loss became non-finite at step {self.step}{where}"

    def _publish(self, net: Any, mon: Any, x_ev: Any, y_ev: Any, x_te: Any, y_te: Any,
                 static: dict[str, Any], two_d: bool) -> None:  # fmt: skip
        """A new snapshot, JSON-safe: each part made so once, when it is computed (``static``
        at the start, the unit map, histograms and surface when refreshed, each metrics point
        when appended), not again with every snapshot that carries it."""
        rep = mon.report()
        tr_loss, tr_acc = evaluate(net, x_ev, y_ev)
        te_loss, te_acc = evaluate(net, x_te, y_te)
        point = {"step": self.step, "train_loss": tr_loss, "train_acc": tr_acc,
                 "test_loss": te_loss, "test_acc": te_acc}  # fmt: skip
        snap = views.json_safe({
            "id": self.id,
            "step": self.step,
            "layers": views.layers_view(rep),
            "findings": [f.to_dict() for f in rep.findings],
            "revived": {k: len(v) for k, v in self.revived.items()},
        })  # fmt: skip
        snap.update(static)
        now = time.monotonic()
        if now - self._heavy_at >= HEAVY_SECONDS or self.status == "paused" or self.step in (0, self.cfg.steps) \
                or not math.isfinite(tr_loss):  # fmt: skip
            self._heavy_at = now
            n = max(32, min(UNITS_MAX, UNITS_VALUES // (self.cfg.depth * self.cfg.width)))
            units, hists = views.unit_and_hist(net, x_ev[:n])
            snap.update(views.json_safe({"units": units, "hist": hists, "units_step": self.step,
                                         "surface": views.surface(net, x_ev) if two_d else None}))  # fmt: skip
        else:  # the unit map, histograms and surface cost the most: refreshed less often
            snap.update({k: self.snapshot.get(k) for k in ("units", "hist", "units_step", "surface")})
        with self._lock:
            self.metrics.append(views.json_safe(point))
            self._report = rep
            snap["metrics"] = list(self.metrics)
            self.snapshot = snap
            self.version += 1

    def _finish(self, status: str, reason: str) -> None:
        with self._wake:
            self.status, self.reason = status, reason
            self.version += 1
            self._wake.notify_all()


class RunStore:
    """The server's runs, under :class:`Limits`."""

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.runs: dict[str, Run] = {}
        self._lock = threading.Lock()
        # a training thread still inside torch when the interpreter exits aborts the process
        # ("terminate called without an active exception"): stop and join them first
        atexit.register(self.close)
        self._started: list[Run] = []  # every run whose thread may still be alive (deleted too)

    def create(self, cfg: RunConfig, paused: bool = False) -> Run:
        with self._lock:
            active = [r for r in self.runs.values() if r.active]
            if len(active) >= self.limits.max_concurrent:
                raise LimitError(
                    f"{len(active)} runs are training, the limit is {self.limits.max_concurrent}; "
                    "stop or delete one (DELETE /api/runs/{id}) and try again"
                )
            finished = [r for r in self.runs.values() if not r.active]
            while len(self.runs) >= self.limits.max_stored and finished:
                self.runs.pop(finished.pop(0).id, None)
            run = Run(cfg)
            self.runs[run.id] = run
            self._started = [r for r in self._started if r.alive] + [run]
        run.start(paused=paused)
        return run

    def get(self, run_id: str) -> Run | None:
        return self.runs.get(run_id)

    def delete(self, run_id: str) -> bool:
        with self._lock:
            run = self.runs.pop(run_id, None)
        if run is None:
            return False
        run.control("stop")
        return True

    def close(self) -> None:
        """Stop every run, deleted ones included, and wait for their threads."""
        for run_id in list(self.runs):
            self.delete(run_id)
        for run in list(self._started):
            run.control("stop")
            run.join(10.0)
