"""The llm_ffn experiment: training beats the floors, the sparsity probe is exact, verdict rules."""

from __future__ import annotations

import math
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from gradsight.errors import GradsightError
from gradsight.lab.experiments import llm_ffn
from gradsight.lab.experiments.llm_ffn import TOLERANCE, build_result, run_forms
from gradsight.lab.experiments.llm_ffn_trial import (
    FORMS,
    NEAR_ZERO_REL,
    QUICK,
    FormRun,
    Recipe,
    evaluate,
    train_form,
)
from gradsight.lab.text import load_corpus, ngram_floors
from gradsight.lab.training import TrainConfig, lr_at

# a recipe small enough for the test budget that still learns (about 3 s on an idle core)
SMALL = replace(QUICK, steps=300, warmup=30, eval_every=300, flow_steps=30, val_windows=None)
# a recipe that only exercises the plumbing: every form, every figure, every claim
TINY = Recipe(
    d_model=16, n_layers=1, n_heads=2, context=16, batch_size=4, steps=12, warmup=2,
    eval_every=6, val_windows=8, eval_batch=4, flow_steps=4,
)  # fmt: skip


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.fixture(scope="module")
def trained_relu(corpus):
    torch.manual_seed(0)
    return train_form(corpus, "relu", SMALL, seed=0)


def test_trained_tiny_model_beats_the_bigram_floor(corpus, trained_relu) -> None:
    _, run = trained_relu
    floors = ngram_floors(corpus)
    assert run.steps == [0, SMALL.steps]
    assert run.val_bpc[0] > floors["unigram"].val_bits_per_char  # untrained: ~log2(V)
    assert run.final_bpc < floors["bigram"].val_bits_per_char - 0.1


def _hidden_directly(model, x: torch.Tensor) -> list[torch.Tensor]:
    """Re-run the forward pass by hand and return each block's ReLU FFN hidden (N*T, h)."""
    T = x.shape[1]
    h = model.tok(x) + model.pos(torch.arange(T))  # (N, T, C)
    hidden = []
    for block in model.blocks:
        h = h + block.attn(block.ln1(h))
        z = torch.clamp_min(block.ffn.up(block.ln2(h)), 0.0)  # relu(up(ln2 x)): (N, T, 4C)
        hidden.append(z.reshape(-1, z.shape[-1]))
        h = h + block.ffn.down(z)
    return hidden


@torch.no_grad()
def test_relu_zero_fraction_equals_the_fraction_computed_from_hidden_activations(
    corpus, trained_relu
) -> None:
    model, _ = trained_relu
    x, y = corpus.val_windows(SMALL.context, limit=40)
    bpc, layers = evaluate(model, x, y, batch=7)  # uneven batches on purpose
    hidden = _hidden_directly(model, x)
    for la, z in zip(layers, hidden, strict=True):
        assert la.zero_fraction == pytest.approx(float((z == 0).double().mean()), abs=1e-12)
        assert la.dead_fraction == pytest.approx(float((z == 0).all(0).double().mean()), abs=1e-12)
        thr = NEAR_ZERO_REL * float(z.abs().max())
        assert la.max_abs == pytest.approx(float(z.abs().max()), rel=1e-6)
        assert la.near_zero_fraction == pytest.approx(
            float((z.abs() < thr).double().mean()), abs=1e-12
        )
    assert 0.3 < layers[0].zero_fraction < 1.0  # ReLU is sparse, and measurably so
    logits, _ = model(x)
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)) / math.log(2)
    assert bpc == pytest.approx(float(expected), rel=1e-5)


def test_watch_reports_ffn_gradient_flow(trained_relu) -> None:
    _, run = trained_relu
    assert [g["name"] for g in run.grad_flow] == ["blocks.0.ffn.act", "blocks.1.ffn.act"]
    assert all(g["activation"] == "relu" and g["grad_norm"] > 0 for g in run.grad_flow)
    assert run.tokens_per_second > 0 and run.ms_per_step > 0


def test_same_seed_same_curve_and_forms_share_data_order(corpus) -> None:
    _, a = train_form(corpus, "gelu", TINY, seed=3)
    _, b = train_form(corpus, "gelu", TINY, seed=3)
    _, c = train_form(corpus, "gelu", TINY, seed=4)
    assert a.val_bpc == b.val_bpc and a.val_bpc != c.val_bpc


def test_unknown_form_is_a_did_you_mean_error(corpus) -> None:
    with pytest.raises(GradsightError, match=r"unknown ffn form 'gelu2'; did you mean 'gelu'\?"):
        train_form(corpus, "gelu2", TINY, seed=0)


