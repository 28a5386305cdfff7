"""What arrives on the predictions queue: the schedule's fit of a workspace, or an order placed or refunded
(the bus's envelope, as an EventBridge rule delivers it to SQS), which names the profile to refresh."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from crm.models.predictions import FitTask


class OrderProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    workspace_id: str
    profile_id: str


class OrderChanged(BaseModel):
    """OrderPlaced or OrderRefunded as the bus delivers it; only whose profile it is matters here."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    detail_type: Literal["OrderPlaced", "OrderRefunded"] = Field(alias="detail-type")
    detail: OrderProfile


_MESSAGES: TypeAdapter[FitTask | OrderChanged] = TypeAdapter(FitTask | OrderChanged)


def read_message(body: str) -> FitTask | OrderChanged:
    """The message in a queue body; pydantic's ValidationError for anything else (the record fails, and
    after the queue's receives it waits in the dead-letter queue)."""
    return _MESSAGES.validate_json(body)


@dataclass
class Batch:
    """A batch of queue messages sorted for the worker: the fits, one by one; the orders by workspace, so that
    each workspace's kept fit is read once for all its profiles in the batch; what could not be read. Each
    part keeps its messages' ids, for the failures the worker reports."""

    fits: list[tuple[str, FitTask]] = field(default_factory=list)
    # workspace id -> profile id -> the ids of the messages that named it (a profile may be named twice)
    orders: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    unreadable: list[tuple[str, ValidationError]] = field(default_factory=list)


def sort_batch(messages: Iterable[tuple[str, str]]) -> Batch:
    """(message id, body) pairs as the queue hands them over, sorted into a :class:`Batch`."""
    batch = Batch()
    for message_id, body in messages:
        try:
            message = read_message(body)
        except ValidationError as invalid:
            batch.unreadable.append((message_id, invalid))
            continue
        if isinstance(message, FitTask):
            batch.fits.append((message_id, message))
        else:
            profiles = batch.orders.setdefault(message.detail.workspace_id, {})
            profiles.setdefault(message.detail.profile_id, []).append(message_id)
    return batch


__all__ = ["Batch", "OrderChanged", "OrderProfile", "read_message", "sort_batch"]
