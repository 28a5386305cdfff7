"""A process's DynamoDB consumption held to a rate, so that a long scheduled job (the daily segment run's
tasks) leaves a provisioned table's capacity to the webhooks' consumers (docs/scale.md).

DynamoDB says what each call consumed when asked (``ReturnConsumedCapacity``); the pacer asks on every call that
can answer, counts the units, and before the next call waits as long as the process is ahead of its rate. The
allowance refills at ``per_second`` and holds at most one second of it, so an idle container does not save up a
burst. The clock and the sleeper are injected: tests never wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

# The operations that report consumed capacity when asked; any other (DescribeTable...) refuses the parameter.
CONSUMING = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem",
             "TransactGetItems", "TransactWriteItems")


class Pacer:
    """At most ``per_second`` units a second on average, one second's worth at once."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if per_second <= 0:
            raise ValueError("a pacer needs a positive rate")
        self.per_second = per_second
        self.clock, self.sleep = clock, sleep
        self._allowance = per_second
        self._last: float | None = None
        self._lock = threading.Lock()

    def wait_for_allowance(self) -> None:
        """Before a call: wait until the units already consumed are within the rate."""
        with self._lock:
            owed = -self._refilled() / self.per_second
        if owed > 0:
            self.sleep(owed)

    def consumed(self, units: float) -> None:
        with self._lock:
            self._allowance = self._refilled() - units

    def _refilled(self) -> float:
        now = self.clock()
        if self._last is not None:
            self._allowance = min(self.per_second, self._allowance + (now - self._last) * self.per_second)
        self._last = now
        return self._allowance


def units_of(answer: Mapping[str, Any]) -> float:
    """The capacity units a DynamoDB answer says it consumed (one table or several)."""
    reported = answer.get("ConsumedCapacity") or []
    return sum(float(c.get("CapacityUnits", 0.0)) for c in ([reported] if isinstance(reported, dict) else reported))


def install(dynamodb: Any, pacer: Pacer) -> None:
    """Pace every consuming call of this boto3 DynamoDB client."""

    def ask(params: dict[str, Any], **_: Any) -> None:
        pacer.wait_for_allowance()
        params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def count(parsed: Mapping[str, Any], **_: Any) -> None:
        pacer.consumed(units_of(parsed))

    for operation in CONSUMING:
        dynamodb.meta.events.register(f"provide-client-params.dynamodb.{operation}", ask)
        dynamodb.meta.events.register(f"after-call.dynamodb.{operation}", count)
