"""Out: dict / JSON, JSONL streaming, TensorBoard, console table, HTML; and never crashing."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from tests.monitor.helpers import mlp, train
from torch import nn

import gradsight as gs
from gradsight.monitor import ConsoleSink, GradsightWarning, JSONLSink, TensorBoardSink


def _sigmoid_report(tmp_path=None, **kw):
    model = mlp(nn.Sigmoid, depth=20, width=16)
    with gs.watch(model, every=2, **kw) as mon:
        train(model, mon, steps=5)
    return mon.report()


def test_to_dict_and_to_json_round_trip(tmp_path):
    rep = _sigmoid_report()
    d = rep.to_dict()
    assert set(d) == {"meta", "layers", "findings", "params", "history", "errors"}
    assert [r["step"] for r in d["history"]] == [0, 2, 4]
    path = tmp_path / "rep.json"
    text = rep.to_json(path)
    assert json.loads(path.read_text()) == json.loads(text) == json.loads(json.dumps(d))
    assert d["layers"][0]["name"] == "1" and d["findings"][0]["kind"] == "vanishing_gradients"


def test_nan_values_are_json_safe():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with gs.watch(model, every=1) as mon:
        model(torch.full((2, 4), float("nan"))).sum().backward()
        mon.step()
    text = mon.report().to_json()

    def no_bare_constants(c):
        raise AssertionError(f"bare {c} in JSON")

    json.loads(text, parse_constant=no_bare_constants)
    assert '"nan"' in text


def test_jsonl_streams_one_line_per_logged_step(tmp_path, monkeypatch):
    from gradsight.monitor import flush

    monkeypatch.setattr(flush, "FLUSH_SECONDS", 0.0)  # a slow step: each closed at once
    path = tmp_path / "run" / "watch.jsonl"
    model = mlp(depth=2)
    with gs.watch(model, every=2, jsonl=path) as mon:
        train(model, mon, steps=3)
        assert len(path.read_text().splitlines()) == 2  # flushed while training
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 2]
    assert [ls["name"] for ls in lines[0]["layers"]] == ["1", "3"]
    assert {"step", "layers", "params", "findings"} == set(lines[0])


def test_tensorboard_sink_writes_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = mlp(depth=2)
    with gs.watch(model, every=1, sinks=[TensorBoardSink(tmp_path)]) as mon:
        train(model, mon, steps=2)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "grad_norm/1" in tags and "dead_fraction/3" in tags and "update_ratio/0" in tags
    assert [e.step for e in acc.Scalars("grad_norm/1")] == [0, 1]


def test_console_table(capsys):
    model = mlp(depth=2)
    buf = io.StringIO()
    with gs.watch(model, every=1, sinks=[ConsoleSink(file=buf)]) as mon:
        train(model, mon, steps=1)
    out = buf.getvalue()
    assert "-- step 0 --" in out and "grad_norm" in out and "\n1 " in out
    table = str(mon.report())
    assert table.splitlines()[1].split() == ["site", "act", "grad_norm", "dead", "saturated", "E[f']", "dW/W"]


def test_html_is_self_contained_with_charts(tmp_path):
    rep = _sigmoid_report()
    path = tmp_path / "watch.html"
    text = rep.to_html(path)
    assert path.read_text() == text
    assert text.startswith("<!doctype html>") and "<script" not in text and "http" not in text
    assert text.count("<svg") == 4  # gradient norm, dead/saturated, two heat maps
    assert "(log scale)" in text and "vanishing_gradients" in text
    assert "Dead units over time" in text and "Saturated units over time" in text


class _Broken:
    def write(self, line):
        raise OSError("disk full")

    def close(self):
        pass


def test_a_failing_sink_warns_and_loses_nothing(tmp_path):
    model = mlp(depth=2)
    path = tmp_path / "ok.jsonl"
    with pytest.warns(GradsightWarning, match="disk full"):
        with gs.watch(model, every=1, sinks=[_Broken(), JSONLSink(path)]) as mon:
            train(model, mon, steps=3)
    assert len(path.read_text().splitlines()) == 3
    rep = mon.report()
    assert len(rep.history) == 3
    assert any("disk full" in e for e in rep.errors)


def test_a_failing_statistic_never_reaches_the_training_loop(monkeypatch):
    from gradsight.monitor import sites

    def boom(self, *args):
        raise RuntimeError("derivative exploded")

    monkeypatch.setattr(sites.Site, "unit_sums", boom)
    model = mlp(depth=2)
    with pytest.warns(GradsightWarning, match="derivative exploded"):
        with gs.watch(model, every=1) as mon:
            opt = train(model, mon, steps=2)
    assert opt is not None  # the loop ran to the end
    assert any("derivative exploded" in e for e in mon.report().errors)


def test_a_failing_gradient_norm_never_reaches_the_backward(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("norm exploded")

    model = mlp(depth=2)
    with pytest.warns(GradsightWarning, match="norm exploded"):
        with gs.watch(model, every=1) as mon:
            monkeypatch.setattr(torch.linalg, "vector_norm", boom)  # a site's own hook
            monkeypatch.setattr(torch, "_foreach_norm", boom)  # the kept gradients, together
            opt = train(model, mon, steps=2)
            monkeypatch.undo()
    assert opt is not None  # the backward and the loop ran to the end
    rep = mon.report()
    assert any("site gradient hook 1" in e and "norm exploded" in e for e in rep.errors)
    assert math.isnan(rep.layer("1").grad_norm) and rep.layer("1").mean_derivative > 0


def test_tensorboard_missing_is_a_clear_error(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "torch.utils.tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(gs.GradsightError, match=r"pip install 'gradsight\[tensorboard\]'"):
        TensorBoardSink("runs/x")


def test_report_layer_lookup_suggests_the_closest_name():
    rep = _sigmoid_report()
    with pytest.raises(gs.GradsightError, match="unknown site '10'; did you mean '1'"):
        rep.layer("10")
    assert math.isfinite(rep.layer("1").grad_norm)
