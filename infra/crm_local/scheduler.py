"""EventBridge Scheduler, emulated: moto stores schedules (CreateSchedule, UpdateSchedule, DeleteSchedule) but
never runs them; here each fires when the runtime's clock (crm.clock.utc_now, which the runtime can
fast-forward) passes its time, delivering its target's Input as Scheduler would, and a one-time schedule with
``ActionAfterCompletion: DELETE`` is deleted once it has fired.

Cheap with thousands of waiting schedules: moto's backend lives in this process, so its writes are observed
(``install`` wraps the backend's create / update / delete methods) and each change puts the schedule's next
time on a heap. A tick looks at the heap's top only; nothing is listed or scanned after start-up.

Scheduler's rules kept here: ``at()`` is read in ``ScheduleExpressionTimezone``; a DISABLED schedule does not
fire; StartDate and EndDate bound ``rate()`` and ``cron()`` schedules and are ignored for one-time ones (as
Scheduler documents); a jump of the clock over several occurrences of a recurring schedule fires it once, late,
as the template's rules do locally (crm_local.schedules).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import boto3
from crm.clock import utc_now
from moto.scheduler.models import EventBridgeSchedulerBackend, Schedule

from crm_local.schedules import next_time, rate_period

log = logging.getLogger("crm.local")

CHECK_EVERY_SECONDS = 0.2
_AT = re.compile(r"at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)")
# What Scheduler hands a templated target when the schedule names no Input ("a default notification"); the
# flows always name one, so an empty JSON object stands in for it.
DEFAULT_INPUT = "{}"

ScheduleKey = tuple[str, str]  # (group, name)


def _moment(value: Any) -> datetime | None:
    """StartDate / EndDate as moto keeps them: epoch seconds (the JSON protocol's timestamps), or ISO text."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ScheduleEntry:
    """What the emulation needs of one schedule, copied from moto's object when it is written."""

    group: str
    name: str
    expression: str
    timezone: str = "UTC"
    enabled: bool = True
    start: datetime | None = None
    end: datetime | None = None
    target: dict[str, Any] = field(default_factory=dict)
    action_after_completion: str | None = None
    created: datetime | None = None

    @property
    def key(self) -> ScheduleKey:
        return (self.group, self.name)

    @property
    def one_time(self) -> bool:
        return self.expression.startswith("at(")

    @property
    def deleted_after_completion(self) -> bool:
        return self.action_after_completion == "DELETE"

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleEntry:
        return cls(group=schedule.group_name, name=schedule.name, expression=schedule.schedule_expression,
                   timezone=schedule.schedule_expression_timezone or "UTC",
                   enabled=(schedule.state or "ENABLED") == "ENABLED", start=_moment(schedule.start_date),
                   end=_moment(schedule.end_date), target=dict(schedule.target or {}),
                   action_after_completion=schedule.action_after_completion,
                   created=_moment(schedule.creation_date))

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"schedule {self.group}/{self.name}: unknown time zone {self.timezone!r}") from None

    def next_due(self, after: datetime, first: bool = False) -> datetime | None:
        """When the schedule fires next after ``after`` (``first``: its first time, once written); a one-time
        schedule: its time, whenever asked. None once a recurring schedule has passed its EndDate."""
        at = _AT.fullmatch(self.expression)
        if at:
            return datetime.fromisoformat(at.group(1)).replace(tzinfo=self.zone()).astimezone(UTC)
        if self.expression.startswith("at("):
            raise ValueError(f"schedule {self.group}/{self.name}: {self.expression!r} is not at(yyyy-mm-ddThh:mm:ss)")
        period = rate_period(self.expression)
        if period is not None:
            # Scheduler: a rate schedule first fires at its StartDate, or at once without one, then every period.
            anchor = self.start or self.created or after
            steps = 0 if first or after < anchor else (after - anchor) // period + 1
            due = anchor + steps * period
        else:
            begin = max(after, self.start) if self.start else after
            due = next_time(self.expression, begin.astimezone(self.zone())).astimezone(UTC)
        return None if self.end is not None and due > self.end else due


@dataclass(frozen=True)
class Firing:
    """One schedule due: ``completes`` when it will never fire again (a one-time schedule, or a recurring one
    past its EndDate), which is when ActionAfterCompletion applies."""

    entry: ScheduleEntry
    due: datetime
    completes: bool


