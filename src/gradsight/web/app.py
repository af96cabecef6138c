"""The playground's ASGI app: a JSON API over :mod:`gradsight.web.runs` and the page's static
files, all served from the package.

    GET    /api/catalog                 activations (params, defaults, properties), datasets,
                                        inits, optimizers, config fields and defaults, limits,
                                        run actions, and per finding kind the remedies that
                                        are settings (gradsight.web.remedies, from the
                                        monitor's diagnostics)
    GET    /api/lessons                 lesson presets with the lab's verdicts
    POST   /api/curve                   f, f' of a catalog activation on a grid (explorer)
    POST   /api/scratch                 relu_backward(dout, cache) beside autograd
    POST   /api/runs                    run config -> {"id"}        (422 bad field, 429 busy)
    GET    /api/runs                    every run's state, without reports
    GET    /api/runs/{id}               {id, status, step, config, metrics, report, reason, lr};
                                        ?history=N keeps the report's last N history records
    GET    /api/runs/{id}/stream        server-sent events: one view snapshot per update
    POST   /api/runs/{id}/{action}      pause | resume | step | stop | revive
    PATCH  /api/runs/{id}               {"lr": float}: change the learning rate while training
    DELETE /api/runs/{id}               stop the run and free it

A page's stream that closes (the tab went away) frees its run after ``ORPHAN_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from gradsight import activations
from gradsight.errors import GradsightError, unknown_choice
from gradsight.lab import data
from gradsight.lab.training import OPTIMIZERS
from gradsight.web import lessons as lessons_mod
from gradsight.web import remedies
from gradsight.web.config import (
    LIMITS,
    ConfigError,
    Limits,
    RunConfig,
    dataset_noise_default,
    elementwise_activations,
    inits,
    parse_config,
)
from gradsight.web.runs import LimitError, RunStore

ACTIONS = ("pause", "resume", "step", "stop", "revive")
ORPHAN_SECONDS = 3.0  # a streamed run with no page left is deleted after this
STREAM_POLL = 0.03  # seconds between checks for a new snapshot
CURVE_POINTS = 241
STATIC_KEYS = ("points", "test_points", "theory")  # in a stream's first snapshot only


def static_dir() -> Path:
    return Path(str(resources.files("gradsight.web") / "static"))


def _error(status: int, errors: dict[str, str]) -> JSONResponse:
    return JSONResponse({"errors": errors, "detail": "; ".join(f"{k}: {v}" for k, v in errors.items())},
                        status_code=status)  # fmt: skip


async def _read_json(request: Request, limits: Limits) -> Any:
    """The request's JSON body (None when empty); raises ConfigError with a message."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise ConfigError({"body": f"request body of {int(declared)} bytes exceeds the limit of "
                           f"{limits.max_body_bytes} bytes"})  # fmt: skip
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_body_bytes:
            raise ConfigError({"body": f"request body exceeds the limit of {limits.max_body_bytes} bytes"})
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ConfigError({"body": f"not valid JSON ({exc}); send an object like "
                           '{"activation": "relu", "depth": 8}'}) from None  # fmt: skip


def catalog(limits: Limits) -> dict[str, Any]:
    """Everything a page needs to build its controls, read from the registries."""
    acts = []
    for name in elementwise_activations():
        spec = activations.REGISTRY[name]
        act = activations.activation(name)
        acts.append({
            "name": name, "summary": spec.summary, "formula": spec.formula, "math": spec.math,
            "params": [{"name": p.name, "default": act.params[p.name], "doc": p.doc,
                        "choices": list(p.choices) if p.choices else None}
                       for p in spec.all_params()],
            "defaults": act.params, "derivative_at_zero": act.derivative_at_zero,
            "derivative_bound": act.derivative_bound, "saturates": act.saturates,
            "can_die": act.can_die,
        })  # fmt: skip
    datasets = [{"name": n, "noise": dataset_noise_default(n), "two_d": dataset_noise_default(n) is not None}
                for n in data.names()]  # fmt: skip
    return {
        "activations": acts,
        "datasets": datasets,
        "inits": inits(),
        "optimizers": list(OPTIMIZERS),
        "defaults": RunConfig().to_dict(),
        "fields": list(RunConfig().to_dict()),
        "limits": asdict(limits),
        "actions": list(ACTIONS),
        "remedies": remedies.catalog(),
    }


