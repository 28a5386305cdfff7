"""Rendering templates: the sandbox, autoescape, the context, the footer, the text part; and the built-in
templates (crm.messaging.defaults) rendered for real checkout and order triggers."""

from __future__ import annotations

import html
from decimal import Decimal

import pytest
from crm.flows.builtin import BUILTIN_FLOWS
from crm.messaging import defaults
from crm.messaging.render import (
    TemplateInvalid,
    check_template,
    html_to_text,
    message_context,
    money,
    render_email,
    render_sms,
    sample_context,
    validate_template,
)
from crm.models.events import CheckoutStarted, Item, OrderFulfilled, ProductViewed
from crm.models.messaging import EmailTemplate, MessagingSettings, SmsTemplate
from crm.models.profile import new_profile
from hypothesis import given
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from tests.builders import NOW

SETTINGS = MessagingSettings(from_address="hello@shop.example", from_name="Example Shop",
                             postal_address="1 Main St, Springfield")
UNSUBSCRIBE = "https://crm.example/unsubscribe/abc.def.ghi"


def _profile(**fields: object):  # type: ignore[no-untyped-def]
    return new_profile("w1", "p1", NOW).model_copy(update={"email": "ada@example.com", "store_ids": ("s1",),
                                                          **fields})


def _email(html: str, subject: str = "Hi", text: str | None = None, marketing: bool = True) -> EmailTemplate:
    return EmailTemplate(name="t", subject=subject, html=html, text=text, marketing=marketing)


CHECKOUT = CheckoutStarted(
    event_id="e1", workspace_id="w1", profile_id="p1", occurred_at=NOW, store_id="s1", checkout_id="c1",
    items=(Item(title="Linen shirt", quantity=2, price="39.5", image_url="https://shop.example/linen.jpg",
                product_url="https://shop.example/products/linen"),
           Item(title="Wool socks", quantity=1, price="12.00")),
    recovery_url="https://shop.example/checkouts/c1/recover", value="91.00", currency="EUR")


@pytest.mark.parametrize("expression", [
    "{{ ''.__class__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ profile.__init__ }}",
    "{{ trigger['items'].append(1) }}", "{{ store.update({'name': 'x'}) }}",
    "{{ 'x' * 1000000000 }}", "{{ 9 ** 9999999 }}", "{{ [1] * 10 ** 9 }}",
])
def test_the_sandbox_refuses_internals_and_mutation(expression: str) -> None:
    errors = validate_template(_email(f"<p>{expression}</p>"))
    assert len(errors) == 1 and errors[0].startswith("html: "), errors
    assert "unsafe" in errors[0] or "not allowed" in errors[0] or "not safely" in errors[0], errors
    # At send time (a template saved before a rule tightened) it fails or renders nothing of the internals.
    try:
        rendered = render_email(_email(f"<p>{expression}</p>"), sample_context())
    except SecurityError as error:
        assert "unsafe" in str(error) or "not safely" in str(error) or "not allowed" in str(error)
    else:
        assert "class" not in rendered.html and "method" not in rendered.html and "<p></p>" in rendered.html


def test_a_shoppers_name_is_escaped_in_html_but_not_in_the_subject_or_text() -> None:
    context = message_context(_profile(first_name="<script>alert(1)</script>"), SETTINGS, None, UNSUBSCRIBE)
    rendered = render_email(_email("<p>Hi {{ profile.first_name }}</p>", subject="Hi {{ profile.first_name }}",
                                   text="Hi {{ profile.first_name }}"), context)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert rendered.subject == "Hi <script>alert(1)</script>"
    assert rendered.text.startswith("Hi <script>alert(1)</script>")


