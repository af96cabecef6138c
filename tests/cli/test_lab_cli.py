"""`gradsight lab`: end to end into a temporary directory; errors teach."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from gradsight.cli import app
from gradsight.errors import GradsightError

runner = CliRunner()


def test_lab_only_derivatives_quick_writes_the_report(tmp_path):
    out = tmp_path / "rep"
    result = runner.invoke(app, ["lab", "--only", "derivatives", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "derivatives" in result.output and "supported" in result.output
    assert "quick budget 5 s" in result.output
    doc = json.loads((out / "results.json").read_text())
    assert list(doc["experiments"]) == ["derivatives"]
    assert doc["quick"] is True
    ids = [c["id"] for c in doc["claims"]]
    assert "derivatives.relu_derivative" in ids and "derivatives.sigmoid_tanh_bounds" in ids
    for c in doc["claims"]:
        assert c["command"] == "gradsight lab --only derivatives --quick"
        assert c["verdict"] in {"supported", "refuted", "nuanced", "untestable"}
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert "<svg" in page


def test_only_accepts_commas_and_repeats(tmp_path):
    result = runner.invoke(
        app, ["lab", "--only", "explainer,derivatives", "--only", "explainer", "--quick", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "results.json").read_text())
    assert list(doc["experiments"]) == ["derivatives", "explainer"]  # report order, no repeats


def test_unknown_only_name_raises_with_did_you_mean(tmp_path):
    result = runner.invoke(app, ["lab", "--only", "derivatves", "--out", str(tmp_path)])
    assert isinstance(result.exception, GradsightError)
    assert "unknown experiment 'derivatves'; did you mean 'derivatives'?" in str(result.exception)
    assert not (tmp_path / "results.json").exists()


def test_unknown_name_is_a_one_line_error_from_the_console_script(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "from gradsight.cli import main; main()", "lab", "--only", "cots",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "error: unknown experiment 'cots'; did you mean 'cost'?" in proc.stderr


@pytest.mark.parametrize("flag", ["--help"])
def test_help_has_an_example(flag):
    result = runner.invoke(app, ["lab", flag])
    assert result.exit_code == 0
    assert "Example: gradsight lab --quick --out report" in result.output
    assert "--only" in result.output and "--quick" in result.output


def test_out_that_is_a_file_fails_before_running(tmp_path):
    f = tmp_path / "report"
    f.write_text("not a directory")
    result = runner.invoke(app, ["lab", "--only", "explainer", "--out", str(f)])
    assert isinstance(result.exception, GradsightError)
    assert "is a file; expected a directory" in str(result.exception)
    assert "explainer 0." not in result.output  # nothing ran


def test_a_failing_experiment_is_reported_and_the_others_kept(tmp_path, monkeypatch):
    from gradsight.lab import registry

    def boom(quick, progress):
        raise RuntimeError("planted failure")

    registry.names()  # load the real experiments first
    monkeypatch.setitem(registry._REGISTRY, "boom", registry.Experiment("boom", "Boom", boom, 99, 1.0))
    result = runner.invoke(app, ["lab", "--only", "explainer,boom", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "boom failed" in result.output and "planted failure" in result.output
    doc = json.loads((tmp_path / "results.json").read_text())
    assert list(doc["experiments"]) == ["explainer"]
    assert list(doc["failed"]) == ["boom"]  # retried once, then reported as failed
    assert doc["failed"]["boom"].startswith("RuntimeError: planted failure (at test_lab_cli.py:")
    assert doc["failed"]["boom"].endswith(" in boom) (after 2 attempts)")


def test_the_lab_says_how_long_it_will_take_and_what_is_left(tmp_path, monkeypatch):
    from gradsight.lab import registry

    def instant(name):
        def fn(quick, progress):
            return registry.ExperimentResult(name=name, title=name, summary="", command="", quick=quick)

        return fn

    registry.names()
    monkeypatch.setitem(registry._REGISTRY, "fake_a",
                        registry.Experiment("fake_a", "A", instant("fake_a"), 97, 5.0, 100.0, 1200.0))
    monkeypatch.setitem(registry._REGISTRY, "fake_b",
                        registry.Experiment("fake_b", "B", instant("fake_b"), 98, 5.0, 50.0, 600.0))
    full = runner.invoke(app, ["lab", "--only", "fake_a,fake_b", "--out", str(tmp_path / "f")])
    assert full.exit_code == 0, full.output
    assert "gradsight lab (full): 2 experiments, about 30 min of work on 2 cores (" in full.output
    # fake_a took ~0 s of its typical 1200: the 600 s left shrink by (0 + 30) / (1200 + 30)
    assert "fake_a" in full.output and "(typical 1200 s); about 15 s left" in full.output
    assert "(typical 600 s)\n" in full.output  # nothing left after the last one
    quick = runner.invoke(app, ["lab", "--only", "fake_a,fake_b", "--quick", "--out", str(tmp_path / "q")])
    assert quick.exit_code == 0, quick.output
    assert "gradsight lab (quick): 2 experiments, about 3 min of work on 2 cores (" in quick.output
    # the header comes before anything runs (the worker processes cannot see this test's fake
    # experiment, so the run itself fails there; only the estimate is checked)
    two = runner.invoke(app, ["lab", "--only", "fake_a", "--quick", "--workers", "2", "--out", str(tmp_path / "w")])
    assert ("gradsight lab (quick): 1 experiment, about 2 min of work on 2 cores, about 50 s with 2 "
            "workers if its trials spread evenly") in " ".join(two.output.split())
    assert "(typical 100 s, quick budget 5 s); about 12 s left" in quick.output
