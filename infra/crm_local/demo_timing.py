"""The demo's wall time: how long each of its parts took (a line per phase, the total) and the latencies its
requests met, printed last in its report (`make demo` has a budget: docs/local-runtime.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


def percentile_ms(values: Sequence[float], share: float) -> str:
    """The value at ``share`` (0.5: the median) of ``values`` in seconds, in milliseconds as text."""
    ordered = sorted(values) or [0.0]
    return f"{ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000:.0f} ms"


@dataclass
class Phases:
    """Wall time of each phase in the order they ran; ``beside`` for one that ran beside the others."""

    clock: Callable[[], float] = time.perf_counter
    spans: list[tuple[str, float, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.began = self.clock()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = self.clock()
        try:
            yield
        finally:
            self.spans.append((name, self.clock() - started, False))

    def add(self, name: str, seconds: float, beside: bool = False) -> None:
        self.spans.append((name, seconds, beside))

    def total(self) -> float:
        return self.clock() - self.began

    def report(self, latencies: Mapping[str, Sequence[float]]) -> None:
        """A line per phase, one per kind of request with its p50 and p95, then the total."""
        print("\n== wall time ==")
        for name, seconds, beside in self.spans:
            print(f"  {name:<46}{seconds:>7.1f} s" + ("  (beside the parts above, in a process of its own)"
                                                     if beside else ""))
        for kind, seconds_each in latencies.items():
            print(f"  {kind:<46}p50 {percentile_ms(seconds_each, 0.5)}, p95 {percentile_ms(seconds_each, 0.95)} "
                  f"({len(seconds_each)} requests)")
        print(f"demo finished in {self.total():.0f} s", flush=True)
