"""The pollers' doorbell: moto's server runs in the runtime's process, so a message added to a queue or a record
added to a table's stream is seen as it happens (``install`` wraps moto's ``Queue.add_message`` and
``StreamShard.add``) and the poller of that source is woken at once, rather than every poller asking its source
every 50 ms in case (seven pollers: 140 requests a second to moto while nothing happens).

A poller woken here is marked busy before the write that woke it returns, so that when the function whose
invocation made the write is done, ``LocalRuntime.wait_idle`` already sees the work it left.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models.table import StreamShard
from moto.sqs.models import Queue

Source = tuple[str, str]  # ("sqs", queue name) or ("dynamodb", table name)
Wake = Callable[[], None]

_lock = threading.Lock()
_listeners: dict[Source, list[Wake]] = defaultdict(list)
_originals: dict[str, Any] = {}


def source_of(arn: str) -> Source:
    """The source an event source mapping's ARN names: a queue, or the table whose stream it is."""
    if arn.startswith("arn:aws:sqs:"):
        return ("sqs", arn.split(":")[5])
    if ":dynamodb:" in arn and "/stream/" in arn:
        return ("dynamodb", arn.split(":", 5)[5].split("/")[1])
    raise ValueError(f"{arn} is neither a queue nor a DynamoDB stream")


def listen(source: Source, wake: Wake) -> None:
    with _lock:
        _listeners[source].append(wake)


def unlisten(source: Source, wake: Wake) -> None:
    with _lock:
        if wake in _listeners.get(source, []):
            _listeners[source].remove(wake)


def ring(source: Source) -> None:
    with _lock:
        woken = list(_listeners.get(source, ()))
    for wake in woken:
        wake()


def _add_message(self: Queue, message: Any) -> None:
    _originals["add_message"](self, message)
    ring(("sqs", self.name))


def _add_record(self: StreamShard, old: Any, new: Any) -> None:
    _originals["add"](self, old, new)
    ring(("dynamodb", self.table.name))


def install() -> None:
    if _originals:
        return
    _originals.update(add_message=Queue.add_message, add=StreamShard.add)
    Queue.add_message = _add_message  # type: ignore[method-assign]
    StreamShard.add = _add_record  # type: ignore[method-assign]


def uninstall() -> None:
    if not _originals:
        return
    Queue.add_message = _originals.pop("add_message")  # type: ignore[method-assign]
    StreamShard.add = _originals.pop("add")  # type: ignore[method-assign]
