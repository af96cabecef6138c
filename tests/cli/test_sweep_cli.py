"""`gradsight sweep` and `gradsight sweep report`: end to end in-process; bad input refused first."""

from __future__ import annotations

import csv

import pytest

TINY = ["--activation", "relu,tanh", "--lr", "0.1", "--steps", "5", "--width", "8"]


@pytest.mark.parametrize(("args", "message"), [
    (["--activation", "rellu"], "unknown activation 'rellu'; did you mean 'relu'?"),
    (["--width", "0"], "width must be >= 1, got 0"),
    (["--lr", "-1"], "learning rate must be a finite number > 0, got -1.0"),
    (["--seeds", ","], "the grid is empty: no value for 'seed'"),
    (["--executor", "dask"], "unknown executor 'dask'"),
], ids=["unknown-activation", "width-0", "lr-minus-1", "empty-grid", "unknown-executor"])
def test_bad_input_is_one_line_and_nothing_runs(cli, tmp_path, args, message):
    code, out, err = cli(["sweep", *args, "--out", str(tmp_path / "s")])
    assert code == 2
    assert err.strip() == f"error: {message}" or message in err
    assert not (tmp_path / "s" / "index.html").exists()
    assert "trials" not in out or args[0] == "--executor"


def test_a_toml_grid_with_a_flag_on_top_runs_and_reruns_from_the_store(cli, tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('[sweep]\nactivation = ["relu", "tanh"]\nlr = [0.1]\nsteps = 5\nwidth = 8\n')
    args = ["sweep", "--config", str(grid), "--seeds", "0,1", "--out", str(tmp_path / "s")]
    code, out, _ = cli(args)
    assert code == 0, out
    assert "4 trials (0 failed)" in out and "4 done · 0 running · 0 failed · 0 cached" in out
    page = (tmp_path / "s" / "index.html").read_text()
    assert "Best configuration per activation" in page and page.count("<svg") == 1
    code, out, _ = cli(args)
    assert code == 0 and "0 done · 0 running · 0 failed · 4 cached" in out


def test_report_writes_the_page_and_csv(cli, tmp_path):
    assert cli(["sweep", *TINY, "--out", str(tmp_path / "s")])[0] == 0
    store = tmp_path / "s" / "trials.sqlite"
    code, out, _ = cli(["sweep", "report", str(store), "--out", str(tmp_path / "r.html"),
                        "--csv", str(tmp_path / "t.csv")])
    assert code == 0, out
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["activation"] for r in rows) == ["relu", "tanh"]
    assert all(r["status"] == "done" and 0 <= float(r["test_acc"]) <= 1 for r in rows)


def test_help_has_examples(cli):
    code, out, _ = cli(["sweep", "--help"])
    assert code == 0 and "Example: gradsight sweep --activation relu,tanh,gelu" in out
    code, out, _ = cli(["sweep", "report", "--help"])
    assert code == 0 and "Example: gradsight sweep report sweep/trials.sqlite" in out
