"""Order changes written guard last: the profile first, under its revision, carrying the state the change brings
the order record to; the record last, under the state read (docs/profile-writes.md).

While the record is behind that state, the profile counts a change the table does not show yet: the event's own
retry recognises it (one of the records it would write has that state) and writes only the rest; any other change
of the same order waits for it (it cannot know what the profile counts). A record at that state means the write
was finished: the next change of the order replaces the entry, and one older than the queue keeps a delivery is
dropped by the next order written to the profile.

What another order's change reads of the profile's timeline (its order dates, when they must be recomputed) is
complete only once every change counted on the profile has written its lines: that read waits too
(``unfinished``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from crm.models.profile import OrderInFlight, OrderRecord, Profile

# The ingest queue's MessageRetentionPeriod (template.yaml): no delivery is retried later than this after it was
# first applied, so an entry this old names no write that a retry could still finish.
RETRY_WINDOW = timedelta(days=14)


class OrderWriteUnfinished(Exception):
    """Another change of the same order was counted on the profile and its record is not written yet: the queue
    delivers this event again, after that change's own retry has finished it."""


def order_ref(store_id: str, order_id: str) -> str:
    """An order's name on its profile, as its timeline lines name it."""
    return f"{store_id}:{order_id}"


def order_state(record: OrderRecord) -> str:
    """16 hex characters naming what a record says of its order: version, refunds and their amounts, removal."""
    refunds = ",".join(f"{refund_id}={amount}" for refund_id, amount in sorted(record.all_refunds.items()))
    removed = record.removed_at.isoformat() if record.removed_at else ""
    return hashlib.blake2b(f"{record.version}|{refunds}|{removed}".encode(), digest_size=8).hexdigest()


def counted_in_flight(profile: Profile, read: OrderRecord | None,
                      candidates: Sequence[OrderRecord]) -> OrderRecord | None:
    """The record ``profile`` counts for this order when a write of it ended before the record did: that is one
    of ``candidates`` (what the event being applied makes of the record) when the event is the one retried. None
    when the profile counts the record as ``read``; OrderWriteUnfinished when it counts another event's change."""
    first = candidates[0]
    held = profile.unwritten_orders.get(order_ref(first.store_id, first.order_id))
    if held is None or (read is not None and held.state == order_state(read)):
        return None
    for candidate in candidates:
        if held.state == order_state(candidate):
            return candidate
    raise OrderWriteUnfinished(f"order {first.store_id}:{first.order_id} has a change counted on profile "
                               f"{profile.profile_id} since {held.since.isoformat()} whose record is not written")


def unfinished(profile: Profile, exclude_ref: str, record_of: Callable[[str, str], OrderRecord | None]) -> None:
    """OrderWriteUnfinished if a change of an order other than ``exclude_ref`` is counted on ``profile`` and its
    record (``record_of(store_id, order_id)``) is not at the state counted: its timeline lines may be missing."""
    for ref, held in profile.unwritten_orders.items():
        if ref == exclude_ref:
            continue
        store_id, _, order_id = ref.partition(":")
        record = record_of(store_id, order_id)
        if record is None or order_state(record) != held.state:
            raise OrderWriteUnfinished(f"order {ref} has a change counted on profile {profile.profile_id} since "
                                       f"{held.since.isoformat()} whose record is not written")


def _current(profile: Profile, now: datetime, record: OrderRecord) -> dict[str, OrderInFlight]:
    key = order_ref(record.store_id, record.order_id)
    return {ref: held for ref, held in profile.unwritten_orders.items()
            if ref != key and held.since > now - RETRY_WINDOW}


def with_in_flight(profile: Profile, record: OrderRecord, now: datetime) -> Profile:
    """The profile saying it counts ``record``, which is written after it."""
    entry = {order_ref(record.store_id, record.order_id): OrderInFlight(state=order_state(record), since=now)}
    return profile.model_copy(update={"unwritten_orders": {**_current(profile, now, record), **entry}})


def without_in_flight(profile: Profile, record: OrderRecord, now: datetime) -> Profile:
    """The profile written with ``record`` in one transaction: nothing of that order is left in flight."""
    return profile.model_copy(update={"unwritten_orders": _current(profile, now, record)})
