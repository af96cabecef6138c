"""Property-based fuzzing of the playground API: no 5xx for any JSON body or path, and the
limits hold (no run is ever created beyond them)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'gradsight[web]'")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gradsight.web import create_app  # noqa: E402
from gradsight.web.config import FIELDS, LIMITS  # noqa: E402

_client = TestClient(create_app())  # module-wide (hypothesis reruns each test body)


@pytest.fixture(scope="module", autouse=True)
def _lifespan() -> Any:
    with _client:  # runs the app's lifespan: its runs are stopped and joined at the end
        yield

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)  # fmt: skip
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)  # fmt: skip
# bodies that look like run configs: known keys with any values, plus stray keys
configs = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), json_values, max_size=6)

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cleanup() -> None:
    for run in _client.get("/api/runs").json():
        _client.delete(f"/api/runs/{run['id']}")


@FUZZ
@given(body=st.one_of(configs, json_values))
def test_any_json_body_to_runs_is_answered_without_5xx(body: Any) -> None:
    # paused: a valid config makes a run that costs nothing until deleted
    payload = {**body, "paused": True} if isinstance(body, dict) else body
    res = _client.post("/api/runs", content=json.dumps(payload), headers={"content-type": "application/json"})
    assert res.status_code in (201, 422, 429), res.text
    if res.status_code == 201:
        state = _client.get(f"/api/runs/{res.json()['id']}").json()
        cfg = state["config"]
        assert 1 <= cfg["depth"] <= LIMITS.max_depth and 1 <= cfg["width"] <= LIMITS.max_width
        assert 1 <= cfg["steps"] <= LIMITS.max_steps and 0 < cfg["lr"] <= LIMITS.max_lr
        _client.delete(f"/api/runs/{res.json()['id']}")
    else:
        assert res.json()["errors"]
    active = [r for r in _client.get("/api/runs").json() if r["status"] in ("running", "paused")]
    assert len(active) <= LIMITS.max_concurrent


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT"]),
    path=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10), min_size=1, max_size=4),
    body=json_values,
)
def test_any_path_and_method_is_answered_without_5xx(method: str, path: list[str], body: Any) -> None:
    for prefix in ("/api/runs/", "/api/", "/"):
        url = prefix + "/".join(quote(seg, safe="") for seg in path)  # any text, percent-encoded
        res = _client.request(method, url, content=json.dumps(body), headers={"content-type": "application/json"})
        assert res.status_code < 500, (method, url, res.text)
    _cleanup()


@FUZZ
@given(body=json_values)
def test_curve_scratch_and_lr_change_take_any_body(body: Any) -> None:
    for path in ("/api/curve", "/api/scratch"):
        res = _client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        assert res.status_code in (200, 422), res.text


def test_lr_change_takes_any_body() -> None:
    run_id = _client.post("/api/runs", json={"depth": 1, "width": 2, "paused": True}).json()["id"]

    @FUZZ
    @given(body=json_values)
    def check(body: Any) -> None:
        res = _client.patch(f"/api/runs/{run_id}", content=json.dumps(body), headers={"content-type": "application/json"})
        assert res.status_code in (200, 422), res.text

    check()
    _client.delete(f"/api/runs/{run_id}")
