"""The template's EventBridge schedules, fired locally: EventBridge itself would invoke the function.

A schedule fires when the runtime's clock (crm.clock.utc_now, which the runtime can fast-forward) passes
its next time; a jump over several occurrences fires once, as a late catch-up, not once per occurrence.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from crm.clock import utc_now
from croniter import croniter

from crm_local.lambdas import Function
from crm_local.provision import ACCOUNT_ID

log = logging.getLogger("crm.local")

CHECK_EVERY_SECONDS = 0.2
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\((.+)\)")


def rate_period(expression: str) -> timedelta | None:
    """The period of a ``rate(...)`` expression; None for any other."""
    rate = _RATE.fullmatch(expression)
    if rate is None:
        return None
    unit = rate.group(2).rstrip("s") + "s"
    return timedelta(**{unit: int(rate.group(1))})


def next_time(expression: str, after: datetime) -> datetime:
    """The first occurrence of an EventBridge schedule expression after ``after``."""
    period = rate_period(expression)
    if period is not None:
        return after + period
    cron = _CRON.fullmatch(expression)
    if cron is None:
        raise ValueError(f"schedule expression {expression!r} is neither rate(...) nor cron(...)")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ValueError(f"cron expression {expression!r} needs 6 fields (minute hour day month weekday year)")
    # EventBridge's six fields end with a year, and '?' means "any" in one of the day fields.
    minute, hour, day, month, weekday, _year = (f.replace("?", "*") for f in fields)
    nxt: datetime = croniter(f"{minute} {hour} {day} {month} {weekday}", after).get_next(datetime)
    return nxt


def scheduled_event(rule_arn: str, at: datetime, region: str) -> dict[str, Any]:
    """The event EventBridge sends a function for a scheduled rule."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT_ID, "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
            "resources": [rule_arn], "detail": {}}


class ScheduleTimer(threading.Thread):
    def __init__(self, name: str, function: Function, expression: str, rule_arn: str, region: str) -> None:
        super().__init__(name=name, daemon=True)
        self.function = function
        self.expression = expression
        self.rule_arn = rule_arn
        self.region = region
        self.due = next_time(expression, utc_now())
        self.stopping = threading.Event()
        self.fired = 0
        self._lock = threading.RLock()  # fire_if_due holds it across fire

    def run(self) -> None:
        while not self.stopping.wait(CHECK_EVERY_SECONDS):
            self.fire_if_due()

    def is_due(self) -> bool:
        return utc_now() >= self.due

    def fire_if_due(self) -> bool:
        """Fire if the clock has passed the due time (once, however far past); whether it fired."""
        with self._lock:
            if not self.is_due():
                return False
            self.fire()
            return True

    def fire(self) -> Any:
        """Invoke the function now, as EventBridge would at the due time."""
        with self._lock:
            now = utc_now()
            self.due = next_time(self.expression, now)
            self.fired += 1
            try:
                return self.function.invoke(scheduled_event(self.rule_arn, now, self.region))
            except Exception:  # EventBridge retries and gives up; the next occurrence runs regardless
                log.exception("scheduled %s failed", self.name)
                return None

    def stop(self) -> None:
        self.stopping.set()
