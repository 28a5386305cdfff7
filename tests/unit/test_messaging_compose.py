"""Composing an email for one shopper (crm.messaging.compose) and the double opt-in email (crm.messaging.optin)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

import pytest
from crm.affinity import cross_sell_basis
from crm.messaging.compose import CannotCompose, FlowMessages, compose_email, compose_sms
from crm.messaging.defaults import (
    ABANDONED_CHECKOUT_1,
    DOUBLE_OPT_IN,
    EMAIL_TEMPLATES,
    POST_PURCHASE_THANKS,
    SMS_TEMPLATES,
    TEMPLATES,
    WELCOME_1,
)
from crm.messaging.optin import double_opt_in_claim, double_opt_in_email
from crm.messaging.render import trigger_event
from crm.messaging.unsubscribe import LinkPurpose, Links, SigningKeys, verify
from crm.models.affinity import ProductAffinity, RelatedProduct
from crm.models.canonical import ProductRef
from crm.models.consent import Channel, Consent, ConsentRequest, ConsentState
from crm.models.events import CheckoutStarted, Item, OrderPlaced
from crm.models.flow_stats import sent_of_tag
from crm.models.flows import FlowRun
from crm.models.messaging import EmailTemplate, MessagingSettings, SmsTemplate, TemplateRecord
from crm.models.profile import Activity, Profile, new_profile

from tests.builders import NOW

KEYS = SigningKeys(current=b"k" * 32)
LINKS = Links(KEYS, "https://crm.example")
SETTINGS = MessagingSettings(from_address="hello@shop.example", from_name="Shop", reply_to="help@shop.example",
                             postal_address="1 Main St")


def _profile(**fields: object) -> Profile:
    return new_profile("w1", "p1", NOW).model_copy(update={"email": "ada@example.com", "store_ids": ("s1", "s2"),
                                                          **fields})


def _token(url: str, purpose: LinkPurpose) -> str:
    return url.removeprefix(f"https://crm.example/{purpose.value}/")


def test_a_marketing_email_carries_a_signed_unsubscribe_link_for_the_triggers_store() -> None:
    order = OrderPlaced(event_id="e", workspace_id="w1", profile_id="p1", occurred_at=NOW, store_id="s2",
                        order_id="o1", currency="USD", total_price="10.00", net_total="10.00")
    email = compose_email(EMAIL_TEMPLATES[WELCOME_1], _profile(), SETTINGS, LINKS, NOW, order,
                          tags={"flow": "builtin:welcome"})
    assert (email.to, email.from_address, email.from_name, email.reply_to) == (
        "ada@example.com", "hello@shop.example", "Shop", "help@shop.example")
    assert email.tags == {"workspace": "w1", "flow": "builtin:welcome"}
    assert email.unsubscribe_url is not None and email.unsubscribe_url in email.html
    claims = verify(_token(email.unsubscribe_url, LinkPurpose.UNSUBSCRIBE), KEYS, LinkPurpose.UNSUBSCRIBE, NOW)
    assert (claims.workspace_id, claims.profile_id, claims.address, claims.channel, claims.store_id) == (
        "w1", "p1", "ada@example.com", Channel.EMAIL, "s2")


@pytest.mark.parametrize(("profile", "settings", "reason"), [
    (_profile(), MessagingSettings(), "no sender address"),
    (_profile(email=None), SETTINGS, "no email address"),
    (_profile(store_ids=()), SETTINGS, "no store"),
])
def test_an_email_that_cannot_be_made_says_why(profile: Profile, settings: MessagingSettings, reason: str) -> None:
    with pytest.raises(CannotCompose, match=reason):
        compose_email(EMAIL_TEMPLATES[WELCOME_1], profile, settings, LINKS, NOW)


def _asked(at: object = NOW, address: str | None = "ada@example.com", **fields: object) -> Profile:
    request = ConsentRequest(channel=Channel.EMAIL, source="track:identify", at=at, address=address)
    return _profile(consent_requests={"email": request}, **fields)


def test_the_double_opt_in_email_confirms_the_open_request_and_is_not_marketing() -> None:
    email = double_opt_in_email(_asked(), SETTINGS, NOW + timedelta(minutes=1), LINKS)
    assert email is not None and email.unsubscribe_url is None
    assert EMAIL_TEMPLATES[DOUBLE_OPT_IN].subject.startswith("Please confirm")
    [url] = [part.split('"')[0] for part in email.html.split('href="')[1:] if "/confirm/" in part]
    claims = verify(_token(url, LinkPurpose.CONFIRM), KEYS, LinkPurpose.CONFIRM, NOW)
    assert (claims.profile_id, claims.address, claims.store_id) == ("p1", "ada@example.com", "s1")
    assert double_opt_in_claim(_asked()) == f"double_opt_in#{NOW.isoformat()}"


@pytest.mark.parametrize("profile", [
    _profile(),  # nothing requested
    _asked(address="old@example.com"),  # requested for an address the profile no longer has
    _asked(at=NOW - timedelta(days=31)),  # older than a confirmation link lives
    _asked(consents={"email": Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="shopify",
                                      at=NOW - timedelta(days=1))}),  # subscribed already
    _asked(email=None),
])
def test_no_double_opt_in_email_when_there_is_nothing_to_confirm(profile: Profile) -> None:
    assert double_opt_in_email(profile, SETTINGS, NOW, LINKS) is None


def test_no_double_opt_in_email_without_a_sender() -> None:
    assert double_opt_in_email(_asked(), MessagingSettings(), NOW, LINKS) is None


def test_a_template_that_fails_for_one_shopper_is_a_reason_not_a_crash() -> None:
    broken = EmailTemplate(name="b", subject="Hi", html="<p>{{ 1 / 0 }}</p>")
    with pytest.raises(CannotCompose, match="does not render: division by zero"):
        compose_email(broken, _profile(), SETTINGS, LINKS, NOW)


def test_an_sms_is_plain_text_to_the_profiles_phone_from_the_sms_sender() -> None:
    checkout = CheckoutStarted(event_id="e", workspace_id="w1", profile_id="p1", occurred_at=NOW, store_id="s1",
                               checkout_id="c1", recovery_url="https://shop.example/r?a=1&b=2")
    settings = SETTINGS.model_copy(update={"from_name": "Tom & Co", "sms_sender": "TOMCO"})
    sms = compose_sms(SMS_TEMPLATES["builtin:abandoned_checkout_sms"], _profile(phone="+15555550100"), settings,
                      checkout)
    assert (sms.to, sms.sender) == ("+15555550100", "TOMCO")
    assert sms.body.startswith("Tom & Co: ") and "https://shop.example/r?a=1&b=2" in sms.body  # not HTML-escaped
    with pytest.raises(CannotCompose, match="no phone"):
        compose_sms(SMS_TEMPLATES["builtin:abandoned_checkout_sms"], _profile(), settings, checkout)
    with pytest.raises(CannotCompose, match="empty"):
        compose_sms(SmsTemplate(name="s", body="{{ profile.first_name }}"), _profile(phone="+15555550100"),
                    settings)


def _run(trigger: dict[str, object], trigger_type: str = "CheckoutStarted") -> FlowRun:
    return FlowRun(workspace_id="w1", flow_id="builtin:abandoned_checkout", flow_version=1, run_id="r" * 32,
                   profile_id="p1", trigger_type=trigger_type, trigger_event_id="e1", trigger=trigger, entered_at=NOW)


def _record(template_id: str) -> TemplateRecord:
    return TemplateRecord(workspace_id="w1", template_id=template_id, template=TEMPLATES[template_id],
                          created_at=NOW, updated_at=NOW)


CHECKOUT = CheckoutStarted(event_id="e1", workspace_id="w1", profile_id="p1", occurred_at=NOW, store_id="s2",
                           checkout_id="c1", items=(Item(title="Linen shirt", quantity=2, price="39.00"),),
                           recovery_url="https://shop.example/recover/c1", value="78.00", currency="USD")


def test_a_flow_step_renders_with_the_runs_trigger_and_is_tagged_with_flow_step_run_and_profile() -> None:
    messages = FlowMessages(lambda: LINKS)
    run = _run(CHECKOUT.model_dump(mode="json"))
    email = messages.email(_record(ABANDONED_CHECKOUT_1), SETTINGS, _profile(first_name="Ada"), run, "email_1",
                           "test@example.com", NOW)
    assert email.to == "test@example.com"  # a test send goes to the address given, its link names it
    assert "https://shop.example/recover/c1" in email.html and "$78.00" in email.html
    assert email.tags == {"workspace": "w1", "flow": "builtin:abandoned_checkout", "step": "email_1",
                          "run": "r" * 32, "profile": "p1", "sent": str(int(NOW.timestamp()) * 1_000_000)}
    assert sent_of_tag(email.tags["sent"]) == NOW  # the record's moment, so its key (crm.adapters.flow_stats)
    assert email.unsubscribe_url is not None
    claims = verify(_token(email.unsubscribe_url, LinkPurpose.UNSUBSCRIBE), KEYS, LinkPurpose.UNSUBSCRIBE, NOW)
    assert (claims.address, claims.store_id) == ("test@example.com", "s2")
    sms = messages.sms(_record("builtin:abandoned_checkout_sms"), SETTINGS, _profile(), run, "sms", "+15555550100",
                       NOW)
    assert sms.to == "+15555550100" and "https://shop.example/recover/c1" in sms.body
    with pytest.raises(CannotCompose, match="not an email template"):
        messages.email(_record("builtin:abandoned_checkout_sms"), SETTINGS, _profile(), run, "x", "a@b.example", NOW)
    with pytest.raises(CannotCompose, match="not an SMS template"):
        messages.sms(_record(ABANDONED_CHECKOUT_1), SETTINGS, _profile(), run, "x", "+15555550100", NOW)


def test_a_trigger_this_code_does_not_know_renders_as_no_trigger() -> None:
    assert trigger_event("CheckoutStarted", CHECKOUT.model_dump(mode="json")) == CHECKOUT
    assert trigger_event("SomethingNew", {"a": 1}) is None
    assert trigger_event("CheckoutStarted", {"checkout_id": "c1"}) is None  # not a whole event
    email = FlowMessages(lambda: LINKS).email(_record(ABANDONED_CHECKOUT_1), SETTINGS, _profile(),
                                              _run({"a": 1}, "SomethingNew"), "email_1", "a@example.com", NOW)
    assert "Return to your cart" not in email.html  # no recovery link to show


class _Affinity:
    """The related products of a few products (crm.ports.AffinityStore, read side), and what was asked."""

    def __init__(self, products: list[ProductAffinity]) -> None:
        self.held = {p.title: p for p in products}
        self.asked: list[list[str]] = []

    def related_to(self, workspace_id: str, titles: Iterable[str]) -> list[ProductAffinity]:
        self.asked.append(list(titles))
        return [self.held[t] for t in self.asked[-1] if t in self.held]


def _related(title: str, *others: tuple[str, str | None]) -> ProductAffinity:
    return ProductAffinity(workspace_id="w1", title=title, buyers=10, support=Decimal("0.1"), shoppers=100,
                           computed_at=NOW, related=tuple(
                               RelatedProduct(title=other, url=url, buyers_together=5, support=Decimal("0.05"),
                                              confidence=Decimal("0.5"), lift=Decimal(f"{5 - n}"))
                               for n, (other, url) in enumerate(others)))


def test_the_post_purchase_email_suggests_what_the_orders_shoppers_also_bought_and_this_one_did_not() -> None:
    affinity = _Affinity([_related("Linen shirt", ("Silk tie", "https://shop.example/tie"), ("Belt", None),
                                   ("Hat", None))])
    placed = OrderPlaced(event_id="e", workspace_id="w1", profile_id="p1", occurred_at=NOW, store_id="s2",
                         order_id="o1", currency="USD", total_price="78.00", net_total="78.00",
                         items=(Item(title="Linen shirt", quantity=2, price="39.00"),))
    messages = FlowMessages(lambda: LINKS, affinity=lambda: affinity)  # type: ignore[arg-type,return-value]
    email = messages.email(_record(POST_PURCHASE_THANKS), SETTINGS, _profile(products={"Linen shirt": 2, "Hat": 1}),
                           _run(placed.model_dump(mode="json"), "OrderPlaced"), "email_1", "a@example.com", NOW)
    assert affinity.asked == [["Linen shirt"]]
    assert "Often bought with your order" in email.html
    assert '<a href="https://shop.example/tie"' in email.html and "Belt" in email.html
    assert "Hat" not in email.html  # already bought
    assert email.html.index("Silk tie") < email.html.index("Belt")  # best lift first

    # A template that does not show cross_sell reads nothing; nothing related shows no block.
    messages.email(_record(ABANDONED_CHECKOUT_1), SETTINGS, _profile(), _run(CHECKOUT.model_dump(mode="json")),
                   "email_1", "a@example.com", NOW)
    assert len(affinity.asked) == 1
    alone = FlowMessages(lambda: LINKS, affinity=lambda: _Affinity([]))  # type: ignore[arg-type,return-value]
    plain = alone.email(_record(POST_PURCHASE_THANKS), SETTINGS, _profile(),
                        _run(placed.model_dump(mode="json"), "OrderPlaced"), "email_1", "a@example.com", NOW)
    assert "Often bought" not in plain.html


def test_without_an_order_the_cross_sell_starts_from_the_cart_then_from_what_was_bought_most() -> None:
    cart = Activity(at=NOW, event_id="c", type="added_to_cart", products=(ProductRef(title="Belt"),))
    assert cross_sell_basis(_profile(last_cart=cart, products={"Hat": 3}), []) == ["Belt"]
    assert cross_sell_basis(_profile(products={"Hat": 1, "Shirt": 3}), []) == ["Shirt", "Hat"]
    assert cross_sell_basis(_profile(last_cart=cart), ["Shirt", "Shirt"]) == ["Shirt"]
