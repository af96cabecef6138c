"""Trials: ids, code versions, the SQLite store, and the runner's reuse / failure / retry rules."""

from __future__ import annotations

import sqlite3
import sys

import pytest

from gradsight.errors import GradsightError
from gradsight.lab.trials import (
    LocalExecutor,
    Record,
    Trial,
    TrialStore,
    code_version,
    make_executor,
    run_trials,
    trial_id,
)

TARGET = f"{__name__}:compute"
CALLS: list[dict] = []  # every config compute() saw, in order
FAIL_ONCE: set[int] = set()  # values of "n" that raise on their first call only


def compute(kind: str, configs: list[dict]) -> list[dict]:
    """A planted trial function: square n; raise for n < 0, or once for n in FAIL_ONCE;
    'diverge' in the config gives a diverged result."""
    out = []
    for c in configs:
        CALLS.append(c)
        n = c["n"]
        if n < 0:
            raise ValueError(f"planted failure for n={n}")
        if n in FAIL_ONCE:
            FAIL_ONCE.discard(n)
            raise RuntimeError("transient")
        out.append({"square": n * n, "diverged": bool(c.get("diverge"))})
    return out


def _trials(*ns: int, diverge: int | None = None) -> list[Trial]:
    return [Trial("toy", {"n": n, **({"diverge": True} if n == diverge else {})}, "v1") for n in ns]


@pytest.fixture(autouse=True)
def _fresh_calls():
    CALLS.clear()
    FAIL_ONCE.clear()


def test_trial_id_is_canonical_in_key_order_and_sensitive_to_every_part():
    base = trial_id("sweep", {"lr": 0.1, "seed": 0}, "v1")
    assert base == trial_id("sweep", {"seed": 0, "lr": 0.1}, "v1")
    assert len(base) == 16
    others = [trial_id("sweep", {"lr": 0.1, "seed": 1}, "v1"),
              trial_id("sweep", {"lr": 0.1, "seed": 0}, "v2"),
              trial_id("lab", {"lr": 0.1, "seed": 0}, "v1")]
    assert len({base, *others}) == 4


def test_a_non_finite_config_value_is_refused():
    with pytest.raises(GradsightError, match=r"trial config lr=nan is not a finite number"):
        trial_id("sweep", {"lr": float("nan")}, "v1")


