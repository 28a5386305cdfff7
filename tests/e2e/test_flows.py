"""Flows on `crm local`, over real HTTP with signed Shopify webhooks and `crm clock advance` (issue 10's "What it
must show"): reminders at 4 h and 24 h and no more; an order within the 4 h, none; an unsubscribed shopper, none;
a hard bounce suppresses every later send; a duplicated checkout webhook, one run; a merge in mid-flow, one run
continues; quiet hours across time zones and a DST change (SMS); Smart Sending across two flows; one-click
unsubscribe then nothing more.

Every time the stack sees comes from its own clock (`crm clock now`), which these tests move forward: webhook
and event times are taken from it. Each test uses shoppers of its own and plays its whole timeline, so the
tests of this module share one runtime (and one clock) without seeing each other's messages. What was sent is
read back from moto (SES raw messages at /moto-api/data.json) and from the runs (GET /flows/{id}/runs).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from crm_local.demo import http
from crm_local.demo_flows import SentEmail, one_click_unsubscribe, read_emails

from tests.builders import compact, fixture_json, placed_order_json, shopify_headers
from tests.e2e import waiting
from tests.e2e.conftest import LocalStack, start_local_stack

pytestmark = pytest.mark.e2e

ABANDONED = "builtin:abandoned_checkout"
WELCOME = "builtin:welcome"
REMINDER_1, REMINDER_2 = "builtin:abandoned_checkout_1", "builtin:abandoned_checkout_2"
SENDER = {"from_address": "hello@e2e-flows.example", "from_name": "E2E Outfitters",
          "postal_address": "1 Market Street, San Francisco, CA 94105"}
SETTLE_SECONDS = 2.0  # after `crm clock advance` returned idle, a last look that nothing more arrives
WITHIN_SECONDS = 30.0


def eventually(check: Callable[[], Any], what: str, timeout: float = WITHIN_SECONDS) -> Any:
    return waiting.eventually(check, what, timeout)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    # Its own runtime: these tests move its clock by weeks.
    started = start_local_stack()
    yield started
    started.stop()


@dataclass
class Shop:
    """A Shopify store in a workspace of its own, with some built-in (or custom) flows live."""

    stack: LocalStack
    domain: str
    secret: str
    api_key: str
    workspace_id: str

    # --- the stack's clock ---

    def now(self) -> datetime:
        return datetime.fromisoformat(json.loads(self.stack.crm("clock", "now", "--api", self.stack.api_url))["now"])

    def advance(self, by: timedelta) -> datetime:
        """`crm clock advance` (it waits until the stack is idle), then a moment for anything left to show."""
        # `crm` runs under a 60 s timeout (conftest): the advance waits for idle a little less.
        answer = json.loads(self.stack.crm("clock", "advance", f"{int(by.total_seconds())}s", "--wait", "50",
                                           "--api", self.stack.api_url))
        time.sleep(SETTLE_SECONDS)
        return datetime.fromisoformat(answer["now"])

    def advance_to(self, moment: datetime) -> datetime:
        ahead = moment - self.now()
        return self.advance(ahead) if ahead > timedelta(seconds=1) else self.now()

    def through_the_reminders(self, started: datetime) -> None:
        """Past each reminder's time in turn: one jump over both would send them a moment apart, and Smart
        Sending (16 h) would rightly hold the second back."""
        self.advance_to(started + timedelta(hours=4, minutes=10))
        self.advance_to(started + timedelta(hours=24, minutes=10))

    # --- the marketer API ---

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http(method, self.stack.api_url + path, json.dumps(body).encode() if body is not None else None,
                    {"x-api-key": self.api_key, "Content-Type": "application/json"})

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.api(method, path, body)
        assert status in (200, 201, 202), f"{method} {path}: {status} {answer}"
        return answer

    def live(self, *flow_ids: str) -> None:
        for flow_id in flow_ids:
            self.ok("PUT", f"/flows/{quote(flow_id, safe=':')}/status", {"status": "live"})

    def profile(self, email: str) -> dict[str, Any]:
        view: dict[str, Any] = eventually(lambda: _answer(self.api("GET", f"/customers?email={quote(email)}")),
                                          f"a profile for {email}")
        return view

    def runs(self, flow_id: str, email: str) -> list[dict[str, Any]]:
        profile_id = self.profile(email)["profile_id"]
        answer = self.ok("GET", f"/flows/{quote(flow_id, safe=':')}/runs?profile_id={quote(profile_id)}")
        runs: list[dict[str, Any]] = answer["runs"] if isinstance(answer, dict) else answer
        return runs

    # --- the store's webhooks, signed ---

    def webhook(self, topic: str, payload: dict[str, Any], delivery_id: str | None = None,
                at: datetime | None = None) -> str:
        body = compact(payload)
        delivery_id = delivery_id or str(uuid.uuid4())
        triggered = (at or self.now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        status, answer = self.stack.post("/webhooks/shopify", body, shopify_headers(
            body, secret=self.secret, domain=self.domain, topic=topic, delivery_id=delivery_id,
            triggered_at=triggered))
        assert status == 200, answer
        return delivery_id

    def customer(self, email: str, customer_id: int, *, email_consent: str = "subscribed",
                 phone: str | None = None, sms_consent: str | None = None, topic: str = "customers/create") -> None:
        at = self.now().isoformat()
        payload: dict[str, Any] = {
            "id": customer_id, "email": email, "first_name": "Ada", "last_name": "Lovelace", "phone": phone,
            "created_at": at, "updated_at": at, "state": "enabled", "verified_email": True, "currency": "USD",
            "addresses": [], "email_marketing_consent": {"state": email_consent, "opt_in_level": "single_opt_in",
                                                         "consent_updated_at": at}}
        if sms_consent:
            payload["sms_marketing_consent"] = {"state": sms_consent, "opt_in_level": "single_opt_in",
                                                "consent_updated_at": at}
        self.webhook(topic, payload)

    def checkout_payload(self, email: str, token: str, customer_id: int | None = None,
                         phone: str | None = None, accepts_marketing: bool = False) -> dict[str, Any]:
        payload = fixture_json("checkouts/create")
        at = self.now().isoformat()
        customer = None if customer_id is None else {
            "id": customer_id, "email": email, "first_name": "Ada", "last_name": "Lovelace", "phone": phone}
        payload.update(token=token, cart_token=f"cart-{token}", email=email, phone=phone, created_at=at,
                       updated_at=at, buyer_accepts_marketing=accepts_marketing, buyer_accepts_sms_marketing=False,
                       sms_marketing_phone=None, completed_at=None, customer=customer, note_attributes=[],
                       abandoned_checkout_url=f"https://{self.domain}/checkouts/{token}/recover?key=k-{token}")
        return payload

    def checkout(self, email: str, token: str | None = None, customer_id: int | None = None,
                 phone: str | None = None, accepts_marketing: bool = False) -> str:
        token = token or uuid.uuid4().hex
        self.webhook("checkouts/create", self.checkout_payload(email, token, customer_id, phone, accepts_marketing))
        return token

    def order(self, email: str, checkout_token: str, customer_id: int | None = None) -> None:
        at = self.now().isoformat()
        order_id = uuid.uuid4().int % 10**13
        customer = None if customer_id is None else {"id": customer_id, "email": email, "first_name": "Ada",
                                                     "last_name": "Lovelace", "phone": None}
        self.webhook("orders/create", placed_order_json(
            id=order_id, name=f"#{order_id % 10000}", email=email, contact_email=email, checkout_token=checkout_token,
            created_at=at, processed_at=at, updated_at=at, buyer_accepts_marketing=False, customer=customer,
            test=False))

    # --- what moto "sent" ---

    def emails_to(self, address: str) -> list[SentEmail]:
        return [m for m in read_emails(self.stack.aws_endpoint) if address.lower() in m.to]

    def reminders_to(self, address: str) -> list[str]:
        """The abandoned-checkout reminders sent to ``address``, as their template ids, from the runs."""
        sent = {m.message_id for m in self.emails_to(address)}
        found = []
        steps = _templates(self.ok("GET", f"/flows/{quote(ABANDONED, safe=':')}"))
        for run in self.runs(ABANDONED, address):
            for step in run["steps"]:
                if step["outcome"] == "sent" and step.get("message_id") in sent:
                    found.append(steps.get(step["step_id"], step["step_id"]))
        return sorted(found)


def _answer(reply: tuple[int, Any]) -> Any:
    status, answer = reply
    return answer if status == 200 else None


def _templates(flow: dict[str, Any]) -> dict[str, str]:
    from crm_local.demo_flows import step_templates

    return step_templates(flow.get("definition", flow))


def _skips(runs: list[dict[str, Any]]) -> list[str]:
    return [step.get("reason") or "" for run in runs for step in run["steps"] if step["outcome"] == "skipped"]


def new_shop(stack: LocalStack, name: str, *live: str) -> Shop:
    domain, secret = f"e2e-flows-{name}.myshopify.com", f"e2e-flows-{name}-secret"
    registered = json.loads(stack.crm("store", "add", "--platform", "shopify", "--domain", domain,
                                      "--webhook-secret", secret))
    shop = Shop(stack, domain, secret, registered["api_key"], registered["workspace_id"])
    shop.ok("PUT", "/settings/messaging", SENDER)
    shop.live(*live)
    return shop


@pytest.fixture(scope="module")
def shop(stack: LocalStack) -> Shop:
    """Only the abandoned-checkout flow is live: whatever these shoppers get is a reminder."""
    return new_shop(stack, "abandoned", ABANDONED)


def _address(name: str) -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}@example.com"


def _account() -> int:
    return 9_000_000_000_000 + uuid.uuid4().int % 10**9


# --- the abandoned checkout ----------------------------------------------------------------------------------


def test_reminders_at_4h_and_24h_and_no_more(shop: Shop) -> None:
    email = _address("reminded")
    shop.customer(email, _account())
    shop.checkout(email)
    started = shop.now()
    shop.advance_to(started + timedelta(hours=3, minutes=50))
    assert shop.emails_to(email) == [], "nothing before 4 h"
    shop.advance_to(started + timedelta(hours=4, minutes=10))
    [first] = eventually(lambda: shop.emails_to(email), "the first reminder at 4 h")
    assert first.unsubscribe_url and first.unsubscribe_post == "List-Unsubscribe=One-Click"
    shop.advance_to(started + timedelta(hours=23, minutes=50))
    assert len(shop.emails_to(email)) == 1, "the second reminder waits for 24 h"
    shop.advance_to(started + timedelta(hours=24, minutes=10))
    eventually(lambda: len(shop.emails_to(email)) == 2, "the second reminder at 24 h")
    shop.advance(timedelta(days=8))
    assert shop.reminders_to(email) == [REMINDER_1, REMINDER_2], "two reminders and no more"
    [run] = shop.runs(ABANDONED, email)
    assert run["status"] == "completed"


def test_an_order_within_4h_sends_no_reminder(shop: Shop) -> None:
    email, account = _address("ordered"), _account()
    shop.customer(email, account)
    token = shop.checkout(email, customer_id=account)
    started = shop.now()
    shop.advance_to(started + timedelta(hours=2))
    shop.order(email, token, customer_id=account)
    shop.advance_to(started + timedelta(hours=25))
    assert shop.emails_to(email) == []
    [run] = shop.runs(ABANDONED, email)
    assert run["status"] == "exited" and run["exit_reason"]


def test_an_unsubscribed_shopper_gets_none(shop: Shop) -> None:
    email = _address("unsubscribed")
    shop.customer(email, _account(), email_consent="unsubscribed")
    shop.checkout(email)
    shop.advance(timedelta(hours=25))
    assert shop.emails_to(email) == []
    # A run that starts skips both reminders for want of consent (or the flow's filter keeps it out at once).
    assert set(_skips(shop.runs(ABANDONED, email))) <= {"no_consent", "profile_filter"}


def test_a_hard_bounce_suppresses_every_later_send(shop: Shop) -> None:
    email = f"bounce+e2e{uuid.uuid4().hex[:6]}@simulator.amazonses.com"
    shop.customer(email, _account())
    shop.checkout(email)
    started = shop.now()
    shop.advance_to(started + timedelta(hours=4, minutes=10))
    assert len(eventually(lambda: shop.emails_to(email), "the first reminder, which bounces")) == 1
    shop.advance_to(started + timedelta(hours=24, minutes=10))
    # A new checkout after the flow's re-entry window: a new run, and still nothing.
    shop.advance(timedelta(days=8))
    shop.checkout(email)
    shop.advance(timedelta(hours=25))
    assert len(shop.emails_to(email)) == 1, "nothing after the bounce"
    skips = _skips(shop.runs(ABANDONED, email))
    assert skips and set(skips) == {"suppressed"}


def test_a_duplicated_checkout_webhook_starts_one_run(shop: Shop) -> None:
    email = _address("duplicated")
    shop.customer(email, _account())
    payload = shop.checkout_payload(email, uuid.uuid4().hex)
    delivery = shop.webhook("checkouts/create", payload)
    shop.webhook("checkouts/create", payload, delivery_id=delivery)  # Shopify's retry: same id, same body
    shop.webhook("checkouts/create", payload)  # and the same checkout delivered again under a new id
    shop.through_the_reminders(shop.now())
    assert len(shop.runs(ABANDONED, email)) == 1
    assert shop.reminders_to(email) == [REMINDER_1, REMINDER_2]


def test_a_merge_in_mid_flow_leaves_one_run_that_continues(shop: Shop) -> None:
    """Two profiles, each in the flow (a guest checkout by email, its box ticked; an account's checkout under
    another email), become one when the account takes the guest's email: one run continues, two reminders."""
    guest, member, account = _address("guest"), _address("member"), _account()
    shop.checkout(guest, accepts_marketing=True)
    shop.customer(member, account)
    shop.checkout(member, customer_id=account)
    started = shop.now()
    shop.advance_to(started + timedelta(hours=1))
    shop.customer(guest, account, topic="customers/update")  # the account now names the guest's email
    shop.through_the_reminders(started)
    survivor = shop.profile(guest)["profile_id"]
    assert shop.profile(member)["profile_id"] == survivor, "one profile now"
    runs = shop.runs(ABANDONED, guest)
    going = [r for r in runs if r["status"] != "exited"]
    assert len(going) == 1, runs
    sent = {m.message_id for m in shop.emails_to(guest) + shop.emails_to(member)}
    assert len(sent) == 2, f"two reminders in all, got {len(sent)}"


