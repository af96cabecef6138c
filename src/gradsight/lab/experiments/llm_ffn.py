"""Why ReLU's derivative matters for LLMs: the feed-forward activation of a character transformer.

One small decoder-only transformer (:mod:`gradsight.lab.models.char_transformer`) is trained per
feed-forward form -- relu, gelu, silu, relu2 (squared ReLU), reglu, geglu, swiglu -- on the
characters of ``pydoc_data.topics`` (:mod:`gradsight.lab.text`), with the same seed, the same
data order, the same steps and the same optimizer (AdamW, linear warm-up then cosine decay).
Gated forms get 2/3 of the hidden width so every model holds the same parameters within 2 %.

Measured per form, on a fixed validation pass at every evaluation point:

* validation bits per character ``= mean cross-entropy (nats) / ln 2``, over training and final,
  mean and spread over seeds;
* the fraction of FFN hidden activations ``h = act(up(x))`` (shape ``(B, T, h)``) that are
  exactly zero -- what a sparse inference kernel could skip -- and, for every form, the fraction
  with ``|h| < 1 % of the layer's max |h|`` over the pass (the only notion of "near silent" a
  smooth activation has);
* dead units: hidden units that are exactly zero for every token of the validation pass;
* per-layer gradient flow at the FFN activations ``||dL/dh||`` over the last stretch of training
  (``flow_steps``), where every run trains inside ``gradsight.watch``; its summary of every
  activation site (dead, saturated fraction, ``||dL/dy||``, E[f']) and its findings are kept per
  run. The rest of training runs unwatched so that the wall time per step is the model's own;
* wall time per optimizer step and tokens/second (noisy on a shared CPU; stated as such).

A unigram and a bigram model of the same corpus give the floors a transformer must beat.
Four claims are settled from these numbers with rules fixed before the run (see
:data:`TOLERANCE` and the ``claim_*`` functions); nothing is tuned for a verdict.

Training and measuring one form (:func:`train_form`, the :class:`Recipe`) lives in
:mod:`gradsight.lab.experiments.llm_ffn_trial`, the module the lab versions trials by; this one
holds the claims, figures and text built from their results.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from gradsight.activations import activation
from gradsight.errors import GradsightError
from gradsight.lab.experiments.llm_ffn_trial import (  # the trials' side
    FORMS,
    NEAR_ZERO_REL,
    QUICK,
    RECIPES,
    FormRun,
    Recipe,
    form_run,
    recipe,
    train_form,
    train_trial,
)
from gradsight.lab.registry import (
    MIN_SEEDS,
    Claim,
    ExperimentResult,
    Figure,
    Progress,
    command_for,
    seeded,
    seeds,
    split_experiment,
)
from gradsight.lab.text import Corpus, load_corpus, ngram_floors

NAME = "llm_ffn"
TITLE = (
    "Why ReLU's derivative matters for LLMs: feed-forward activations in a character transformer"
)

# gated -> its plain form, and the forms whose units can die (f' exactly 0 on a half-line): the
# catalog's facts
PLAIN_OF: dict[str, str] = {f: activation(f).inner.name for f in FORMS if activation(f).is_gated}
ZERO_CAPABLE: tuple[str, ...] = tuple(f for f in FORMS if activation(f).can_die)

# A difference in validation bits/char "counts" when it exceeds both this fraction of the
# reference value and the seed spread (sample std of the paired per-seed differences). Fixed
# before any run: 1 % of ~2 bits/char is ~0.02 bits/char, about the spread Shazeer reports
# between runs (0.003-0.010 nats on ~2 nats) scaled up for our much smaller models.
TOLERANCE = 0.01
MANY_SILENT = 0.5  # claim 1: "many" = at least half of ReLU's FFN activations exactly zero
DEAD_PROBLEM = 0.10  # claim 4: a problem when >= 10 % of a form's FFN units are dead
FEW_SILENT = 0.2  # claim 1: not reproduced below 20 %
DEAD_NONE = 0.01  # claim 4: not reproduced when every layer of every form has < 1 % dead units

# Shazeer 2020, "GLU Variants Improve Transformer", Table 1: held-out log-perplexity on C4
# after 65,536 steps (T5-base-sized encoder-decoder, d_model 768, d_ff 3072 / 2048 gated).
SHAZEER_TABLE1: dict[str, float] = {
    "geglu": 1.942,
    "swiglu": 1.944,
    "reglu": 1.953,
    "gelu": 1.983,
    "silu": 1.994,  # Shazeer's "Swish" (beta = 1), i.e. SiLU
    "relu": 1.997,
}


# ---------------------------------------------------------------------------- aggregation


def _mean_std(xs: list[float]) -> tuple[float, float | None]:
    """Mean and sample std (ddof 1); std is None for a single value."""
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def _paired_gap(runs: dict[str, list[FormRun]], worse: str, better: str) -> dict[str, Any]:
    """Per-seed ``bpc(worse) - bpc(better)``: positive when ``better`` is better."""
    by_seed = {r.seed: r.final_bpc for r in runs[better]}
    gaps = [r.final_bpc - by_seed[r.seed] for r in runs[worse] if r.seed in by_seed]
    mean, std = _mean_std(gaps)
    ref = statistics.fmean(by_seed.values())
    margin = max(TOLERANCE * ref, std or 0.0)
    outcome = gap_outcome(gaps, TOLERANCE * ref)
    return {
        "a": worse,
        "b": better,
        "gap_bits_per_char": mean,  # a minus b
        "gap_std": std,
        "gap_relative": mean / ref,
        "n_seeds": len(gaps),
        "margin": margin,  # a gap counts when |gap| > margin
        "counts": abs(mean) > margin,
        "outcome": outcome,  # gap_outcome(a - b per seed, tolerance): a_higher = a worse
        "per_seed": [round(g, 4) for g in gaps],
    }


def _rows(runs: dict[str, list[FormRun]]) -> list[dict[str, Any]]:
    rows = []
    for form in FORMS:
        rs = runs[form]
        bpc, bpc_std = _mean_std([r.final_bpc for r in rs])
        last_layers = [la for r in rs for la in r.final_layers]
        rows.append(
            {
                "ffn": form,
                "params": rs[0].params,
                "ffn_params": rs[0].ffn_params,
                "hidden": rs[0].hidden,
                "val_bits_per_char": round(bpc, 4),
                "val_bits_per_char_std": None if bpc_std is None else round(bpc_std, 4),
                "ffn_zero_fraction": round(statistics.fmean(r.zero_fraction[-1] for r in rs), 4),
                "ffn_near_zero_fraction": round(
                    statistics.fmean(r.near_zero_fraction[-1] for r in rs), 4
                ),
                "ffn_dead_fraction": round(statistics.fmean(r.dead_fraction[-1] for r in rs), 4),
                "ffn_dead_fraction_max_layer": round(
                    max(la["dead_fraction"] for la in last_layers), 4
                ),
                "ms_per_step": round(statistics.fmean(r.ms_per_step for r in rs), 2),
                "tokens_per_second": round(statistics.fmean(r.tokens_per_second for r in rs)),
                "seeds": len(rs),
            }
        )
    return rows


# ---------------------------------------------------------------------------- claims
#
# One rule of evidence for every claim below (:func:`gap_outcome`, :func:`level_outcome`): a
# claim is decided only by a run with at least MIN_SEEDS seeds, a difference counts only when
# it is beyond both the tolerance and the seed spread, and a claim can come out either way
# under the same standard.


def gap_outcome(diffs: list[float], tolerance: float, min_seeds: int = MIN_SEEDS) -> str:
    """How two forms compare from per-seed paired differences ``d = value(a) - value(b)``.

    With ``m`` the mean and ``s`` the sample std of ``d``: fewer than ``min_seeds`` seeds →
    ``"too_few_seeds"``; ``m > max(tolerance, s)`` → ``"a_higher"``; ``m < -max(tolerance, s)``
    → ``"b_higher"``; ``|m| <= tolerance`` and ``s <= tolerance`` → ``"same"`` (within the
    tolerance, and the seeds resolve it); otherwise ``"unresolved"`` (the seed spread is wider
    than the difference).

    >>> gap_outcome([0.05, 0.06, 0.04], 0.02)
    'a_higher'
    >>> gap_outcome([-0.05, -0.06, -0.04], 0.02)
    'b_higher'
    >>> gap_outcome([0.001, -0.002, 0.003], 0.02)
    'same'
    >>> gap_outcome([0.05, -0.05, 0.01], 0.02)
    'unresolved'
    >>> gap_outcome([0.05], 0.02)
    'too_few_seeds'
    """
    if len(diffs) < min_seeds:
        return "too_few_seeds"
    m, s = statistics.fmean(diffs), statistics.stdev(diffs)
    margin = max(tolerance, s)
    if m > margin:
        return "a_higher"
    if m < -margin:
        return "b_higher"
    if abs(m) <= tolerance and s <= tolerance:
        return "same"
    return "unresolved"


def level_outcome(values: list[float], threshold: float, min_seeds: int = MIN_SEEDS) -> str:
    """Whether per-seed ``values`` lie above or below ``threshold``, seed spread included.

    Fewer than ``min_seeds`` → ``"too_few_seeds"``; ``mean - std >= threshold`` → ``"above"``;
    ``mean + std < threshold`` → ``"below"``; otherwise ``"unresolved"``.

    >>> level_outcome([0.7, 0.75, 0.8], 0.5), level_outcome([0.1, 0.12, 0.11], 0.5)
    ('above', 'below')
    >>> level_outcome([0.3, 0.7, 0.5], 0.5), level_outcome([0.9], 0.5)
    ('unresolved', 'too_few_seeds')
    """
    if len(values) < min_seeds:
        return "too_few_seeds"
    m, s = statistics.fmean(values), statistics.stdev(values)
    if m - s >= threshold:
        return "above"
    if m + s < threshold:
        return "below"
    return "unresolved"


def _too_few(n: int) -> str:
    return (
        f"This run has {n} seed(s); every claim here is decided only by a run with at least "
        f"{MIN_SEEDS} (run the quick lab, which has {len(QUICK.seeds)})."
    )


def silent_verdict(relu_zero_per_seed: list[float]) -> tuple[str, str]:
    """Verdict on "ReLU leaves many FFN units silent" from the per-seed fraction of ReLU FFN
    activations that are exactly zero: above :data:`MANY_SILENT` (seed spread included) →
    supported; below :data:`FEW_SILENT` → not_reproduced; otherwise nuanced; fewer than
    :data:`MIN_SEEDS` seeds → untestable.

    >>> silent_verdict([0.78, 0.77, 0.8])[0], silent_verdict([0.05, 0.06, 0.04])[0]
    ('supported', 'not_reproduced')
    >>> silent_verdict([0.3, 0.35, 0.32])[0], silent_verdict([0.8])[0]
    ('nuanced', 'untestable')
    """
    z = relu_zero_per_seed
    many = level_outcome(z, MANY_SILENT)
    if many == "too_few_seeds":
        return "untestable", _too_few(len(z))
    head = (
        f"ReLU FFN activations exactly zero per seed: {', '.join(f'{v:.1%}' for v in z)} "
        f"(mean {statistics.fmean(z):.1%}, std {statistics.stdev(z):.1%})."
    )
    if many == "above":
        return "supported", head + f" At least {MANY_SILENT:.0%} in every reading of the spread."
    if level_outcome(z, FEW_SILENT) == "below":
        return "not_reproduced", head + f" Below {FEW_SILENT:.0%}: the sparsity Li et al. " \
            "report did not appear at our scale."
    return "nuanced", head + f" Between {FEW_SILENT:.0%} and {MANY_SILENT:.0%}, or the seeds " \
        "straddle the line."


def relu_cost_verdict(outcomes: dict[str, str]) -> tuple[str, str]:
    """Verdict on "ReLU costs little quality vs GELU/SwiGLU" from :func:`gap_outcome` of
    (ReLU, other) bits/char per other form: ReLU not worse by a counting gap ("same" or
    "b_higher") against every form → supported; worse by a counting gap against every form →
    not_reproduced (Mirzadeh et al. trained far larger models); any "too_few_seeds" →
    untestable; otherwise nuanced.

    >>> relu_cost_verdict({"gelu": "same", "swiglu": "b_higher"})[0]
    'supported'
    >>> relu_cost_verdict({"gelu": "a_higher", "swiglu": "a_higher"})[0]
    'not_reproduced'
    >>> relu_cost_verdict({"gelu": "a_higher", "swiglu": "unresolved"})[0]
    'nuanced'
    """
    if any(o == "too_few_seeds" for o in outcomes.values()):
        return "untestable", ""
    little = [k for k, o in outcomes.items() if o in ("same", "b_higher")]
    costs = [k for k, o in outcomes.items() if o == "a_higher"]
    if len(little) == len(outcomes):
        return "supported", "ReLU is not worse by a counting gap than " + ", ".join(little) + "."
    if len(costs) == len(outcomes):
        return "not_reproduced", (
            "ReLU is worse by a counting gap than " + ", ".join(costs) + ": at our scale ReLU "
            "costs more than a little; Mirzadeh et al. (2023) train billion-parameter models "
            "far longer, so this does not refute them."
        )
    return "nuanced", (
        "Against " + ", ".join(f"{k}: {o.replace('_', ' ')}" for k, o in outcomes.items())
        + " (a_higher = ReLU worse)."
    )


def gated_verdict(outcomes: dict[str, str]) -> tuple[str, str]:
    """Verdict on "gated units beat their plain forms" from :func:`gap_outcome` of (plain,
    gated) bits/char per gated form: every gated form better by a counting gap ("a_higher") →
    supported; none better (plain better or the same) → not_reproduced; any "too_few_seeds" →
    untestable; otherwise nuanced.

    >>> gated_verdict({"reglu": "a_higher", "geglu": "a_higher", "swiglu": "a_higher"})[0]
    'supported'
    >>> gated_verdict({"reglu": "same", "geglu": "b_higher", "swiglu": "same"})[0]
    'not_reproduced'
    >>> gated_verdict({"reglu": "a_higher", "geglu": "unresolved", "swiglu": "same"})[0]
    'nuanced'
    """
    if any(o == "too_few_seeds" for o in outcomes.values()):
        return "untestable", ""
    wins = [k for k, o in outcomes.items() if o == "a_higher"]
    if len(wins) == len(outcomes):
        return "supported", "Every gated form beats its plain form by a counting gap."
    if not wins and all(o in ("same", "b_higher") for o in outcomes.values()):
        return "not_reproduced", (
            "No gated form beats its plain form by a counting gap: the gain Shazeer (2020) "
            "found on C4 after 65k steps did not appear at our scale."
        )
    return "nuanced", (
        "Gated forms that win by a counting gap: " + (", ".join(wins) or "none") + "; the rest "
        "are the same, worse, or unresolved by the seed spread."
    )


def dead_verdict(dead_per_seed: list[float], worst_layer_per_seed: list[float]) -> tuple[str, str]:
    """Verdict on "dead units are a problem in transformer FFN layers" from, per seed, the
    largest dead fraction of a zero-capable form (mean over layers) and its worst single layer:
    above :data:`DEAD_PROBLEM` → supported; worst layer below :data:`DEAD_NONE` → not_reproduced
    (units rarely die in this recipe: AdamW, warm-up, clipping, few steps); otherwise nuanced;
    fewer than :data:`MIN_SEEDS` seeds → untestable.

    >>> dead_verdict([0.2, 0.25, 0.22], [0.3, 0.3, 0.3])[0]
    'supported'
    >>> dead_verdict([0.004, 0.0, 0.002], [0.008, 0.0, 0.004])[0]
    'not_reproduced'
    >>> dead_verdict([0.04, 0.05, 0.03], [0.06, 0.07, 0.05])[0]
    'nuanced'
    """
    problem = level_outcome(dead_per_seed, DEAD_PROBLEM)
    if problem == "too_few_seeds":
        return "untestable", _too_few(len(dead_per_seed))
    if problem == "above":
        return "supported", f"At least {DEAD_PROBLEM:.0%} of a form's FFN units dead."
    if level_outcome(worst_layer_per_seed, DEAD_NONE) == "below":
        return "not_reproduced", (
            f"Every layer of every form keeps fewer than {DEAD_NONE:.0%} dead units: at our "
            "scale and recipe units rarely die, which does not show they never do."
        )
    return "nuanced", (
        f"Some units die, fewer than {DEAD_PROBLEM:.0%} of a form's, or the seeds straddle the line."
    )


def _per_seed(runs: dict[str, list[FormRun]], form: str, fn: Callable[[FormRun], float]) -> list[float]:
    return [fn(r) for r in sorted(runs[form], key=lambda r: r.seed)]


def claim_silent(
    runs: dict[str, list[FormRun]], rows: dict[str, dict[str, Any]], command: str, scale: str
) -> Claim:
    """The claim ``llm_ffn.relu_silent_units`` judged on ``runs`` ({form: [FormRun per seed]})
    and their table ``rows`` by :func:`silent_verdict`, with the smooth forms' near-zero shares
    beside it."""
    z = _per_seed(runs, "relu", lambda r: r.zero_fraction[-1])
    verdict, text = silent_verdict(z)
    smooth = {f: rows[f]["ffn_near_zero_fraction"] for f in ("gelu", "silu", "geglu", "swiglu")}
    return Claim(
        id="llm_ffn.relu_silent_units",
        claim="ReLU's zero derivative leaves many feed-forward units silent in transformers",
        verdict=verdict,  # type: ignore[arg-type]
        evidence={
            "relu_zero_fraction_per_seed": [round(v, 4) for v in z],
            "relu2_zero_fraction": rows["relu2"]["ffn_zero_fraction"],
            "reglu_zero_fraction": rows["reglu"]["ffn_zero_fraction"],
            "smooth_near_zero_fraction": smooth,
            "many_threshold": MANY_SILENT,
            "few_threshold": FEW_SILENT,
            "seeds": len(z),
        },
        command=command,
        explanation=(
            f"{text} 'Many' means at least {MANY_SILENT:.0%} of the FFN hidden activations exactly "
            f"zero per token on the validation pass, in every seed's reading (mean minus std). "
            f"Where ReLU's output is zero its derivative is zero too, so no gradient reaches that "
            f"pre-activation for that token. Smooth forms are never exactly zero; their fraction "
            f"below 1 % of the layer's max |h| is "
            f"{', '.join(f'{k} {v:.1%}' for k, v in smooth.items())}. Li et al. (2022) measure "
            f"far higher sparsity in large trained T5/ViT models; ours are {scale}."
        ),
        source="Li et al. 2022",
    )


def _gap_text(g: dict[str, Any]) -> str:
    spread = "one seed, no spread" if g["gap_std"] is None else f"seed std {g['gap_std']:.4f}"
    return (
        f"{g['a']} - {g['b']}: {g['gap_bits_per_char']:+.4f} bits/char ({g['gap_relative']:+.2%}, "
        f"{spread}, {g['n_seeds']} seeds; {g['outcome'].replace('_', ' ')})"
    )


def claim_relu_costs_little(
    runs: dict[str, list[FormRun]], command: str, scale: str
) -> tuple[Claim, list[dict[str, Any]]]:
    """The claim ``llm_ffn.relu_costs_little`` (relu against gelu and swiglu, paired by seed,
    judged by :func:`relu_cost_verdict`) and its per-pair gaps."""
    gaps = [_paired_gap(runs, "relu", other) for other in ("gelu", "swiglu")]
    verdict, text = relu_cost_verdict({g["b"]: g["outcome"] for g in gaps})
    if verdict == "untestable":
        text = _too_few(min(g["n_seeds"] for g in gaps))
    return (
        Claim(
            id="llm_ffn.relu_costs_little",
            claim="ReLU costs little quality compared to GELU/SwiGLU at equal parameters",
            verdict=verdict,  # type: ignore[arg-type]
            evidence={"gaps": gaps, "tolerance_relative": TOLERANCE, "min_seeds": MIN_SEEDS},
            command=command,
            explanation=(
                f"Measured, paired by seed: {'; '.join(_gap_text(g) for g in gaps)}. {text} A gap "
                f"counts when it exceeds both {TOLERANCE:.0%} of the other form's bits/char and "
                f"the seed std, and 'the same' needs the std within {TOLERANCE:.0%} too. "
                f"Scale: {scale}."
            ),
            source="Mirzadeh et al. 2023",
        ),
        gaps,
    )
def _ordering(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    ours = sorted(FORMS, key=lambda f: rows[f]["val_bits_per_char"])
    theirs = sorted(SHAZEER_TABLE1, key=SHAZEER_TABLE1.get)
    return [
        {
            "ffn": f,
            "our_rank": ours.index(f) + 1,
            "our_val_bits_per_char": rows[f]["val_bits_per_char"],
            "shazeer_rank": theirs.index(f) + 1 if f in SHAZEER_TABLE1 else None,
            "shazeer_log_perplexity": SHAZEER_TABLE1.get(f),
        }
        for f in ours
    ]


def claim_gated(
    runs: dict[str, list[FormRun]], rows: dict[str, dict[str, Any]], command: str, scale: str
) -> tuple[Claim, list[dict[str, Any]]]:
    """The claim ``llm_ffn.gated_beat_plain`` (each gated form against its plain form, paired
    by seed, judged by :func:`gated_verdict`) and our ordering beside Shazeer's."""
    pairs = [_paired_gap(runs, plain, gated) for gated, plain in PLAIN_OF.items()]
    verdict, text = gated_verdict({p["b"]: p["outcome"] for p in pairs})
    if verdict == "untestable":
        text = _too_few(min(p["n_seeds"] for p in pairs))
    ordering = _ordering(rows)
    our_order = ", ".join(o["ffn"] for o in ordering)
    return (
        Claim(
            id="llm_ffn.gated_beat_plain",
            claim="gated units beat their plain forms",
            verdict=verdict,  # type: ignore[arg-type]
            evidence={
                "pairs": pairs,
                "our_ordering": [o["ffn"] for o in ordering],
                "shazeer_table1_65k": SHAZEER_TABLE1,
                "min_seeds": MIN_SEEDS,
            },
            command=command,
            explanation=(
                f"Measured, plain minus gated bits/char paired by seed (positive when the gated "
                f"form is better): {'; '.join(_gap_text(p) for p in pairs)}. {text} Pairs at "
                f"equal parameters; a gap counts when it exceeds both {TOLERANCE:.0%} of the "
                f"gated form's bits/char and the seed std. Our ordering (best first, mean over seeds): {our_order}. Shazeer (2020) found every "
                f"gated form ahead of its plain form (1.94-1.95 vs 1.98-2.00 log-perplexity on "
                f"C4 after 65k steps). Scale: {scale}."
            ),
            source="Shazeer 2020",
        ),
        ordering,
    )


