"""Paper reproductions (Glorot & Bengio 2010, He et al. 2015, Krizhevsky et al. 2012):
verdict functions fed planted numbers, and the measurements on tiny models."""

from __future__ import annotations

import pytest
import torch

from gradsight.lab.experiments import glorot2010, he2015, krizhevsky2012
from gradsight.lab.models import MLP


@pytest.mark.parametrize(
    ("standard", "normalized", "verdict"),
    [(0.11, 0.9, "supported"), (0.11, 1.9, "supported"), (0.6, 1.0, "refuted"),
     (0.11, 0.3, "nuanced"), (0.11, 3.0, "nuanced")],
)
def test_glorot_verdict(standard, normalized, verdict):
    assert glorot2010.glorot_verdict(standard, normalized)[0] == verdict


def test_glorot_layer_stats_follow_theory_for_a_linear_regime_tanh():
    # wide tanh net, standard init (σ_w² = 1/3): gradient std shrinks ≈ √(1/3) per layer
    torch.manual_seed(0)
    model = MLP(64, 10, depth=4, width=512, activation="tanh", init="pytorch_default",
                bias_init=0.0, seed=0).double()
    X = torch.randn(256, 64, dtype=torch.float64)
    y = torch.randint(0, 10, (256,))
    acts, grads = glorot2010.layer_stats(model, X, y)
    assert len(acts) == len(grads) == 4
    ratio = grads[0] / grads[-1]
    assert ratio == pytest.approx((1 / 3) ** 1.5, rel=0.25)
    assert acts[-1] < acts[0]


@pytest.mark.parametrize(
    ("he", "xavier", "steps", "verdict"),
    [(0.95, 0.11, 1500, "supported"), (0.95, 0.9, 1500, "nuanced"), (0.12, 0.11, 1500, "nuanced"),
     (0.1, 0.9, 1500, "refuted"),
     # the quick budget cannot tell stalled from slow: the same numbers after 300 steps
     (0.95, 0.11, 300, "nuanced"), (0.95, 0.9, 300, "nuanced")],
    ids=["full-stalls", "full-both-train", "full-neither", "full-xavier-only", "quick-at-chance",
         "quick-both-train"],
)
def test_he_verdict(he, xavier, steps, verdict):
    assert he2015.he_verdict(he, xavier, steps)[0] == verdict


def test_he_quick_verdict_says_what_it_cannot_show():
    text = he2015.he_verdict(0.75, 0.11, 300)[1]
    assert "cannot tell a stalled network from a slow one" in text and "1500" in text


def test_he_init_profile_keeps_the_signal_and_xavier_loses_it():
    X, y = torch.randn(200, 32), torch.randint(0, 10, (200,))
    sig = {}
    for init in ("he", "xavier"):
        model = MLP(32, 10, depth=20, width=128, activation="relu", init=init, bias_init=0.0, seed=1)
        profile, sig[init] = he2015.init_profile(model, X, y)
        assert len(profile) == 20 and profile[-1] == 1.0
    assert sig["xavier"] < 1e-2 < sig["he"]  # (1/√2)^19 ≈ 1.4e-3 in theory


def test_speedup_and_its_bound():
    assert krizhevsky2012.speedup([100, 100, 100], [600, 600, 600], 1000) == (6.0, False)
    ratio, censored = krizhevsky2012.speedup([100, 100, 100], [None, None, 500], 1000)
    assert ratio == 10.0 and censored


@pytest.mark.parametrize(
    ("ratio", "verdict"), [(6.0, "supported"), (3.0, "supported"), (2.9, "nuanced"), (1.25, "nuanced"),
                           (1.2, "not_reproduced"), (0.8, "not_reproduced")],
)
def test_krizhevsky_verdict(ratio, verdict):
    assert krizhevsky2012.krizhevsky_verdict(ratio, False)[0] == verdict


def test_krizhevsky_verdict_mentions_a_bound():
    assert "a bound" in krizhevsky2012.krizhevsky_verdict(2.0, True)[1]


def test_paper_claims_name_their_source():
    assert glorot2010.SOURCE == "Glorot & Bengio 2010"
    assert he2015.SOURCE == "He et al. 2015"
    assert krizhevsky2012.SOURCE == "Krizhevsky et al. 2012"