def test_validation_names_the_part_the_line_and_the_problem() -> None:
    errors = validate_template(_email("<p>ok</p>\n<p>{{ profile.frist_name }}</p>\n", subject="{% if %}",
                                      text="fine\n\n{% for x in %}"))
    assert errors[0].startswith("subject: line 1: ")
    assert errors[1] == "html: line 2: 'dict object' has no attribute 'frist_name'"
    assert errors[2].startswith("text: line 3: ")
    with pytest.raises(TemplateInvalid) as raised:
        check_template(SmsTemplate(name="s", body="{{ nope }}"))
    assert raised.value.errors == ["body: line 1: 'nope' is undefined"]


def test_every_default_template_is_valid_and_renders_for_a_minimal_context() -> None:
    assert {defaults.ABANDONED_CHECKOUT_1, defaults.ABANDONED_CHECKOUT_2, defaults.BROWSE_ABANDONMENT,
            defaults.WELCOME_1, defaults.WELCOME_2, defaults.POST_PURCHASE_THANKS, defaults.POST_PURCHASE_REVIEW,
            defaults.WIN_BACK, defaults.VIP, defaults.DOUBLE_OPT_IN} <= set(defaults.EMAIL_TEMPLATES)
    bare = message_context(new_profile("w1", "p1", NOW), MessagingSettings(), None, UNSUBSCRIBE)
    for template_id, template in defaults.TEMPLATES.items():
        assert validate_template(template) == [], template_id
        if isinstance(template, EmailTemplate):
            rendered = render_email(template, bare)  # a profile without a name, no trigger: empty, not an error
            assert rendered.subject and rendered.html and rendered.text, template_id
            assert "None" not in rendered.subject and "Undefined" not in rendered.html, template_id
            assert (UNSUBSCRIBE in rendered.html) is template.marketing, template_id
        else:
            assert render_sms(template, bare)
    assert defaults.EMAIL_TEMPLATES[defaults.DOUBLE_OPT_IN].marketing is False


def test_the_abandoned_checkout_email_lists_the_cart_with_images_prices_and_the_recovery_link() -> None:
    context = message_context(_profile(first_name="Ada"), SETTINGS, CHECKOUT, UNSUBSCRIBE)
    rendered = render_email(defaults.EMAIL_TEMPLATES[defaults.ABANDONED_CHECKOUT_1], context)
    assert 'src="https://shop.example/linen.jpg"' in rendered.html
    assert 'href="https://shop.example/checkouts/c1/recover"' in rendered.html
    assert "€79.00" in rendered.html and "€12.00" in rendered.html and "€91.00" in rendered.html
    assert "Hi Ada," in rendered.text and "Wool socks" in rendered.text
    assert "(https://shop.example/checkouts/c1/recover)" in rendered.text
    assert "<style" not in rendered.html and 'style="' in rendered.html  # the CSS is inlined
    assert "1 Main St, Springfield" in rendered.html and UNSUBSCRIBE in rendered.text


def test_browse_and_review_emails_name_the_products() -> None:
    viewed = ProductViewed(event_id="e", workspace_id="w1", profile_id="p1", occurred_at=NOW, store_id="s1",
                           product=Item(title="Rain jacket", price="120", product_url="https://shop.example/j"))
    browse = render_email(defaults.EMAIL_TEMPLATES[defaults.BROWSE_ABANDONMENT],
                          message_context(_profile(), SETTINGS, viewed, UNSUBSCRIBE))
    assert browse.subject == "Still interested in Rain jacket?"
    assert 'href="https://shop.example/j"' in browse.html
    fulfilled = OrderFulfilled(event_id="e", workspace_id="w1", profile_id="p1", occurred_at=NOW, store_id="s1",
                               order_id="o1", items=(Item(title="Mug"), Item(title="Tea"), Item(title="Spoon")))
    review = render_email(defaults.EMAIL_TEMPLATES[defaults.POST_PURCHASE_REVIEW],
                          message_context(_profile(), SETTINGS, fulfilled, UNSUBSCRIBE))
    assert review.subject == "How are your items?"
    assert "Mug, Tea and Spoon?" in review.text