def test_one_click_unsubscribe_then_nothing_more(shop: Shop) -> None:
    email = _address("clicked")
    shop.customer(email, _account())
    shop.checkout(email)
    started = shop.now()
    shop.advance_to(started + timedelta(hours=4, minutes=10))
    [first] = eventually(lambda: shop.emails_to(email), "the first reminder")
    assert first.unsubscribe_url and first.unsubscribe_post == "List-Unsubscribe=One-Click"
    status, page = http("GET", first.unsubscribe_url)
    assert status == 200 and isinstance(page, str), "GET shows a confirmation page and changes nothing"
    assert shop.profile(email)["consents"]["email"]["state"] == "subscribed"
    assert one_click_unsubscribe(first.unsubscribe_url) in (200, 202, 204)
    consent = eventually(lambda: _withdrawn(shop.profile(email)), "email consent withdrawn")
    assert consent["source"] == "unsubscribe link"
    shop.advance_to(started + timedelta(hours=24, minutes=10))
    shop.advance(timedelta(days=3))
    assert len(shop.emails_to(email)) == 1, "nothing after the unsubscribe"
    assert "no_consent" in _skips(shop.runs(ABANDONED, email))


def _withdrawn(profile: dict[str, Any]) -> dict[str, Any] | None:
    consent: dict[str, Any] | None = (profile.get("consents") or {}).get("email")
    return consent if consent and consent.get("state") == "unsubscribed" else None


