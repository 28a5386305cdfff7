"""bench/track_batching.py runs the real storefront snippet page by page on a virtual clock: what it counts as a
request is what the snippet sends (a page's events within its wait, never two pages' together, at most 20)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def batching() -> ModuleType:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_track_batching", BENCH / "track_batching.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_page_sends_what_it_queued_within_the_wait_and_the_rest_when_left(batching: ModuleType,
                                                                            tmp_path: Path) -> None:
    product_page = {"events": [[0, "page_viewed"], [0.2, "product_viewed"], [5, "product_added_to_cart"],
                               [40, "product_added_to_cart"]], "dwell": 60}
    landing = {"events": [[0, "page_viewed"]], "dwell": 2}
    sent = batching.run_snippet([[landing, product_page]], tmp_path)
    assert sent.requests == [["page_viewed"], ["page_viewed", "product_viewed", "product_added_to_cart"],
                             ["product_added_to_cart"]]
    assert sent.events_per_request == pytest.approx(5 / 3)
    assert sent.views_per_request == [1, 2]


def test_a_busy_page_is_cut_at_twenty_events(batching: ModuleType, tmp_path: Path) -> None:
    page = {"events": [[0, "page_viewed"], *([0.1, "product_viewed"] for _ in range(24))], "dwell": 3}
    sent = batching.run_snippet([[page]], tmp_path)
    assert [len(request) for request in sent.requests] == [20, 5]


def test_the_sessions_are_seeded(batching: ModuleType) -> None:
    assert batching.sessions(3, 20) == batching.sessions(3, 20)
    assert batching.sessions(3, 20) != batching.sessions(4, 20)
