"""bench/segments.py's SQL says what each segment definition says: DuckDB counts the same members as matches().

A correctness check of the hand-written SQL translation (absent values, case, windows, `since`) on a few
thousand synthetic profiles; the benchmark's speed is measured by `make bench`, never asserted here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_module() -> ModuleType:
    pytest.importorskip("duckdb")
    # The bench scripts import each other as top-level modules (`from ingest_path import ...`).
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_segments", BENCH / "segments.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_duckdb_counts_the_same_members_for_every_definition() -> None:
    bench = _bench_module()
    counts = bench.compare_counts(3_000)
    assert {name for name in counts if "(pid sum)" not in name} == {rule.name for rule in bench.RULES}
    mismatched = {name: pair for name, pair in counts.items() if pair[0] != pair[1]}
    assert not mismatched
    # Every rule selects someone and leaves someone out, so a translation that is always true or false fails.
    for rule in bench.RULES:
        assert 0 < counts[rule.name][0] < 3_000, rule.name


def test_generation_is_deterministic() -> None:
    bench = _bench_module()
    first, again = bench.chunk(0, 50), bench.chunk(0, 50)
    assert [s.profile for s in first] == [s.profile for s in again]
    assert all(s.profile.last_order_at is None or s.profile.last_order_at.utcoffset() is not None for s in first)
