"""Experiments split into trials: plan, trial and build; the lab stores and reuses each trial,
a failing trial fails its experiment, and llm_ffn's (form, seed) trials are the same in one
process, in two worker processes, and trained the way the whole experiment trained them."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from gradsight.cli import app
from gradsight.errors import GradsightError
from gradsight.lab import registry
from gradsight.lab.experiments import llm_ffn, llm_ffn_trial
from gradsight.lab.trials import LocalExecutor, Trial, TrialStore, code_version, run_trials
from gradsight.lab.trials.lab import TARGET, build_result, trials_for
from gradsight.lab.trials.trial import normalize

runner = CliRunner()

# ------------------------------------------------------------------ a toy split experiment

FAIL: set[tuple[str, int]] = set()  # (arm, seed) whose trial raises: a planted fault


def toy_plan(quick: bool, seed: int) -> list[dict]:
    return [{"arm": arm, "seed": s} for s in registry.seeds(2) for arm in ("low", "high")]


def toy_trial(config: dict) -> dict:
    if (config["arm"], config["seed"]) in FAIL:
        raise RuntimeError(f"planted failure in {config['arm']}")
    offset = {"low": 0.0, "high": 10.0}[config["arm"]]
    return {"value": offset + float(np.random.default_rng(config["seed"]).normal())}


def toy_build(quick: bool, seed: int, results: list[tuple[dict, dict]]) -> registry.ExperimentResult:
    by_arm: dict[str, list[float]] = {}
    for config, metrics in results:
        by_arm.setdefault(config["arm"], []).append(metrics["value"])
    means = {arm: float(np.mean(v)) for arm, v in by_arm.items()}
    command = registry.command_for("toy", quick)
    claim = registry.Claim("toy.high_above_low", "high lies above low",
                           "supported" if means["high"] > means["low"] else "refuted",
                           {"means": means}, command)
    return registry.ExperimentResult(
        name="toy", title="Toy", summary=f"{len(results)} trials", command=command, quick=quick,
        rows=[{"arm": a, "mean": m, "n": len(by_arm[a])} for a, m in means.items()],
        claims=[claim],
    )


TOY = registry.Experiment.from_trials("toy", "Toy", 98, plan=toy_plan, trial=toy_trial,
                                      build=toy_build, quick_budget_s=1.0, typical_s=(8.0, 40.0))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One store for the toy's lab runs: the report's activation gallery is drawn once; each
    test runs the toy under its own --seed, so its trials are its own."""
    return str(tmp_path_factory.mktemp("store") / "trials.sqlite")


@pytest.fixture
def toy(monkeypatch):
    registry.names()  # the real experiments first
    monkeypatch.setitem(registry._REGISTRY, "toy", TOY)
    yield TOY
    FAIL.clear()


def _expected_value(arm: str, seed: int) -> float:
    return {"low": 0.0, "high": 10.0}[arm] + float(np.random.default_rng(seed).normal())


def test_a_split_experiment_runs_here_as_its_plan_its_trials_and_its_build(toy):
    result = registry.run("toy", quick=True, seed=1)  # --seed 1: seeds 2 and 3
    assert result.rows == [
        {"arm": "low", "mean": pytest.approx((_expected_value("low", 2) + _expected_value("low", 3)) / 2),
         "n": 2},
        {"arm": "high", "mean": pytest.approx((_expected_value("high", 2) + _expected_value("high", 3)) / 2),
         "n": 2},
    ]  # fmt: skip
    assert result.seed == 1 and result.command == "gradsight lab --only toy --quick --seed 1"
    assert [c.verdict for c in result.claims] == ["supported"]
    trials = trials_for(toy, quick=True, seed=1)
    assert [t.config for t in trials] == [{"arm": "low", "seed": 2}, {"arm": "high", "seed": 2},
                                          {"arm": "low", "seed": 3}, {"arm": "high", "seed": 3}]
    assert {t.kind for t in trials} == {"toy"} and len({t.id for t in trials}) == 4
    # the same (arm, seed) under another --seed is the same trial: ids depend on config only
    assert trials_for(toy, quick=True, seed=1)[0].id == trials_for(toy, quick=False, seed=1)[0].id


def test_registering_a_split_experiment_twice_under_one_name_is_refused():
    with pytest.raises(GradsightError, match="'llm_ffn' is registered twice"):
        registry.split_experiment("llm_ffn", "again", 1, plan=toy_plan, trial=toy_trial,
                                  build=toy_build)


def _doc(out) -> dict:
    doc = json.loads((out / "results.json").read_text())
    doc.pop("environment")
    return doc


