"""The lab's report: one self-contained HTML page and one JSON file.

``gradsight.report.build(results, out_dir, quick)`` writes ``out_dir/index.html`` (figures inline
as SVG, no external CSS, JS or links: it reads offline) and ``out_dir/results.json`` (every
experiment's numbers, every claim with its verdict, evidence and command, the interview answers
and the environment). ``gradsight lab`` calls it after running the experiments.
"""

from __future__ import annotations

from gradsight.report.html import build, environment, results_document

__all__ = ["build", "environment", "results_document"]
