"""A 48-block model stays readable: the console summary and the HTML group sites by block and
lead with the worst; chart labels are every site's full name; evidence is rounded for people."""

from __future__ import annotations

import json
import re

import pytest
import torch

import gradsight as gs
from gradsight.monitor import Finding, LayerStats, Report
from gradsight.monitor.html import CHAR_W

from .helpers import Stack, train

DEAD = (40, 41)


@pytest.fixture(scope="module")
def deep_report() -> Report:
    torch.manual_seed(0)
    model = Stack(n=48)
    with torch.no_grad():
        for i in DEAD:  # GELU at -100 passes exactly nothing: a planted dead block
            model.blocks[i].fc1.bias.fill_(-100.0)
    with gs.watch(model, every=1) as mon:
        train(model, mon, steps=2, shape=(4, 4, 16))
    return mon.report()


def test_console_summary_leads_with_the_worst_and_folds_healthy_blocks(deep_report):
    text = str(deep_report)
    lines = text.splitlines()
    assert lines[0].startswith("gradsight watch: Stack, 49 sites in 49 blocks")
    assert lines[2] == "findings (worst first):"
    assert lines[3].startswith("  [critical] dead_units at blocks.40/gelu#0, blocks.41/gelu#0")
    worst = lines[lines.index("worst 8 sites:") + 3 :][:2]
    assert {w.split()[0] for w in worst} == {"blocks.40/gelu#0", "blocks.41/gelu#0"}
    table = lines[lines.index("by block (forward order; consecutive blocks no finding names are folded):") + 3 :]
    assert [row.split()[0] for row in table] == ["blocks.0-39", "blocks.40", "blocks.41", "blocks.42-47", "relu#0"]
    assert table[0].split()[1] == "40" and table[1].split()[-1] == "critical"
    assert "100.0%" in table[1] and table[0].split()[-1] == "-"


def _labels(svg: str) -> list[tuple[float, str]]:
    return [(float(x), name) for x, name in re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="end">([^<]+)</text>', svg)]


def test_html_charts_name_every_site_in_full_and_lead_with_the_worst(deep_report):
    page = deep_report.to_html()
    names = [ls.name for ls in deep_report.layers]
    assert "…" not in page
    charts = re.findall(r'<svg class="chart".*?</svg>', page)
    assert len(charts) == 4  # gradient norm, dead/saturated, two heat maps
    for svg in charts:
        labels = [(x, n) for x, n in _labels(svg) if not n.startswith("step ")]  # heat maps' time axis
        assert [n for _, n in labels] == names
        assert all(x - CHAR_W * len(n) >= 0 for x, n in labels)  # inside the picture
    assert page.index("<h2>By block</h2>") < page.index("<h2>Gradient norm per site")
    assert "<tr class='critical'><td>blocks.40</td>" in page and "<td>blocks.0-39</td><td>40</td>" in page


def test_findings_are_ordered_by_severity_and_evidence_is_rounded_for_people():
    layers = [LayerStats(f"l.{i}.act", "relu", 0.1, 0.0, 0.0, 0.5, 1.0) for i in range(30)]
    findings = [
        Finding("saturation", ("l.1.act",), "info", "i.", {"x": 0.1234567891}),
        Finding("vanishing_gradients", ("l.0.act",), "critical", "c.", {"ratio": 6.762291234e-17, "all": [1.23456789]}),
        Finding("dead_units", ("l.2.act",), "warning", "w.", {}),
    ]
    rep = Report(layers=layers, findings=findings)
    text = str(rep)
    order = [text.index(f"[{s}]") for s in ("critical", "warning", "info")]
    assert order == sorted(order)
    page = rep.to_html()
    order = [page.index(f"<span class='sev'>{s}</span>") for s in ("critical", "warning", "info")]
    assert order == sorted(order)
    assert "ratio: 6.762e-17" in page and "all: [1.235]" in page and "x: 0.1235" in page
    assert json.loads(rep.to_json())["findings"][1]["evidence"] == {"ratio": 6.762291234e-17, "all": [1.23456789]}
