"""`gradsight sweep`: the grid, its validation, ensemble = one at a time, and the report."""

from __future__ import annotations

import csv
import math

import pytest

from gradsight.errors import GradsightError
from gradsight.lab import sweep, sweep_report
from gradsight.lab.trials import LocalExecutor, Record, TrialStore, run_trials


def test_the_grid_is_the_product_of_its_axes_times_seeds():
    spec = sweep.SweepSpec(activation=["relu", "tanh", "gelu"], depth=[2, 4], lr=[0.01, 0.1],
                           seed=[0, 1, 2])
    cfgs = sweep.configs(spec)
    assert len(cfgs) == 3 * 2 * 2 * 3
    assert {(c["activation"], c["depth"], c["lr"], c["seed"]) for c in cfgs} == {
        (a, d, lr, s) for a in ("relu", "tanh", "gelu") for d in (2, 4) for lr in (0.01, 0.1)
        for s in (0, 1, 2)
    }
    assert len({t.id for t in sweep.trials(spec)}) == len(cfgs)


def test_random_samples_draw_lr_log_uniformly_within_the_given_range_with_every_seed():
    spec = sweep.SweepSpec(activation=["relu", "tanh"], lr=[1e-3, 1.0], seed=[0, 1], samples=10,
                           sample_seed=3)
    cfgs = sweep.configs(spec)
    assert cfgs == sweep.configs(spec)  # seeded
    assert len(cfgs) == 20 and all(1e-3 <= c["lr"] <= 1.0 for c in cfgs)
    assert len({c["lr"] for c in cfgs}) == 10  # continuous: no two points share an lr
    for c in cfgs:  # each point runs with both seeds
        assert {d["seed"] for d in cfgs if d["lr"] == c["lr"]} == {0, 1}


@pytest.mark.parametrize(("values", "message"), [
    ({"activation": "rellu"}, "unknown activation 'rellu'; did you mean 'relu'?"),
    ({"activation": "swiglu"}, "is gated"),
    ({"width": "0"}, "width must be >= 1, got 0"),
    ({"depth": [3, -1]}, "depth must be >= 1, got -1"),
    ({"lr": "-1"}, "learning rate must be a finite number > 0, got -1.0"),
    ({"lr": "nan"}, "learning rate must be a finite number > 0, got nan"),
    ({"lr": "fast"}, "lr must be a number, got 'fast'"),
    ({"seed": []}, "the grid is empty: no value for 'seed'"),
    ({"activation": []}, "the grid is empty: no value for 'activation'"),
    ({"init": "kaiming"}, "unknown init 'kaiming'"),
    ({"optimizer": "adma"}, "unknown optimizer 'adma'; did you mean 'adam'?"),
    ({"dataset": "mnist"}, "unknown data set 'mnist'; did you mean 'mnist1d'?"),
    ({"width": 2.5}, "width must be a whole number, got 2.5"),
    ({"activaton": "relu"}, "unknown sweep setting 'activaton'; did you mean 'activation'?"),
], ids=["unknown-activation", "gated", "width-0", "negative-depth", "lr-minus-1", "lr-nan",
        "lr-text", "no-seeds", "empty-axis", "init", "optimizer", "dataset", "fractional-width",
        "misspelt-key"])
def test_bad_configs_are_refused_with_a_clear_error(values, message):
    with pytest.raises(GradsightError, match=message.replace("(", r"\(").replace("?", r"\?")):
        sweep.spec_from(values)


def test_a_toml_file_gives_the_grid(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('[sweep]\nactivation = ["relu", "tanh"]\nlr = [0.01, 0.1]\nsteps = 50\n'
                    'seed = [0, 1]\nbatch_size = 32\n')
    spec = sweep.spec_from(sweep.load_toml(path))
    assert (spec.activation, spec.lr, spec.steps, spec.seed, spec.batch_size) == (
        ["relu", "tanh"], [0.01, 0.1], [50], [0, 1], 32)
    path.write_text("[sweep\nlr = 1")
    with pytest.raises(GradsightError, match="is not valid TOML"):
        sweep.load_toml(path)


def test_ensemble_batches_hold_trials_that_differ_only_in_init_lr_and_seed():
    spec = sweep.SweepSpec(activation=["relu", "tanh"], init=["he", "xavier"], lr=[0.1, 1.0],
                           seed=[0, 1])
    groups = sweep.group(sweep.trials(spec))
    assert sorted(len(g) for g in groups) == [8, 8]
    assert all(len({t.config["activation"] for t in g}) == 1 for g in groups)
    assert sorted(len(g) for g in sweep.group(sweep.trials(spec), size=3)) == [2, 2, 3, 3, 3, 3]


SMALL = sweep.SweepSpec(activation=["relu", "tanh"], lr=[0.05, 0.5], seed=[0, 1], steps=[30],
                        width=[16], init=["he"], watch_every=5)


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory):
    """SMALL run trial by trial, in this process (the reference)."""
    path = tmp_path_factory.mktemp("seq") / "t.sqlite"
    with TrialStore(path) as store:
        recs = run_trials(sweep.trials(SMALL), sweep.TARGET, store, LocalExecutor())
    return path, recs


def test_each_trial_records_accuracy_loss_divergence_and_watch_statistics(one_at_a_time):
    _, recs = one_at_a_time
    for rec in recs.values():
        m = rec.metrics
        assert rec.status == "done" and m["diverged"] is False and m["step"] == 30
        assert 0.0 <= m["test_acc"] <= 1.0 and m["train_loss"] > 0
        assert 0.0 <= m["dead_fraction"] <= 1.0 and m["grad_ratio"] > 0
        assert m["mean_derivative"] > 0 and isinstance(m["findings"], list)
        assert rec.versions["torch"] and rec.host
    accs = [r.metrics["test_acc"] for r in recs.values()]
    assert max(accs) > 0.5  # digits is learnable in 30 steps at these rates