def claim_dead(runs: dict[str, list[FormRun]], command: str, scale: str) -> Claim:
    """The claim ``llm_ffn.dead_units``: per seed the largest dead fraction of the forms that
    can leave units exactly zero, judged by :func:`dead_verdict`."""
    seeds_ = sorted({r.seed for r in runs["relu"]})
    by_seed = {f: {r.seed: r for r in runs[f]} for f in ZERO_CAPABLE}
    dead = [max(by_seed[f][s].dead_fraction[-1] for f in ZERO_CAPABLE) for s in seeds_]
    worst = [
        max(la["dead_fraction"] for f in ZERO_CAPABLE for la in by_seed[f][s].final_layers)
        for s in seeds_
    ]
    verdict, text = dead_verdict(dead, worst)
    return Claim(
        id="llm_ffn.dead_units",
        claim="dead units are a problem in transformer feed-forward layers",
        verdict=verdict,  # type: ignore[arg-type]
        evidence={
            "dead_fraction_per_form": {
                f: [round(by_seed[f][s].dead_fraction[-1], 4) for s in seeds_] for f in ZERO_CAPABLE
            },
            "largest_dead_fraction_per_seed": [round(v, 4) for v in dead],
            "worst_layer_per_seed": [round(v, 4) for v in worst],
            "problem_threshold": DEAD_PROBLEM,
            "none_threshold": DEAD_NONE,
            "seeds": len(seeds_),
        },
        command=command,
        explanation=(
            f"Per seed, the largest dead fraction of relu, relu2 and reglu FFN units (mean over "
            f"layers): {', '.join(f'{v:.1%}' for v in dead)}; worst single layer: "
            f"{', '.join(f'{v:.1%}' for v in worst)}. A unit is dead when it is exactly zero for "
            f"every token of the validation pass (smooth forms cannot be). A problem means at least "
            f"{DEAD_PROBLEM:.0%} dead (seed spread included); fewer than {DEAD_NONE:.0%} in every "
            f"layer means the effect did not appear. {text} Scale: {scale}; longer training and "
            f"higher learning rates can kill more units than this recipe does."
        ),
        source="explainer",
    )


