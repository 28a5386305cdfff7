"""The local runtime's EventBridge emulation: schedule expressions, scheduled events, stream filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crm import clock
from crm_local.pollers import StreamPoller
from crm_local.schedules import ScheduleTimer, next_time, scheduled_event
from crm_local.template import Stack

AT = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(("expression", "expected"), [
    ("rate(5 minutes)", AT + timedelta(minutes=5)),
    ("rate(1 hour)", AT + timedelta(hours=1)),
    ("rate(2 days)", AT + timedelta(days=2)),
    ("cron(0 3 * * ? *)", datetime(2026, 11, 24, 3, 0, tzinfo=UTC)),
    ("cron(15 14 ? * MON-FRI *)", datetime(2026, 11, 24, 14, 15, tzinfo=UTC)),
])
def test_next_time_of_eventbridge_expressions(expression: str, expected: datetime) -> None:
    assert next_time(expression, AT) == expected


@pytest.mark.parametrize("expression", ["rate(5 fortnights)", "every day", "cron(0 3 * * ?)"])
def test_an_unknown_expression_is_refused(expression: str) -> None:
    with pytest.raises(ValueError, match=r"schedule expression|cron expression"):
        next_time(expression, AT)


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        return {"ok": True}


def test_a_timer_fires_with_the_scheduled_event_and_follows_the_fast_forwarded_clock() -> None:
    recorder = Recorder()
    timer = ScheduleTimer("Daily", recorder, "cron(0 3 * * ? *)", "arn:aws:events:us-east-1:1:rule/daily",  # type: ignore[arg-type]
                          "us-east-1")
    due = timer.due
    assert timer.fire() == {"ok": True}
    [event] = recorder.events
    assert (event["detail-type"], event["source"], event["resources"]) == (
        "Scheduled Event", "aws.events", ["arn:aws:events:us-east-1:1:rule/daily"])
    try:
        clock.shift(timedelta(days=3))
        assert clock.utc_now() >= due + timedelta(days=2)
        timer.fire()
        assert timer.due > clock.utc_now() and timer.fired == 2
    finally:
        clock.shift(-timedelta(days=3))


def test_scheduled_event_time_is_utc_seconds() -> None:
    assert scheduled_event("arn", AT, "eu-west-1")["time"] == "2026-11-23T14:30:00Z"


def test_the_template_schedules_the_segment_runs_hourly_and_the_prediction_fits_daily(stack: Stack) -> None:
    rules = {name: r["Properties"] for name, r in stack.of_type("AWS::Events::Rule").items()
             if "ScheduleExpression" in r["Properties"]}
    assert sorted((p["ScheduleExpression"], p["Targets"][0]["Arn"]["Fn::GetAtt"][0]) for p in rules.values()) == [
        ("cron(0 * * * ? *)", "SegmentRunsFunction"),
        ("cron(0 3 * * ? *)", "PredictionsScheduleFunction")]  # the segment run's hour: the fit reads its files


def _stream_record(event_name: str, sk: str) -> dict[str, Any]:
    return {"eventName": event_name, "dynamodb": {"Keys": {"pk": {"S": "WS#a#PROFILE#p"}, "sk": {"S": sk}}}}


def test_the_refresh_mapping_filters_the_stream_as_lambda_would(stack: Stack) -> None:
    [mapping] = [m["Properties"] for m in stack.of_type("AWS::Lambda::EventSourceMapping").values()
                 if m["Properties"]["FunctionName"] == {"Ref": "SegmentRefreshFunction"}]
    poller = StreamPoller.__new__(StreamPoller)
    poller.filters = StreamPoller.filters_of(mapping)
    assert poller.wanted(_stream_record("MODIFY", "PROFILE")) and poller.wanted(_stream_record("INSERT", "PROFILE"))
    assert poller.wanted(_stream_record("REMOVE", "SEGMENTS"))
    assert not poller.wanted(_stream_record("REMOVE", "PROFILE"))
    assert not poller.wanted(_stream_record("INSERT", "SEGMENTS"))  # the refresh's own writes do not loop back
    assert not poller.wanted(_stream_record("INSERT", "T#2026-11-23T14:30:00+00:00#page_viewed#e1"))