def test_learning_rate_schedule() -> None:
    cfg = Recipe(steps=101, warmup=10, lr=1.0, min_lr_frac=0.1, eval_every=100)
    assert isinstance(cfg, TrainConfig) and cfg.schedule == "warmup_cosine_floor"
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) == pytest.approx(0.55)  # cosine midpoint


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 1}, r"steps must be >= 2"),
        ({"warmup": 300, "steps": 300}, r"warmup must be in \[0, steps\), got 300"),
        (
            {"flow_steps": 150, "eval_every": 100},
            r"flow_steps must be in \[0, min\(steps - 1, eval_every\)\], got 150",
        ),
        ({"seeds": ()}, r"seeds must name at least one seed"),
    ],
    ids=["steps", "warmup", "flow", "seeds"],
)
def test_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(GradsightError, match=match):
        Recipe(**kwargs)


# ------------------------------------------------------------- verdict rules on planted numbers


def _runs(final: dict[str, list[float]]) -> dict[str, list[FormRun]]:
    out = {}
    for form, values in final.items():
        out[form] = [
            FormRun(
                ffn=form, seed=s, params=1, ffn_params=1, hidden=1, steps=[0, 1], val_bpc=[7.0, v]
            )
            for s, v in enumerate(values)
        ]
    return out


def _rows_of(runs: dict[str, list[FormRun]]) -> dict[str, dict]:
    return {f: {"val_bits_per_char": sum(v.final_bpc for v in r) / len(r)} for f, r in runs.items()}


def test_gated_claim_supported_when_every_gated_form_wins_beyond_the_margin() -> None:
    runs = _runs({"relu": [2.10, 2.12, 2.11], "gelu": [2.08, 2.10, 2.09], "silu": [2.09, 2.11, 2.10],
                  "reglu": [2.00, 2.01, 2.00], "geglu": [2.00, 2.02, 2.01],
                  "swiglu": [1.99, 2.00, 1.99]})  # fmt: skip
    runs["relu2"] = runs["relu"]
    rows = {**_rows_of(runs), "relu2": {"val_bits_per_char": 2.05}}
    claim, ordering = llm_ffn.claim_gated(runs, rows, "cmd", "tiny")
    assert claim.verdict == "supported"
    assert [o["ffn"] for o in ordering][:3] == ["swiglu", "reglu", "geglu"]
    assert ordering[0]["shazeer_rank"] == 2 and ordering[-1]["shazeer_log_perplexity"] == 1.997


def test_gated_claim_not_reproduced_when_no_gated_form_wins() -> None:
    # every gated form within 0.5 % of its plain form, seeds tight: the gain did not appear
    runs = _runs({"relu": [2.10, 2.11, 2.10], "gelu": [2.10, 2.10, 2.11], "silu": [2.01, 2.02, 2.01],
                  "reglu": [2.10, 2.10, 2.11], "geglu": [2.11, 2.10, 2.10],
                  "swiglu": [2.02, 2.01, 2.02]})  # fmt: skip
    runs["relu2"] = runs["relu"]
    claim, _ = llm_ffn.claim_gated(runs, _rows_of(runs), "cmd", "tiny")
    assert claim.verdict == "not_reproduced"
    assert "Shazeer" in claim.explanation and "Scale: tiny" in claim.explanation
    assert "development runs" not in claim.explanation


def test_gated_claim_needs_three_seeds_whatever_the_gap() -> None:
    # a huge win from two seeds decides nothing
    runs = _runs({"relu": [2.5, 2.5], "gelu": [2.5, 2.5], "silu": [2.5, 2.5],
                  "reglu": [2.0, 2.0], "geglu": [2.0, 2.0], "swiglu": [2.0, 2.0]})  # fmt: skip
    runs["relu2"] = runs["relu"]
    claim, _ = llm_ffn.claim_gated(runs, _rows_of(runs), "cmd", "tiny")
    assert claim.verdict == "untestable" and "2 seed(s)" in claim.explanation


