"""Experiment ``explainer``: figures without a setting are untestable, and say why."""

from __future__ import annotations

from gradsight.lab import registry
from gradsight.lab.experiments import explainer


def test_testability_verdict_flips_when_the_setting_is_stated():
    nothing = {k: False for k in explainer.REQUIRED_SETTING}
    verdict, text = explainer.testability_verdict(nothing)
    assert verdict == "untestable" and "model" in text
    everything = {k: True for k in explainer.REQUIRED_SETTING}
    assert explainer.testability_verdict(everything)[0] == "nuanced"


def test_explainer_experiment_marks_the_dollar_and_accuracy_figures_untestable():
    result = registry.run("explainer", quick=True)
    ids = {c.id: c for c in result.claims}
    assert set(ids) == {"explainer.dollar_figures", "explainer.accuracy_figures"}
    assert "$100K → $15K" in ids["explainer.dollar_figures"].claim
    assert "65 % → 94 %" in ids["explainer.accuracy_figures"].claim
    for c in result.claims:
        assert c.verdict == "untestable"
        assert "no measurement can confirm or refute it" in c.explanation
        assert c.evidence["missing_setting"] and c.evidence["related_experiments"]
        assert c.command == "gradsight lab --only explainer --quick"
