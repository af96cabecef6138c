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
    return (
        "ReLU's derivative is exactly 1 on every active unit (we checked it on 12,001 points "
        "against autograd), so unlike sigmoid, whose derivative never exceeds 0.25 "
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
    return (
        f"Because about half the units are off, each ReLU layer halves the signal's variance unless "
        f"σ_w² = 2 (He init): our {depth:.0f}-layer ReLU MLP reached {_pct(he)} training "
        f"accuracy from He init and {_pct(xa)} from Xavier init in the same steps."
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
    lost_text = f", sigmoid was faster in {lost:.0f}" if lost else ""
    return (
        f"It trained faster than sigmoid in {won:.0f} of our {total:.0f} settings (data set × "
        f"depth × optimizer){lost_text}, so the speed advantage is real but depends on depth, "
        "init and optimizer."
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
    return (
        "The price is quality and dead units: in our small character-level transformer ReLU's "
        "validation bits/char differed from " + " and ".join(parts) + " relative to the other form."
    )


def _q2_dead(f: Facts) -> str | None:
    cid = "dead_neurons.large_lr_kills"
    hi = f.num(cid, "dead_at_largest_lr")
    lr = f.num(cid, "largest_lr")
    if not _all(hi, lr):
        return None
    return (
        f"The price is that a zero derivative can switch units off for good: at learning rate "
        f"{lr:g} {_pct(hi)} of our ReLU MLP's hidden units ended dead."
    )


def _q2_general(f: Facts) -> str | None:
    return (
        "Smooth activations (GELU, SiLU, ELU) cost more per element and never give exact zeros, "
        "but they keep a gradient everywhere."
    )


# ---------------------------------------------------------------- Q3 dead neurons

def _q3_kill(f: Facts) -> str | None:
    cid = "dead_neurons.large_lr_kills"
    lo, hi = f.num(cid, "dead_at_smallest_lr"), f.num(cid, "dead_at_largest_lr")
    lo_lr, hi_lr = f.num(cid, "smallest_lr"), f.num(cid, "largest_lr")
    stay = f.num(cid, "still_dead_at_end")
    if not _all(lo, hi, lo_lr, hi_lr):
        return None
    tail = f"; {_pct(stay)} of the units dead at mid-training were still dead at the end" if stay is not None else ""
    return (
        f"First measure it — in our ReLU MLP the dead fraction went from {_pct(lo)} at learning "
        f"rate {lo_lr:g} to {_pct(hi)} at {hi_lr:g}{tail}."
    )


def _q3_remedies(f: Facts) -> str | None:
    cid = "dead_neurons.remedies_prevent"
    base = f.num(cid, "baseline_dead")
    rem = f.ev(cid, "remedy_dead")
    if base is None or not isinstance(rem, dict) or not rem:
        return None
    lr = f.num(cid, "lr")
    parts = ", ".join(
        f"{k} {_pct(v)}" if isinstance(v, (int, float)) else f"{k} diverged" for k, v in rem.items()
    )
    at = f" (learning rate {lr:g})" if lr is not None else ""
    return (
        f"Then test the remedies rather than trust them: at a learning rate that kills units{at} "
        f"our baseline ended with {_pct(base)} dead, and with each remedy {parts}."
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
    return (
        "In transformer feed-forward layers, where modern LLMs use GELU or gated units such as "
        f"SwiGLU, our small character model ranked the forms (best first) {', '.join(order[:4])}"
        + (", …" if len(order) > 4 else "") + "."
    )


def _q4_speed(f: Facts) -> str | None:
    best = f.ev("training_speed.relu_converges_faster", "fastest_activation")
    if not isinstance(best, dict) or not best:
        return None
    counts: dict[str, int] = {}
    for act in best.values():
        counts[str(act)] = counts.get(str(act), 0) + 1
    parts = ", ".join(f"{a} in {n}" for a, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return (
        f"Across our {len(best)} training-speed settings the fastest activation to the target "
        f"accuracy was {parts}, so the answer depends on depth, init and optimizer."
    )


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
    cid = "dead_neurons.large_lr_kills"
    hi, lr = f.num(cid, "dead_at_largest_lr"), f.num(cid, "largest_lr")
    if not _all(hi, lr):
        return None
    return (
        f"ReLU's zero derivative makes large steps risky in another way: at learning rate {lr:g} "
        f"{_pct(hi)} of our units stopped receiving any gradient."
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
        [_q2_cost, _q2_speed, _q2_dead, _q2_llm],
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
        [_q5_bounds, _q5_saturation, _q5_dead],
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
