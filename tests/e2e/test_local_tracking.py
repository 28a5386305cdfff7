"""What AWS does after a send, as `crm local` emulates it, seen end to end over HTTP: a real abandoned-checkout
reminder carries SES's tracking (rewritten links, an open pixel served by the runtime); opening and clicking it
through crm_local.outbound's helpers puts SES's events on the default bus, the template's rule queues them for
the flows function, and the shopper's timeline shows the open and the click; a text's delivery status, logged as
SNS logs it, reaches the flows function through the template's log subscription (delivered, and a failure)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from crm_local.outbound import Outbox, SentEmail, click, click_sms, open_email

from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.test_flows import (
    ABANDONED,
    SMS_FLOW,
    SMS_TEMPLATE,
    Shop,
    _account,
    _address,
    _next_local,
    eventually,
    new_shop,
)

pytestmark = pytest.mark.e2e

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    started = start_local_stack()
    yield started
    started.stop()


def _timeline(shop: Shop, email: str) -> list[dict[str, Any]]:
    profile_id = shop.profile(email)["profile_id"]
    entries: list[dict[str, Any]] = shop.ok("GET", f"/customers/{quote(profile_id)}/timeline?limit=100")["entries"]
    return entries


def _lines(shop: Shop, email: str, *types: str) -> list[dict[str, Any]]:
    return [e for e in _timeline(shop, email) if e["type"] in types]


def test_a_reminder_opened_and_clicked_through_its_tracking_shows_on_the_timeline(stack: LocalStack) -> None:
    shop = new_shop(stack, "tracking", ABANDONED)
    email = _address("tracked")
    shop.customer(email, _account())
    shop.checkout(email)
    outbox = Outbox(stack.aws_endpoint)
    # The run must have started before the clock moves: one started after the jump would wait 4 h from then.
    eventually(lambda: shop.runs(ABANDONED, email), "the abandoned-checkout run", timeout=120)
    shop.advance(timedelta(hours=4, minutes=10))
    sent: list[SentEmail] = eventually(lambda: outbox.read().emails_to(email), "the first reminder")
    [reminder] = sent
    assert reminder.open_url is not None and reminder.open_url.startswith(stack.api_url + "/_local/ses/open/")
    recovery = next(link for link in reminder.links if "/recover" in link)
    assert reminder.tracked_link("/recover").url.startswith(stack.api_url + "/_local/ses/click/")

    open_email(reminder, user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)")
    assert click(reminder, containing="/recover") == recovery
    shop.advance(timedelta(minutes=1))  # waits until the flows queue is drained

    opened = eventually(lambda: _lines(shop, email, "email_opened"), "the open on the timeline")
    clicked = eventually(lambda: _lines(shop, email, "email_clicked"), "the click on the timeline")
    assert [(e["flow_id"], e["message_id"]) for e in opened + clicked] == [(ABANDONED, reminder.message_id)] * 2
    assert clicked[0]["link"] == recovery


def test_a_texts_delivery_status_reaches_the_flows_function_through_the_log_subscription(
    stack: LocalStack,
) -> None:
    shop = new_shop(stack, "sms-status")
    shop.ok("POST", "/templates", {"id": "e2e_checkout_sms", **SMS_TEMPLATE,
                                   "body": "Your cart: {{ trigger.recovery_url }} Reply STOP to opt out."})
    shop.live(str(shop.ok("POST", "/flows", SMS_FLOW)["id"]))
    shop.advance_to(_next_local(shop.now(), PARIS, 10, 0))  # daytime in Paris and Tokyo: no quiet hours
    delivered, failed = _address("delivered"), _address("failed")
    for email, phone in ((delivered, "+81312345678"), (failed, "+33755512502")):  # AWS's simulator: fails
        shop.customer(email, _account(), phone=phone, sms_consent="subscribed")
        shop.checkout(email, phone=phone)
    shop.advance(timedelta(minutes=1))
    assert eventually(lambda: _lines(shop, delivered, "sms_delivered"), "the delivery on the timeline")
    [failure] = eventually(lambda: _lines(shop, failed, "sms_failed"), "the failure on the timeline")
    assert failure["detail"] == "Phone is currently unreachable/unavailable"
    assert _lines(shop, delivered, "sms_failed") == [] and _lines(shop, failed, "sms_delivered") == []

    # The text's short link, tapped: the track function redirects to the cart and the click is noted.
    [text] = [sms for sms in Outbox(stack.aws_endpoint).read().sms if sms.phone_number == "+81312345678"]
    assert text.links and "/recover" not in text.message  # the link is the flows' short link
    landed = click_sms(text, containing="/r/")
    assert landed.startswith(f"https://{shop.domain}/checkouts/") and "/recover?key=k-" in landed
    shop.advance(timedelta(minutes=1))
    assert eventually(lambda: _lines(shop, delivered, "sms_clicked"), "the text's click on the timeline")
