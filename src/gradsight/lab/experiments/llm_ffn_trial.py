"""The training side of :mod:`gradsight.lab.experiments.llm_ffn`: one trial per (form, seed).

Everything a trial of ``llm_ffn`` runs lives here and nothing else: the training
:class:`Recipe` (:data:`QUICK`, :data:`FULL`), :func:`train_form` with its measurements
(:class:`FormRun`, the FFN activity statistics of :func:`evaluate`) and :func:`train_trial`,
the worker-side function the lab calls with a config ``{"form", "recipe", "seed"}``.

The lab versions a trial by this module's source and what it imports
(:func:`gradsight.lab.trials.trial.code_version`), so editing a claim, a figure or the text of
``llm_ffn`` keeps every stored trial; editing how a form trains or what it measures re-runs them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
import torch.nn as nn

from gradsight.errors import GradsightError, unknown_choice
from gradsight.lab.models.char_transformer import (
    CharTransformer,
    CharTransformerConfig,
    ffn_forms,
)
from gradsight.lab.text import Corpus, load_corpus
from gradsight.lab.training import Loop, TrainConfig, Watch, check_config, fit, make_optimizer
from gradsight.lab.watching import summarize
from gradsight.monitor import LayerStats

__all__ = ["FORMS", "FULL", "NEAR_ZERO_REL", "QUICK", "RECIPES", "FormRun", "LayerActivity",
           "Recipe", "evaluate", "form_run", "recipe", "recipe_of", "train_form", "train_trial"]

FORMS: tuple[str, ...] = ("relu", "gelu", "silu", "relu2", "reglu", "geglu", "swiglu")
NEAR_ZERO_REL = 0.01  # "near zero": |h| < 1 % of the layer's max |h| over the validation pass

@dataclass(frozen=True)
class Recipe(TrainConfig):
    """One recipe shared by every feed-forward form: the lab's training hyper-parameters
    (:class:`gradsight.lab.training.TrainConfig`, here AdamW with decay on matrices only, linear
    warm-up then cosine to ``min_lr_frac * lr`` at the last step, gradient clipping) plus the
    model, corpus and evaluation shape of this experiment.

    Of the inherited fields, ``seed`` is not used (each model trains with one of ``seeds``),
    nor are ``eval_train_max``, ``stop_at`` and ``watch_every`` (the watched stretch is the
    last ``flow_steps`` steps, measured every ``max(1, flow_steps // 8)`` steps so that the
    monitor's window of 8 logged steps spans it).
    """

    d_model: int = 64  # residual width
    n_layers: int = 2  # transformer blocks
    n_heads: int = 4  # attention heads
    context: int = 64  # characters per sequence T
    ffn_mult: float = 4.0  # plain FFN hidden width = ffn_mult * d_model (gated: 2/3 of it)
    batch_size: int = 16  # sequences per step B
    steps: int = 600  # optimizer steps
    lr: float = 6e-3  # peak AdamW learning rate
    optimizer: str = "adamw"  # decoupled decay on matrices only (not norms/biases)
    schedule: str = "warmup_cosine_floor"  # warm-up from lr/warmup, cosine to min_lr_frac*lr
    warmup: int = 60  # linear warm-up steps from 0 to lr
    min_lr_frac: float = 0.1  # cosine decays to min_lr_frac * lr at the last step
    weight_decay: float = 0.1  # AdamW decoupled decay, on matrices only (not norms/biases)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    grad_clip: float | None = 1.0  # global gradient-norm clip
    eval_every: int = 100  # steps between validation passes (also at step 0 and the last)
    watch: bool = True  # the last flow_steps steps train inside gradsight.watch
    val_windows: int | None = 128  # validation windows of length T (None: the whole split)
    eval_batch: int = 64  # windows per forward pass during evaluation
    flow_steps: int = 50  # the last flow_steps steps record gradient flow (untimed)
    seeds: tuple[int, ...] = (0,)  # one model per form per seed; seed sets init and data order

    def __post_init__(self) -> None:
        if self.steps < 2 or self.eval_every < 1:
            raise GradsightError(
                f"steps must be >= 2 and eval_every >= 1, got {self.steps!r}, {self.eval_every!r}"
            )
        if not 0 <= self.warmup < self.steps:
            raise GradsightError(f"warmup must be in [0, steps), got {self.warmup!r}")
        if not 0 <= self.flow_steps < self.steps or self.flow_steps > self.eval_every:
            # the watched stretch holds no validation pass except the final one
            raise GradsightError(
                f"flow_steps must be in [0, min(steps - 1, eval_every)], got {self.flow_steps!r}"
            )
        if not self.seeds:
            raise GradsightError("seeds must name at least one seed")
        check_config(self)

    def model_config(self, vocab_size: int, ffn: str) -> CharTransformerConfig:
        return CharTransformerConfig(
            vocab_size=vocab_size,
            context=self.context,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            ffn=ffn,
            ffn_mult=self.ffn_mult,
        )

    def describe(self) -> str:
        return (
            f"{self.n_layers}-layer decoder, d_model {self.d_model}, {self.n_heads} heads, "
            f"context {self.context}, FFN hidden {int(self.ffn_mult * self.d_model)} "
            f"(gated {int(round(2 * self.ffn_mult * self.d_model / 3))}); batch "
            f"{self.batch_size} x {self.context} chars, {self.steps} AdamW steps "
            f"(warm-up {self.warmup}, cosine to {self.min_lr_frac:g} x {self.lr:g}); "
            f"{len(self.seeds)} seed(s)"
        )


QUICK = Recipe(steps=300, warmup=30, seeds=(0, 1, 2))  # MIN_SEEDS seeds decide the claims
FULL = Recipe(
    d_model=128,
    n_layers=4,
    n_heads=4,
    context=128,
    batch_size=16,
    steps=2000,
    lr=3e-3,
    warmup=100,
    eval_every=200,
    val_windows=None,
    flow_steps=100,
    seeds=(0, 1, 2),
)


# ------------------------------------------------------------------ FFN activation statistics


@dataclass
class LayerActivity:
    """Hidden-activation statistics of one FFN layer over one validation pass."""

    name: str  # "blocks.{i}.ffn.act"
    zero_fraction: float  # fraction of h entries (tokens x units) exactly 0
    near_zero_fraction: float  # fraction with |h| < NEAR_ZERO_REL * max |h| of this layer
    dead_fraction: float  # fraction of units exactly 0 for every token of the pass
    max_abs: float  # max |h| over the pass


class _ActivityProbe:
    """Forward hooks on each FFN activation that accumulate zeros, maxima and live units.

    Pass 1 (``threshold=None``) counts exact zeros, the per-unit "ever non-zero" mask and the
    max ``|h|``; pass 2 counts ``|h| < NEAR_ZERO_REL * max`` with the max from pass 1.
    """

    def __init__(self, sites: list[tuple[str, nn.Module]]) -> None:
        self.sites = sites
        self.reset()

    def reset(self) -> None:
        n = len(self.sites)
        self.count = [0] * n
        self.zeros = [0] * n
        self.near = [0] * n
        self.max_abs = [0.0] * n
        self.alive: list[torch.Tensor | None] = [None] * n
        self.threshold: list[float] | None = None

    @contextmanager
    def attached(self) -> Iterator[_ActivityProbe]:
        handles = [m.register_forward_hook(self._hook(i)) for i, (_, m) in enumerate(self.sites)]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def _hook(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            h = out.detach().reshape(-1, out.shape[-1])  # (tokens, units)
            if self.threshold is not None:
                self.near[i] += int((h.abs() < self.threshold[i]).sum())
                return
            self.count[i] += h.numel()
            self.zeros[i] += int((h == 0).sum())
            self.max_abs[i] = max(self.max_abs[i], float(h.abs().max()))
            alive = (h != 0).any(dim=0)  # (units,)
            self.alive[i] = alive if self.alive[i] is None else self.alive[i] | alive

        return hook

    def layers(self) -> list[LayerActivity]:
        out = []
        for i, (name, _) in enumerate(self.sites):
            alive = self.alive[i]
            if alive is None or self.count[i] == 0:
                raise GradsightError(f"FFN site {name!r} never ran during the validation pass")
            out.append(
                LayerActivity(
                    name=name,
                    zero_fraction=self.zeros[i] / self.count[i],
                    near_zero_fraction=self.near[i] / self.count[i],
                    dead_fraction=float((~alive).float().mean()),
                    max_abs=self.max_abs[i],
                )
            )
        return out


@torch.no_grad()
def evaluate(
    model: CharTransformer, x: torch.Tensor, y: torch.Tensor, batch: int = 64
) -> tuple[float, list[LayerActivity]]:
    """Validation bits/char and per-layer FFN activity over windows ``x, y`` (both ``(N, T)``).

    bits/char ``= sum of token cross-entropies (nats) / (N T ln 2)``; the activity statistics
    are those of :class:`LayerActivity`, over every token of the pass.
    """
    was_training = model.training
    model.eval()
    probe = _ActivityProbe(model.ffn_sites())
    nats = 0.0
    with probe.attached():
        for i in range(0, len(x), batch):
            logits, _ = model(x[i : i + batch])  # (b, T, V)
            nats += float(
                nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    y[i : i + batch].reshape(-1),
                    reduction="sum",
                )
            )
        probe.threshold = [NEAR_ZERO_REL * m for m in probe.max_abs]
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
    model.train(was_training)
    return nats / (y.numel() * math.log(2)), probe.layers()


# ---------------------------------------------------------------------------- training


def _ffn_flow(layers: list[LayerStats], sites: list[str]) -> list[dict[str, Any]]:
    """The FFN sites' rows of a :func:`gradsight.watch` report, in layer order.

    ``grad_norm`` is ``||dL/dh||`` at the activation output (median over the watched window):
    the learning signal arriving from above, which the activation's derivative then passes or
    blocks; ``dead_fraction`` there is over the training tokens of the window.
    """
    by_name = {la.name: la for la in layers}
    missing = [s for s in sites if s not in by_name]
    if missing:
        raise GradsightError(f"watch() reported no statistics for FFN sites {missing!r}")
    return [
        {
            "name": s,
            "activation": by_name[s].activation,
            "grad_norm": by_name[s].grad_norm,
            "grad_rms": by_name[s].grad_rms,
            "mean_derivative": by_name[s].mean_derivative,
            "dead_fraction_train": by_name[s].dead_fraction,
        }
        for s in sites
    ]


@dataclass
class FormRun:
    """Everything measured while training one feed-forward form with one seed."""

    ffn: str  # feed-forward form
    seed: int  # init and data-order seed
    params: int  # trainable parameters of the whole model
    ffn_params: int  # parameters of the FFN blocks
    hidden: int  # FFN hidden units per layer
    steps: list[int] = field(default_factory=list)  # evaluation steps
    val_bpc: list[float] = field(default_factory=list)  # validation bits/char at each step
    zero_fraction: list[float] = field(default_factory=list)  # mean over layers, per eval
    near_zero_fraction: list[float] = field(default_factory=list)  # mean over layers, per eval
    dead_fraction: list[float] = field(default_factory=list)  # mean over layers, per eval
    final_layers: list[dict[str, Any]] = field(default_factory=list)  # LayerActivity at the end
    grad_flow: list[dict[str, Any]] = field(default_factory=list)  # watch() per FFN site
    watch: dict[str, Any] = field(default_factory=dict)  # watch() of every site: WatchSummary.compact()
    train_loss_bpc: float = float("nan")  # mean train bits/char over the watched window
    ms_per_step: float = float("nan")  # median wall ms per step outside the watched window
    tokens_per_second: float = float("nan")  # batch_size * context / seconds per step

    @property
    def final_bpc(self) -> float:
        return self.val_bpc[-1]


def train_form(
    corpus: Corpus,
    ffn: str,
    cfg: Recipe,
    seed: int,
    on_step: Callable[[int], None] | None = None,
) -> tuple[CharTransformer, FormRun]:
    """Train one model with feed-forward form ``ffn``; return it and its measurements.

    The model is built right after ``torch.manual_seed(seed)`` and fed
    ``corpus.batches(B, T, seed)``: two forms with the same seed start from the same
    embeddings and attention weights and see the same characters in the same order. It trains
    through the lab's loop (:func:`gradsight.lab.training.fit`) with the recipe's optimizer,
    schedule and clipping; the last ``flow_steps`` steps inside ``gradsight.watch``.
    """
    known = ffn_forms()
    if ffn not in known:
        raise unknown_choice("ffn form", ffn, known)
    torch.manual_seed(seed)
    model = CharTransformer(cfg.model_config(corpus.vocab_size, ffn))
    opt = make_optimizer(model.parameters(), cfg)
    batches = corpus.batches(cfg.batch_size, cfg.context, seed)
    vx, vy = corpus.val_windows(cfg.context, cfg.val_windows)
    run = FormRun(
        ffn=ffn,
        seed=seed,
        params=model.num_params(),
        ffn_params=model.num_params(ffn_only=True),
        hidden=model.cfg.ffn_hidden,
    )
    timed: list[float] = []
    train_nats: list[float] = []
    # watch() logs every `every`-th step of the last flow_steps; its window of 8 logged steps
    # then spans that stretch. Watched steps are left out of the timing.
    watched = cfg.watch and cfg.flow_steps > 0
    every = max(1, cfg.flow_steps // 8)

    def loss_at(step: int) -> torch.Tensor:
        x, y = next(batches)  # (B, T), (B, T)
        return model(x, y)[1]

    def after_step(loop: Loop) -> None:
        if loop.monitor is not None:
            train_nats.append(loop.loss.item())
            if loop.step == cfg.steps:  # report before the validation forward passes
                sites = [n for n, _ in model.ffn_sites()]
                report = loop.monitor.report()
                run.grad_flow = _ffn_flow(report.layers, sites)
                run.watch = summarize(report).compact()
                loop.monitor.close()
        elif loop.step > 5:  # the first steps pay one-off allocation costs
            timed.append(loop.step_seconds)
        if on_step is not None:
            on_step(loop.step)

    def record(loop: Loop) -> None:
        bpc, layers = evaluate(model, vx, vy, cfg.eval_batch)
        run.steps.append(loop.step)
        run.val_bpc.append(bpc)
        run.zero_fraction.append(statistics.fmean(la.zero_fraction for la in layers))
        run.near_zero_fraction.append(statistics.fmean(la.near_zero_fraction for la in layers))
        run.dead_fraction.append(statistics.fmean(la.dead_fraction for la in layers))
        run.final_layers = [asdict(la) for la in layers]

    model.train()
    watch = Watch(every=every, window=8, start=cfg.steps - cfg.flow_steps) if watched else None
    fit(model, loss_at, opt, cfg, watch=watch, on_step=after_step, on_eval=record)
    if train_nats:
        run.train_loss_bpc = statistics.fmean(train_nats) / math.log(2)
    if timed:
        sec = statistics.median(timed)
        run.ms_per_step = 1000.0 * sec
        run.tokens_per_second = cfg.batch_size * cfg.context / sec
    return model, run


RECIPES: dict[str, Recipe] = {"quick": QUICK, "full": FULL}


def recipe(spec: str | dict[str, Any]) -> Recipe:
    """The training recipe a trial config names: ``"quick"`` (:data:`QUICK`), ``"full"``
    (:data:`FULL`), or a dict of :class:`Recipe` fields (its ``seeds`` are ignored: a
    trial's seed is its config's)."""
    if isinstance(spec, str):
        if spec not in RECIPES:
            raise unknown_choice("llm_ffn recipe", spec, RECIPES)
        return RECIPES[spec]
    if not isinstance(spec, dict):
        raise GradsightError(f"an llm_ffn recipe is 'quick', 'full' or a dict, got {spec!r}")
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise GradsightError(f"unknown Recipe fields {unknown!r}; known: {sorted(known)}")
    given = {k: v for k, v in spec.items() if k != "seeds"}
    if "betas" in given:
        given["betas"] = tuple(given["betas"])
    return Recipe(**given)


def recipe_of(cfg: Recipe) -> dict[str, Any]:
    """``cfg`` as a recipe dict (every field but ``seeds``): ``recipe(recipe_of(cfg))`` trains
    what ``cfg`` trains."""
    return {k: v for k, v in asdict(cfg).items() if k != "seeds"}



def train_trial(config: dict[str, Any]) -> dict[str, Any]:
    """One trial: train form ``config["form"]`` with seed ``config["seed"]`` under
    ``recipe(config["recipe"])`` on one torch thread (as :func:`train_form` does, the seed
    fixes init and data order, so the result is the same in any process); returns the
    :class:`FormRun` as a dict plus ``torch_threads`` and the ``corpus_sha256`` trained on.

    One thread: at these sizes two threads gain little on a quiet machine, and when another
    process holds a core they stall at every barrier (measured: 16 ms vs 916 ms a step for the
    quick model).
    """
    from gradsight.lab.training import torch_threads

    cfg = replace(recipe(config["recipe"]), seeds=(int(config["seed"]),))
    corpus = load_corpus()
    with torch_threads(1):
        _, r = train_form(corpus, str(config["form"]), cfg, int(config["seed"]))
        threads = torch.get_num_threads()
    return {**asdict(r), "torch_threads": threads, "corpus_sha256": corpus.sha256}


def form_run(metrics: dict[str, Any]) -> FormRun:
    """The :class:`FormRun` that :func:`train_trial` returned (read back from JSON)."""
    return FormRun(**{f.name: metrics[f.name] for f in fields(FormRun)})
