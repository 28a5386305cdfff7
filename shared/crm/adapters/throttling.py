"""Backing off when DynamoDB is short of capacity, and telling that apart from a conflict.

DynamoDB answers a batch call it could not finish with the keys or items it left unprocessed (no error),
and cancels a whole transaction with a reason per item. Sending the rest again at once only meets the same
shortage, so both are retried after an exponentially growing delay with full jitter (AWS's "Exponential
Backoff And Jitter": a uniform wait between 0 and the capped exponential, so retrying clients spread out),
a bounded number of times, then fail with :class:`CapacityExceeded` (the queue that delivered the work
retries it later). A transaction cancelled because a condition no longer holds is a conflict: it is not
retried here but raised at once, so the caller reads again and re-plans.

The sleeper is injected (``Backoff.sleep``): tests never sleep for real.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from crm.adapters.clients import client

Item = dict[str, Any]

# The reasons a transaction is cancelled for want of capacity or because another transaction holds an item:
# the same transaction may succeed later. Any other reason (ConditionalCheckFailed above all) is a conflict.
CAPACITY_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded",
                              "TransactionConflict"})
BATCH_GET_KEYS = 100
BATCH_WRITE_ITEMS = 25


class CapacityExceeded(RuntimeError):
    """DynamoDB kept refusing work for want of capacity after every attempt; the caller's queue retries."""


@dataclass(frozen=True)
class Backoff:
    """``attempts`` calls at most, the n-th retry after ``jitter() * min(cap, base * 2**n)`` seconds."""

    base: float = 0.05
    cap: float = 5.0
    attempts: int = 8
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def pause(self, retry: int) -> None:
        self.sleep(self.jitter() * min(self.cap, self.base * 2 ** retry))


DEFAULT_BACKOFF = Backoff()


def batch_get(table: str, wanted: Sequence[Item], consistent: bool,
              backoff: Backoff = DEFAULT_BACKOFF) -> Iterator[Item]:
    """The items found for these wire keys (100 a request), in no particular order; unprocessed keys are asked
    again after a backoff."""
    for start in range(0, len(wanted), BATCH_GET_KEYS):
        request: dict[str, Any] = {table: {"Keys": list(wanted[start:start + BATCH_GET_KEYS]),
                                           "ConsistentRead": consistent}}
        for retry in range(backoff.attempts):
            if retry:
                backoff.pause(retry - 1)
            answer = client("dynamodb").batch_get_item(RequestItems=request)
            yield from answer.get("Responses", {}).get(table, [])
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            left = len(request[table]["Keys"])
            raise CapacityExceeded(f"BatchGetItem left {left} keys of {table} unprocessed after "
                                   f"{backoff.attempts} attempts")


def batch_write(table: str, requests: Sequence[Item], backoff: Backoff = DEFAULT_BACKOFF) -> None:
    """BatchWriteItem, 25 a request, until every request is processed; unprocessed ones after a backoff."""
    for start in range(0, len(requests), BATCH_WRITE_ITEMS):
        pending: dict[str, Any] = {table: list(requests[start:start + BATCH_WRITE_ITEMS])}
        for retry in range(backoff.attempts):
            if retry:
                backoff.pause(retry - 1)
            pending = client("dynamodb").batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
        else:
            raise CapacityExceeded(f"BatchWriteItem left {len(pending[table])} items of {table} unprocessed "
                                   f"after {backoff.attempts} attempts")


def cancellation_codes(error: ClientError) -> list[str]:
    return [str(reason.get("Code", "None")) for reason in error.response.get("CancellationReasons", [])]


def for_want_of_capacity(error: ClientError) -> bool:
    """A transaction cancelled only because of throughput or another transaction: worth sending again as is.
    Without reasons (not DynamoDB's answer) it counts as a conflict, as every cancellation did before."""
    if error.response["Error"]["Code"] != "TransactionCanceledException":
        return False
    codes = [code for code in cancellation_codes(error) if code != "None"]
    return bool(codes) and all(code in CAPACITY_REASONS for code in codes)


def transact_write(writes: Sequence[Item], backoff: Backoff = DEFAULT_BACKOFF) -> None:
    """TransactWriteItems, sent again after a backoff while it is cancelled for want of capacity; a
    cancellation for any other reason (a condition that failed: a conflict) is raised at once, unchanged."""
    reasons: list[str] = []
    for retry in range(backoff.attempts):
        if retry:
            backoff.pause(retry - 1)
        try:
            client("dynamodb").transact_write_items(TransactItems=list(writes))
        except ClientError as error:
            if not for_want_of_capacity(error):
                raise
            reasons = cancellation_codes(error)
        else:
            return
    raise CapacityExceeded(f"TransactWriteItems cancelled for want of capacity {backoff.attempts} times "
                           f"(last reasons: {reasons})")


__all__ = ["CAPACITY_REASONS", "DEFAULT_BACKOFF", "Backoff", "CapacityExceeded", "batch_get", "batch_write",
           "cancellation_codes", "for_want_of_capacity", "transact_write"]
