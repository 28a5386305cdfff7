"""How far a process's DynamoDB consumption runs ahead of a pace, so that the daily segment run's chained tasks
(crm.segments.runs) leave a provisioned table's capacity to the webhooks' consumers (docs/scale.md).

DynamoDB says what each call consumed when asked (``ReturnConsumedCapacity``); the meter asks on every call that
can answer and counts the units, a write unit as WRITE_UNIT_WEIGHT read units: a pace is what the run may cost
the table, and provisioned capacity charges a write unit five times a read unit. Nothing here waits: a task
reads its share as fast as the table serves it (one index bucket, within DynamoDB's burst credits) and then
asks how long the next share should wait, which the queue does for it (SQS DelaySeconds), so no Lambda is
billed for waiting. The clock is injected: tests never wait.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# The operations that report consumed capacity when asked; any other (DescribeTable...) refuses the parameter.
CONSUMING = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem",
             "TransactGetItems", "TransactWriteItems")
# The calls whose units are write units.
WRITING = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# A write capacity unit-hour against a read capacity unit-hour, provisioned, us-east-1: $0.00065 / $0.00013.
# Counted at its price, a run's writes go out at a fifth of the pace of its reads, so its write phase raises the
# table's write capacity (the dearer one) five times less.
WRITE_UNIT_WEIGHT = 5
# The longest a message can be held back on a queue (SQS's DelaySeconds).
LONGEST_PAUSE_SECONDS = 900


@dataclass(frozen=True)
class Reading:
    units: float
    at: float


class Meter:
    """The units a process consumed (a write unit weighing WRITE_UNIT_WEIGHT), and how long it would have to
    stop to be back at ``per_second``."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0:
            raise ValueError("a pace needs a positive rate")
        self.per_second = per_second
        self.clock = clock
        self.units = 0.0
        self._lock = threading.Lock()

    def consumed(self, units: float) -> None:
        with self._lock:
            self.units += units

    def reading(self) -> Reading:
        with self._lock:
            return Reading(self.units, self.clock())

    def paced_seconds_since(self, start: Reading) -> float:
        """How long the units consumed since ``start`` take at the pace."""
        return (self.reading().units - start.units) / self.per_second

    def pause_since(self, start: Reading) -> int:
        """Whole seconds the work since ``start`` ran ahead of the pace (0 when it did not), at most what a queue
        can hold a message back: consumed units take ``units / per_second`` seconds at the pace."""
        now = self.reading()
        ahead = (now.units - start.units) / self.per_second - (now.at - start.at)
        return min(LONGEST_PAUSE_SECONDS, max(0, math.ceil(ahead)))


def units_of(answer: Mapping[str, Any]) -> float:
    """The capacity units a DynamoDB answer says it consumed (one table or several)."""
    reported = answer.get("ConsumedCapacity") or []
    return sum(float(c.get("CapacityUnits", 0.0)) for c in ([reported] if isinstance(reported, dict) else reported))


def install(dynamodb: Any, meter: Meter) -> None:
    """Count every consuming call of this boto3 DynamoDB client."""

    def ask(params: dict[str, Any], **_: Any) -> None:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def counter(weight: int) -> Callable[..., None]:
        def count(parsed: Mapping[str, Any], **_: Any) -> None:
            meter.consumed(weight * units_of(parsed))
        return count

    for operation in CONSUMING:
        dynamodb.meta.events.register(f"provide-client-params.dynamodb.{operation}", ask)
        dynamodb.meta.events.register(f"after-call.dynamodb.{operation}",
                                      counter(WRITE_UNIT_WEIGHT if operation in WRITING else 1))