# --- across flows ------------------------------------------------------------------------------------------------


def test_smart_sending_across_two_flows(stack: LocalStack) -> None:
    """The welcome email (consent granted: now) and the first reminder 4 h later: within email's 16 h, so the
    reminder is skipped; the second, 24 h after the checkout, goes."""
    shop = new_shop(stack, "smart", WELCOME, ABANDONED)
    email = _address("smart")
    shop.customer(email, _account())
    eventually(lambda: shop.emails_to(email), "the welcome email")
    shop.checkout(email)
    started = shop.now()
    shop.advance_to(started + timedelta(hours=4, minutes=10))
    assert len(shop.emails_to(email)) == 1, "the first reminder is held back by Smart Sending"
    assert _skips(shop.runs(ABANDONED, email)) == ["smart_sending"]
    shop.advance_to(started + timedelta(hours=24, minutes=10))
    assert shop.reminders_to(email) == [REMINDER_2]


# --- SMS: quiet hours in the shopper's time zone, across a DST change --------------------------------------------

SMS_FLOW = {"name": "Text on checkout", "trigger": {"kind": "event", "event": "CheckoutStarted"},
            "reentry": {"mode": "every_time"},
            "steps": [{"kind": "sms", "id": "text", "template_id": "e2e_checkout_sms", "smart_sending": False}]}