# ---------------------------------------------------------------------------- figures


def _figures(
    runs: dict[str, list[FormRun]],
    floors: dict[str, float],
    ordering: list[dict[str, Any]],
    command: str,
) -> list[Figure]:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(FORMS, plt.get_cmap("tab10").colors, strict=False))
    figs = []

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for form in FORMS:
        steps = runs[form][0].steps
        curves = np.array([r.val_bpc for r in runs[form]])  # (seeds, evals)
        ax.plot(steps, curves.mean(0), label=form, color=colors[form])
        if len(curves) > 1:
            ax.fill_between(steps, curves.min(0), curves.max(0), color=colors[form], alpha=0.2)
    for name, v in floors.items():
        ax.axhline(v, ls="--", color="gray", lw=1)
        ax.annotate(f"{name} {v:.2f}", (steps[-1], v), ha="right", va="bottom", fontsize=8)
    top = max(floors["unigram"] + 0.3, 3.0)
    ax.set(xlabel="step", ylabel="validation bits / char", ylim=(None, top))
    ax.legend(ncol=4, fontsize=8)
    figs.append(
        Figure.from_matplotlib(
            fig,
            "Validation loss per feed-forward form",
            f"Bits per character on the validation split (mean over seeds; band = min-max). "
            f"Dashed: unigram and bigram floors. Regenerate: {command}",
        )
    )

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for form in FORMS:
        steps = runs[form][0].steps
        z = np.array([r.zero_fraction for r in runs[form]]).mean(0)
        nz = np.array([r.near_zero_fraction for r in runs[form]]).mean(0)
        if form in ZERO_CAPABLE:
            axes[0].plot(steps, z, label=form, color=colors[form])
        axes[1].plot(steps, nz, label=form, color=colors[form])
    axes[0].set(
        xlabel="step", ylabel="fraction exactly 0", title="exact zeros (ReLU family)", ylim=(0, 1)
    )
    axes[1].set(
        xlabel="step",
        ylabel=f"fraction |h| < {NEAR_ZERO_REL:.0%} of layer max",
        title="near-zero (every form)",
        ylim=(0, 1),
    )
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8, ncol=2)
    figs.append(
        Figure.from_matplotlib(
            fig,
            "FFN activation sparsity over training",
            "Fraction of feed-forward hidden activations (token x unit) on the validation pass "
            f"that are exactly zero (left) or below 1 % of the layer's max |h| (right), mean "
            f"over layers and seeds. Regenerate: {command}",
        )
    )

    n_layers = len(runs[FORMS[0]][0].final_layers)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / n_layers
    for layer in range(n_layers):
        vals = [
            statistics.fmean(r.final_layers[layer]["dead_fraction"] for r in runs[f]) for f in FORMS
        ]
        ax.bar(np.arange(len(FORMS)) + layer * width, vals, width, label=f"layer {layer}")
    ax.set_xticks(np.arange(len(FORMS)) + 0.4 - width / 2, FORMS)
    ax.set(ylabel="dead fraction of FFN units")
    ax.legend(fontsize=8)
    figs.append(
        Figure.from_matplotlib(
            fig,
            "Dead feed-forward units per layer",
            "Fraction of FFN hidden units exactly zero for every token of the final validation "
            f"pass, per layer (mean over seeds). Smooth forms cannot die. Regenerate: {command}",
        )
    )

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(ordering) + 0.8))
    ax.axis("off")
    cells = [
        [
            str(o["our_rank"]),
            o["ffn"],
            f"{o['our_val_bits_per_char']:.4f}",
            "-" if o["shazeer_rank"] is None else str(o["shazeer_rank"]),
            "-" if o["shazeer_log_perplexity"] is None else f"{o['shazeer_log_perplexity']:.3f}",
        ]
        for o in ordering
    ]
    table = ax.table(
        cellText=cells,
        colLabels=[
            "our rank",
            "FFN",
            "our val bits/char",
            "Shazeer rank",
            "Shazeer log-ppl (C4, 65k)",
        ],
        loc="center",
    )
    table.scale(1, 1.3)
    figs.append(
        Figure.from_matplotlib(
            fig,
            "Our ordering beside Shazeer (2020), Table 1",
            "Best first. Shazeer: held-out log-perplexity on C4 after 65,536 steps of a T5-base "
            "encoder-decoder; relu2 was not in his table. Ours: a tiny character model - the "
            f"ranks are comparable, the numbers are not. Regenerate: {command}",
        )
    )
    return figs


