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
        "dead_neurons.large_lr_kills": {"dead_at_smallest_lr": 0.033, "dead_at_largest_lr": 0.656,
                                        "smallest_lr": 0.01, "largest_lr": 0.3, "still_dead_at_end": 1.0},
        "dead_neurons.remedies_prevent": {"baseline_dead": 0.445, "lr": 0.15,
                                          "remedy_dead": {"Leaky ReLU": None, "He init": 0.463,
                                                          "warm-up + cosine": 0.034}},
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
    q1, q2, q3, _, q5 = (out[q] for q, _, _ in QUESTIONS)
    assert q1["measured"]
    assert "0.77" in q1["answer"] and "2.5e-08" in q1["answer"] and "3.1e-09" in q1["answer"]
    assert "sigmoid took 2.4×" in q2["answer"] and "tanh 6.5×" in q2["answer"]
    assert "2.1%" in q2["answer"]
    assert "3.3% at learning rate 0.01 to 66% at 0.3" in q3["answer"]
    assert "Leaky ReLU diverged" in q3["answer"] and "warm-up + cosine 3.4%" in q3["answer"]
    assert "0.3 66%" in q5["answer"] or "66%" in q5["answer"]
    for qa in out.values():
        assert 2 <= _sentences(qa["answer"]) <= 3, qa["answer"]


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
