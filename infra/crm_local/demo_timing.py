"""The demo's wall time: how long each of its parts took (a line per phase, the total) and the latencies its
requests met, printed last in its report (`make demo` has a budget: docs/local-runtime.md). Beside each phase's
wall time, the CPU time the demo's process spent in it: the stack (moto, the pollers, the HTTP server) runs
there, so it is what the phase costs whatever else the machine runs."""

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
    """Wall time of each phase in the order they ran (and the process's CPU time in it, where measured);
    ``beside`` for one that ran beside the others."""

    clock: Callable[[], float] = time.perf_counter
    cpu_clock: Callable[[], float] = time.process_time
    spans: list[tuple[str, float, bool]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # phase name -> CPU seconds of this process

    def __post_init__(self) -> None:
        self.began = self.clock()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started, cpu_started = self.clock(), self.cpu_clock()
        try:
            yield
        finally:
            self.spans.append((name, self.clock() - started, False))
            self.cpu[name] = self.cpu_clock() - cpu_started

    def add(self, name: str, seconds: float, beside: bool = False, cpu: float | None = None) -> None:
        self.spans.append((name, seconds, beside))
        if cpu is not None:
            self.cpu[name] = cpu

    def total(self) -> float:
        return self.clock() - self.began

    def report(self, latencies: Mapping[str, Sequence[float]]) -> None:
        """A line per phase, one per kind of request with its p50 and p95, then the total."""
        print("\n== wall time ==")
        for name, seconds, beside in self.spans:
            cpu = f"{self.cpu[name]:>7.1f} s CPU" if name in self.cpu else " " * 13
            line = f"  {name:<46}{seconds:>7.1f} s {cpu}"
            print(f"{line}  (beside the parts above, in a process of its own)" if beside else line.rstrip())
        for kind, seconds_each in latencies.items():
            print(f"  {kind:<46}p50 {percentile_ms(seconds_each, 0.5)}, p95 {percentile_ms(seconds_each, 0.95)} "
                  f"({len(seconds_each)} requests)")
        print(f"demo finished in {self.total():.0f} s", flush=True)