# ---------------------------------------------------------------------------- the experiment


def run_forms(
    cfg: Recipe,
    forms: tuple[str, ...] = FORMS,
    progress: Progress | None = None,
    corpus: Corpus | None = None,
) -> dict[str, list[FormRun]]:
    """Train every form with every seed of ``cfg`` in this process (the lab runs each
    ``(form, seed)`` as its own trial instead: :func:`train_trial`); returns
    ``{form: [FormRun per seed]}``, seeds in ``cfg.seeds`` order."""
    corpus = corpus or load_corpus()
    total = len(forms) * len(cfg.seeds) * cfg.steps
    if progress is not None:
        progress(0, total, f"{len(forms)} forms x {len(cfg.seeds)} seed(s) x {cfg.steps} steps")
    runs: dict[str, list[FormRun]] = {f: [] for f in forms}
    done = 0
    for seed in cfg.seeds:
        for form in forms:

            def tick(step: int, form: str = form, seed: int = seed, base: int = done) -> None:
                if progress is not None and (step % 25 == 0 or step == cfg.steps):
                    progress(base + step, total, f"{form} seed {seed}: step {step}/{cfg.steps}")

            _, r = train_form(corpus, form, cfg, seed, tick)
            runs[form].append(r)
            done += cfg.steps
    return runs


