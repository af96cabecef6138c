"""The playground's one-click remedies: declared by the monitor's diagnostics
(``setting_remedies``), gathered per finding kind by gradsight.web.remedies and served in
/api/catalog; every remedy, applied to a config it is offered for, is a run config the server
accepts."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'gradsight[web]'")

from fastapi.testclient import TestClient  # noqa: E402

from gradsight.monitor.diagnostics import REGISTRY  # noqa: E402
from gradsight.monitor.diagnostics.base import SettingRemedy  # noqa: E402
from gradsight.web import create_app  # noqa: E402
from gradsight.web.config import FIELDS, RunConfig  # noqa: E402
from gradsight.web.remedies import ACTIVATION, apply, by_kind, changes, offered  # noqa: E402

SMALL = {"dataset": "xor", "depth": 2, "width": 8, "steps": 20, "batch_size": 16, "lr": 0.3}
PAIRS = [(kind, r) for kind, rs in by_kind().items() for r in rs]


@pytest.fixture(scope="module")
def client() -> Any:
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def catalog(client: TestClient) -> dict[str, Any]:
    return client.get("/api/catalog").json()


def test_catalog_has_a_remedy_entry_for_every_registered_finding_kind(catalog: dict[str, Any]) -> None:
    assert set(catalog["remedies"]) == {d.kind for d in REGISTRY}
    for kind, served in catalog["remedies"].items():  # what the kind's diagnostics declare
        declared = [r for d in REGISTRY if d.kind == kind for r in d.setting_remedies]
        assert [r["label"] for r in served] == [r.label for r in declared]
        assert [r["set"] for r in served] == [changes(r) for r in declared]
    assert all(catalog["remedies"][d.kind] for d in REGISTRY)  # each kind has a setting today
    # what remedies read and write exists: config fields, numbers to scale, actions, the
    # activation properties every catalog entry serves
    for kind, remedy in PAIRS:
        assert set(changes(remedy)) <= set(FIELDS), (kind, remedy.label)
        assert all(isinstance(getattr(RunConfig(), k), float) for k in remedy.scale), (kind, remedy.label)
        assert remedy.action is None or remedy.action in catalog["actions"], (kind, remedy.label)
        for key in remedy.when:
            if key.startswith(ACTIVATION):
                assert all(key[len(ACTIVATION):] in a for a in catalog["activations"]), key
            else:
                assert key in FIELDS, key


def _config_offering(remedy: SettingRemedy, catalog: dict[str, Any]) -> dict[str, Any]:
    """A run config (every field) for which ``remedy`` is offered: the first catalog activation
    and init that make it so, with the config values its conditions ask for."""
    fields = {k: v for k, v in remedy.when.items() if not k.startswith(ACTIVATION)}
    for act in catalog["activations"]:
        for init in catalog["inits"]:
            cfg = {**catalog["defaults"], **SMALL, "activation": act["name"], "init": init, **fields}
            if offered(remedy, cfg):
                return cfg
    raise AssertionError(f"{remedy.label!r} is offered for no catalog activation and init")


@pytest.mark.parametrize(("kind", "remedy"), PAIRS, ids=[f"{k}:{r.label}".replace("×", "x") for k, r in PAIRS])
def test_each_remedy_applied_is_a_run_config_the_server_takes(
    client: TestClient, catalog: dict[str, Any], kind: str, remedy: SettingRemedy
) -> None:
    cfg = _config_offering(remedy, catalog)
    if remedy.action:
        run_id = client.post("/api/runs", json={**cfg, "paused": True}).json()["id"]
        assert client.post(f"/api/runs/{run_id}/{remedy.action}").status_code == 200
    else:
        new = apply(remedy, cfg)
        assert new != cfg  # it changes something
        res = client.post("/api/runs", json={**new, "paused": True})
        assert res.status_code == 201, res.json()
        run_id = res.json()["id"]
        state = client.get(f"/api/runs/{run_id}").json()
        for key, value in changes(remedy).items():
            if key != "activation_params":  # the server fills in the defaults
                assert state["config"][key] == value, key
        for key, factor in remedy.scale.items():
            assert state["config"][key] == pytest.approx(cfg[key] * factor, rel=5e-3)
    assert client.delete(f"/api/runs/{run_id}").status_code == 204


@pytest.mark.parametrize(
    ("kind", "cfg", "labels"),
    [
        ("vanishing_gradients", {"activation": "sigmoid"}, ["ReLU + He init", "add residual connections"]),
        ("vanishing_gradients", {"activation": "relu", "init": "xavier", "residual": True}, ["He init"]),
        ("dead_units", {"activation": "relu"}, ["Leaky ReLU", "lower the learning rate ×0.1", "revive dead units"]),
        ("dead_units", {"activation": "elu"}, ["lower the learning rate ×0.1", "revive dead units"]),
        ("saturation", {"activation": "tanh", "init": "xavier"}, ["ReLU + He init"]),
    ],
    ids=["sigmoid-saturates", "relu-residual", "relu-can-die", "elu-cannot-die", "xavier-already"],
)
def test_remedies_offered_follow_the_catalog_properties(kind: str, cfg: dict[str, Any], labels: list[str]) -> None:
    full = {**RunConfig().to_dict(), **cfg}
    assert [r.label for r in by_kind()[kind] if offered(r, full)] == labels
