"""Interview answers: numbers come from the run's claims; missing experiments are skipped."""

from __future__ import annotations

import re

from gradsight.lab.interview import QUESTIONS, Facts, answers
from gradsight.lab.registry import Claim, ExperimentResult


def _result(name: str, claims: dict[str, dict]) -> ExperimentResult:
    return ExperimentResult(
        name=name, title=name, summary="", command=f"gradsight lab --only {name}", quick=True,
        claims=[Claim(id=cid, claim=cid, verdict="supported", evidence=ev, command="c")
                for cid, ev in claims.items()],
    )


PLANTED = [
    _result("derivatives", {"derivatives.sigmoid_tanh_bounds": {"sigmoid_bound_20_layers": 0.25**20}}),
    _result("gradient_flow", {
        # THEORY's ids carry no prefix: Facts finds them as "gradient_flow.<id>" too
        "relu_reaches_20_layers": {"pytorch_default_first_over_last": 2.5e-8, "he_first_over_last": 0.77},
        "sigmoid_vanishes_20_layers": {"xavier_first_over_last": 3.1e-9},
    }),
    _result("cost", {"cost.relu_cheaper": {"sigmoid_over_relu": 2.38, "tanh_over_relu": 6.55,
                                           "gelu_over_relu": 2.98, "relu_share_of_width256_layer": 0.021}}),
    _result("dead_neurons", {
        "dead_neurons.large_lr_kills": {
            "dead_at_end_trained_by_lr": {"0.01": 0.033, "0.1": 0.005},
            "dead_at_smallest_lr": 0.033, "smallest_lr": 0.01,
            "dead_at_most_dead_trained_lr": 0.033, "most_dead_trained_lr": 0.01,
            "still_dead_at_end_trained": 0.8,
            "failed_runs_by_lr": {"0.01": "0/3", "0.1": "0/3", "0.15": "3/3", "0.3": "2/3"},
            "dead_at_end_collapsed_by_lr": {"0.01": None, "0.1": None, "0.15": 0.45, "0.3": 0.66},
        },
        "dead_neurons.remedies_prevent": {"baseline_dead": 0.033, "lr": 0.01, "small_lr_dead": 0.033,
                                          "remedy_dead": {"Leaky ReLU": None, "He init": 0.008,
                                                          "warm-up + cosine": 0.034},
                                          "remedy_status": {"Leaky ReLU": "fails to train",
                                                            "He init": "prevents",
                                                            "warm-up + cosine": "prevents"}},
    }),
    _result("training_speed", {"training_speed.relu_converges_faster": {
        "settings": 8, "relu_faster_settings": 7, "sigmoid_faster_settings": 0, "step_budget": 300,
        "outcome_per_setting": {f"setting {i}": "relu faster" for i in range(7)} | {"setting 7": "neither"},
        "saturated_at_end": {"sigmoid": 0.12, "relu": 0.0},
        "diverged_runs_at_best_lr": {"sigmoid": 0, "relu": 2}, "runs_at_best_lr": {"sigmoid": 24, "relu": 24},
    }}),
    _result("llm_ffn", {
        "llm_ffn.relu_costs_little": {"gaps": [
            {"b": "gelu", "gap_relative": 0.024, "n_seeds": 3, "outcome": "a_higher"},
            {"b": "swiglu", "gap_relative": 0.031, "n_seeds": 3, "outcome": "a_higher"}]},
        "llm_ffn.gated_beat_plain": {"our_ordering": ["geglu", "swiglu", "gelu", "relu2", "reglu"],
                                     "pairs": [{"b": "reglu", "outcome": "a_higher", "n_seeds": 3},
                                               {"b": "geglu", "outcome": "same", "n_seeds": 3},
                                               {"b": "swiglu", "outcome": "a_higher", "n_seeds": 3}]},
    }),
]


def _sentences(text: str) -> int:
    return len(re.findall(r"[.!?](\s|$)", text))


def test_five_questions_in_order():
    qs = [qa["question"] for qa in answers([])]
    assert qs == [q for q, _, _ in QUESTIONS]
    assert len(qs) == 5
    assert "gradient flow in very deep networks" in qs[0]
    assert "dead neuron" in qs[2]


def test_without_results_every_answer_is_general_and_says_so():
    for qa in answers([]):
        assert not qa["measured"]
        assert qa["answer"].startswith("This run did not include")
        assert 2 <= _sentences(qa["answer"]) <= 3


def test_answers_cite_the_planted_numbers():
    out = {qa["question"]: qa for qa in answers(PLANTED)}
    q1, q2, q3, q4, q5 = (out[q] for q, _, _ in QUESTIONS)
    assert q1["measured"]
    assert "0.77" in q1["answer"] and "2.5e-08" in q1["answer"] and "3.1e-09" in q1["answer"]
    assert "sigmoid took 2.4×" in q2["answer"] and "tanh 6.5×" in q2["answer"]
    assert "gelu +2.4%" in q2["answer"] and "3 seeds" in q2["answer"]  # the transformer
    # dead units judged on runs that train; the collapsed runs are named as such
    assert "3.3% at learning rate 0.01" in q3["answer"] and "3/3 runs at lr 0.15" in q3["answer"]
    assert "Leaky ReLU failed to train" in q3["answer"] and "He init 0.8% (prevents)" in q3["answer"]
    assert "before sigmoid in 7 of our 8 settings" in q2["answer"]
    assert "neither within 300 steps in 1" in q2["answer"]
    assert "reglu, swiglu" in q4["answer"]
    # the same outcomes as the claim counts, and a conclusion only the outcomes allow
    assert "relu faster in 7, neither in 1: no setting where the other activation won" in q4["answer"]
    # stability: saturation during training and divergence counts, from this run
    assert "sigmoid 12%" in q5["answer"] and "relu 2/24" in q5["answer"]
    assert "3/3 runs at learning rate 0.15" in q5["answer"]
    for qa in out.values():
        assert 2 <= _sentences(qa["answer"]) <= 3, qa["answer"]


def test_a_setting_won_by_each_activation_says_the_answer_changed():
    mixed = [_result("training_speed", {"training_speed.relu_converges_faster": {
        "outcome_per_setting": {"a": "relu faster", "b": "sigmoid faster", "c": "relu faster"}}})]
    q4 = answers(mixed)[3]["answer"]
    assert "relu faster in 2, sigmoid faster in 1: the answer changed with the setting" in q4


def test_a_missing_number_drops_only_its_sentence():
    partial = [_result("cost", {"cost.relu_cheaper": {"sigmoid_over_relu": 2.0}})]  # tanh/gelu missing
    q2 = answers(partial)[1]
    assert not q2["measured"]
    assert "2.0×" not in q2["answer"]


def test_facts_lookup():
    f = Facts(PLANTED)
    assert f.num("gradient_flow.relu_reaches_20_layers", "he_first_over_last") == 0.77
    assert f.num("relu_reaches_20_layers", "he_first_over_last") == 0.77
    assert f.num("cost.relu_cheaper", "nope") is None
    assert f.num("nope.claim", "x") is None
    assert f.ev("dead_neurons.remedies_prevent", "remedy_dead", "Leaky ReLU") is None
    assert f.verdict("cost.relu_cheaper") == "supported"
