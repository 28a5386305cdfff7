"""The demo's wall-time report (crm_local.demo_timing) and its parts run beside the main stack."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from crm_local.demo import ATTRIBUTION, PartBeside, Sent, latencies
from crm_local.demo_timing import Phases, percentile_ms


def ticking(*times: float) -> Callable[[], float]:
    """A clock that answers the given times in turn."""
    remaining = list(times)
    return lambda: remaining.pop(0)


def test_percentiles_are_read_off_the_sorted_values_in_milliseconds() -> None:
    seconds = [0.5, 0.1, 0.2, 0.4, 0.3, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert percentile_ms(seconds, 0.5) == "600 ms"
    assert percentile_ms(seconds, 0.95) == "1000 ms"
    assert percentile_ms([0.25], 0.95) == "250 ms"
    assert percentile_ms([], 0.5) == "0 ms"


def test_each_phase_is_timed_in_the_order_it_ran_and_the_total_spans_them_all(
        capsys: pytest.CaptureFixture[str]) -> None:
    phases = Phases(clock=ticking(100.0, 100.0, 130.5, 130.5, 131.0, 190.0), cpu_clock=ticking(1.0, 13.0, 13.0, 13.25))
    with phases.phase("waves"):
        pass
    with phases.phase("segments"):
        pass
    phases.add("attribution", 42.0, beside=True)
    phases.report({"webhooks": [0.1, 0.3, 0.2], "track requests": [0.05]})
    assert phases.spans == [("waves", 30.5, False), ("segments", 0.5, False), ("attribution", 42.0, True)]
    assert phases.cpu == {"waves": 12.0, "segments": 0.25}
    out = capsys.readouterr().out
    assert out.index("waves") < out.index("segments") < out.index("attribution")
    assert "30.5 s    12.0 s CPU" in out and "0.5 s     0.2 s CPU" in out
    assert "42.0 s" + " " * 16 + "(beside" in out
    assert "webhooks" in out and "p50 200 ms, p95 300 ms (3 requests)" in out
    assert out.rstrip().endswith("demo finished in 90 s")


def test_a_phase_that_fails_is_still_timed() -> None:
    phases = Phases(clock=ticking(0.0, 1.0, 3.0), cpu_clock=ticking(5.0, 5.5))
    with pytest.raises(RuntimeError), phases.phase("flows"):
        raise RuntimeError("the stack did not go idle")
    assert phases.spans == [("flows", 2.0, False)] and phases.cpu == {"flows": 0.5}


def test_a_phase_added_with_its_cpu_time_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    phases = Phases(clock=ticking(0.0, 10.0))
    phases.add("stack up", 8.0, cpu=6.5)
    phases.report({})
    assert "8.0 s     6.5 s CPU" in capsys.readouterr().out


def test_latencies_put_both_platforms_webhooks_together_and_track_apart() -> None:
    sent = [Sent("shopify", 200, 0.1), Sent("woocommerce", 200, 0.2), Sent("track", 202, 0.05, 3)]
    assert latencies(sent) == {"webhooks (shopify and woocommerce)": [0.1, 0.2], "track requests": [0.05]}


def test_the_part_beside_is_held_until_finished_then_printed_and_its_exit_status_counts(
        capsys: pytest.CaptureFixture[str]) -> None:
    # The part waits for go (a line on its standard input) before it runs, as the demo's parts do with --wait.
    script = ("import sys; print('stack up', flush=True); line = sys.stdin.readline(); "
              "print('== attribution ==', line.strip()); print('a warning', file=sys.stderr); sys.exit({})")
    with PartBeside("the attribution part", [sys.executable, "-c", script.format(0)]) as part:
        part.start()
        print("the main parts")
        part.go()
        assert part.finish() == []
    captured = capsys.readouterr()
    assert captured.out.index("the main parts") < captured.out.index("stack up") < captured.out.index(
        "== attribution == go")
    assert "a warning" in captured.err and part.seconds > 0
    with PartBeside("the flows part", [sys.executable, "-c", script.format(3)]) as failing:
        failing.start()
        assert failing.finish() == ["the flows part exited 3"]  # finish() lets it go if nothing did


def test_a_part_never_started_is_a_mismatch_and_one_left_running_is_stopped() -> None:
    assert PartBeside("the attribution part", ATTRIBUTION).finish() == ["the attribution part did not start"]
    with PartBeside("the flows part", [sys.executable, "-c", "import time; time.sleep(60)"]) as running:
        running.start()
    assert running.process is not None and running.process.returncode is not None


def test_a_part_that_ended_before_go_is_reported_not_raised() -> None:
    with PartBeside("the flows part", [sys.executable, "-c", "import sys; sys.exit(2)"]) as ended:
        ended.start()
        assert ended.process is not None
        ended.process.wait()
        ended.go()
        assert ended.finish() == ["the flows part exited 2"]