def test_the_lab_stores_each_trial_reuses_them_and_fresh_runs_them_again(toy, tmp_path):
    out = tmp_path / "r"
    first = runner.invoke(app, ["lab", "--only", "toy", "--quick", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "gradsight lab (quick): 1 experiment in 4 trials, about 8 s of work" in first.output
    assert "toy(arm=high, seed=1)" in first.output
    assert "toy " in first.output and "in 4 trials (typical 8 s" in first.output
    with TrialStore(out / "trials.sqlite") as store:
        stored = {r.id: r for r in store.records("toy")}
    assert sorted((r.config["arm"], r.config["seed"]) for r in stored.values()) == [
        ("high", 0), ("high", 1), ("low", 0), ("low", 1)]
    for r in stored.values():  # metrics straight from the trial
        assert r.metrics == {"value": _expected_value(r.config["arm"], r.config["seed"])}
    doc = _doc(out)
    toy_doc = doc["experiments"]["toy"]
    assert toy_doc["seconds"] == pytest.approx(round(sum(r.seconds for r in stored.values()), 3))
    assert [c["verdict"] for c in doc["claims"]] == ["supported"]

    again = runner.invoke(app, ["lab", "--only", "toy", "--quick", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "in 4 trials, 4 stored" in again.output and "0 done · 0 running · 0 failed · 5 cached" in again.output
    assert _doc(out) == doc  # rebuilt from the store: the same report, timings included
    with TrialStore(out / "trials.sqlite") as store:
        assert {r.id: r.finished for r in store.records("toy")} == {
            i: r.finished for i, r in stored.items()}  # none ran again

    fresh = runner.invoke(app, ["lab", "--only", "toy", "--quick", "--out", str(out), "--fresh"])
    assert fresh.exit_code == 0, fresh.output
    assert "stored" not in fresh.output and "5 done · 0 running · 0 failed · 0 cached" in fresh.output
    with TrialStore(out / "trials.sqlite") as store:
        rerun = {r.id: r for r in store.records("toy")}
    assert set(rerun) == set(stored)
    assert all(rerun[i].started > stored[i].finished for i in stored)


def test_a_failing_trial_fails_its_experiment_and_keeps_the_others(toy, tmp_path, shared):
    FAIL.add(("high", 7))  # --seed 3: seeds 6 and 7
    lab = ["lab", "--only", "explainer,toy", "--quick", "--seed", "3", "--store", shared]
    result = runner.invoke(app, [*lab, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "✗ toy(arm=high, seed=7)" in result.output and "toy failed" in result.output
    doc = json.loads((tmp_path / "results.json").read_text())
    assert list(doc["experiments"]) == ["explainer"] and list(doc["failed"]) == ["toy"]
    assert doc["failed"]["toy"].startswith(
        "trial toy(arm=high, seed=7): RuntimeError: planted failure in high (at test_trials_split.py:")
    assert doc["failed"]["toy"].endswith(" in toy_trial) (after 2 attempts)")
    with TrialStore(shared) as store:
        status = {(r.config["arm"], r.config["seed"]): (r.status, r.attempts)
                  for r in store.records("toy") if r.config["seed"] in (6, 7)}
    assert status == {("low", 6): ("done", 1), ("high", 6): ("done", 1), ("low", 7): ("done", 1),
                      ("high", 7): ("failed", 2)}
    FAIL.clear()  # fixed: the next run runs only the failed trial and builds the experiment
    fixed = runner.invoke(app, [*lab, "--out", str(tmp_path)])
    assert fixed.exit_code == 0, fixed.output
    assert "in 4 trials, 3 stored" in fixed.output
    assert list(json.loads((tmp_path / "results.json").read_text())["failed"]) == []


def test_a_result_that_cannot_be_built_fails_its_experiment_not_the_lab(monkeypatch, tmp_path,
                                                                      shared):
    def broken_build(quick, seed, results):
        raise ValueError("no rows")

    registry.names()
    monkeypatch.setitem(registry._REGISTRY, "toy", replace(
        TOY, split=registry.Split(toy_plan, toy_trial, broken_build)))
    result = runner.invoke(app, ["lab", "--only", "explainer,toy", "--quick", "--seed", "5",
                                 "--store", shared, "--out", str(tmp_path)])
    assert result.exit_code == 1
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["failed"] == {"toy": "building the result from its trials: ValueError: no rows"}
    assert list(doc["experiments"]) == ["explainer"]


# ----------------------------------------------------------- llm_ffn: one trial per (form, seed)

TINY = llm_ffn_trial.Recipe(
    d_model=16, n_layers=1, n_heads=2, context=16, batch_size=4, steps=12, warmup=2,
    eval_every=6, val_windows=8, eval_batch=4, flow_steps=4, seeds=(3,),
)  # fmt: skip
TIMING = {"ms_per_step", "tokens_per_second", "seconds"}


def _untimed(doc):
    if isinstance(doc, dict):
        return {k: _untimed(v) for k, v in doc.items() if k not in TIMING}
    if isinstance(doc, list):
        return [_untimed(v) for v in doc]
    return doc


def test_llm_ffn_plans_one_trial_per_form_and_seed():
    exp = registry.get("llm_ffn")
    # its trials are versioned by the training side alone: editing a claim keeps stored trials
    assert exp.split is not None and exp.module == "gradsight.lab.experiments.llm_ffn_trial"
    configs = exp.plan(quick=True, seed=2)  # --seed 2: seeds 6, 7, 8
    assert configs[:2] == [{"form": "relu", "recipe": "quick", "seed": 6},
                           {"form": "gelu", "recipe": "quick", "seed": 6}]
    assert sorted({(c["form"], c["seed"]) for c in configs}) == sorted(
        (f, s) for f in llm_ffn.FORMS for s in (6, 7, 8))
    assert {c["recipe"] for c in exp.plan(quick=False)} == {"full"}
    assert llm_ffn_trial.recipe("full") is llm_ffn_trial.FULL
    assert llm_ffn_trial.recipe(llm_ffn_trial.recipe_of(TINY)) == replace(TINY, seeds=(0,))
    with pytest.raises(GradsightError, match="did you mean 'quick'"):
        llm_ffn_trial.recipe("quikc")
    with pytest.raises(GradsightError, match=r"unknown Recipe fields \['stepz'\]"):
        llm_ffn_trial.recipe({"stepz": 3})


def _llm_trials(workers: int, tmp_path) -> dict:
    version = code_version(registry.get("llm_ffn").module)
    trials = [Trial("llm_ffn", normalize(c), version)
              for c in llm_ffn.trial_configs(llm_ffn_trial.recipe_of(TINY), list(TINY.seeds))]
    pool = LocalExecutor(workers)
    try:
        with TrialStore(tmp_path / f"w{workers}.sqlite") as store:
            return run_trials(trials, TARGET, store, pool)
    finally:
        pool.close()


def test_llm_ffn_trials_equal_in_one_process_in_two_workers_and_as_one_whole_run(tmp_path):
    from gradsight.lab.training import torch_threads

    one, two = _llm_trials(1, tmp_path), _llm_trials(2, tmp_path)
    assert list(one) == list(two) and len(one) == len(llm_ffn.FORMS)
    assert all(r.status == "done" for r in [*one.values(), *two.values()])
    for tid in one:  # bit for bit, timing aside
        assert _untimed(one[tid].metrics) == _untimed(two[tid].metrics)
        assert one[tid].metrics["torch_threads"] == 1
    with torch_threads(1):  # the whole experiment's way: every form and seed in one process
        whole = llm_ffn.run_forms(TINY)
    for rec in one.values():
        run = llm_ffn_trial.form_run(rec.metrics)
        same = whole[run.ffn][list(TINY.seeds).index(run.seed)]
        assert _untimed(run.__dict__) == _untimed(json.loads(json.dumps(same.__dict__)))
    exp = registry.get("llm_ffn")
    built = [build_result(exp, True, 0, list(r.values())) for r in (one, two)]
    direct = llm_ffn.build_result(TINY, True, whole, torch_threads=1)
    docs = [json.loads(json.dumps(r.to_dict())) for r in (*built, direct)]
    assert _untimed(docs[0]) == _untimed(docs[1]) == _untimed(docs[2])  # rows, data, claims
    assert [c.to_dict() for c in built[0].claims] == [c.to_dict() for c in direct.claims]
    # the figures' SVG carries matplotlib's random element ids; their titles and captions agree
    assert [(f.title, f.caption) for f in built[1].figures] == [(f.title, f.caption) for f in direct.figures]
    assert built[0].seconds == pytest.approx(sum(r.seconds for r in one.values()))
    assert not math.isnan(built[0].rows[0]["val_bits_per_char"])


def test_llm_ffn_build_needs_every_form_and_seed():
    configs = llm_ffn.trial_configs("quick", [0])
    with pytest.raises(GradsightError, match=r"missing \[\('swiglu', 0\)\]"):
        llm_ffn.build(True, 0, [(c, {}) for c in configs[:-1]])


def test_training_speed_plans_one_trial_per_ensemble():
    from gradsight.lab.experiments import training_speed as ts

    exp = registry.get("training_speed")
    assert exp.split is not None and exp.module == ts.__name__
    configs = exp.plan(quick=True, seed=1)  # --seed 1: seeds 3, 4, 5
    assert configs[0] == {"grid": "quick", "dataset": "digits", "depth": 5,
                          "optimizer": "momentum", "activation": "sigmoid", "seeds": [3, 4, 5]}
    g = ts.QUICK
    assert [(c["dataset"], c["depth"], c["optimizer"], c["activation"]) for c in configs] == [
        (d, n, o, a) for d in g.datasets for n in g.depths for o in g.optimizers
        for a in g.activations]
    assert len(exp.plan(quick=False)) == 2 * 3 * 2 * 7
    with pytest.raises(GradsightError, match="different grids"):
        ts.build(True, 0, [({"grid": "quick"}, {}), ({"grid": "full"}, {})])