def _finite_list(values: Any) -> list[Any]:
    return [v if isinstance(v, float) and math.isfinite(v) else None for v in values]


def curve(body: Any) -> dict[str, Any]:
    """f and f' of ``body["name"]`` with ``body["params"]`` on [lo, hi] (default [-4, 4])."""
    import numpy as np

    if not isinstance(body, dict):
        raise ConfigError({"body": f"expected an object like {{\"name\": \"relu\"}}, got {body!r:.80}"})
    errors: dict[str, str] = {}
    name = body.get("name", "relu")
    params = body.get("params") or {}
    lo, hi = body.get("lo", -4.0), body.get("hi", 4.0)
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
             and abs(v) <= 1e6 for v in (lo, hi))  # fmt: skip
    if not ok or not lo < hi:
        errors["range"] = f"lo < hi must be finite numbers within ±1e6, got lo={lo!r}, hi={hi!r}"
    act = None
    if not isinstance(name, str) or name not in elementwise_activations():
        errors["name"] = str(unknown_choice("activation", name, elementwise_activations()))
    elif not isinstance(params, dict):
        errors["params"] = f"params must be an object like {{\"negative_slope\": 0.1}}, got {params!r:.80}"
    else:
        try:
            act = activations.activation(name, **params)
        except GradsightError as exc:
            errors["params"] = str(exc)
    if errors or act is None:
        raise ConfigError(errors)
    x = np.linspace(float(lo), float(hi), CURVE_POINTS)
    if lo < 0 < hi and 0.0 not in x:
        x = np.sort(np.append(x, 0.0))
    return {"name": name, "params": act.params, "x": x.tolist(),
            "f": _finite_list(np.asarray(act(x)).tolist()),
            "df": _finite_list(np.asarray(act.derivative(x)).tolist()),
            "derivative_at_zero": act.derivative_at_zero, "math": activations.REGISTRY[name].math}  # fmt: skip


def scratch(body: Any) -> dict[str, Any]:
    """``relu_backward(dout, cache)`` of gradsight.scratch beside torch autograd on the same x."""
    import numpy as np
    import torch

    from gradsight.scratch import relu_backward, relu_forward

    if not isinstance(body, dict):
        raise ConfigError({"body": f"expected an object like {{\"x\": [-1, 0, 2]}}, got {body!r:.80}"})
    errors: dict[str, str] = {}
    vals: dict[str, list[float]] = {}
    for key in ("x", "dout"):
        v = body.get(key)
        if key == "dout" and v is None:
            continue
        good = isinstance(v, list) and 0 < len(v) <= 64 and all(
            isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) for e in v)
        if not good:
            errors[key] = f"{key} must be a list of 1..64 finite numbers, got {v!r:.80}"
        else:
            vals[key] = [float(e) for e in v]
    if not errors and "dout" in vals and len(vals["dout"]) != len(vals["x"]):
        errors["dout"] = f"dout must have the length of x ({len(vals['x'])}), got {len(vals['dout'])}"
    if errors:
        raise ConfigError(errors)
    x = np.asarray(vals["x"])
    dout = np.asarray(vals.get("dout", [1.0] * len(x)))
    out, cache = relu_forward(x)
    dx = relu_backward(dout, cache)
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).backward(torch.tensor(dout))
    return {"x": x.tolist(), "dout": dout.tolist(), "out": np.asarray(out).tolist(),
            "dx_scratch": np.asarray(dx).tolist(), "dx_autograd": xt.grad.tolist(),
            "agree": bool(np.array_equal(np.asarray(dx), xt.grad.numpy()))}  # fmt: skip


