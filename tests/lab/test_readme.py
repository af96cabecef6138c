"""The README's lab tables come from recorded runs; one verdict vocabulary everywhere; --seed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gradsight.errors import GradsightError
from gradsight.lab import readme
from gradsight.lab.registry import (
    VERDICT_MEANING,
    VERDICTS,
    Claim,
    ExperimentResult,
    command_for,
    seeded,
    seeds,
)
from gradsight.report.html import render_html, results_document

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "docs" / "lab"


def _result(name: str, verdicts: list[str], scale: str = "MLP 4x64, digits, 300 steps, 3 seeds"):
    claims = [
        Claim(id=f"{name}.c{i}", claim=f"claim {i} of {name}", verdict=v,  # type: ignore[arg-type]
              evidence={"x": i}, command=command_for(name, True),
              explanation=f"Measured {i + 0.5:.1f}% here. The rule says more.")
        for i, v in enumerate(verdicts)
    ]
    return ExperimentResult(name=name, title=name, summary="", command=command_for(name, True),
                            quick=True, scale=scale, claims=claims, seconds=2.0)


def _record(verdicts: list[str], seed: int = 0) -> dict:
    doc = results_document([_result("alpha", verdicts)], quick=True, env={"date_utc": "d"},
                           seed=seed)
    return readme.record(doc, f"gradsight lab --quick --seed {seed}")


def test_the_readme_lab_blocks_are_generated_from_the_recorded_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.blocks_of(text) == readme.render(readme.load_records(RECORDS))


def test_a_drifted_number_fails_the_check(tmp_path):
    shutil.copytree(RECORDS, tmp_path / "lab")
    page = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", page)
    assert readme.main(["check", str(page), "--dir", str(tmp_path / "lab")]) == 0
    live = tmp_path / "lab" / "quick-seed0.json"
    rec = json.loads(live.read_text(encoding="utf-8"))
    rec["claims"][0]["verdict"] = "refuted" if rec["claims"][0]["verdict"] != "refuted" else "supported"
    live.write_text(json.dumps(rec), encoding="utf-8")
    assert readme.main(["check", str(page), "--dir", str(tmp_path / "lab")]) == 1
    readme.main(["write", str(page), "--dir", str(tmp_path / "lab")])
    assert readme.main(["check", str(page), "--dir", str(tmp_path / "lab")]) == 0


def test_record_keeps_verdict_scale_and_the_first_sentence():
    rec = _record(["supported", "not_reproduced"])
    assert [c["verdict"] for c in rec["claims"]] == ["supported", "not_reproduced"]
    assert rec["claims"][0]["measured"] == "Measured 0.5% here."
    assert rec["experiments"]["alpha"]["scale"] == "MLP 4x64, digits, 300 steps, 3 seeds"
    with pytest.raises(GradsightError, match="not a lab results.json"):
        readme.record({"x": 1}, "cmd")


def test_the_seed_table_flags_a_verdict_that_changes_with_the_seed():
    records = {
        "quick-seed0": _record(["supported", "nuanced"], 0),
        "quick-seed1": _record(["supported", "refuted"], 1),
        "quick-seed2": _record(["supported", "nuanced"], 2),
    }
    table = readme.render(records)["seeds"]
    assert "| claim 0 of alpha | supported | supported | supported | yes |" in table
    assert "| claim 1 of alpha | nuanced | refuted | nuanced | **no** |" in table
    assert "Of 2 claims, 1 keep their verdict across 3 seeds and 1 change it; 0 were not" in table
    records["quick-seed2"]["claims"] = records["quick-seed2"]["claims"][:1]  # claim 1 not run
    table = readme.render(records)["seeds"]
    assert "| claim 1 of alpha | nuanced | refuted | not run | **no** |" in table
    records["quick-seed1"]["claims"][1]["verdict"] = "nuanced"
    table = readme.render(records)["seeds"]
    assert "| claim 1 of alpha | nuanced | nuanced | not run | not run in all |" in table
    modes = readme.render(records)["modes"]
    assert "| claim 0 of alpha | supported | not run | — |" in modes


def test_a_readme_without_the_markers_is_an_error():
    with pytest.raises(GradsightError, match="lab:vocabulary"):
        readme.rewrite("no markers", {b: "" for b in readme.BLOCKS})


def test_one_verdict_vocabulary_for_report_cli_json_and_readme():
    from gradsight.cli.lab import _VERDICT_STYLE

    assert VERDICTS == tuple(VERDICT_MEANING) and "not_reproduced" in VERDICTS
    assert set(_VERDICT_STYLE) == set(VERDICTS)
    doc = results_document([_result("alpha", list(VERDICTS))], quick=True, env={
        "date_utc": "d", "versions": {}})
    assert doc["verdicts"] == VERDICT_MEANING
    assert all(c["scale"] == "MLP 4x64, digits, 300 steps, 3 seeds" for c in doc["claims"])
    page = render_html(doc, [_result("alpha", list(VERDICTS))])
    for v in VERDICTS:
        assert f".{v}{{" in page and f'class="badge {v}"' in page
    assert all(f"**{v}**" in readme.render({"quick-seed0": _record([v])})["vocabulary"]
               for v in VERDICTS)
    with pytest.raises(GradsightError, match="allowed: supported"):
        Claim(id="x", claim="x", verdict="refuted at our scale", evidence={}, command="c")  # type: ignore[arg-type]


def test_seed_n_gives_disjoint_seeds_and_says_so_in_the_command():
    assert seeds(3) == [0, 1, 2] and command_for("he2015", True) == "gradsight lab --only he2015 --quick"
    with seeded(1):
        assert seeds(3) == [3, 4, 5] and seeds(5) == [5, 6, 7, 8, 9]
        assert command_for("he2015", True) == "gradsight lab --only he2015 --quick --seed 1"
    assert seeds(3) == [0, 1, 2]
    with pytest.raises(GradsightError, match="--seed must be an integer >= 0"), seeded(-1):
        pass


def test_runs_of_single_experiments_merge_into_one_record_in_registry_order():
    a = results_document([_result("he2015", ["nuanced"])], quick=True, env={"date_utc": "d1"}, seed=1)
    b = results_document([_result("derivatives", ["supported"])], quick=True, env={"date_utc": "d2"},
                         seed=1)
    merged = readme.merge([a, b])
    assert list(merged["experiments"]) == ["derivatives", "he2015"]
    assert [c["experiment"] for c in merged["claims"]] == ["derivatives", "he2015"]
    assert merged["seconds"] == 4.0 and merged["seed"] == 1
    other_seed = results_document([_result("cost", ["supported"])], quick=True, env={}, seed=2)
    with pytest.raises(GradsightError, match="disagree"):
        readme.merge([a, other_seed])
    with pytest.raises(GradsightError, match="appears in two"):
        readme.merge([a, a])


def test_replace_swaps_one_experiment_of_a_record_for_a_newer_run(tmp_path):
    a = results_document([_result("derivatives", ["supported"]), _result("he2015", ["nuanced"])],
                         quick=True, env={"date_utc": "d1"}, seed=1)
    target = tmp_path / "quick-seed1.json"
    target.write_text(json.dumps(readme.record(a, "first run")))
    again = tmp_path / "results.json"
    again.write_text(json.dumps(results_document([_result("he2015", ["supported", "refuted"])], quick=True,
                                                 env={"date_utc": "d2"}, seed=1)))
    assert readme.main(["replace", str(target), str(again), "--command", "first run; he2015 again"]) == 0
    got = json.loads(target.read_text())
    assert [(c["id"], c["verdict"]) for c in got["claims"]] == [
        ("derivatives.c0", "supported"), ("he2015.c0", "supported"), ("he2015.c1", "refuted")]
    assert got["command"] == "first run; he2015 again" and got["date_utc"] == "d2" and got["seconds"] == 4.0
    other_seed = tmp_path / "seed2.json"
    other_seed.write_text(json.dumps(results_document([_result("he2015", ["nuanced"])], quick=True, env={},
                                                      seed=2)))
    with pytest.raises(GradsightError, match="disagree"):
        readme.main(["replace", str(target), str(other_seed), "--command", "x"])


def test_the_command_line_says_a_bad_call_in_one_line_and_exits_2():
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "gradsight.lab.readme", "bogus"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: usage: record|replace|write|check; got ['bogus']; try 'check'"
    helped = subprocess.run([sys.executable, "-m", "gradsight.lab.readme", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "python -m gradsight.lab.readme check" in helped.stdout


def test_the_llm_block_states_each_recorded_llm_ffn_verdict_with_what_was_measured():
    records = readme.load_records(RECORDS)
    full = [c for c in records["full-llm_ffn"]["claims"] if c["experiment"] == "llm_ffn"]
    assert len(full) == 4
    block = readme.render(records)["llm"]
    for c in full:
        assert f"- **{c['verdict']}** {c['claim']}: {c['measured']}" in block
    full[0]["verdict"] = "refuted"  # the block follows the record, it holds no verdict of its own
    assert f"- **refuted** {full[0]['claim']}:" in readme.render(records)["llm"]