def test_code_version_follows_imports_and_ignores_unrelated_files(tmp_path, monkeypatch):
    pkg = tmp_path / "h22pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "exp.py").write_text("from h22pkg import helper\n\ndef run():\n    return helper.x\n")
    (pkg / "helper.py").write_text("x = 1\n")
    (pkg / "unrelated.py").write_text("y = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def version() -> str:
        code_version.cache_clear()
        from gradsight.lab.trials import trial

        trial._imports.cache_clear()
        return code_version("h22pkg.exp")

    before = version()
    (pkg / "unrelated.py").write_text("y = 2\n")
    assert version() == before
    (pkg / "helper.py").write_text("x = 2\n")
    assert version() != before
    sys.modules.pop("h22pkg", None)


def test_store_round_trip_in_wal_mode(tmp_path):
    path = tmp_path / "deep" / "t.sqlite"
    with TrialStore(path) as store:
        rec = Record("a1", "toy", {"n": 2}, "v1", "done", metrics={"square": 4, "x": float("nan")},
                     attempts=1, seconds=0.5, host="h", versions={"torch": "2"})
        store.put(rec)
        got = store.get("a1")
        assert got.metrics["square"] == 4 and got.metrics["x"] != got.metrics["x"]  # NaN kept
        assert (got.config, got.seconds, got.versions) == ({"n": 2}, 0.5, {"torch": "2"})
        assert store.get("missing") is None and len(store) == 1
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_metrics_keep_their_key_order_so_a_report_reads_them_the_same(tmp_path):
    """Regression: sorted keys reordered an experiment's dicts, and the lab's interview answer
    (which lists them in order) differed between a fresh and a resumed run."""
    trials = [Trial("toy", {"n": 3}, "v1")]
    with TrialStore(tmp_path / "t.sqlite") as store:
        store.put(Record("k", "toy", {}, "v1", "done", metrics={"b": 1, "a": {"z": 0, "y": 1}}))
        assert list(store.get("k").metrics) == ["b", "a"]
        assert list(store.get("k").metrics["a"]) == ["z", "y"]
        fresh = run_trials(trials, TARGET, store, LocalExecutor())[trials[0].id]
        assert fresh.metrics == store.get(trials[0].id).metrics


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are not the trials you are looking for" * 100)
    with pytest.raises(GradsightError, match="is not a gradsight trial store"):
        TrialStore(bad)
    with pytest.raises(GradsightError, match="is a directory"):
        TrialStore(tmp_path)


def test_a_failed_record_needs_its_kind_of_failure():
    with pytest.raises(GradsightError, match="a failed trial needs failure"):
        Record("a", "toy", {}, "v1", "failed")
    with pytest.raises(GradsightError, match="trial status 'ok'"):
        Record("a", "toy", {}, "v1", "ok")


def test_stored_trials_are_reused_and_fresh_runs_them_again(tmp_path):
    trials = _trials(1, 2, 3)
    with TrialStore(tmp_path / "t.sqlite") as store:
        first = run_trials(trials, TARGET, store, LocalExecutor())
        assert [first[t.id].metrics["square"] for t in trials] == [1, 4, 9]
        assert len(CALLS) == 3
        seen = []
        again = run_trials(trials + _trials(4), TARGET, store, LocalExecutor(),
                           on_record=lambda rec, cached: seen.append((rec.config["n"], cached)))
        assert [c["n"] for c in CALLS] == [1, 2, 3, 4]  # only the new one ran
        assert sorted(seen) == [(1, True), (2, True), (3, True), (4, False)]
        assert again[trials[0].id].finished == first[trials[0].id].finished
        run_trials(trials, TARGET, store, LocalExecutor(), fresh=True)
        assert [c["n"] for c in CALLS] == [1, 2, 3, 4, 1, 2, 3]


def test_a_failing_trial_is_recorded_retried_once_and_does_not_stop_the_others(tmp_path):
    trials = _trials(1, -5, 3)
    counts = []
    with TrialStore(tmp_path / "t.sqlite") as store:
        recs = run_trials(trials, TARGET, store, LocalExecutor(), progress=counts.append)
        bad = recs[trials[1].id]
        assert (bad.status, bad.failure, bad.attempts) == ("failed", "raised", 2)
        assert bad.error.startswith("ValueError: planted failure for n=-5 (at test_trials.py:")
        assert bad.metrics is None
        assert [recs[t.id].metrics["square"] for t in (trials[0], trials[2])] == [1, 9]
        assert [c["n"] for c in CALLS] == [1, -5, 3, -5]  # the retry runs after the others
        assert (counts[-1].done, counts[-1].failed, counts[-1].cached) == (2, 1, 0)
        # a trial that raised is tried again by the next run; the finished ones are not
        run_trials(trials, TARGET, store, LocalExecutor())
        assert [c["n"] for c in CALLS] == [1, -5, 3, -5, -5, -5]


def test_a_transient_failure_succeeds_on_its_retry(tmp_path):
    FAIL_ONCE.add(2)
    with TrialStore(tmp_path / "t.sqlite") as store:
        rec = run_trials(_trials(2), TARGET, store, LocalExecutor())[_trials(2)[0].id]
    assert (rec.status, rec.attempts, rec.metrics["square"]) == ("done", 2, 4)


def test_a_diverged_trial_is_failed_keeps_its_metrics_and_is_reused(tmp_path):
    trials = _trials(1, 2, diverge=2)
    with TrialStore(tmp_path / "t.sqlite") as store:
        rec = run_trials(trials, TARGET, store, LocalExecutor())[trials[1].id]
        assert (rec.status, rec.failure, rec.attempts) == ("failed", "diverged", 2)
        assert rec.error == "the loss became non-finite" and rec.metrics["square"] == 4
        run_trials(trials, TARGET, store, LocalExecutor())
    assert [c["n"] for c in CALLS] == [1, 2, 2]  # deterministic: not run a third time


def test_progress_counts_and_eta(tmp_path):
    seen = []
    trials = _trials(1, 2)
    weights = {t.id: 10.0 for t in trials}
    with TrialStore(tmp_path / "t.sqlite") as store:
        run_trials(trials[:1], TARGET, store, LocalExecutor())
        run_trials(trials, TARGET, store, LocalExecutor(), weights=weights, progress=seen.append)
    first, last = seen[0], seen[-1]
    assert (first.total, first.cached, first.done, first.running) == (2, 1, 0, 1)
    assert first.eta_s == pytest.approx(10.0)  # nothing measured yet: the typical time
    assert (last.done, last.cached, last.running, last.finished) == (1, 1, 0, 2)
    assert last.eta_s == 0.0


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("dask", {}, "unknown executor 'dask'"),
    ("local", {"workers": 0}, "--workers must be a whole number >= 1, got 0"),
    ("local", {"address": "auto"}, "--address 'auto' needs --executor ray"),
], ids=["unknown", "zero-workers", "address-without-ray"])
def test_bad_executor_settings_are_refused(name, kwargs, message):
    with pytest.raises(GradsightError, match=message):
        make_executor(name, **kwargs)


def test_two_worker_processes_give_what_one_process_gives(tmp_path):
    """The target must be importable by a fresh process: use the library's sweep trial."""
    from gradsight.lab import sweep

    spec = sweep.SweepSpec(activation=["relu", "tanh"], lr=[0.1], seed=[0], steps=[20],
                           width=[16], watch_every=5)
    trials = sweep.trials(spec)
    with TrialStore(tmp_path / "a.sqlite") as a, TrialStore(tmp_path / "b.sqlite") as b:
        here = run_trials(trials, sweep.TARGET, a, LocalExecutor(1))
        pool = LocalExecutor(2)
        try:
            there = run_trials(trials, sweep.TARGET, b, pool)
        finally:
            pool.close()
    for t in trials:
        assert there[t.id].host == here[t.id].host
        assert there[t.id].metrics["findings"] == here[t.id].metrics["findings"]
        for key in ("test_acc", "test_loss", "dead_fraction", "grad_ratio"):
            assert there[t.id].metrics[key] == pytest.approx(here[t.id].metrics[key], rel=1e-6)



def test_an_experiment_result_survives_the_store_whole(tmp_path):
    """What the lab's report is built from: a result read back equals the one that ran."""
    from gradsight.lab import registry
    from gradsight.lab.trials.lab import from_metrics, to_metrics

    result = registry.run("explainer", quick=True)
    with TrialStore(tmp_path / "t.sqlite") as store:
        store.put(Record("e", "explainer", {"quick": True}, "v", "done",
                         metrics=to_metrics(result)))
        back = from_metrics(store.get("e").metrics)
    assert back.to_dict(with_figures=True) == result.to_dict(with_figures=True)
    assert [c.to_dict() for c in back.claims] == [c.to_dict() for c in result.claims]
