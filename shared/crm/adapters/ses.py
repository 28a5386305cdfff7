"""Email by SES v2: SendEmail with the raw MIME (crm.messaging.mime), in the stack's configuration set so
SES publishes sends, deliveries, bounces and complaints (crm.messaging.feedback reads them back)."""

from __future__ import annotations

import re

from crm.adapters.clients import client
from crm.clock import Clock, utc_now
from crm.config import settings
from crm.messaging.mime import raw_message
from crm.models.messaging import OutgoingEmail

# SES message tags: names and values of letters, digits, "_", "-" (and "." "@" in values), at most 256.
_TAG_CHARACTERS = re.compile(r"[^A-Za-z0-9_.@-]")


def tag_value(value: str) -> str:
    """A value SES takes as a message tag (a run id holds ":" and "#", which SES refuses)."""
    return _TAG_CHARACTERS.sub("_", value)[:256] or "_"


class SesEmailSender:
    """crm.flows.ports.EmailSender over SES v2 (``configuration_set`` defaults to SES_CONFIGURATION_SET)."""

    def __init__(self, configuration_set: str | None = None, clock: Clock = utc_now) -> None:
        self.configuration_set = (configuration_set if configuration_set is not None
                                  else settings().ses_configuration_set)
        self.clock = clock

    def send(self, email: OutgoingEmail) -> str:
        request: dict[str, object] = {
            "FromEmailAddress": email.from_address,
            "Destination": {"ToAddresses": [email.to]},
            "Content": {"Raw": {"Data": raw_message(email, self.clock())}},
            "EmailTags": [{"Name": tag_value(name), "Value": tag_value(value)}
                          for name, value in sorted(email.tags.items())],
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        answer = client("sesv2").send_email(**request)
        return str(answer["MessageId"])
