"""A split experiment for the SIGKILL test: llm_ffn's own trials and build at a tiny recipe.

``import _tiny_llm_lab`` registers ``llm_ffn_tiny``: every feed-forward form x 2 seeds, each a
trial of :func:`gradsight.lab.experiments.llm_ffn_trial.train_trial` (a fraction of a second), the
result built by :func:`gradsight.lab.experiments.llm_ffn.build` and renamed.
"""

from __future__ import annotations

from gradsight.lab import registry
from gradsight.lab.experiments import llm_ffn, llm_ffn_trial

NAME = "llm_ffn_tiny"
TINY = llm_ffn_trial.Recipe(
    d_model=16, n_layers=1, n_heads=2, context=16, batch_size=4, steps=12, warmup=2,
    eval_every=6, val_windows=8, eval_batch=4, flow_steps=4, seeds=(0, 1),
)  # fmt: skip


def plan(quick: bool, seed: int) -> list[dict]:
    return llm_ffn.trial_configs(llm_ffn_trial.recipe_of(TINY), registry.seeds(len(TINY.seeds)))


def build(quick: bool, seed: int, results: list[tuple[dict, dict]]) -> registry.ExperimentResult:
    result = llm_ffn.build(quick, seed, results)
    result.name = NAME
    for claim in result.claims:  # claim ids are unique across the report's experiments
        claim.id = claim.id.replace("llm_ffn.", f"{NAME}.")
    return result


registry.split_experiment(NAME, "llm_ffn at a tiny recipe", 99, plan=plan,
                          trial=llm_ffn_trial.train_trial, build=build, typical_s=(2.0, 2.0))
