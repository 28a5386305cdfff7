"""The links of flow messages that tell what a shopper did (crm.messaging.shortlinks, crm.messaging.unsubscribe):
an SMS's links shortened and signed, an email's unsubscribe link naming its flow, run and step, and both,
once followed, recorded on their message (crm.messaging.feedback.apply_link_followed)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from crm.flows.inbox import LinkFollowed
from crm.flows.memory import MemoryShortLinks
from crm.messaging.compose import FlowMessages
from crm.messaging.defaults import ABANDONED_CHECKOUT_1, TEMPLATES
from crm.messaging.feedback import apply_link_followed
from crm.messaging.shortlinks import (
    CODE,
    PREVIEW_AGENTS,
    SmsLinks,
    clicked,
    is_preview,
    links_in,
    short_code,
    unsubscribed,
)
from crm.messaging.unsubscribe import LinkOrigin, LinkPurpose, Links, SigningKeys, claims_for, sign, verify
from crm.models.consent import Channel
from crm.models.flow_stats import ALL_STEPS, MessageEventType, MessageRecord
from crm.models.flows import FlowRun
from crm.models.messaging import EmailTemplate, MessagingSettings, SmsTemplate, TemplateRecord
from crm.models.profile import new_profile
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import NOW
from tests.unit.test_feedback import World

KEYS = SigningKeys(current=b"k" * 32)
BASE = "https://api.example/v1"
ORIGIN = LinkOrigin("builtin:abandoned_checkout", "run_1", "sms_1")
SETTINGS = MessagingSettings(from_address="hello@shop.example", postal_address="1 Main St", sms_sender="+12125550101")


def _sms_links() -> tuple[SmsLinks, MemoryShortLinks]:
    store = MemoryShortLinks()
    return SmsLinks(KEYS, BASE, store), store


# --- short links ------------------------------------------------------------------------------------------------

def test_each_link_of_an_sms_becomes_a_short_signed_link_and_the_rest_of_the_text_stays() -> None:
    sms_links, store = _sms_links()
    body = "Ada, your cart: https://shop.example/cart?c=1&utm_source=sms. Or http://shop.example/new! STOP to end"
    rewritten = sms_links.rewrite(body, "w1", "p1", ORIGIN, NOW)
    codes = [link.removeprefix(f"{BASE}/r/") for link in links_in(rewritten)]
    assert rewritten == f"Ada, your cart: {BASE}/r/{codes[0]}. Or {BASE}/r/{codes[1]}! STOP to end"
    assert all(CODE.match(code) for code in codes) and len(set(codes)) == 2
    assert [store.items[code].url for code in codes] == ["https://shop.example/cart?c=1&utm_source=sms",
                                                         "http://shop.example/new"]
    held = store.items[codes[0]]
    assert (held.workspace_id, held.profile_id, held.flow_id, held.run_id, held.step_id, held.created_at) == (
        "w1", "p1", "builtin:abandoned_checkout", "run_1", "sms_1", NOW)
    # A retried composition makes the same codes; another key, run or step does not.
    assert sms_links.rewrite(body, "w1", "p1", ORIGIN, NOW + timedelta(seconds=3)) == rewritten
    assert store.items[codes[0]].created_at == NOW
    assert short_code(b"o" * 32, "w1", "run_1", "sms_1", held.url) != codes[0]
    assert short_code(KEYS.current, "w1", "run_2", "sms_1", held.url) != codes[0]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_text_without_links_is_left_as_it_is(text: str) -> None:
    sms_links, store = _sms_links()
    if not links_in(text):
        assert sms_links.rewrite(text, "w1", "p1", ORIGIN, NOW) == text and store.items == {}


def _run() -> FlowRun:
    return FlowRun(workspace_id="w1", flow_id="builtin:abandoned_checkout", flow_version=1, run_id="run_1",
                   profile_id="p1", trigger_type="CheckoutStarted", trigger_event_id="e1",
                   trigger={"checkout_id": "c1", "store_id": "s1"}, entered_at=NOW)


def _record(template: EmailTemplate | SmsTemplate) -> TemplateRecord:
    return TemplateRecord(workspace_id="w1", template_id="t", template=template, created_at=NOW, updated_at=NOW)


_WORDS = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="h"), max_size=30)
_URLS = st.builds(lambda host, path: f"https://{host}.example/{path}",
                  st.from_regex(r"[a-z]{1,12}", fullmatch=True),
                  st.from_regex(r"[A-Za-z0-9/?=&%_-]{0,40}", fullmatch=True))


@given(st.lists(st.tuples(_WORDS, _URLS), max_size=5), _WORDS)
def test_an_sms_read_back_through_its_short_links_is_the_sms_written(parts: list[tuple[str, str]], end: str) -> None:
    # Words without an "h" hold no link; a space before each link keeps it apart from the words before it.
    body = "".join(f"{words} {url} " for words, url in parts) + end
    sms_links, store = _sms_links()
    rewritten = sms_links.rewrite(body, "w1", "p1", ORIGIN, NOW)
    restored = rewritten
    for code, link in store.items.items():
        restored = restored.replace(f"{BASE}/r/{code}", link.url)
    assert restored == body
    # A link's last "?" reads as the sentence's (kept after the short link): such twins share a code.
    assert len(links_in(rewritten)) == len(parts) and len(store.items) == len({url.rstrip("?") for _, url in parts})


def test_flow_messages_shorten_sms_links_when_given_a_shortener_and_not_otherwise() -> None:
    sms_links, store = _sms_links()
    template = _record(SmsTemplate(name="cart", body="Back to your cart: https://shop.example/c"))
    profile = new_profile("w1", "p1", NOW).model_copy(update={"phone": "+14255550182", "store_ids": ("s1",)})
    shortened = FlowMessages(lambda: Links(KEYS, BASE), lambda: sms_links).sms(
        template, SETTINGS, profile, _run(), "sms_1", "+14255550182", NOW)
    [code] = store.items
    assert shortened.body.startswith(f"Back to your cart: {BASE}/r/{code}")
    plain = FlowMessages(lambda: Links(KEYS, BASE)).sms(template, SETTINGS, profile, _run(), "sms_1",
                                                        "+14255550182", NOW)
    assert plain.body.startswith("Back to your cart: https://shop.example/c")


def test_a_flow_emails_unsubscribe_link_names_its_flow_run_and_step() -> None:
    profile = new_profile("w1", "p1", NOW).model_copy(update={"email": "ada@example.com", "store_ids": ("s1",)})
    email = FlowMessages(lambda: Links(KEYS, BASE)).email(_record(TEMPLATES[ABANDONED_CHECKOUT_1]), SETTINGS,  # type: ignore[arg-type]
                                                          profile, _run(), "email_1", "ada@example.com", NOW)
    assert email.unsubscribe_url is not None
    read = verify(email.unsubscribe_url.removeprefix(f"{BASE}/unsubscribe/"), KEYS, LinkPurpose.UNSUBSCRIBE, NOW)
    assert (read.flow_id, read.run_id, read.step_id) == ("builtin:abandoned_checkout", "run_1", "email_1")
    notice = unsubscribed(read, NOW + timedelta(days=2))
    assert notice is not None and (notice.type, notice.channel, notice.issued_at, notice.at) == (
        MessageEventType.UNSUBSCRIBED, "email", NOW.replace(microsecond=0), NOW + timedelta(days=2))


def test_a_link_preview_fetch_is_no_click() -> None:
    assert is_preview("facebookexternalhit/1.1 Facebot Twitterbot/1.0")  # iMessage's preview
    assert is_preview("WhatsApp/2.23.20.0")
    assert not is_preview("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1")
    assert not is_preview(None)
    assert all(agent == agent.lower() for agent in PREVIEW_AGENTS)


# --- unsubscribe links of flow emails -------------------------------------------------------------------------------

def test_a_link_without_an_origin_signs_as_before_and_counts_nowhere() -> None:
    claims = claims_for(LinkPurpose.UNSUBSCRIBE, "w1", "p1", "ada@example.com", Channel.EMAIL, "s1", NOW)
    body = json.loads(__import__("base64").urlsafe_b64decode(sign(claims, KEYS).split(".")[1] + "=="))
    assert set(body) == {"p", "w", "i", "a", "c", "s", "t"}  # tokens already in inboxes read the same
    assert unsubscribed(claims, NOW) is None


# --- followed links recorded on their message --------------------------------------------------------------------

def _message(channel: str, step_id: str, message_id: str) -> MessageRecord:
    return MessageRecord(workspace_id="w1", profile_id="p1", message_id=message_id, channel=channel,  # type: ignore[arg-type]
                         flow_id="builtin:abandoned_checkout", flow_version=1, step_id=step_id, run_id="run_1",
                         variant="split_1:1", trigger_type="CheckoutStarted", sent_at=NOW)


def test_an_sms_click_is_recorded_once_on_the_runs_sms_at_that_step() -> None:
    world = World()
    for record in (_message("sms", "sms_1", "sns-1"), _message("email", "email_1", "ses-1"),
                   _message("sms", "sms_2", "sns-2")):
        world.ledger.record_sent(record)
    sms_links, store = _sms_links()
    rewritten = sms_links.rewrite("https://shop.example/c", "w1", "p1", ORIGIN, NOW)
    link = store.items[rewritten.removeprefix(f"{BASE}/r/")]
    notice = clicked(link, NOW + timedelta(hours=1))
    outcome = apply_link_followed(notice, world.deps)
    assert outcome.details == {"message_id": "sns-1", "message_event": "clicked recorded"}
    assert apply_link_followed(notice, world.deps).details["message_event"] == "clicked repeated"
    rows = {(r.step_id, r.variant): r.counts for r in world.counters.rows("w1", "builtin:abandoned_checkout",
                                                                           NOW.date(), NOW.date())}
    assert rows == {(ALL_STEPS, ALL_STEPS): {"clicked": Decimal(1)}, ("sms_1", "split_1:1"): {"clicked": Decimal(1)}}
    held = world.ledger.find("sns-1")
    assert held is not None and held.clicked_links == ("https://shop.example/c",)
    [line] = world.profiles.timelines[("w1", "p1")].values()
    assert (line.type, line.summary["link"]) == ("sms_clicked", "https://shop.example/c")


def test_an_unsubscribe_counts_on_its_email_and_a_link_older_than_any_message_is_ignored() -> None:
    world = World()
    world.ledger.record_sent(_message("email", "sms_1", "ses-1"))
    claims = claims_for(LinkPurpose.UNSUBSCRIBE, "w1", "p1", "ada@example.com", Channel.EMAIL, "s1", NOW, ORIGIN)
    notice = unsubscribed(claims, NOW + timedelta(days=1))
    assert notice is not None
    assert apply_link_followed(notice, world.deps).details["message_event"] == "unsubscribed recorded"
    [flow_wide, step] = world.counters.rows("w1", "builtin:abandoned_checkout", NOW.date(), NOW.date() + timedelta(1))
    assert (flow_wide.day, flow_wide.counts, step.step_id) == (
        (NOW + timedelta(days=1)).date(), {"unsubscribed": Decimal(1)}, "sms_1")  # the day it was followed
    # The consent change has its own timeline line (the statement's): the unsubscribe writes none.
    assert world.profiles.timelines.get(("w1", "p1"), {}) == {}
    stranger = LinkFollowed.model_validate({**notice.model_dump(), "run_id": "run_9"})
    assert apply_link_followed(stranger, world.deps).ignored == "no email message of run run_9 at sms_1"


def test_a_click_follows_the_profile_into_the_one_it_was_merged_into() -> None:
    world = World()
    world.ledger.record_sent(_message("sms", "sms_1", "sns-1"))
    world.ledger.move_messages("w1", "p1", "p2")
    world.profiles.profiles[("w1", "p1")] = new_profile("w1", "p1", NOW).model_copy(update={"merged_into": "p2"})
    world.profiles.profiles[("w1", "p2")] = new_profile("w1", "p2", NOW)
    sms_links, store = _sms_links()
    code = sms_links.rewrite("https://shop.example/c", "w1", "p1", ORIGIN, NOW).removeprefix(f"{BASE}/r/")
    outcome = apply_link_followed(clicked(store.items[code], NOW + timedelta(hours=1)), world.deps)
    assert outcome.details == {"message_id": "sns-1", "message_event": "clicked recorded"}
    held = world.ledger.find("sns-1")
    assert held is not None and held.profile_id == "p2" and MessageEventType.CLICKED in held.events