class ScheduleBook:
    """The schedules waiting to fire, on a heap by due time. A change of a schedule bumps its generation, which
    leaves its older heap entries stale (skipped when they reach the top) rather than searched for."""

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._heap: list[tuple[datetime, int, ScheduleKey, int]] = []
        self._current: dict[ScheduleKey, tuple[int, ScheduleEntry]] = {}
        self._generations = itertools.count(1)
        self._order = itertools.count()

    def observe(self, entry: ScheduleEntry) -> None:
        """The schedule was created or changed: it fires at its (new) time, if enabled."""
        with self._lock:
            generation = next(self._generations)
            self._current[entry.key] = (generation, entry)
            if entry.enabled:
                try:
                    due = entry.next_due(self._now(), first=True)
                except ValueError as error:  # Scheduler refuses these at creation; moto stores them
                    log.warning("%s: not scheduled", error)
                    return
                if due is not None:
                    heapq.heappush(self._heap, (due, next(self._order), entry.key, generation))

    def forget(self, key: ScheduleKey) -> None:
        with self._lock:
            self._current.pop(key, None)

    def forget_group(self, group: str) -> None:
        with self._lock:
            for key in [k for k in self._current if k[0] == group]:
                del self._current[key]

    def _live_top(self) -> tuple[datetime, int, ScheduleKey, int] | None:
        while self._heap:
            top = self._heap[0]
            current = self._current.get(top[2])
            if current is not None and current[0] == top[3]:
                return top
            heapq.heappop(self._heap)
        return None

    def next_due(self) -> datetime | None:
        """The earliest time anything waiting fires."""
        with self._lock:
            top = self._live_top()
            return top[0] if top else None

    def has_due(self, now: datetime | None = None) -> bool:
        due = self.next_due()
        return due is not None and due <= (now or self._now())

    def take_due(self, now: datetime | None = None) -> list[Firing]:
        """Every schedule due at ``now``, in due order (ties in the order they were written), each once: a
        recurring one is re-armed for its next time after ``now``, a one-time one leaves the book."""
        now = now or self._now()
        taken: list[Firing] = []
        with self._lock:
            while (top := self._live_top()) is not None and top[0] <= now:
                due, _, key, generation = heapq.heappop(self._heap)
                entry = self._current[key][1]
                following = None if entry.one_time else entry.next_due(now)
                if following is None:
                    del self._current[key]
                else:
                    heapq.heappush(self._heap, (following, next(self._order), key, generation))
                taken.append(Firing(entry, due, completes=following is None))
        return taken

    def __len__(self) -> int:
        with self._lock:
            return len(self._current)


# moto's scheduler backend, observed: every write is passed to the books listening, under one lock so that a
# book sees the writes of one schedule in the order moto made them.
_listeners: list[tuple[str, ScheduleBook]] = []
_WRITES = threading.RLock()
_ORIGINALS = {name: getattr(EventBridgeSchedulerBackend, name)
              for name in ("create_schedule", "update_schedule", "delete_schedule", "delete_schedule_group")}


def _books(backend: EventBridgeSchedulerBackend) -> list[ScheduleBook]:
    return [book for region, book in _listeners if region == backend.region_name]


def install() -> None:
    """Wrap the backend's writes (idempotent)."""
    def written(method: str) -> Callable[..., Schedule]:
        def wrapper(self: EventBridgeSchedulerBackend, *args: Any, **kwargs: Any) -> Schedule:
            with _WRITES:
                schedule: Schedule = _ORIGINALS[method](self, *args, **kwargs)
                for book in _books(self):
                    book.observe(ScheduleEntry.of(schedule))
                return schedule
        return wrapper

    def delete_schedule(self: EventBridgeSchedulerBackend, group_name: str | None, name: str) -> None:
        with _WRITES:
            _ORIGINALS["delete_schedule"](self, group_name, name)
            for book in _books(self):
                book.forget((group_name or "default", name))

    def delete_schedule_group(self: EventBridgeSchedulerBackend, name: str | None) -> None:
        with _WRITES:
            _ORIGINALS["delete_schedule_group"](self, name)
            for book in _books(self):
                book.forget_group(name or "default")

    EventBridgeSchedulerBackend.create_schedule = written("create_schedule")  # type: ignore[method-assign]
    EventBridgeSchedulerBackend.update_schedule = written("update_schedule")  # type: ignore[method-assign]
    EventBridgeSchedulerBackend.delete_schedule = delete_schedule  # type: ignore[method-assign]
    EventBridgeSchedulerBackend.delete_schedule_group = delete_schedule_group  # type: ignore[method-assign]


def uninstall() -> None:
    for name, original in _ORIGINALS.items():
        setattr(EventBridgeSchedulerBackend, name, original)


def listen(backend: EventBridgeSchedulerBackend, book: ScheduleBook) -> None:
    """Feed ``book`` every schedule the backend holds now and every later write."""
    with _WRITES:
        for group in backend.schedule_groups.values():
            for schedule in group.schedules.values():
                book.observe(ScheduleEntry.of(schedule))
        _listeners.append((backend.region_name, book))


def unlisten(book: ScheduleBook) -> None:
    with _WRITES:
        _listeners[:] = [(region, b) for region, b in _listeners if b is not book]


class TargetError(Exception):
    """The target refused the delivery, or is of a kind the local runtime does not emulate."""


