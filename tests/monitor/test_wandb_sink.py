"""The W&B sink in offline mode: what the run recorded is read back from its own .wandb file."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
import torch
from torch import nn

import gradsight as gs
from gradsight.monitor import WandbSink

wandb = pytest.importorskip("wandb")
pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")

pytestmark = [
    # wandb's own temporary directory, cleaned up by its finalizer at exit
    pytest.mark.filterwarnings("ignore:Implicitly cleaning up <TemporaryDirectory:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                 "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    yield tmp_path
    if wandb.run is not None:
        wandb.run.finish()


def history(run_dir: Path) -> list[dict]:
    """The history rows of an offline run: its .wandb file is a LevelDB-style log (7-byte file
    header ':W&B' magic version; 32 KiB blocks of records with a 7-byte header crc, length,
    type: 1 full, 2 first, 3 middle, 4 last) of wandb_internal_pb2.Record protobufs."""
    wandb.teardown()  # the service process writes the file; its shutdown flushes it
    data = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    block, pos, chunks, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0:  # zero padding to the end of the block
            pos += left - 7
            continue
        chunks += data[pos : pos + length]
        pos += length
        if kind in (1, 4):
            records.append(chunks)
            chunks = b""
    rows = []
    for raw in records:
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "history":
            rows.append({it.key or "/".join(it.nested_key): json.loads(it.value_json) for it in rec.history.item})
    return rows


def sigmoid_net(depth: int = 12) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(32, 4))


def train(model, mon, run, steps=6):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = torch.randn(16, 32, generator=g), torch.randint(0, 4, (16,), generator=g)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        mon.step()
        run.log({"loss": loss.item()})


def test_each_logged_step_is_recorded_per_site_beside_the_users_loss(offline):
    torch.manual_seed(0)
    run = wandb.init(project="gradsight-test")
    run_dir = Path(run.dir).parent
    model = sigmoid_net()
    with gs.watch(model, every=2, sinks=[WandbSink(run)]) as mon:
        train(model, mon, run)
    expected = {r.step: r for r in mon.history}
    run.finish()
    rows = history(run_dir)
    assert sum("loss" in r for r in rows) == 6
    ours = [r for r in rows if "gradsight_step" in r]
    assert [r["gradsight_step"] for r in ours] == [0, 2, 4]
    for r in ours:
        rec = expected[r["gradsight_step"]]
        for ls in rec.layers:
            assert r[f"gradsight_grad_norm/{ls.name}"] == ls.grad_norm
            assert r[f"gradsight_mean_derivative/{ls.name}"] == ls.mean_derivative
            assert r[f"gradsight_saturated_fraction/{ls.name}"] == ls.saturated_fraction
        assert r["gradsight_findings/vanishing_gradients"] > 0
    # the findings table: one row per finding, as the report says it
    assert ours[0]["gradsight_findings_table/_type"] == "table-file"  # nested keys, joined by "/"
    content = json.loads((run_dir / "files" / ours[0]["gradsight_findings_table/path"]).read_text())
    assert content["columns"] == ["step", "severity", "kind", "sites", "message", "remedy"]
    assert content["data"][0][:3] == [0, "critical", "vanishing_gradients"]


def test_watch_wandb_true_opens_and_finishes_its_own_run_and_survives_nan_and_inf(offline):
    torch.manual_seed(0)
    mon = gs.watch(sigmoid_net(2), wandb=True)
    sink = mon.sinks[-1]
    run_dir = Path(sink.run.dir).parent
    nan_line = {
        "step": 7,
        "layers": [{"name": "1", "grad_norm": "nan", "dead_fraction": 0.5, "saturated_fraction": "inf",
                    "mean_derivative": "-inf"}],
        "params": [{"name": "0", "update_ratio": "nan"}],
        "findings": [{"kind": "non_finite", "severity": "critical", "layers": ["1"], "message": "m", "remedy": "r"}],
    }  # fmt: skip
    sink.write(nan_line)
    mon.close()
    assert wandb.run is None  # the sink opened the run, so it finished it
    (row,) = [r for r in history(run_dir) if r.get("gradsight_step") == 7]
    assert math.isnan(row["gradsight_grad_norm/1"]) and math.isnan(row["gradsight_update_ratio/0"])
    assert row["gradsight_saturated_fraction/1"] == math.inf and row["gradsight_mean_derivative/1"] == -math.inf
    assert row["gradsight_dead_fraction/1"] == 0.5 and row["gradsight_findings/non_finite"] == 1


def test_a_sink_needs_a_run():
    with pytest.raises(gs.GradsightError, match=r"WandbSink needs a wandb run .* got 'str'"):
        WandbSink("my-project")