def test_a_marketing_template_without_an_unsubscribe_link_gets_the_footer() -> None:
    context = message_context(_profile(), SETTINGS, None, UNSUBSCRIBE)
    rendered = render_email(_email("<html><body><p>Sale!</p></body></html>"), context)
    assert rendered.html.index(UNSUBSCRIBE) < rendered.html.index("</body>")
    assert "1 Main St, Springfield" in rendered.html
    assert f"Unsubscribe: {UNSUBSCRIBE}" in rendered.text
    transactional = render_email(_email("<p>Confirm</p>", marketing=False), context)
    assert UNSUBSCRIBE not in transactional.html and UNSUBSCRIBE not in transactional.text


def test_a_missing_field_prints_as_nothing_not_none() -> None:
    context = message_context(_profile(), SETTINGS, None, UNSUBSCRIBE)
    rendered = render_email(_email("<p>Hi {{ profile.first_name }}!{{ trigger.recovery_url }}</p>",
                                   subject="Hi {{ profile.first_name }}{{ nothing.at.all }}"), context)
    assert rendered.subject == "Hi" and "<p>Hi !</p>" in rendered.html and "None" not in rendered.text


def test_no_internal_id_reaches_the_context() -> None:
    context = message_context(_profile(), SETTINGS, CHECKOUT, UNSUBSCRIBE)
    flat = repr(context)
    assert "p1" not in flat.replace("https://", "") and "'e1'" not in flat and "w1" not in flat


@pytest.mark.parametrize(("amount", "currency", "written"), [
    ("1234.5", "USD", "$1,234.50"), (Decimal("-3"), "GBP", "-£3.00"), ("1000", "JPY", "¥1,000"),
    ("9.999", "CHF", "10.00 CHF"), ("1e400", "USD", "1e400"), ("12", None, "12.00"), ("n/a", "USD", "n/a"),
    (None, "USD", ""),
])
def test_money_is_written_from_decimal_strings(amount: object, currency: str | None, written: str) -> None:
    assert money(amount, currency) == written


def test_html_to_text_keeps_paragraphs_lists_and_links() -> None:
    text = html_to_text("<html><head><style>p{color:red}</style></head><body><h1>Title</h1><p>One &amp; two"
                        "<br>three</p><ul><li>a</li><li>b</li></ul><p><a href='https://x.example'>Go</a></p>"
                        "</body></html>")
    assert text == "Title\n\nOne & two\nthree\n\n- a\n- b\n\nGo (https://x.example)\n"


def _template_ids(value: object, kind: str) -> set[str]:
    if isinstance(value, dict):
        found = {str(value["template_id"])} if value.get("kind") == kind else set()
        return found.union(*(_template_ids(v, kind) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(_template_ids(v, kind) for v in value))
    return set()


def test_every_template_the_built_in_flows_send_is_a_default_template() -> None:
    emails = set().union(*(_template_ids(flow.model_dump(mode="json"), "email") for flow in BUILTIN_FLOWS.values()))
    sms = set().union(*(_template_ids(flow.model_dump(mode="json"), "sms") for flow in BUILTIN_FLOWS.values()))
    assert emails and emails <= set(defaults.EMAIL_TEMPLATES)
    assert sms <= set(defaults.SMS_TEMPLATES)
    assert set(defaults.EMAIL_TEMPLATES) - emails == {defaults.DOUBLE_OPT_IN}  # sent by crm.messaging.optin


@given(name=st.text(max_size=60, alphabet=st.characters(blacklist_categories=("Cc", "Cs"))))
def test_whatever_a_shopper_calls_themselves_the_html_shows_it_as_text(name: str) -> None:
    context = message_context(_profile(first_name=name), SETTINGS, None, UNSUBSCRIBE)
    rendered = render_email(_email("<p>Hi <b>{{ profile.first_name }}</b></p>", marketing=False), context)
    shown = rendered.html.split("<b>", 1)[1].rsplit("</b>", 1)[0]
    assert "<" not in shown  # no markup of the shopper's reaches the page, only text
    assert html.unescape(shown) == name