class Targets:
    """Delivers a schedule's Input to its target as Scheduler's templated targets do: an SQS queue gets it as
    the message body, an SNS topic as the message, one of the runtime's functions as its event."""

    def __init__(self, region: str, functions: dict[str, Callable[[Any], Any]] | None = None) -> None:
        self.region = region
        self.functions = functions or {}  # by function ARN
        self._clients: dict[str, Any] = {}
        self._queue_urls: dict[str, str] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.region)  # type: ignore[call-overload]
        return self._clients[service]

    def deliver(self, entry: ScheduleEntry) -> None:
        target = entry.target
        arn, body = str(target.get("Arn", "")), str(target.get("Input") or DEFAULT_INPUT)
        try:
            if arn.startswith("arn:aws:sqs:"):
                self._to_queue(arn, body, target.get("SqsParameters") or {})
            elif arn.startswith("arn:aws:sns:"):
                self._client("sns").publish(TopicArn=arn, Message=body)
            elif arn in self.functions:
                self.functions[arn](json.loads(body))
            else:
                raise TargetError(f"target {arn or '(none)'} is not emulated by the local runtime")
        except TargetError:
            raise
        except Exception as error:
            raise TargetError(f"{arn}: {error}") from error

    def _to_queue(self, arn: str, body: str, parameters: dict[str, Any],
                  attributes: dict[str, str] | None = None) -> None:
        sqs = self._client("sqs")
        if arn not in self._queue_urls:
            account, name = arn.split(":")[4:6]
            self._queue_urls[arn] = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        url = self._queue_urls[arn]
        extra: dict[str, Any] = {}
        if parameters.get("MessageGroupId"):
            extra["MessageGroupId"] = parameters["MessageGroupId"]
        if attributes:
            extra["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        sqs.send_message(QueueUrl=url, MessageBody=body, **extra)

    def to_dead_letter_queue(self, entry: ScheduleEntry, error: Exception) -> bool:
        """Scheduler sends a delivery it gave up on to the schedule's dead-letter queue, if it has one."""
        queue = (entry.target.get("DeadLetterConfig") or {}).get("Arn")
        if not queue:
            return False
        # The attributes Scheduler sets on what it dead-letters (those the local runtime can know).
        attributes = {"ERROR_MESSAGE": str(error)[:256], "TARGET_ARN": str(entry.target.get("Arn") or "(none)"),
                      "SCHEDULE_GROUP": entry.group, "SCHEDULE_NAME": entry.name}
        self._to_queue(str(queue), str(entry.target.get("Input") or DEFAULT_INPUT), {}, attributes)
        log.warning("schedule %s/%s: delivery failed (%s); sent to its dead-letter queue", entry.group, entry.name,
                    error)
        return True

    def delete(self, entry: ScheduleEntry) -> None:
        """Through moto's API, as Scheduler deletes it: the backend's write reaches the book like any other."""
        scheduler = self._client("scheduler")
        # Deleted meanwhile (an exit, an erasure): nothing left to do.
        with contextlib.suppress(scheduler.exceptions.ResourceNotFoundException):
            scheduler.delete_schedule(GroupName=entry.group, Name=entry.name)


@dataclass(frozen=True)
class Fired:
    group: str
    name: str
    due: datetime
    delivered: bool


class ScheduleRunner(threading.Thread):
    """Fires the book's due schedules every CHECK_EVERY_SECONDS, and on demand (``fire_due``)."""

    def __init__(self, book: ScheduleBook, targets: Targets) -> None:
        super().__init__(name="scheduler", daemon=True)
        self.book = book
        self.targets = targets
        self.stopping = threading.Event()
        self.fired = 0
        self._firing = threading.Lock()  # one firer at a time: deliveries leave in due order

    def run(self) -> None:
        while not self.stopping.wait(CHECK_EVERY_SECONDS):
            try:
                self.fire_due()
            except Exception:  # keep the schedules running, as Scheduler does; the error is logged
                log.exception("firing schedules failed")

    def stop(self) -> None:
        self.stopping.set()

    def busy(self) -> bool:
        """Something is due and not yet delivered, or a delivery is under way."""
        return self._firing.locked() or self.book.has_due()

    def fire_due(self, now: datetime | None = None) -> list[Fired]:
        """Deliver every schedule due at ``now`` (default: the runtime's clock), in due order."""
        with self._firing:
            return self._deliver_due(now)

    def fire_after(self, move_clock: Callable[[], None]) -> list[Fired]:
        """Move the clock and deliver what fell due, with no other firer between the two: this thread's own
        check, every CHECK_EVERY_SECONDS, would otherwise take what the move made due, and the caller would report
        none fired."""
        with self._firing:
            move_clock()
            return self._deliver_due(None)

    def _deliver_due(self, now: datetime | None) -> list[Fired]:
        fired = []
        for firing in self.book.take_due(now):
            entry = firing.entry
            delivered = True
            try:
                self.targets.deliver(entry)
            except TargetError as error:
                # Scheduler retries for up to a day, then gives up (to the dead-letter queue, if any);
                # locally a target that fails once would fail again, so it gives up at once.
                delivered = False
                if not self.targets.to_dead_letter_queue(entry, error):
                    log.error("schedule %s/%s: %s", entry.group, entry.name, error)
            if firing.completes and entry.deleted_after_completion:
                self.targets.delete(entry)
            self.fired += 1
            fired.append(Fired(entry.group, entry.name, firing.due, delivered))
        return fired