SMS_TEMPLATE = {"channel": "sms", "name": "Checkout text",
                "body": "You left something in your cart. Reply STOP to opt out."}
NEW_YORK, TOKYO = ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")


@pytest.fixture(scope="module")
def sms_shop(stack: LocalStack) -> Shop:
    shop = new_shop(stack, "sms")
    shop.ok("POST", "/templates", {"id": "e2e_checkout_sms", **SMS_TEMPLATE})
    created = shop.ok("POST", "/flows", SMS_FLOW)
    shop.live(str(created["id"]))
    return shop


def _sms_sent(shop: Shop, flow_id: str, email: str) -> list[datetime]:
    return [datetime.fromisoformat(step["at"]) for run in shop.runs(flow_id, email) for step in run["steps"]
            if step["outcome"] == "sent" and step.get("channel") == "sms"]


def _next_local(after: datetime, zone: ZoneInfo, hour: int, minute: int) -> datetime:
    local = after.astimezone(zone)
    moment = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    while moment <= local:
        moment = (moment + timedelta(days=1)).replace(hour=hour, minute=minute)
    return moment


def _texter(shop: Shop, phone: str) -> tuple[str, str]:
    email = _address("texted")
    shop.customer(email, _account(), phone=phone, sms_consent="subscribed")
    return email, phone


