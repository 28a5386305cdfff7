"""SES v2 email identities: whether the workspace's from address (or its domain) may send, and asking SES to
verify an address that is not an identity yet."""

from __future__ import annotations

from botocore.exceptions import ClientError

from crm.adapters.clients import client


class SesSenderIdentities:
    """crm.flows.ports.SenderIdentities over SES v2 (GetEmailIdentity, CreateEmailIdentity)."""

    def verification_status(self, identity: str) -> str | None:
        try:
            found = client("sesv2").get_email_identity(EmailIdentity=identity)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NotFoundException", "NotFound"):
                return None
            raise
        return str(found.get("VerificationStatus") or ("SUCCESS" if found.get("VerifiedForSendingStatus")
                                                       else "PENDING"))

    def request_verification(self, address: str) -> str:
        try:
            created = client("sesv2").create_email_identity(EmailIdentity=address)
        except ClientError as error:
            if error.response["Error"]["Code"] != "AlreadyExistsException":
                raise
            return self.verification_status(address) or "PENDING"
        return "SUCCESS" if created.get("VerifiedForSendingStatus") else "PENDING"
