"""The links in emails over real HTTP on `crm local`: a browser's subscribe confirmed by the double opt-in
link, then a one-click unsubscribe; each a consent statement applied through the ingest path."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from crm.messaging.unsubscribe import LinkPurpose, Links, SigningKeys
from crm.models.consent import Channel

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


def _customer(stack: LocalStack, shop: dict[str, str]) -> dict[str, Any]:
    status, body = stack.get(f"/customers?email={EMAIL}", shop["api_key"])
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
