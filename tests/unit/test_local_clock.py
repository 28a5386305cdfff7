"""`crm clock`: durations as an operator types them, and the local runtime's clock route, served on loopback
by the runtime's own API server, against a runtime that records what it is asked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from crm import clock
from crm_local.cli import main
from crm_local.clock_control import (
    CLOCK_PATH,
    NotALocalRuntime,
    clock_routes,
    iso_duration,
    parse_duration,
    remote_advance,
    remote_now,
)
from crm_local.demo import free_port, http
from crm_local.http import api_server
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(("text", "expected"), [
    ("4h", timedelta(hours=4)), ("30m", timedelta(minutes=30)), ("2d", timedelta(days=2)),
    ("1w", timedelta(weeks=1)), ("90s", timedelta(seconds=90)), ("1d12h", timedelta(days=1, hours=12)),
    ("PT4H", timedelta(hours=4)), ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
    ("P2W", timedelta(weeks=2)), ("pt1.5s", timedelta(seconds=1.5)), (" 4H ", timedelta(hours=4)),
])
def test_durations_short_or_iso(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "problem"), [
    ("", "not a duration"), ("P", "not a duration"), ("PT", "not a duration"), ("4x", "not a duration"),
    ("-4h", "not a duration"), ("4 hours", "not a duration"), ("0h", "forward"), ("P1Y", "years and months"),
    ("P1M", "years and months"),
])
def test_what_is_not_a_forward_duration_is_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_duration(text)


@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)))
def test_iso_duration_reads_back(duration: timedelta) -> None:
    assert parse_duration(iso_duration(duration)) == duration


class Runtime:
    """What the route needs of LocalRuntime, recorded."""

    def __init__(self, idle: bool = True) -> None:
        self.advanced: list[timedelta] = []
        self.waited: list[float] = []
        self.idle = idle

    def advance_clock(self, by: timedelta) -> list[Any]:
        clock.shift(by)
        self.advanced.append(by)
        return ["one schedule"]

    def wait_idle(self, timeout: float = 60.0) -> bool:
        self.waited.append(timeout)
        return self.idle


@pytest.fixture
def served() -> Iterator[tuple[str, Runtime]]:
    runtime = Runtime()
    server = api_server("127.0.0.1", free_port(), [], local_routes=clock_routes(runtime))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", runtime
    finally:
        server.shutdown()
        server.server_close()
        clock.shift(-sum(runtime.advanced, timedelta()))


def test_the_route_advances_the_clock_waits_for_idle_and_answers_the_new_time(served: tuple[str, Runtime]) -> None:
    api, runtime = served
    before = remote_now(api).now
    answer = remote_advance(api, timedelta(hours=4), wait_seconds=30)
    assert runtime.advanced == [timedelta(hours=4)] and runtime.waited == [30]
    assert answer.now - before >= timedelta(hours=4) and answer.now - before < timedelta(hours=4, minutes=1)
    assert (answer.advanced_by, answer.schedules_fired, answer.idle) == ("PT4H", 1, True)


@pytest.mark.parametrize(("body", "problem"), [
    (b"{}", "advance: Field required"), (b'{"advance": "soon"}', "not a duration"),
    (b'{"advance": 3600}', "duration as text"), (b'{"advance": "4h", "wait_seconds": 9999}', "wait_seconds"),
    (b'{"advance": "4h", "to": "x"}', "to: Extra inputs"), (b"not json", "Invalid JSON"),
])
def test_a_bad_request_is_a_400_naming_the_problem(served: tuple[str, Runtime], body: bytes, problem: str) -> None:
    api, runtime = served
    status, answer = http("POST", api + CLOCK_PATH, body, {"Content-Type": "application/json"})
    assert status == 400 and problem in answer["error"]
    assert runtime.advanced == []


def test_only_the_clock_lives_under_local(served: tuple[str, Runtime]) -> None:
    api, _ = served
    assert http("DELETE", api + CLOCK_PATH)[0] == 405
    assert http("GET", api + "/_local/other")[0] == 404


def test_the_cli_prints_the_new_time_as_json(served: tuple[str, Runtime], capsys: pytest.CaptureFixture[str]) -> None:
    api, runtime = served
    assert main(["clock", "advance", "2d", "--api", api]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["advanced_by"] == "P2D" and runtime.advanced == [timedelta(days=2)]
    assert main(["clock", "now", "--api", api]) == 0
    assert json.loads(capsys.readouterr().out).keys() == {"now"}


def test_the_cli_says_when_the_stack_stayed_busy(served: tuple[str, Runtime], capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    api, runtime = served
    runtime.idle = False
    assert main(["clock", "advance", "1h", "--api", api, "--wait", "5"]) == 1
    assert "still busy" in capsys.readouterr().err


def test_the_cli_says_nothing_is_listening(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clock", "advance", "4h", "--api", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "nothing is listening" in capsys.readouterr().err


@pytest.mark.parametrize(("arguments", "problem"), [(["soon"], "not a duration"),
                                                   (["4h", "--wait", "601"], "between 0 and 600")])
def test_the_cli_refuses_bad_arguments_before_calling(capsys: pytest.CaptureFixture[str], arguments: list[str],
                                                      problem: str) -> None:
    with pytest.raises(SystemExit):
        main(["clock", "advance", *arguments, "--api", f"http://127.0.0.1:{free_port()}"])
    assert problem in capsys.readouterr().err


def test_an_api_without_the_route_is_not_a_local_runtime() -> None:
    server = api_server("127.0.0.1", free_port(), [])  # the template's routes only, as deployed
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(NotALocalRuntime, match="not a local runtime"):
            remote_now(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
