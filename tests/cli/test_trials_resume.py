"""Kill -9 in the middle of `gradsight sweep` / `gradsight lab`, then the same command: every
finished trial is kept, none runs twice, and the report equals an uninterrupted run's. The lab
run holds two whole experiments and one split into trials (llm_ffn's own trials at a tiny
recipe, registered by ``_tiny_llm_lab``), killed midway through the split one."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gradsight

GRADSIGHT = [sys.executable, "-c", "from gradsight.cli import main; main()"]
# the lab's command also registers the tiny split experiment
LAB_GRADSIGHT = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                 "import _tiny_llm_lab; from gradsight.cli import main; main()"]
# the commands run in a temporary directory: find this gradsight there too
SRC = str(Path(gradsight.__file__).resolve().parents[1])
ENV = {**os.environ, "COLUMNS": "200",
       "PYTHONPATH": os.pathsep.join([SRC, *filter(None, [os.environ.get("PYTHONPATH")])])}
SWEEP = ["sweep", "--activation", "relu,tanh", "--lr", "0.05,0.5", "--seeds", "0,1",
         "--steps", "150", "--width", "16", "--out", "run"]
LAB = ["lab", "--quick", "--only", "derivatives,glorot2010,llm_ffn_tiny", "--out", "run"]
LAB_TRIALS = 2 + 7 * 2 + 1  # 2 whole experiments, 7 forms x 2 seeds, the gallery


def _finished(db: Path) -> dict[str, tuple]:
    """id -> (status, attempts, started, finished) of every stored trial (read-only)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            rows = con.execute("SELECT id, status, attempts, started, finished FROM trials")
            return {r[0]: r[1:] for r in rows.fetchall()}
    except sqlite3.OperationalError:  # the table is not created yet
        return {}


def _command(args: list[str]) -> list[str]:
    return (LAB_GRADSIGHT if args[0] == "lab" else GRADSIGHT) + args


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(_command(args), cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _kill_after(args: list[str], cwd: Path, at_least: int, total: int) -> dict[str, tuple]:
    """Start ``gradsight ARGS``, SIGKILL it once ``at_least`` trials are stored; the store then."""
    db = cwd / "run" / "trials.sqlite"
    proc = subprocess.Popen(_command(args), cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while len(_finished(db)) < at_least and proc.poll() is None:
            assert time.monotonic() < deadline, "no trial finished in 300 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    kept = _finished(db)
    if not at_least <= len(kept) < total:
        pytest.fail(f"the run was not killed midway: {len(kept)} of {total} trials stored")
    return kept


def test_sweep_killed_midway_resumes_without_losing_or_repeating_trials(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    killed.mkdir(), clean.mkdir()
    kept = _kill_after(SWEEP, killed, at_least=2, total=8)
    out = _run(SWEEP, killed).stdout
    after = _finished(killed / "run" / "trials.sqlite")
    assert len(after) == 8 and all(v[:2] == ("done", 1) for v in after.values())
    for tid, row in kept.items():  # finished before the kill: kept as they were, not re-run
        assert after[tid] == row
    assert f"{len(kept)} cached" in out
    _run(SWEEP, clean)
    resumed = (killed / "run" / "index.html").read_bytes()
    assert resumed == (clean / "run" / "index.html").read_bytes()  # same report, byte for byte


def _without_timing(doc):
    if isinstance(doc, dict):
        return {k: _without_timing(v) for k, v in doc.items()
                if k not in ("seconds", "environment", "ms_per_step", "tokens_per_second")}
    if isinstance(doc, list):
        return [_without_timing(v) for v in doc]
    return doc


def test_lab_killed_midway_resumes_without_losing_or_repeating_trials(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    killed.mkdir(), clean.mkdir()
    # trials run in order: the 2 whole experiments, then llm_ffn_tiny's; kill once 1 of those is in
    kept = _kill_after(LAB, killed, at_least=3, total=LAB_TRIALS)
    assert len(kept) < 2 + 14  # killed inside the split experiment
    assert not (killed / "run" / "results.json").exists()
    out = _run(LAB, killed).stdout
    after = _finished(killed / "run" / "trials.sqlite")
    assert len(after) == LAB_TRIALS and all(v[:2] == ("done", 1) for v in after.values())
    for tid, row in kept.items():
        assert after[tid] == row
    assert "derivatives" in out and "(stored)" in out
    assert f"in 14 trials, {len(kept) - 2} stored" in out  # the split one resumed midway
    _run(LAB, clean)
    resumed = json.loads((killed / "run" / "results.json").read_text())
    uninterrupted = json.loads((clean / "run" / "results.json").read_text())
    assert list(resumed["experiments"]) == ["derivatives", "glorot2010", "llm_ffn_tiny"]
    assert _without_timing(resumed) == _without_timing(uninterrupted)