def test_relu_costs_little_rules_both_ways() -> None:
    close = _runs({"relu": [2.010, 2.012, 2.011], "gelu": [2.000, 2.004, 2.002],
                   "swiglu": [2.001, 2.003, 2.002]})  # fmt: skip
    claim, gaps = llm_ffn.claim_relu_costs_little(close, "cmd", "tiny")
    assert claim.verdict == "supported"
    assert gaps[0]["gap_bits_per_char"] == pytest.approx(0.009)
    assert gaps[0]["gap_relative"] <= TOLERANCE and gaps[0]["outcome"] == "same"
    far = _runs({"relu": [2.20, 2.21, 2.22], "gelu": [2.00, 2.01, 2.02],
                 "swiglu": [1.99, 2.00, 2.01]})  # fmt: skip
    claim, _ = llm_ffn.claim_relu_costs_little(far, "cmd", "tiny")
    assert claim.verdict == "not_reproduced" and "Mirzadeh" in claim.explanation
    one_seed = _runs({"relu": [2.010], "gelu": [2.000], "swiglu": [2.001]})
    claim, _ = llm_ffn.claim_relu_costs_little(one_seed, "cmd", "tiny")
    assert claim.verdict == "untestable"  # within tolerance, but one seed supports nothing
    noisy = _runs({"relu": [2.0, 2.3, 1.9], "gelu": [2.0, 2.0, 2.0], "swiglu": [2.0, 2.0, 2.0]})
    claim, gaps = llm_ffn.claim_relu_costs_little(noisy, "cmd", "tiny")
    assert claim.verdict == "nuanced" and gaps[0]["outcome"] == "unresolved"


def _activity(form: str, zero: list[float], dead: list[float]) -> list[FormRun]:
    return [
        FormRun(ffn=form, seed=s, params=1, ffn_params=1, hidden=1, steps=[0, 1], val_bpc=[7.0, 2.0],
                zero_fraction=[0.0, z], near_zero_fraction=[0.0, 0.0], dead_fraction=[0.0, d],
                final_layers=[{"dead_fraction": d}, {"dead_fraction": d}])
        for s, (z, d) in enumerate(zip(zero, dead, strict=True))
    ]


@pytest.mark.parametrize(
    ("relu_zero", "verdict"),
    [([0.7, 0.72, 0.75], "supported"), ([0.3, 0.32, 0.31], "nuanced"),
     ([0.1, 0.12, 0.11], "not_reproduced"), ([0.3, 0.7, 0.9], "nuanced"), ([0.9], "untestable")],
    ids=["many", "some", "few", "straddles", "one-seed"],
)
def test_silent_units_rule(relu_zero: list[float], verdict: str) -> None:
    n = len(relu_zero)
    runs = {f: _activity(f, [0.0] * n, [0.0] * n) for f in FORMS}
    runs["relu"] = _activity("relu", relu_zero, [0.0] * n)
    rows = {f: {"ffn_zero_fraction": 0.0, "ffn_near_zero_fraction": 0.0} for f in FORMS}
    assert llm_ffn.claim_silent(runs, rows, "cmd", "tiny").verdict == verdict


@pytest.mark.parametrize(
    ("dead", "verdict"),
    [([0.2, 0.22, 0.25], "supported"), ([0.05, 0.04, 0.06], "nuanced"),
     ([0.0, 0.002, 0.001], "not_reproduced"), ([0.3], "untestable")],
    ids=["problem", "some", "none", "one-seed"],
)
def test_dead_units_rule(dead: list[float], verdict: str) -> None:
    n = len(dead)
    runs = {f: _activity(f, [0.0] * n, [0.0] * n) for f in FORMS}
    runs["relu2"] = _activity("relu2", [0.0] * n, dead)
    assert llm_ffn.claim_dead(runs, "cmd", "tiny").verdict == verdict


def test_no_claim_cites_a_result_this_run_did_not_measure() -> None:
    import inspect

    assert "development runs" not in inspect.getsource(llm_ffn)


# ------------------------------------------------------------- the whole experiment, tiny


def test_experiment_result_schema(corpus) -> None:
    calls = []
    runs = run_forms(TINY, progress=lambda d, t, m="": calls.append((d, t, m)))
    result = build_result(TINY, quick=True, runs=runs)
    assert [r["ffn"] for r in result.rows] == list(FORMS)
    for row in result.rows:
        for key in ("params", "val_bits_per_char", "ffn_zero_fraction", "ffn_dead_fraction",
                    "tokens_per_second"):  # fmt: skip
            assert isinstance(row[key], int | float), key
    assert result.data["corpus"]["sha256"] == corpus.sha256
    assert result.data["python_version"] == sys.version.split()[0]
    assert set(result.data["floors"]) == {"unigram", "bigram"}
    assert [c.source for c in result.claims] == [
        "Li et al. 2022", "Mirzadeh et al. 2023", "Shazeer 2020", "explainer"
    ]  # fmt: skip
    assert all(c.command == "gradsight lab --only llm_ffn --quick" for c in result.claims)
    assert len(result.figures) == 4 and all(f.svg.startswith("<?xml") for f in result.figures)
    total = len(FORMS) * TINY.steps
    assert calls[0] == (0, total, "7 forms x 1 seed(s) x 12 steps")
    assert calls[-1][:2] == (total, total)
    assert "1 seed" in result.scale
