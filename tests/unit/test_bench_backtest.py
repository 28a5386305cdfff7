"""bench/backtest.py's generated history: the reference store's proportions, in time order, deterministic for a
seed, and a backtest over it that sends and skips (the speed itself is measured by `make bench`, never
asserted)."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    # The bench scripts import each other as top-level modules (`from figures import record`).
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_backtest", BENCH / "backtest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_history_has_the_reference_store_proportions(bench: ModuleType) -> None:
    history = bench.generate(0.002, 11)
    kinds = Counter(h.event.type for h in history)
    assert kinds["OrderPlaced"] == 600 and kinds["ProductViewed"] == 1680
    assert kinds["CheckoutStarted"] == 600 + 600
    assert 0.8 * 600 < kinds["OrderFulfilled"] < 600
    moments = [h.event.occurred_at for h in history]
    assert moments == sorted(moments)
    assert [h.event.event_id for h in bench.generate(0.002, 11)] == [h.event.event_id for h in history]


def test_a_backtest_over_it_enters_sends_and_skips(bench: ModuleType) -> None:
    history = bench.generate(0.002, 11)
    measured = bench.measure("abandoned", bench._flow(bench.ABANDONED_CHECKOUT), history)
    report = measured.report
    assert report.entered > 0 and report.sent["email"] > 0 and report.skipped["no_consent"] > 0
    baseline = bench.measure("baseline", bench._flow(bench.ABANDONED_CHECKOUT, never_triggered=True), history)
    assert (baseline.report.entered, baseline.events) == (0, measured.events)
