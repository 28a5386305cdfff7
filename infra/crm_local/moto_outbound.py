"""moto's SES and SNS, as the local runtime needs them for flows.

- A sender identity ends verified, as if its owner had clicked SES's link (or published the domain's DKIM
  records): moto creates identities with ``VerifiedForSendingStatus: false`` yet sends from them, so a
  ``GET /settings/messaging`` asking SES would report a sender as unverified that sends all the same.
- What moto records of a send is enough to read it back (crm_local.outbound) but not to report on it: each SES
  message and SMS here also keeps the runtime's time of sending (``sent_at``, the fast-forwardable clock), an
  SES v2 message its configuration set and message tags (workspace, flow, step), an SMS its attributes (sender
  id, SMS type). They are plain attributes, so moto's /moto-api/data.json carries them.
- moto keeps every instance of its models for data.json (its dashboard), which includes every version of every
  DynamoDB item, stream record and shard iterator, SQS message, S3 object, log event and metric datum ever
  made: memory that grows for as long as the runtime runs, and a data.json that takes seconds to build. Those
  are left untracked (their services answer for them as before); data.json keeps resources and sends.
"""

from __future__ import annotations

import json
from typing import Any

from crm.clock import utc_now
from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum, MetricDatumBase
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import StreamRecord
from moto.dynamodbstreams.models import ShardIterator
from moto.logs.models import LogEvent
from moto.s3.models import FakeKey
from moto.ses.models import SESBackend, ses_backends
from moto.sesv2.responses import SESV2Response
from moto.sns.models import SNSBackend
from moto.sqs.models import Message as SqsMessage

_ORIGINAL_IDENTITY = SESBackend.create_email_identity_v2
_ORIGINAL_SENDS = {name: getattr(SESBackend, name)
                   for name in ("send_email", "send_raw_email", "send_templated_email")}
_ORIGINAL_V2_SEND = SESV2Response.send_email
_ORIGINAL_PUBLISH = SNSBackend.publish


def create_email_identity_v2(self: SESBackend, email_identity: str, *args: Any, **kwargs: Any) -> Any:
    identity = _ORIGINAL_IDENTITY(self, email_identity, *args, **kwargs)
    identity.verified_for_sending_status = True
    if identity.identity_type == "DOMAIN":
        identity.dkim_attributes["Status"] = "SUCCESS"
    return identity


def _stamped(name: str) -> Any:
    def send(self: SESBackend, *args: Any, **kwargs: Any) -> Any:
        message = _ORIGINAL_SENDS[name](self, *args, **kwargs)
        message.sent_at = utc_now().isoformat()
        return message
    return send


def send_email_v2(self: SESV2Response) -> str:
    answer = _ORIGINAL_V2_SEND(self)
    request = json.loads(self.body)
    message_id = json.loads(answer)["MessageId"]
    for message in reversed(ses_backends[self.current_account][self.region].sent_messages):
        if message.id == message_id:
            message.configuration_set = request.get("ConfigurationSetName")
            message.tags = {t["Name"]: t["Value"] for t in request.get("EmailTags") or []}
            break
    return str(answer)


def publish(self: SNSBackend, message: str, arn: str | None, phone_number: str | None = None, *args: Any,
            **kwargs: Any) -> str:
    message_id = _ORIGINAL_PUBLISH(self, message, arn, phone_number, *args, **kwargs)
    if phone_number:
        sms: Any = self.sms_message_objects[message_id]
        sms.sent_at = utc_now().isoformat()
        attributes = kwargs.get("message_attributes") or (args[1] if len(args) > 1 else None) or {}
        sms.attributes = {name: str(value.get("Value")) for name, value in attributes.items()}
    return str(message_id)


class _Untracked(list[Any]):
    """An ``instances_tracked`` that keeps nothing."""

    def append(self, _: Any) -> None:
        pass


_BULK_MODELS: tuple[type, ...] = (Item, StreamRecord, ShardIterator, SqsMessage, FakeKey, LogEvent, MetricDatumBase,
                                  MetricDatum, MetricAggregatedDatum)


def install() -> None:
    for model in _BULK_MODELS:
        model.instances_tracked = _Untracked()  # type: ignore[attr-defined]
    SESBackend.create_email_identity_v2 = create_email_identity_v2  # type: ignore[method-assign]
    for name in _ORIGINAL_SENDS:
        setattr(SESBackend, name, _stamped(name))
    SESV2Response.send_email = send_email_v2  # type: ignore[method-assign]
    SNSBackend.publish = publish  # type: ignore[method-assign]


def uninstall() -> None:
    for model in _BULK_MODELS:
        model.instances_tracked = []  # type: ignore[attr-defined]
    SESBackend.create_email_identity_v2 = _ORIGINAL_IDENTITY  # type: ignore[method-assign]
    for name, original in _ORIGINAL_SENDS.items():
        setattr(SESBackend, name, original)
    SESV2Response.send_email = _ORIGINAL_V2_SEND  # type: ignore[method-assign]
    SNSBackend.publish = _ORIGINAL_PUBLISH  # type: ignore[method-assign]
