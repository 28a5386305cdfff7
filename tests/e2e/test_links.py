"""The links in emails over real HTTP on `crm local`: a browser's subscribe confirmed by the double opt-in
link, then a one-click unsubscribe; each a consent statement applied through the ingest path. The double
opt-in email itself is read back from what the local SES took (crm_local.outbound)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from crm.messaging.unsubscribe import LinkPurpose, Links, SigningKeys
from crm.models.consent import Channel
from crm_local.demo import http
from crm_local.outbound import Outbox, SentEmail
from crm_local.runtime import DEFAULT_SENDER

from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

ORIGIN = "https://e2e-links.example"
EMAIL = "links.shopper@example.com"


@pytest.fixture(scope="module")
def shop(local_stack: LocalStack) -> dict[str, str]:
    registered: dict[str, str] = json.loads(local_stack.crm(
        "store", "add", "--platform", "custom", "--domain", "e2e-links.example", "--webhook-secret", "unused",
        "--origin", ORIGIN))
    return registered


def _links(stack: LocalStack) -> Links:
    """Signs as the stack does: with the link secret the local runtime created from template.yaml."""
    secret = stack.client("secretsmanager").get_secret_value(SecretId="crm-LinkSigningSecret")["SecretString"]
    return Links(SigningKeys(current=secret.encode()), stack.api_url)


def _customer(stack: LocalStack, shop: dict[str, str], email: str = EMAIL) -> dict[str, Any]:
    status, body = stack.get(f"/customers?email={email}", shop["api_key"])
    assert status == 200, body
    return dict(body)


def test_double_opt_in_then_one_click_unsubscribe(local_stack: LocalStack, shop: dict[str, str]) -> None:
    asked = json.dumps({"write_key": shop["write_key"], "anonymous_id": str(uuid.uuid4()), "events": [
        {"type": "identify", "event_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(),
         "email": EMAIL, "consent": {"email": "subscribed"}}]}).encode()
    assert local_stack.post("/track", asked, {"Origin": ORIGIN})[0] == 202
    local_stack.wait_drained()
    profile = _customer(local_stack, shop)
    assert profile["consents"].get("email") is None  # a browser only asks

    links = _links(local_stack)
    confirm = links.url(LinkPurpose.CONFIRM, shop["workspace_id"], profile["profile_id"], EMAIL, Channel.EMAIL,
                        shop["store_id"], datetime.now(UTC))
    assert confirm.startswith(local_stack.api_url + "/confirm/")
    path = confirm.removeprefix(local_stack.api_url)
    status, page = local_stack.get(path, None)
    assert status == 200 and '<form method="post">' in page
    assert local_stack.post(path, b"", {})[0] == 200
    local_stack.wait_drained()
    assert _customer(local_stack, shop)["consents"]["email"]["source"] == "double_opt_in"

    unsubscribe = links.url(LinkPurpose.UNSUBSCRIBE, shop["workspace_id"], profile["profile_id"], EMAIL,
                            Channel.EMAIL, shop["store_id"], datetime.now(UTC)).removeprefix(local_stack.api_url)
    status, done = local_stack.post(unsubscribe, b"List-Unsubscribe=One-Click",
                                    {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and "You are unsubscribed" in done
    local_stack.wait_drained()
    consent = _customer(local_stack, shop)["consents"]["email"]
    assert (consent["state"], consent["source"]) == ("unsubscribed", "unsubscribe link")
    status, timeline = local_stack.get(f"/customers/{profile['profile_id']}/timeline", shop["api_key"])
    assert status == 200
    changes = [(e.get("old"), e["new"], e["source"]) for e in timeline["entries"]
               if e["type"] == "consent_changed"]
    assert changes[:2] == [("subscribed", "unsubscribed", "unsubscribe link"),
                           (None, "subscribed", "double_opt_in")]

    tampered = unsubscribe[:-1] + ("A" if not unsubscribe.endswith("A") else "B")
    assert local_stack.post(tampered, b"", {})[0] == 404


def _mailed(outbox: Outbox, mark: Any, address: str, timeout: float = 30.0) -> list[SentEmail]:
    """What SES took for ``address`` since ``mark``, once something came (outbox -> bus -> flows queue)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := outbox.since(mark).emails_to(address):
            return found
        time.sleep(0.2)
    raise AssertionError(f"no email to {address} within {timeout} s")


def test_a_browser_subscribe_is_mailed_a_confirmation_whose_link_confirms(
    local_stack: LocalStack, shop: dict[str, str],
) -> None:
    address = "optin.shopper@example.com"
    status, body = http("PUT", local_stack.api_url + "/settings/messaging",
                        json.dumps({"from_address": DEFAULT_SENDER, "from_name": "E2E Links"}).encode(),
                        {"x-api-key": shop["api_key"], "Content-Type": "application/json"})
    assert status == 200, body
    outbox = Outbox(local_stack.aws_endpoint)
    mark = outbox.mark()
    asked = json.dumps({"write_key": shop["write_key"], "anonymous_id": str(uuid.uuid4()), "events": [
        {"type": "identify", "event_id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(),
         "email": address, "consent": {"email": "subscribed"}}]}).encode()
    assert local_stack.post("/track", asked, {"Origin": ORIGIN})[0] == 202

    [email] = _mailed(outbox, mark, address)
    assert email.source == DEFAULT_SENDER and email.list_unsubscribe is None  # a confirmation, not marketing
    # As SES would, the runtime's click tracking rewrote the link: ``links`` reads it as it was written.
    confirm = next(link for link in email.links if link.startswith(local_stack.api_url + "/confirm/"))
    path = confirm.removeprefix(local_stack.api_url)
    assert _customer(local_stack, shop, address)["consents"].get("email") is None
    assert local_stack.post(path, b"", {})[0] == 200
    local_stack.wait_drained()
    consent = _customer(local_stack, shop, address)["consents"]["email"]
    assert (consent["state"], consent["source"]) == ("subscribed", "double_opt_in")
    assert outbox.since(mark).emails_to(address) == [email]  # one confirmation, nothing else