# ---------------------------------------------------------------------------- trials
#
# The lab runs llm_ffn as one trial per (form, seed) -- config {"form", "recipe", "seed"} --
# through registry.split_experiment: plan() lists them, train_trial() (llm_ffn_trial) trains
# one in a worker, build() computes rows, claims and figures from their FormRuns in the driver.


def trial_configs(spec: str | dict[str, Any], seeds_: list[int],
                  forms: tuple[str, ...] = FORMS) -> list[dict[str, Any]]:
    """One trial config per (seed, form), seeds outermost: the order :func:`run_forms` trains."""
    return [{"form": f, "recipe": spec, "seed": s} for s in seeds_ for f in forms]


def plan(quick: bool, seed: int) -> list[dict[str, Any]]:
    """The lab's trials: every form of :data:`FORMS` with each of the recipe's seeds under
    ``--seed seed`` (:func:`gradsight.lab.registry.seeds`)."""
    name = "quick" if quick else "full"
    with seeded(seed):
        return trial_configs(name, seeds(len(RECIPES[name].seeds)))


def build(quick: bool, seed: int, results: list[tuple[dict[str, Any], dict[str, Any]]]
          ) -> ExperimentResult:
    """The experiment's result from its trials' ``(config, metrics)``: every form of
    :data:`FORMS` with the same recipe and seeds, trained on this process's corpus."""
    specs = {json.dumps(c["recipe"], sort_keys=True) for c, _ in results}
    if len(specs) != 1:
        raise GradsightError(f"llm_ffn trials of different recipes cannot make one result: {specs}")
    seeds_ = sorted({int(c["seed"]) for c, _ in results})
    missing = [(f, s) for f in FORMS for s in seeds_
               if not any(c["form"] == f and c["seed"] == s for c, _ in results)]
    if missing:
        raise GradsightError(f"llm_ffn needs every (form, seed); missing {missing!r}")
    corpus = load_corpus()
    other = {m["corpus_sha256"] for _, m in results} - {corpus.sha256}
    if other:
        raise GradsightError(
            f"llm_ffn trials trained on corpus {sorted(other)!r}, but this Python's "
            f"pydoc_data.topics is {corpus.sha256!r}: run workers and driver on one Python version"
        )
    runs: dict[str, list[FormRun]] = {f: [] for f in FORMS}
    for config, metrics in sorted(results, key=lambda cm: int(cm[0]["seed"])):  # stable: forms keep order
        runs[config["form"]].append(form_run(metrics))
    cfg = replace(recipe(results[0][0]["recipe"]), seeds=tuple(seeds_))
    with seeded(seed):
        return build_result(cfg, quick, runs, corpus,
                            torch_threads=max(int(m["torch_threads"]) for _, m in results))