def test_the_ensemble_gives_what_one_at_a_time_gives(one_at_a_time, tmp_path):
    _, seq = one_at_a_time
    with TrialStore(tmp_path / "e.sqlite") as store:
        ens = run_trials(sweep.trials(SMALL), sweep.TARGET, store, LocalExecutor(),
                         group=sweep.group)
    for tid, rec in seq.items():
        a, b = rec.metrics, ens[tid].metrics
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-4)
        assert b["test_acc"] == pytest.approx(a["test_acc"], abs=1.5 / 360)  # <= one sample
        assert b["dead_fraction"] == pytest.approx(a["dead_fraction"], abs=1e-6)
        assert b["grad_ratio"] == pytest.approx(a["grad_ratio"], rel=1e-4)
        assert b["findings"] == a["findings"]


def test_a_diverging_trial_is_marked_failed_and_the_others_finish(tmp_path):
    spec = sweep.SweepSpec(activation=["relu"], lr=[0.1, 1e6], steps=[20], width=[16],
                           watch_every=5)
    with TrialStore(tmp_path / "t.sqlite") as store:
        recs = run_trials(sweep.trials(spec), sweep.TARGET, store, LocalExecutor())
    by_lr = {r.config["lr"]: r for r in recs.values()}
    bad = by_lr[1e6]
    assert (bad.status, bad.failure, bad.attempts) == ("failed", "diverged", 2)
    assert bad.error.startswith("diverged: the loss became non-finite at step ")
    assert "non_finite" in bad.metrics["findings"]  # watch saw the NaN
    assert by_lr[0.1].status == "done"
    rows = sweep_report.rows(tmp_path / "t.sqlite")
    page = sweep_report.write_html(rows, tmp_path / "index.html").read_text()
    assert "Failed trials" in page and "diverged: the loss became non-finite" in page


def _planted_store(path):
    """Known accuracies: relu best at lr 0.1 (seeds 0.9, 0.8), tanh best at lr 1 (0.7, 0.7);
    one relu trial at lr 1 failed."""
    table = {("relu", 0.1): (0.9, 0.8), ("relu", 1.0): (0.5, None),
             ("tanh", 0.1): (0.6, 0.4), ("tanh", 1.0): (0.7, 0.7)}
    with TrialStore(path) as store:
        for (act, lr), accs in table.items():
            for seed, acc in enumerate(accs):
                cfg = sweep.configs(sweep.SweepSpec(activation=[act], lr=[lr], seed=[seed]))[0]
                metrics = None if acc is None else {
                    "test_acc": acc, "dead_fraction": 0.25 if act == "relu" else 0.0,
                    "findings": ["dead_units"] if act == "relu" else []}
                store.put(Record(f"{act}{lr}{seed}", "sweep", cfg, "v", "done" if metrics else
                                 "failed", failure=None if metrics else "raised",
                                 error=None if metrics else "boom", metrics=metrics,
                                 finished=float(seed)))


def test_report_best_config_per_activation_with_seed_spread(tmp_path):
    _planted_store(tmp_path / "t.sqlite")
    rows = sweep_report.rows(tmp_path / "t.sqlite")
    assert len(rows) == 8
    best = {b["activation"]: b for b in sweep_report.best_per_activation(rows)}
    assert best["relu"]["lr"] == 0.1 and best["relu"]["mean_acc"] == pytest.approx(0.85)
    assert (best["relu"]["min_acc"], best["relu"]["max_acc"]) == (0.8, 0.9)
    assert best["relu"]["std_acc"] == pytest.approx(math.sqrt(0.005))
    assert best["tanh"]["lr"] == 1.0 and best["tanh"]["std_acc"] == 0.0
    assert sweep_report.recurring_findings(rows) == [
        {"finding": "dead_units", "trials": 3, "of": 8, "activations": "relu"}]


def test_report_page_csv_and_parquet(tmp_path):
    _planted_store(tmp_path / "t.sqlite")
    rows = sweep_report.rows(tmp_path / "t.sqlite")
    page = sweep_report.write_html(rows, tmp_path / "index.html", "t.sqlite").read_text()
    assert page.count("<svg") == 1 and "depth=2, init=pytorch_default" in page
    assert "0.85" in page and "boom" in page
    assert 'href="http' not in page and "<script" not in page  # reads offline
    with open(sweep_report.write_csv(rows, tmp_path / "t.csv"), newline="") as fh:
        back = list(csv.DictReader(fh))
    assert [float(r["test_acc"]) if r["test_acc"] else None for r in back] == [
        r["test_acc"] for r in rows]
    assert back[0]["findings"] in ("dead_units", "")
    import pyarrow.parquet as pq

    table = pq.read_table(sweep_report.write_parquet(rows, tmp_path / "t.parquet"))
    assert table.num_rows == 8 and table.column("test_acc").to_pylist() == [
        r["test_acc"] for r in rows]


def test_report_of_a_missing_or_empty_store_says_so(tmp_path):
    with pytest.raises(GradsightError, match="no trial store at"):
        sweep_report.rows(tmp_path / "nope.sqlite")
    TrialStore(tmp_path / "empty.sqlite").close()
    with pytest.raises(GradsightError, match="holds no sweep trials"):
        sweep_report.rows(tmp_path / "empty.sqlite")