def test_quiet_hours_hold_an_sms_in_the_shoppers_own_time_zone(sms_shop: Shop) -> None:
    shop = sms_shop
    flow_id = next(f["id"] for f in shop.ok("GET", "/flows")["flows"] if f["name"] == SMS_FLOW["name"])
    new_yorker = _texter(shop, "+12127365000")
    tokyoite = _texter(shop, "+81312345678")
    # 22:30 in New York (quiet) is 12:30 next day in Tokyo (not).
    late_evening = _next_local(shop.now(), NEW_YORK, 22, 30)
    shop.advance_to(late_evening)
    for email, phone in (new_yorker, tokyoite):
        shop.checkout(email, phone=phone)
    tokyo_sent = eventually(lambda: _sms_sent(shop, flow_id, tokyoite[0]), "the Tokyo shopper's SMS at once")
    assert 8 <= tokyo_sent[0].astimezone(TOKYO).hour < 21
    shop.advance(timedelta(hours=1))
    assert _sms_sent(shop, flow_id, new_yorker[0]) == [], "held: it is night in New York"
    morning = _next_local(late_evening, NEW_YORK, 8, 0)
    shop.advance_to(morning + timedelta(minutes=10))
    [sent] = eventually(lambda: _sms_sent(shop, flow_id, new_yorker[0]), "the New York SMS when quiet hours end")
    # Recorded when the wake-up was carried out: at the clock's stop just after 08:00, within a minute of it.
    assert morning <= sent <= morning + timedelta(minutes=11)


def test_quiet_hours_end_at_local_8_00_across_a_dst_change(sms_shop: Shop) -> None:
    """The night New York springs forward: quiet hours end at 08:00 EDT, 12:00 UTC, not 13:00 as the evening
    before (EST) would say. Runs last in the module: it moves the clock months ahead."""
    shop = sms_shop
    flow_id = next(f["id"] for f in shop.ok("GET", "/flows")["flows"] if f["name"] == SMS_FLOW["name"])
    now = shop.now()
    change = _next_dst_change(now, NEW_YORK)
    evening = datetime.combine(change.astimezone(NEW_YORK).date() - timedelta(days=1),
                               datetime.min.time(), NEW_YORK).replace(hour=22, minute=30)
    shop.advance_to(evening)
    email, phone = _texter(shop, "+12127365001")
    shop.checkout(email, phone=phone)
    morning = datetime.combine(change.astimezone(NEW_YORK).date(), datetime.min.time(), NEW_YORK).replace(hour=8)
    # 08:00 by the evening's own offset would be 9 h 30 min after it; the change moves it by an hour.
    assert morning.astimezone(UTC) - evening.astimezone(UTC) != timedelta(hours=9, minutes=30)
    shop.advance_to(morning - timedelta(minutes=10))
    assert _sms_sent(shop, flow_id, email) == [], "still quiet at 07:50 local"
    shop.advance_to(morning + timedelta(minutes=10))
    [sent] = eventually(lambda: _sms_sent(shop, flow_id, email), "the SMS at 08:00 local, after the change")
    assert morning <= sent <= morning + timedelta(minutes=11)
    assert sent.astimezone(NEW_YORK).hour == 8


def _next_dst_change(after: datetime, zone: ZoneInfo) -> datetime:
    """The first hour after ``after`` at which ``zone``'s UTC offset changes."""
    moment = after.replace(minute=0, second=0, microsecond=0)
    offset = moment.astimezone(zone).utcoffset()
    for _ in range(24 * 400):
        moment += timedelta(hours=1)
        if moment.astimezone(zone).utcoffset() != offset:
            return moment
    raise AssertionError(f"no DST change in {zone} within 400 days")
