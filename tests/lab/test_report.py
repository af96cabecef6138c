"""The report builder: results.json schema, claim fields, a self-contained index.html."""

from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import pytest

from gradsight.errors import GradsightError
from gradsight.lab.registry import VERDICTS, Claim, ExperimentResult, Figure
from gradsight.report import build
from gradsight.report.html import inline_svg, jsonable

CLAIM_KEYS = {"id", "claim", "verdict", "evidence", "command", "explanation", "source"}


def _figure(title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 4], marker="o")
    ax.set_title(title)
    return Figure.from_matplotlib(fig, title, "a caption")


def _result(name: str, verdicts: list[str], seconds: float = 1.5) -> ExperimentResult:
    command = f"gradsight lab --only {name} --quick"
    claims = [
        Claim(
            id=f"{name}.c{i}",
            claim=f"claim {i} of {name}",
            verdict=v,  # type: ignore[arg-type]
            evidence={"ratio": 1.25 + i, "nested": {"a": [1, 2, 3]}, "nan": float("nan")},
            command=command,
            explanation=f"because {i}",
        )
        for i, v in enumerate(verdicts)
    ]
    return ExperimentResult(
        name=name,
        title=f"Title of {name}",
        summary="<summary & escaping>",
        command=command,
        quick=True,
        scale="3 seeds, 100 steps",
        rows=[{"activation": "relu", "steps": 120, "acc": 0.93}, {"activation": "tanh", "acc": None}],
        data={"curve": [0.1, 0.2, float("inf")]},
        figures=[_figure(f"{name} figure"), _figure("second")],
        claims=claims,
        seconds=seconds,
    )


@pytest.fixture
def built(tmp_path):
    results = [_result("alpha", ["supported", "refuted"]), _result("beta", ["nuanced", "untestable"])]
    index = build(results, tmp_path / "out", quick=True, gallery=False)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    return index, doc, results


def test_build_writes_index_and_json(built):
    index, doc, _ = built
    assert index.name == "index.html" and index.exists()
    assert set(doc) >= {"experiments", "claims", "interview", "environment", "quick"}
    assert doc["quick"] is True
    assert list(doc["experiments"]) == ["alpha", "beta"]
    assert doc["experiments"]["alpha"]["rows"][0] == {"activation": "relu", "steps": 120, "acc": 0.93}
    assert doc["experiments"]["alpha"]["claims"] == ["alpha.c0", "alpha.c1"]
    assert doc["seconds"] == pytest.approx(3.0)


def test_every_claim_has_required_keys_and_valid_verdict(built):
    _, doc, _ = built
    assert [c["id"] for c in doc["claims"]] == ["alpha.c0", "alpha.c1", "beta.c0", "beta.c1"]
    for c in doc["claims"]:
        assert CLAIM_KEYS <= set(c)
        assert c["verdict"] in VERDICTS
        assert isinstance(c["evidence"], dict) and c["evidence"]["ratio"] >= 1.25
        assert c["command"].startswith("gradsight lab --only ")
    assert doc["claims"][2]["experiment"] == "beta"


def test_json_is_strict_non_finite_become_null(built):
    _, doc, _ = built
    assert doc["claims"][0]["evidence"]["nan"] is None
    assert doc["experiments"]["alpha"]["data"]["curve"] == [0.1, 0.2, None]


def test_environment_records_versions_and_date(built):
    _, doc, _ = built
    env = doc["environment"]
    assert env["versions"]["torch"] and env["versions"]["python"]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", env["date_utc"])
    assert env["cpu_count"] >= 1


def test_interview_has_five_answers_of_two_or_three_sentences(built):
    _, doc, _ = built
    assert len(doc["interview"]) == 5
    for qa in doc["interview"]:
        assert qa["question"].endswith("?")
        n = len(re.findall(r"[.!?](\s|$)", qa["answer"]))
        assert 2 <= n <= 3, qa["answer"]


def test_html_is_self_contained(built):
    index, _, _ = built
    page = index.read_text()
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert "src=" not in page
    assert page.count("<svg") == 4  # two figures per experiment, inline


def test_html_shows_claims_table_badges_evidence_and_commands(built):
    index, _, _ = built
    page = index.read_text()
    claims_at = page.index("<h2>Claims</h2>")
    experiments_at = page.index("<h2>Experiments</h2>")
    assert claims_at < experiments_at  # the claims table comes first
    for v in VERDICTS:
        assert f'class="badge {v}"' in page
    assert "<b>ratio</b> = 1.25" in page
    assert "gradsight lab --only alpha --quick" in page
    assert "&lt;summary &amp; escaping&gt;" in page  # text is escaped
    assert "3 seeds, 100 steps" in page


def test_svg_ids_are_unique_across_figures(built):
    index, _, _ = built
    ids = re.findall(r'\bid="([^"]+)"', index.read_text())
    assert len(ids) == len(set(ids))


def test_inline_svg_strips_prologue_namespaces_and_prefixes_references():
    svg = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        "<metadata><rdf:RDF>http://purl.org/dc</rdf:RDF></metadata>"
        '<defs><path id="m1" d="M0 0"/></defs><use xlink:href="#m1" fill="#m1x"/>'
        '<g clip-path="url(#m1)"/></svg>'
    )
    out = inline_svg(svg, "p-")
    assert "http" not in out and "<?xml" not in out and "metadata" not in out
    assert 'id="p-m1"' in out and 'xlink:href="#p-m1"' in out and "url(#p-m1)" in out
    assert 'fill="#m1x"' in out  # not an id: left alone


def test_failed_experiments_are_listed(tmp_path):
    build([_result("alpha", ["supported"])], tmp_path, quick=False, gallery=False,
          failed={"beta": "RuntimeError: boom"})
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["failed"] == {"beta": "RuntimeError: boom"}
    assert "experiment beta failed" in (tmp_path / "index.html").read_text()


def test_duplicate_claim_ids_are_rejected(tmp_path):
    with pytest.raises(GradsightError, match="repeated: \\['alpha.c0'\\]"):
        build([_result("alpha", ["supported"]), _result("alpha", ["refuted"])], tmp_path,
              quick=True, gallery=False)


def test_out_dir_that_is_a_file_is_rejected(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(GradsightError, match="is a file"):
        build([], f, quick=True, gallery=False)


def test_jsonable_converts_numpy_and_torch():
    import numpy as np
    import torch

    out = jsonable({"a": np.float32(0.5), "b": np.arange(3), "c": torch.tensor([1.0, float("nan")])})
    assert out == {"a": 0.5, "b": [0, 1, 2], "c": [1.0, None]}
    json.dumps(out, allow_nan=False)
