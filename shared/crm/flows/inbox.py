"""What arrives on the flows queue, told apart by shape: a domain event from the CRM bus (EventBridge's
envelope, source "crm"), a wake-up a Scheduler one-time schedule put there, an SES event (source "aws.ses",
from the default bus) and an SNS notification (an inbound SMS). Each is validated; a body that is none of
them is refused with the reason (it goes to the dead-letter queue after its retries)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from crm.models.flows import WakeUp


class BusEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    source: Literal["crm"]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]


class SesEvent(BaseModel):
    """An SES event (bounce, complaint, delivery...) as EventBridge delivers it (crm.messaging.feedback)."""

    model_config = ConfigDict(populate_by_name=True)

    source: Literal["aws.ses"]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]


class SnsNotification(BaseModel):
    """An SNS message delivered to SQS (raw delivery off): an inbound SMS's JSON is in ``Message``."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["Notification"] = Field(alias="Type")
    topic_arn: str = Field(alias="TopicArn")
    message: str = Field(alias="Message")
    message_id: str | None = Field(default=None, alias="MessageId")


FlowsMessage = BusEvent | SesEvent | SnsNotification | WakeUp
_MESSAGE: TypeAdapter[FlowsMessage] = TypeAdapter(FlowsMessage)


class UnreadableMessage(ValueError):
    """The body is none of the shapes the flows queue carries."""


def read_message(body: str) -> FlowsMessage:
    try:
        return _MESSAGE.validate_json(body)
    except ValidationError as error:
        raise UnreadableMessage(f"not a bus event, wake-up, SES event or SNS notification: {error}") from None
