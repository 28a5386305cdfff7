"""What arrives on the flows queue, told apart by shape: a domain event from the CRM bus (EventBridge's
envelope, source "crm"), a wake-up a Scheduler one-time schedule put there, an SES event (source "aws.ses",
from the default bus), an SNS notification (an inbound SMS) and a link of a flow message followed on the public
track function (an SMS click, an unsubscribe). Each is validated; a body that is none of them is refused
with the reason (it goes to the dead-letter queue after its retries)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from crm.clock import UtcDateTime
from crm.models.flow_stats import MessageChannel, MessageEventType
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


class LinkFollowed(BaseModel):
    """A flow message's link followed on the public track function (crm.messaging.feedback.apply_link_followed):
    an SMS's short link (clicked) or an email's unsubscribe link (unsubscribed). The link was made when the
    message was composed, so the message is the run's, step's, sent at or after ``issued_at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["link_followed"] = "link_followed"
    type: Literal[MessageEventType.CLICKED, MessageEventType.UNSUBSCRIBED]
    channel: MessageChannel
    workspace_id: str = Field(min_length=1)
    profile_id: str = Field(min_length=1)
    flow_id: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    step_id: str = Field(min_length=1)
    issued_at: UtcDateTime
    at: UtcDateTime
    link: str | None = None


FlowsMessage = BusEvent | SesEvent | SnsNotification | LinkFollowed | WakeUp
_MESSAGE: TypeAdapter[FlowsMessage] = TypeAdapter(FlowsMessage)


class UnreadableMessage(ValueError):
    """The body is none of the shapes the flows queue carries."""


def read_message(body: str) -> FlowsMessage:
    try:
        return _MESSAGE.validate_json(body)
    except ValidationError as error:
        raise UnreadableMessage(f"not a bus event, wake-up, SES event, SNS notification or followed link: {error}") \
            from None
