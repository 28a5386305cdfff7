"""What arrives on the predictions queue: the schedule's fit of a workspace, or an order placed or refunded
(the bus's envelope, as an EventBridge rule delivers it to SQS), which names the profile to refresh."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

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


__all__ = ["OrderChanged", "OrderProfile", "read_message"]
