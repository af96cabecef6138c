"""Answers to the explainer's follow-up interview questions, built from the lab's own numbers.

``answers(results)`` takes the :class:`~gradsight.lab.registry.ExperimentResult` list of a lab
run and returns, for each question, two or three sentences that cite what this run measured.
Every number comes from a claim's evidence (looked up by claim id), so an answer never states a
number the run did not produce: a sentence whose experiment was not run (``--only``) is left
out, and a general sentence that needs no number takes its place.

>>> answers([])[0]["question"]
'How do ReLU derivatives affect gradient flow in very deep networks?'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gradsight.lab.registry import ExperimentResult

Sentence = Callable[["Facts"], "str | None"]


class Facts:
    """Claim evidence of one lab run, looked up by claim id and key path; missing → None."""

    def __init__(self, results: Sequence[ExperimentResult]) -> None:
        # a claim is found as "experiment.id" whether or not its own id carries the prefix
        self.claims: dict[str, Any] = {}
        for r in results:
            for c in r.claims:
                self.claims[c.id] = c
                if not c.id.startswith(r.name + "."):
                    self.claims[f"{r.name}.{c.id}"] = c
        self.data = {r.name: r.data for r in results}

    def ev(self, claim_id: str, *path: str) -> Any:
        """``claims[claim_id].evidence[path[0]][path[1]]...`` or None when anything is missing."""
        claim = self.claims.get(claim_id)
        if claim is None:
            return None
        value: Any = claim.evidence
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def verdict(self, claim_id: str) -> str | None:
        claim = self.claims.get(claim_id)
        return claim.verdict if claim is not None else None

    def num(self, claim_id: str, *path: str) -> float | None:
        """Like :meth:`ev` but only a finite number (else None)."""
        v = self.ev(claim_id, *path)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (
            float("inf"), float("-inf")
        ):
            return None
        return float(v)


def _all(*values: Any) -> bool:
    return all(v is not None for v in values)


def _pct(v: float) -> str:
    return f"{v:.0%}" if v >= 0.1 or v == 0 else f"{v:.1%}"


# ---------------------------------------------------------------- Q1 gradient flow, depth

def _q1_derivative(f: Facts) -> str | None:
    if f.verdict("derivatives.sigmoid_tanh_bounds") is None:
        return None
    s20 = f.num("derivatives.sigmoid_tanh_bounds", "sigmoid_bound_20_layers")
    if s20 is None:
        return None
    return (
        "ReLU's derivative is exactly 1 on every active unit (checked against autograd), so "
        "unlike sigmoid, whose derivative never exceeds 0.25 "
        f"(0.25^20 ≈ {s20:.0e} over 20 layers), it does not shrink the gradient by itself."
    )


def _q1_flow(f: Facts) -> str | None:
    reach = "gradient_flow.relu_reaches_20_layers"
    vanish = "gradient_flow.sigmoid_vanishes_20_layers"
    ratio_default = f.num(reach, "pytorch_default_first_over_last")
    ratio_he = f.num(reach, "he_first_over_last")
    sig = f.num(vanish, "xavier_first_over_last")
    sig_init = "Xavier"
    if sig is None:
        sig, sig_init = f.num(vanish, "pytorch_default_first_over_last"), "PyTorch's default"
    if not _all(ratio_he, sig):
        return None
    extra = (
        f", but {ratio_default:.2g} with PyTorch's default init" if ratio_default is not None else ""
    )
    return (
        "At initialization in our 20-layer MLPs the first layer's weight gradient relative to the "
        f"last layer's was {sig:.2g} with sigmoid ({sig_init} init) and {ratio_he:.2g} with ReLU "
        f"under He init{extra}: the derivative alone does not decide it, the weight scale does too."
    )


def _q1_he(f: Facts) -> str | None:
    cid = "he2015.he_trains_xavier_stalls"
    depth = f.num(cid, "depth")
    he = f.num(cid, "he_final_train_acc_median")
    xa = f.num(cid, "xavier_final_train_acc_median")
    if not _all(depth, he, xa):
        return None
    steps = f.num(cid, "steps")
    in_steps = f" in {steps:.0f} steps" if steps is not None else " in the same steps"
    return (
        f"Because about half the units are off, each ReLU layer halves the signal's variance unless "
        f"σ_w² = 2 (He init): our {depth:.0f}-layer ReLU MLP reached {_pct(he)} training "
        f"accuracy from He init and {_pct(xa)} from Xavier init{in_steps} (verdict: "
        f"{f.verdict(cid)})."
    )


def _q1_general(f: Facts) -> str | None:
    return (
        "In very deep networks what reaches the first layer is the product of every layer's "
        "derivative and weight scale, so ReLU's derivative of 1 only helps when the init keeps "
        "that product near 1."
    )


# ---------------------------------------------------------------- Q2 trade-offs

def _q2_cost(f: Facts) -> str | None:
    cid = "cost.relu_cheaper"
    sig, tanh, gelu = (f.num(cid, f"{r}_over_relu") for r in ("sigmoid", "tanh", "gelu"))
    share = f.num(cid, "relu_share_of_width256_layer")
    if not _all(sig, tanh, gelu):
        return None
    tail = (
        f", yet ReLU was only {_pct(share)} of a width-256 Linear+ReLU layer's time, so the "
        "matrix multiply dominates" if share is not None else ""
    )
    return (
        f"ReLU is the cheapest to compute — forward+backward, sigmoid took {sig:.1f}×, tanh "
        f"{tanh:.1f}× and GELU {gelu:.1f}× its time in our CPU timings{tail}."
    )


def _q2_speed(f: Facts) -> str | None:
    cid = "training_speed.relu_converges_faster"
    won = f.num(cid, "relu_faster_settings")
    total = f.num(cid, "settings")
    lost = f.num(cid, "sigmoid_faster_settings")
    if not _all(won, total):
        return None
    neither = total - won - (lost or 0)
    budget = f.num(cid, "step_budget")
    lost_text = f", sigmoid first in {lost:.0f}" if lost else ""
    neither_text = (
        f", neither within {budget:.0f} steps in {neither:.0f}" if neither and budget is not None
        else f", neither in {neither:.0f}" if neither else ""
    )
    return (
        f"It reached the target accuracy before sigmoid in {won:.0f} of our {total:.0f} settings "
        f"(data set × depth × optimizer × init){lost_text}{neither_text}."
    )


def _q2_llm(f: Facts) -> str | None:
    cid = "llm_ffn.relu_costs_little"
    gaps = f.ev(cid, "gaps")
    if not isinstance(gaps, list) or not gaps:
        return None
    parts = []
    for g in gaps:
        rel = g.get("gap_relative") if isinstance(g, dict) else None
        if isinstance(rel, (int, float)):
            parts.append(f"{g.get('b')} {rel:+.1%}")
    if not parts:
        return None
    n = min((g.get("n_seeds") or 0) for g in gaps if isinstance(g, dict))
    return (
        "In our small character-level transformer ReLU's validation bits/char differed from "
        + " and ".join(parts) + f" relative to the other form (mean over {n} seeds; verdict on "
        f"'ReLU costs little': {f.verdict(cid)})."
    )


def _failed(f: Facts) -> list[tuple[str, str, float | None]]:
    """(lr, "k/n" runs that collapsed or diverged, dead fraction of the collapsed) per learning
    rate where any run failed, from dead_neurons.large_lr_kills."""
    cid = "dead_neurons.large_lr_kills"
    failed = f.ev(cid, "failed_runs_by_lr")
    dead = f.ev(cid, "dead_at_end_collapsed_by_lr") or {}
    if not isinstance(failed, dict):
        return []
    return [(lr, n, dead.get(lr)) for lr, n in failed.items()
            if isinstance(n, str) and not n.startswith("0/")]


def _q2_dead(f: Facts) -> str | None:
    cid = "dead_neurons.large_lr_kills"
    trained = f.ev(cid, "dead_at_end_trained_by_lr")
    if not isinstance(trained, dict) or not trained:
        return None
    lo, hi = min(trained.values()), max(trained.values())
    failed = _failed(f)
    tail = (
        "; the units die in bulk only in runs whose step was too large to train at all ("
        + ", ".join(f"{n} at lr {lr}" + ("" if d is None else f", {_pct(d)} dead")
                    for lr, n, d in failed) + ")"
        if failed else ""
    )
    return (
        f"The price of a zero derivative is units that can switch off: our ReLU MLPs that trained "
        f"ended with {_pct(lo)}–{_pct(hi)} of hidden units dead{tail}."
    )


def _q2_general(f: Facts) -> str | None:
    return (
        "Smooth activations (GELU, SiLU, ELU) cost more per element and never give exact zeros, "
        "but they keep a gradient everywhere."
    )


# ---------------------------------------------------------------- Q3 dead neurons

def _q3_kill(f: Facts) -> str | None:
    cid = "dead_neurons.large_lr_kills"
    lo, lo_lr = f.num(cid, "dead_at_smallest_lr"), f.num(cid, "smallest_lr")
    top, top_lr = f.num(cid, "dead_at_most_dead_trained_lr"), f.num(cid, "most_dead_trained_lr")
    stay = f.num(cid, "still_dead_at_end_trained")
    if not _all(lo, lo_lr, top, top_lr):
        return None
    tail = (
        f"; of the units dead at mid-training {_pct(stay)} were still dead at the end"
        if stay is not None else ""
    )
    failed = _failed(f)
    fail = (
        "; larger steps did not train at all (" + ", ".join(f"{n} runs at lr {lr}" for lr, n, _ in failed)
        + " collapsed or diverged), so judge dead units on runs that train"
        if failed else ""
    )
    most = (
        "no more at any larger learning rate that trained" if top_lr == lo_lr
        else f"at most {_pct(top)} (at {top_lr:g})"
    )
    return (
        f"First measure it — in our ReLU MLP runs that trained, the dead fraction was {_pct(lo)} "
        f"at learning rate {lo_lr:g} and {most}{tail} (verdict on 'large "
        f"learning rates kill ReLU neurons permanently': {f.verdict(cid)}){fail}."
    )


def _q3_remedies(f: Facts) -> str | None:
    cid = "dead_neurons.remedies_prevent"
    base = f.num(cid, "baseline_dead")
    rem = f.ev(cid, "remedy_dead")
    if base is None or not isinstance(rem, dict) or not rem:
        return None
    lr = f.num(cid, "lr")
    floor = f.num(cid, "small_lr_dead")
    status = f.ev(cid, "remedy_status") or {}
    parts = ", ".join(
        f"{k} {_pct(v)}" + (f" ({status[k]})" if isinstance(status, dict) and k in status else "")
        if isinstance(v, (int, float)) else f"{k} failed to train"
        for k, v in rem.items()
    )
    at = f" at learning rate {lr:g}, the one that trains and loses the most units," if lr is not None else ""
    floor_text = f" (smallest learning rate: {_pct(floor)})" if floor is not None else ""
    verdict = f.verdict(cid)
    judged = (
        " — so this run had nothing for a remedy to prevent, and it judges none"
        if verdict == "untestable" else f" (verdict: {verdict})"
    )
    return (
        f"Then test the remedies where the network still trains, not where it diverges:{at} our "
        f"baseline ended with {_pct(base)} dead{floor_text}, and with each remedy {parts}{judged}."
    )


def _q3_revive(f: Facts) -> str | None:
    cid = "dead_neurons.remedies_prevent"
    before, after = f.num(cid, "revival_dead_before"), f.num(cid, "revival_dead_after")
    if not _all(before, after):
        return None
    return (
        "Units that are already dead can be re-initialized: gradsight's mon.revive_dead took "
        f"the dead fraction from {_pct(before)} to {_pct(after)} by the end of training."
    )


def _q3_general(f: Facts) -> str | None:
    return (
        "Watch the fraction of units that are zero for every sample during training (gradsight."
        "watch reports it per layer), and treat a rising value as a sign the learning rate is "
        "too high."
    )


# ---------------------------------------------------------------- Q4 choosing another activation

def _q4_llm(f: Facts) -> str | None:
    order = f.ev("llm_ffn.gated_beat_plain", "our_ordering")
    if not isinstance(order, list) or not order:
        return None
    pairs = f.ev("llm_ffn.gated_beat_plain", "pairs") or []
    won = [p["b"] for p in pairs if isinstance(p, dict) and p.get("outcome") == "a_higher"]
    n = min((p.get("n_seeds") or 0) for p in pairs if isinstance(p, dict)) if pairs else 0
    gated = (
        f"; over {n} seeds the gated forms that beat their plain form beyond tolerance and seed "
        f"spread were {', '.join(won) or 'none'} (verdict: {f.verdict('llm_ffn.gated_beat_plain')})"
        if pairs else ""
    )
    return (
        "In transformer feed-forward layers, where modern LLMs use GELU or gated units such as "
        f"SwiGLU, our small character model ranked the forms (best first) {', '.join(order[:4])}"
        + (", …" if len(order) > 4 else "") + gated + "."
    )


def _q4_speed(f: Facts) -> str | None:
    outcomes = f.ev("training_speed.relu_converges_faster", "outcome_per_setting")
    if not isinstance(outcomes, dict) or not outcomes:
        return None
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[str(outcome)] = counts.get(str(outcome), 0) + 1
    parts = ", ".join(f"{o} in {n}" for o, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    winners = {o for o in counts if o.endswith(" faster")}
    tail = (
        ": the answer changed with the setting" if len(winners) > 1
        else ": no setting where the other activation won" if winners else ""
    )
    return f"Across our {len(outcomes)} training-speed settings the outcome was {parts}{tail}."


def _q4_general(f: Facts) -> str | None:
    return (
        "Choose something else when dead units or the zero gradient hurt (Leaky ReLU, ELU), when "
        "a smooth derivative matters (GELU/SiLU in transformers, second-order methods), or when "
        "an output must be bounded (sigmoid for probabilities and gates, tanh for states)."
    )


# ---------------------------------------------------------------- Q5 stability

def _q5_saturation(f: Facts) -> str | None:
    cid = "saturation.large_weights_saturate_sigmoid_tanh"
    claim = f.claims.get(cid)
    if claim is None:
        return None
    prefix = "tanh_saturated_at_sigma_w_"
    scales = {}
    for key, value in claim.evidence.items():
        if key.startswith(prefix) and isinstance(value, (int, float)):
            try:
                scales[float(key[len(prefix):])] = float(value)
            except ValueError:
                continue
    if len(scales) < 2:
        return None
    lo, hi = min(scales), max(scales)
    return (
        f"Saturating activations stall learning when weights grow: the fraction of tanh units "
        f"sitting where the derivative is nearly zero went from {_pct(scales[lo])} at weight "
        f"scale σ_w = {lo:g} to {_pct(scales[hi])} at σ_w = {hi:g}."
    )


def _q5_bounds(f: Facts) -> str | None:
    if f.verdict("derivatives.sigmoid_tanh_bounds") is None:
        return None
    return (
        "An activation's derivative bound caps how much gradient each layer can pass (0.25 for "
        "sigmoid, 1 for tanh and ReLU), so bounded-below-one derivatives make gradients vanish "
        "with depth, while ReLU's 1 makes the weights alone decide between vanishing and exploding."
    )


def _q5_dead(f: Facts) -> str | None:
    failed = _failed(f)
    if not failed:
        return None
    return (
        "Too large a step fails outright rather than slowly: in our ReLU MLP sweep "
        + ", ".join(f"{n} runs at learning rate {lr}" for lr, n, _ in failed)
        + " collapsed to chance accuracy or diverged to NaN, and their dead units are one "
        "symptom of that, not its cause."
    )


def _q5_training(f: Facts) -> str | None:
    cid = "training_speed.relu_converges_faster"
    sat = f.ev(cid, "saturated_at_end")
    div = f.ev(cid, "diverged_runs_at_best_lr")
    runs = f.ev(cid, "runs_at_best_lr")
    if not isinstance(sat, dict) or not any(isinstance(v, (int, float)) for v in sat.values()):
        return None
    sat_text = ", ".join(f"{a} {_pct(v)}" for a, v in sat.items() if isinstance(v, (int, float)))
    div_text = (
        "; runs that diverged at each activation's best learning rate: "
        + ", ".join(f"{a} {div[a]}/{runs[a]}" for a in div if a in runs)
        if isinstance(div, dict) and isinstance(runs, dict) else ""
    )
    return (
        "During training, not only at initialization, gradsight.watch measured the share of "
        f"saturated units (derivative below 1 % of its maximum) at the end of our MLP runs: "
        f"{sat_text} (median over settings){div_text}."
    )


def _q5_general(f: Facts) -> str | None:
    return (
        "Stable training keeps each layer's gradient gain near one: pair the activation with its "
        "matching init (He for ReLU, Xavier for tanh), normalize, and warm the learning rate up."
    )


QUESTIONS: list[tuple[str, list[Sentence], Sentence]] = [
    (
        "How do ReLU derivatives affect gradient flow in very deep networks?",
        [_q1_derivative, _q1_flow, _q1_he],
        _q1_general,
    ),
    (
        "What are the trade-offs between ReLU and other activation functions?",
        [_q2_cost, _q2_llm, _q2_speed, _q2_dead],
        _q2_general,
    ),
    (
        "How would you handle the dead neuron problem?",
        [_q3_kill, _q3_remedies, _q3_revive],
        _q3_general,
    ),
    (
        "When might you choose a different activation function?",
        [_q4_llm, _q4_speed],
        _q4_general,
    ),
    (
        "How do activation derivatives affect training stability?",
        [_q5_training, _q5_dead, _q5_saturation, _q5_bounds],
        _q5_general,
    ),
]


def answers(results: Sequence[ExperimentResult]) -> list[dict[str, Any]]:
    """One ``{"question", "answer", "measured"}`` per question; ``measured`` says whether the
    answer cites numbers from this run. Two or three sentences each."""
    facts = Facts(results)
    out = []
    for question, candidates, general in QUESTIONS:
        sentences = []
        for make in candidates:
            s = make(facts)
            if s:
                sentences.append(s)
            if len(sentences) == 3:
                break
        measured = bool(sentences)
        if len(sentences) < 2:
            sentences.append(general(facts) or "")
        if len(sentences) < 2:
            sentences.insert(0, "This run did not include the experiments that measure it.")
        out.append({"question": question, "answer": " ".join(sentences), "measured": measured})
    return out