def create_app(limits: Limits = LIMITS, results: str | Path | None = None) -> FastAPI:
    """The playground app. ``results``: a lab ``results.json`` whose verdicts the lessons show."""
    store = RunStore(limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        store.close()

    app = FastAPI(title="gradsight playground", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.store = store
    verdicts = lessons_mod.load_verdicts(results)
    lesson_list = lessons_mod.lessons_json(verdicts, str(results) if verdicts is not None else None)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.exception_handler(ConfigError)
    async def _bad(request: Request, exc: ConfigError) -> JSONResponse:
        return _error(422, exc.errors)

    @app.exception_handler(LimitError)
    async def _busy(request: Request, exc: LimitError) -> JSONResponse:
        return _error(429, {"runs": str(exc)})

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(static_dir() / "index.html", media_type="text/html")

    @app.get("/api/catalog")
    def get_catalog() -> dict[str, Any]:
        return catalog(limits)

    @app.get("/api/lessons")
    def get_lessons() -> list[dict[str, Any]]:
        return lesson_list

    @app.post("/api/curve")
    async def post_curve(request: Request) -> dict[str, Any]:
        return curve(await _read_json(request, limits) or {})

    @app.post("/api/scratch")
    async def post_scratch(request: Request) -> dict[str, Any]:
        return scratch(await _read_json(request, limits))

    @app.post("/api/runs", status_code=201)
    async def post_run(request: Request) -> dict[str, Any]:
        body = await _read_json(request, limits)
        paused = False
        if isinstance(body, dict) and "paused" in body:
            paused = body.pop("paused")
            if not isinstance(paused, bool):
                raise ConfigError({"paused": f"paused must be true or false, got {paused!r}"})
        run = store.create(parse_config(body, limits), paused=paused)
        return {"id": run.id}

    @app.get("/api/runs")
    def list_runs() -> list[dict[str, Any]]:
        return [r.state(with_report=False) for r in list(store.runs.values())]

    def _run_or_404(run_id: str) -> Any:
        run = store.get(run_id)
        if run is None:
            known = ", ".join(list(store.runs)[-8:]) or "none"
            return None, JSONResponse({"errors": {"id": f"no run {run_id!r}; runs: {known}"},
                                       "detail": f"no run {run_id!r}"}, status_code=404)  # fmt: skip
        return run, None

    @app.get("/api/runs/{run_id}")
    def get_run(run_id: str, request: Request) -> Any:
        run, missing = _run_or_404(run_id)
        if missing:
            return missing
        raw = request.query_params.get("history")
        if raw is not None and not (raw.isdigit() and len(raw) < 10):
            return _error(422, {"history": f"history must be a whole number of records (0, 1, ...), got {raw!r}"})
        return run.state(history=None if raw is None else int(raw))

    @app.post("/api/runs/{run_id}/{action}")
    def act(run_id: str, action: str) -> Any:
        run, missing = _run_or_404(run_id)
        if missing:
            return missing
        if action not in ACTIONS:
            return _error(422, {"action": str(unknown_choice("action", action, ACTIONS))})
        run.control(action)
        return {"id": run.id, "status": run.status, "step": run.step}

    @app.patch("/api/runs/{run_id}")
    async def patch_run(run_id: str, request: Request) -> Any:
        run, missing = _run_or_404(run_id)
        if missing:
            return missing
        body = await _read_json(request, limits)
        if not isinstance(body, dict) or set(body) != {"lr"}:
            raise ConfigError({"body": f'send {{"lr": <number>}} to change the learning rate, got {body!r:.80}'})
        cfg = parse_config({"lr": body["lr"]}, limits)
        run.set_lr(cfg.lr)
        return {"id": run.id, "lr": run.lr}

    @app.delete("/api/runs/{run_id}")
    def delete_run(run_id: str) -> Any:
        if not store.delete(run_id):
            return _run_or_404(run_id)[1]
        return Response(status_code=204)

    @app.get("/api/runs/{run_id}/stream")
    async def stream(run_id: str, request: Request) -> Any:
        run, missing = _run_or_404(run_id)
        if missing:
            return missing
        return StreamingResponse(_events(run, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip

    async def _events(run: Any, request: Request) -> Any:
        run.listeners += 1
        seen = -1
        sent_static = False
        try:
            while True:
                version = run.version
                if version != seen:
                    seen = version
                    view = run.view()
                    if sent_static:  # data points and theory do not change: sent once
                        for key in STATIC_KEYS:
                            view.pop(key, None)
                    sent_static = sent_static or "points" in view
                    yield f"data: {json.dumps(view, allow_nan=False, default=str)}\n\n"
                    if not run.active:
                        return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(STREAM_POLL)
        finally:
            run.listeners -= 1
            if run.listeners == 0:
                asyncio.get_running_loop().call_later(ORPHAN_SECONDS, _reap, run.id)

    def _reap(run_id: str) -> None:
        run = store.get(run_id)
        if run is not None and run.listeners == 0 and run.active:
            store.delete(run_id)

    return app
