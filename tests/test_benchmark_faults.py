"""The page-fault count that benchmarks/monitor_overhead.py prints beside its ratios."""

from __future__ import annotations

import importlib.util
import mmap
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "monitor_overhead.py"


def _bench():
    spec = importlib.util.spec_from_file_location("monitor_overhead", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="minor page faults are counted on Linux")
def test_minor_faults_counts_the_pages_a_fresh_mapping_touches() -> None:
    bench = _bench()
    pages = 1024
    with mmap.mmap(-1, pages * mmap.PAGESIZE) as m:  # fresh anonymous memory: no page yet
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            m.madvise(mmap.MADV_NOHUGEPAGE)  # one fault per 4 KiB page, not per 2 MiB
        before = bench.minor_faults()
        for i in range(pages):
            m[i * mmap.PAGESIZE] = 1
        after = bench.minor_faults()
    assert pages <= after - before < pages + 200