# quick: the sum of its 21 trials' seconds in `make report` on idle cores (151 s); full: 21 x
# 393 s, the mean of the seed-2 trials (367-423 s each) of `--workers 2` on a near-idle machine
split_experiment(NAME, TITLE, order=80, plan=plan, trial=train_trial, build=build,
                 quick_budget_s=150.0, typical_s=(151, 8250))


def build_result(
    cfg: Recipe,
    quick: bool,
    runs: dict[str, list[FormRun]],
    corpus: Corpus | None = None,
    torch_threads: int | None = None,
) -> ExperimentResult:
    """Measure, judge the claims and plot from ``runs`` (every form of :data:`FORMS`, one
    :class:`FormRun` per seed of ``cfg``); ``torch_threads`` is what the runs trained on
    (default: this process's)."""
    command = command_for(NAME, quick)
    corpus = corpus or load_corpus()
    floors_obj = ngram_floors(corpus)
    floors = {k: v.val_bits_per_char for k, v in floors_obj.items()}
    n_val = corpus.val_windows(cfg.context, cfg.val_windows)[0].numel()
    params = [runs[f][0].params for f in FORMS]
    scale = (
        f"{cfg.describe()}; about {min(params) / 1e3:.0f} K parameters per model; "
        f"{len(corpus.text) / 1e3:.0f} K characters of {corpus.python_version} pydoc_data.topics, "
        f"{cfg.steps * cfg.batch_size * cfg.context / 1e6:.2f} M training characters seen, "
        f"validation on {n_val} characters"
    )
    rows = _rows(runs)
    by_form = {r["ffn"]: r for r in rows}
    claims = [claim_silent(runs, by_form, command, scale)]
    c2, relu_gaps = claim_relu_costs_little(runs, command, scale)
    c3, ordering = claim_gated(runs, by_form, command, scale)
    claims += [c2, c3, claim_dead(runs, command, scale)]

    best = min(rows, key=lambda r: r["val_bits_per_char"])
    summary = (
        f"Seven feed-forward forms in a {cfg.n_layers}-layer character transformer on Python's "
        f"own documentation: best {best['ffn']} at {best['val_bits_per_char']:.3f} bits/char "
        f"(bigram floor {floors['bigram']:.3f}, unigram {floors['unigram']:.3f}); ReLU leaves "
        f"{by_form['relu']['ffn_zero_fraction']:.0%} of its FFN activations exactly zero and "
        f"{by_form['relu']['ffn_dead_fraction']:.1%} of its units dead. Verdicts: "
        + ", ".join(f"{c.id.split('.', 1)[1]} {c.verdict}" for c in claims)
        + "."
    )
    data = {
        "corpus": {
            "name": "pydoc_data.topics",
            "sha256": corpus.sha256,
            "characters": len(corpus.text),
            "vocab_size": corpus.vocab_size,
            "train_characters": corpus.n_train,
            "val_characters": len(corpus.val),
            "val_characters_scored": n_val,
        },
        "python_version": corpus.python_version,
        "python_implementation": platform.python_implementation(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads() if torch_threads is None else torch_threads,
        "platform": sys.platform,
        "config": asdict(cfg),
        "seeds": list(cfg.seeds),
        "floors": {k: v.to_dict() for k, v in floors_obj.items()},
        "timing_note": (
            "wall time per step is the median over steps without probes, on a CPU shared with "
            "other work: compare forms within one run, not across machines"
        ),
        "curves": {
            f: [
                {
                    "seed": r.seed,
                    "steps": r.steps,
                    "val_bits_per_char": [round(v, 4) for v in r.val_bpc],
                    "zero_fraction": [round(v, 4) for v in r.zero_fraction],
                    "near_zero_fraction": [round(v, 4) for v in r.near_zero_fraction],
                    "dead_fraction": [round(v, 4) for v in r.dead_fraction],
                }
                for r in runs[f]
            ]
            for f in FORMS
        },
        "layers": {
            f: [
                {"seed": r.seed, "layers": r.final_layers, "grad_flow": r.grad_flow,
                 "watch": r.watch}
                for r in runs[f]
            ]
            for f in FORMS
        },
        "relu_gaps": relu_gaps,
        "ordering": ordering,
        "shazeer_table1_65k": SHAZEER_TABLE1,
    }
    return ExperimentResult(
        name=NAME,
        title=TITLE,
        summary=summary,
        command=command,
        quick=quick,
        scale=scale,
        rows=rows,
        data=data,
        figures=_figures(runs, floors, ordering, command),
        claims=claims,
    )
