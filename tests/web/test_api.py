"""The playground's API contract, through FastAPI's TestClient: catalog from the registries,
422 messages per field, limits, run lifecycle, NaN runs ending with their reason."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'gradsight[web]'")

from fastapi.testclient import TestClient  # noqa: E402

import gradsight as gs  # noqa: E402
from gradsight.lab import data  # noqa: E402
from gradsight.lab.models import INITS  # noqa: E402
from gradsight.lab.training import OPTIMIZERS  # noqa: E402
from gradsight.web import create_app  # noqa: E402
from gradsight.web.config import FIELDS, Limits  # noqa: E402

SMALL = {"dataset": "xor", "depth": 2, "width": 8, "steps": 40, "batch_size": 16}


@pytest.fixture(scope="module")
def client() -> Any:
    with TestClient(create_app()) as c:
        yield c


def wait(client: TestClient, run_id: str, until: tuple[str, ...] = ("done", "failed"), timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get(f"/api/runs/{run_id}").json()
        if state["status"] in until:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {state['status']} at step {state['step']}")
        time.sleep(0.05)


def test_catalog_is_read_from_the_registries(client: TestClient) -> None:
    cat = client.get("/api/catalog").json()
    names = [a["name"] for a in cat["activations"]]
    assert names == [n for n in gs.activations.names() if not gs.activation(n).is_gated]
    leaky = next(a for a in cat["activations"] if a["name"] == "leaky_relu")
    assert leaky["defaults"] == gs.activation("leaky_relu").params
    assert {p["name"]: p["default"] for p in leaky["params"]}["negative_slope"] == 0.01
    assert [d["name"] for d in cat["datasets"]] == data.names()
    assert next(d for d in cat["datasets"] if d["name"] == "spiral")["noise"] == 0.2
    assert next(d for d in cat["datasets"] if d["name"] == "digits")["two_d"] is False
    assert cat["inits"] == [*INITS, "sigma_w2"]
    assert cat["optimizers"] == list(OPTIMIZERS)
    assert cat["fields"] == list(FIELDS)
    assert cat["limits"]["max_depth"] == 64 and cat["limits"]["max_width"] == 512


@pytest.mark.parametrize(
    ("body", "field", "match"),
    [
        ({"activation": "rellu"}, "activation", "unknown activation 'rellu'; did you mean 'relu'?"),
        ({"dataset": "spirals"}, "dataset", "did you mean 'spiral'?"),
        ({"init": "kaiming"}, "init", "unknown init 'kaiming'"),
        ({"optimizer": "adma"}, "optimizer", "did you mean 'adam'?"),
        ({"depth": 65}, "depth", "depth must be an integer in 1..64, got 65"),
        ({"width": 513}, "width", "width must be an integer in 1..512, got 513"),
        ({"steps": 0}, "steps", "got 0"),
        ({"lr": -1}, "lr", "lr must be a number > 0 and <= 100, got -1"),
        ({"lr": "fast"}, "lr", "got 'fast'"),
        ({"residual": "yes"}, "residual", "residual must be true or false, got 'yes'"),
        ({"activation": "leaky_relu", "activation_params": {"slope": 0.1}}, "activation_params",
         "did you mean 'negative_slope'?"),
        ({"dataset": "digits", "noise": 0.3}, "noise", "noise applies to the 2-D toys"),
        ({"depht": 3}, "depht", "unknown run-config field 'depht'; did you mean 'depth'?"),
        ({"depth": 3, "layer_activations": ["relu", "tanh"]}, "layer_activations", "one activation per hidden layer (3), got 2"),
        ({"depth": 2, "activation": "leaky_relu", "layer_activation_params": [{"negativ_slope": 0.2}, {}]},
         "layer_activation_params", "layer 0 (leaky_relu): unknown leaky_relu parameter 'negativ_slope'; "
         "did you mean 'negative_slope'?"),
        ({"depth": 3, "layer_activation_params": [{}, {}]}, "layer_activation_params",
         "one object per hidden layer (3), got 2"),
        ({"layer_activation_params": "alpha=1"}, "layer_activation_params", "must be a list of objects"),
        ({"depth": 2, "layer_activations": ["relu", "elu"], "layer_activation_params": [{}, {"alpha": "x"}]},
         "layer_activation_params", "layer 1 (elu): elu parameter alpha must be a number, got 'x'"),
        ([1, 2], "body", "must be a JSON object"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_config_is_422_with_a_message_per_field(client: TestClient, body: Any, field: str, match: str) -> None:
    res = client.post("/api/runs", json=body)
    assert res.status_code == 422
    assert match in res.json()["errors"][field]


def test_per_layer_activation_params_reach_each_layer(client: TestClient) -> None:
    # leaky_relu with negative_slope=1 is the identity: the monitor's E[f'] is exactly 1 there,
    # while the layer left at the catalog default (0.01) passes less than 1
    cfg = {**SMALL, "steps": 10, "layer_activations": ["leaky_relu", "leaky_relu"],
           "layer_activation_params": [{"negative_slope": 1.0}, {}]}  # fmt: skip
    state = wait(client, client.post("/api/runs", json=cfg).json()["id"])
    assert state["status"] == "done"
    default = gs.activation("leaky_relu").params
    assert state["config"]["layer_activation_params"] == [gs.activation("leaky_relu", negative_slope=1.0).params, default]
    first, second = state["report"]["layers"]
    assert first["mean_derivative"] == 1.0
    assert second["mean_derivative"] < 1.0


def test_every_bad_field_is_named_at_once(client: TestClient) -> None:
    res = client.post("/api/runs", json={"depth": 100, "activation": "tanhh", "seed": -1})
    assert res.status_code == 422
    assert set(res.json()["errors"]) == {"depth", "activation", "seed"}


def test_bad_json_and_oversized_bodies_are_422(client: TestClient) -> None:
    res = client.post("/api/runs", content=b"{not json", headers={"content-type": "application/json"})
    assert res.status_code == 422 and "not valid JSON" in res.json()["errors"]["body"]
    big = json.dumps({"activation": "relu", "pad": "x" * 20000})
    res = client.post("/api/runs", content=big, headers={"content-type": "application/json"})
    assert res.status_code == 422 and "exceeds the limit of 16384 bytes" in res.json()["errors"]["body"]


def test_run_lifecycle_and_report_contract(client: TestClient) -> None:
    res = client.post("/api/runs", json=SMALL)
    assert res.status_code == 201
    run_id = res.json()["id"]
    state = wait(client, run_id)
    assert set(state) >= {"id", "status", "step", "config", "metrics", "report"}
    assert state["status"] == "done" and state["step"] == 40
    assert state["config"]["depth"] == 2 and state["config"]["activation"] == "relu"
    assert state["metrics"][-1]["step"] == 40
    report = state["report"]
    assert set(report) == {"meta", "layers", "findings", "params", "history", "errors"}
    assert [layer["name"] for layer in report["layers"]] == ["acts.0", "acts.1"]
    assert report["meta"]["steps"] == 40 and report["meta"]["every"] == 1
    assert len(report["history"]) == 40  # watched with every=1: one record per step
    cut = client.get(f"/api/runs/{run_id}?history=3").json()["report"]
    assert [r["step"] for r in cut["history"]] == [r["step"] for r in report["history"][-3:]]
    assert client.get(f"/api/runs/{run_id}?history=0").json()["report"]["history"] == []
    assert "got '-1'" in client.get(f"/api/runs/{run_id}?history=-1").json()["errors"]["history"]
    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert client.get(f"/api/runs/{run_id}").status_code == 404


def test_pause_step_resume_stop_and_lr_change(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={**SMALL, "steps": 5000, "paused": True}).json()["id"]
    assert wait(client, run_id, ("paused",))["step"] == 0
    for _ in range(3):
        assert client.post(f"/api/runs/{run_id}/step").status_code == 200
    deadline = time.monotonic() + 30
    while client.get(f"/api/runs/{run_id}").json()["step"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert client.get(f"/api/runs/{run_id}").json()["step"] == 3  # paused: exactly three steps
    res = client.patch(f"/api/runs/{run_id}", json={"lr": 0.01})
    assert res.status_code == 200 and res.json()["lr"] == 0.01
    assert client.patch(f"/api/runs/{run_id}", json={"lr": -2}).status_code == 422
    client.post(f"/api/runs/{run_id}/resume")
    assert wait(client, run_id, ("running",))["lr"] == 0.01
    assert client.post(f"/api/runs/{run_id}/jump").json()["errors"]["action"].startswith("unknown action 'jump'")
    client.post(f"/api/runs/{run_id}/stop")
    state = wait(client, run_id)
    assert state["status"] == "done" and state["reason"].startswith("stopped at step")
    assert 3 < state["step"] < 5000
    client.delete(f"/api/runs/{run_id}")


def test_a_nan_run_ends_failed_with_the_origin_and_the_server_keeps_serving(client: TestClient) -> None:
    bad = {"dataset": "spiral", "depth": 4, "width": 64, "init": "he", "lr": 5.0, "steps": 200}
    run_id = client.post("/api/runs", json=bad).json()["id"]
    state = wait(client, run_id)
    assert state["status"] == "failed"
    assert state["reason"].startswith("loss became non-finite at step")
    assert "originates at" in state["reason"]  # the monitor's first-NaN origin
    assert "non_finite" in [f["kind"] for f in state["report"]["findings"]]
    assert client.get("/api/catalog").status_code == 200
    client.delete(f"/api/runs/{run_id}")


def test_a_nan_runs_stream_stays_json_to_its_failed_end(client: TestClient) -> None:
    # snapshot parts are made JSON-safe once, when computed: the non-finite numbers of a
    # diverging run still reach the page as "nan"/"inf" strings, never as invalid JSON
    bad = {"dataset": "spiral", "depth": 4, "width": 64, "init": "he", "lr": 5.0, "steps": 200}
    run_id = client.post("/api/runs", json=bad).json()["id"]
    events = []
    with client.stream("GET", f"/api/runs/{run_id}/stream") as res:
        for line in res.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))  # the server sends with allow_nan=False
    last = events[-1]
    assert last["status"] == "failed" and last["reason"].startswith("loss became non-finite")
    assert last["metrics"][-1]["train_loss"] in ("nan", "inf")
    client.delete(f"/api/runs/{run_id}")


def test_unknown_run_is_404_and_concurrency_limit_is_429() -> None:
    with TestClient(create_app(limits=Limits(max_concurrent=2))) as c:
        assert c.get("/api/runs/r999999").status_code == 404
        ids = [c.post("/api/runs", json={**SMALL, "paused": True}).json()["id"] for _ in range(2)]
        res = c.post("/api/runs", json=SMALL)
        assert res.status_code == 429 and "the limit is 2" in res.json()["errors"]["runs"]
        c.delete(f"/api/runs/{ids[0]}")
        res = c.post("/api/runs", json={**SMALL, "paused": True})
        assert res.status_code == 201  # deleting a run frees its slot
        for run_id in [ids[1], res.json()["id"]]:
            c.delete(f"/api/runs/{run_id}")


def test_stream_sends_snapshots_until_the_run_ends(client: TestClient) -> None:
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    events = []
    with client.stream("GET", f"/api/runs/{run_id}/stream") as res:
        for line in res.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["status"] == "done" and events[-1]["step"] == 40
    last = events[-1]
    assert len(last["units"]) == 2 and all(len(u) == 8 for u in last["units"])
    assert set("".join(last["units"])) <= {"a", "d", "s"}
    # the LayerStats fields tagged "view" (monitor/records.py), in declaration order
    assert list(last["layers"][0]) == ["name", "activation", "grad_norm", "dead_fraction", "saturated_fraction",
                                       "mean_derivative", "active_fraction", "units", "update_ratio"]  # fmt: skip
    assert len(last["surface"]["cls"]) == last["surface"]["n"] ** 2
    assert [len(h["counts"]) for h in last["hist"]] == [32, 32]
    with_static = [e for e in events if "theory" in e]
    assert len(with_static) == 1  # data points and theory come once, in the first snapshot
    first = with_static[0]
    assert first["theory"]["ratio"] is not None and len(first["theory"]["ratio"]) == 2
    assert first["theory"]["ratio"][-1] == 1.0
    # every snapshot after the one with the static data leaves it out (a run that ends before
    # the stream opens sends one snapshot: then it is first and last)
    after = events[events.index(first) + 1 :]
    assert len(first["points"]) == 450 and all("points" not in e for e in after)
    client.delete(f"/api/runs/{run_id}")


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_unit_map_marks_planted_dead_and_saturated_units(activation: str) -> None:
    import torch

    from gradsight.web.config import parse_config
    from gradsight.web.model import PlayNet
    from gradsight.web.views import unit_and_hist

    net = PlayNet(parse_config({"activation": activation, "depth": 1, "width": 4}), 2, 2)
    with torch.no_grad():
        net.hidden[0].bias[[1, 3]] = -100.0  # relu: off for every input; sigmoid: f' ~ e^-100
    units, hists = unit_and_hist(net, torch.randn(64, 2))
    assert units == (["adad"] if activation == "relu" else ["asas"])
    assert sum(hists[0]["counts"]) == 64 * 4


def test_curve_and_scratch(client: TestClient) -> None:
    res = client.post("/api/curve", json={"name": "leaky_relu", "params": {"negative_slope": 0.2}, "lo": -1, "hi": 1})
    cv = res.json()
    i = cv["x"].index(-1.0)
    assert cv["f"][i] == pytest.approx(-0.2) and cv["df"][i] == pytest.approx(0.2)
    assert cv["derivative_at_zero"] == 0.2
    assert client.post("/api/curve", json={"name": "rellu"}).status_code == 422
    out = client.post("/api/scratch", json={"x": [-1.0, 0.0, 2.0], "dout": [3.0, 3.0, 3.0]}).json()
    assert out["dx_scratch"] == [0.0, 0.0, 3.0] and out["dx_autograd"] == [0.0, 0.0, 3.0] and out["agree"]
    assert client.post("/api/scratch", json={"x": [1, "a"]}).status_code == 422


def test_lessons_say_when_no_lab_results_are_loaded(client: TestClient, tmp_path: Any) -> None:
    lessons = client.get("/api/lessons").json()
    assert lessons and all(item["verdict"]["verdict"] is None for item in lessons)
    assert "no lab results loaded" in lessons[0]["verdict"]["note"]
    results = tmp_path / "results.json"
    claim = {"id": "sigmoid_vanishes_20_layers", "claim": "c", "verdict": "supported",
             "command": "gradsight lab --only gradient_flow", "explanation": ""}
    results.write_text(json.dumps({"claims": [claim]}))
    with TestClient(create_app(results=results)) as c:
        by_id = {item["id"]: item for item in c.get("/api/lessons").json()}
    assert by_id["sigmoid_depth20"]["verdict"]["verdict"] == "supported"
    assert by_id["relu_depth20"]["verdict"]["verdict"] is None


def test_lesson_configs_are_valid_run_configs(client: TestClient) -> None:
    from gradsight.web.config import parse_config
    from gradsight.web.lessons import LESSONS

    for lesson in LESSONS:
        parse_config(lesson.config)
        parse_config({**lesson.config, **(lesson.compare or {})})


def test_revive_resamples_the_dead_units_the_monitor_found(client: TestClient) -> None:
    from gradsight.web.lessons import by_id

    cfg = {**by_id()["dead_relu_large_lr"].config, "steps": 5000}
    run_id = client.post("/api/runs", json=cfg).json()["id"]
    deadline = time.monotonic() + 60
    while True:
        state = client.get(f"/api/runs/{run_id}").json()
        dead = [f for f in state["report"]["findings"] if f["kind"] == "dead_units"]
        if dead or time.monotonic() > deadline or state["status"] != "running":
            break
        time.sleep(0.3)
    assert dead, "the large-lr ReLU lesson shows dead units"
    client.post(f"/api/runs/{run_id}/pause")
    assert client.post(f"/api/runs/{run_id}/revive").status_code == 200
    client.post(f"/api/runs/{run_id}/step")  # revival happens after the next step
    deadline = time.monotonic() + 30
    revived: dict = {}
    while not revived and time.monotonic() < deadline:
        with client.stream("GET", f"/api/runs/{run_id}/stream") as res:
            for line in res.iter_lines():
                if line.startswith("data: "):
                    revived = json.loads(line[6:]).get("revived") or {}
                    break
        time.sleep(0.1)
    assert revived and all(n > 0 for n in revived.values())
    assert set(revived) & {name for f in dead for name in f["layers"]}
    client.delete(f"/api/runs/{run_id}")
