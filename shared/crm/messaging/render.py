"""Rendering a template: Jinja2 in an immutable sandbox, HTML autoescaped, CSS inlined, a plain-text part.

Marketers write templates, so a template is treated as untrusted code (docs/messaging.md):

* ``ImmutableSandboxedEnvironment``: no access to attributes starting with ``_`` (``''.__class__`` fails), no
  calls of unsafe methods, no mutating a list or dict in the context.
* Autoescape on the HTML part: a shopper who calls themselves ``<script>`` is rendered as text. The subject,
  the text part and SMS bodies are plain text and are not HTML-escaped.
* Undefined variables: at save time (``validate_template``) a template is rendered against a sample context
  with ``StrictUndefined``, so a misspelt ``{{ profile.frist_name }}`` is refused with its path and line; at
  send time the lenient ``ChainableUndefined`` renders a missing value (a profile without a first name, a
  checkout without a recovery URL) as empty text, so one missing field never stops a message.

The context a template sees is built by ``message_context``: ``profile``, ``trigger``, ``store``,
``cross_sell`` and ``unsubscribe_url`` (and ``confirm_url`` for the double opt-in email).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from html import escape, unescape
from html.parser import HTMLParser
from typing import Any

import css_inline
from jinja2 import ChainableUndefined, StrictUndefined, TemplateError, TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from crm.models.affinity import ProductShown
from crm.models.events import DomainEvent, Item
from crm.models.messaging import EmailTemplate, MessagingSettings, SmsTemplate
from crm.models.profile import Profile

# Symbols for the currencies most stores use; any other amount is written "12.50 CHF".
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "AUD": "A$", "CAD": "C$", "NZD": "NZ$", "INR": "₹"}
_DOMAIN_EVENT_FIELDS = {"event_id", "workspace_id", "profile_id"}  # internal: never a template's business


class TemplateInvalid(ValueError):
    """A template that cannot be saved: ``errors`` are "path: problem" lines (with line numbers)."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def money(amount: object, currency: object = None) -> str:
    """An amount given as a Decimal string ("1234.5") written for a shopper: "$1,234.50", "1,234.50 CHF".
    Anything that is not an amount is written as it is (a template never fails on a price)."""
    if isinstance(amount, float):  # a template's own literal: money is never a float in the context
        return f"{amount}"
    if amount is None or isinstance(amount, Undefined):
        return ""
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        return str(amount)
    if not value.is_finite():
        return str(amount)
    code = str(currency).upper() if currency and not isinstance(currency, Undefined) else ""
    places = Decimal("1") if code == "JPY" else Decimal("0.01")
    try:
        written = f"{value.quantize(places):,}"
    except InvalidOperation:  # too large to write to the cent: no price is
        return str(amount)
    if code in _SYMBOLS:
        sign, digits = ("-", written[1:]) if written.startswith("-") else ("", written)
        return f"{sign}{_SYMBOLS[code]}{digits}"
    return f"{written} {code}".strip()


def _nothing_for_none(value: Any) -> Any:
    return "" if value is None else value


# A template may not build a value larger than this (``{{ "x" * 10**9 }}`` would exhaust the sender's memory).
MAX_BUILT_LENGTH = 100_000
MAX_EXPONENT = 100


class _ContextEnvironment(ImmutableSandboxedEnvironment):
    """``{{ trigger.items }}`` means the context's "items", not the dict method of that name: a key of a
    mapping wins over its attributes (Jinja2 tries the attribute first). Repetition and powers are bounded."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed in a template")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (isinstance(sequence, str | list | tuple) and isinstance(count, int)
                        and len(sequence) * count > MAX_BUILT_LENGTH):
                    raise SecurityError(f"a value longer than {MAX_BUILT_LENGTH} is not allowed in a template")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def _environment(autoescape: bool, undefined: type[Undefined]) -> ImmutableSandboxedEnvironment:
    # finalize: a field the shopper never gave (None) prints as nothing, not as "None".
    environment = _ContextEnvironment(autoescape=autoescape, undefined=undefined, trim_blocks=True,
                                      lstrip_blocks=True, finalize=_nothing_for_none)
    environment.filters["money"] = money
    return environment


_SEND_HTML = _environment(True, ChainableUndefined)
_SEND_TEXT = _environment(False, ChainableUndefined)
_CHECK_HTML = _environment(True, StrictUndefined)
_CHECK_TEXT = _environment(False, StrictUndefined)


# --- the context --------------------------------------------------------------------------------


def _item(item: Item, currency: str | None) -> dict[str, Any]:
    values = item.model_dump(mode="json")
    price = Decimal(item.price) if item.price is not None and _is_amount(item.price) else None
    values["price_display"] = money(item.price, currency) if item.price is not None else ""
    values["line_total_display"] = money(price * item.quantity, currency) if price is not None else ""
    return values


def _is_amount(value: str) -> bool:
    try:
        return Decimal(value).is_finite()
    except InvalidOperation:
        return False


def _event_classes() -> dict[str, type[DomainEvent]]:
    return {str(cls.model_fields["type"].default): cls for cls in DomainEvent.__subclasses__()
            if "type" in cls.model_fields}


def trigger_event(trigger_type: str, detail: Mapping[str, Any]) -> DomainEvent | None:
    """A flow run's trigger (FlowRun.trigger: the bus event's detail) as its domain event; None when it is not
    one this code knows (a newer event type): the template then sees no trigger rather than failing."""
    cls = _event_classes().get(trigger_type)
    if cls is None:
        return None
    try:
        return cls.model_validate(dict(detail))
    except ValueError:
        return None


def trigger_context(event: DomainEvent | None) -> dict[str, Any]:
    """What the flow's trigger says, for a template: its type, items (title, quantity, price, image_url,
    product_url, with ``price_display`` and ``line_total_display``), the checkout's ``recovery_url``,
    value and total with ``*_display`` forms, the viewed ``product``. Never internal ids of the CRM."""
    if event is None:
        return {"type": None, "items": []}
    values: dict[str, Any] = event.model_dump(mode="json", exclude=_DOMAIN_EVENT_FIELDS)
    currency = getattr(event, "currency", None)
    items: Sequence[Item] = getattr(event, "items", ())
    values["items"] = [_item(item, currency) for item in items]
    product = getattr(event, "product", None)
    if isinstance(product, Item):
        values["product"] = _item(product, currency)
    for amount in ("value", "total_price", "net_total"):
        if values.get(amount) is not None:
            values[f"{amount}_display"] = money(values[amount], currency)
    return values


def profile_context(profile: Profile) -> dict[str, Any]:
    """The shopper as a template sees them: contact fields and a few figures, no internal ids."""
    full_name = " ".join(part for part in (profile.first_name, profile.last_name) if part)
    return {
        "first_name": profile.first_name, "last_name": profile.last_name, "full_name": full_name or None,
        "email": profile.email, "phone": profile.phone, "country": profile.country,
        "orders_count": profile.orders_count, "total_spent": str(profile.total_spent),
        "total_spent_display": money(profile.total_spent, profile.currency), "currency": profile.currency,
        "tags": list(profile.tags),
    }


def cross_sell_context(products: Sequence[ProductShown]) -> list[dict[str, Any]]:
    """Products to suggest (crm.affinity.cross_sell) as a template sees them: title, product_url, image_url."""
    return [{"title": p.title, "product_url": p.url, "image_url": p.image_url} for p in products]


def store_context(settings: MessagingSettings) -> dict[str, Any]:
    return {"name": settings.from_name, "from_address": settings.from_address, "reply_to": settings.reply_to,
            "postal_address": settings.postal_address}


def message_context(profile: Profile, settings: MessagingSettings, trigger: DomainEvent | None = None,
                    unsubscribe_url: str | None = None, **extra: Any) -> dict[str, Any]:
    """Everything a template may use (docs/messaging.md lists it). ``cross_sell`` is empty unless the caller
    gives it (crm.messaging.compose reads it only for a template that uses it)."""
    return {"profile": profile_context(profile), "trigger": trigger_context(trigger),
            "store": store_context(settings), "unsubscribe_url": unsubscribe_url, "cross_sell": [], **extra}


def sample_context() -> dict[str, Any]:
    """A context with every variable a template may use, for checking a template before it is saved."""
    item = {"title": "Linen shirt", "quantity": 2, "price": "39.00", "product_id": "p1", "variant_id": "v1",
            "sku": "LS-1", "image_url": "https://shop.example/linen.jpg",
            "product_url": "https://shop.example/products/linen", "price_display": "$39.00",
            "line_total_display": "$78.00"}
    trigger = {"type": "CheckoutStarted", "occurred_at": "2026-01-01T00:00:00Z", "store_id": "store",
               "checkout_id": "c1", "order_id": "o1", "order_number": "1001", "items": [item], "product": item,
               "recovery_url": "https://shop.example/checkouts/c1/recover", "url": "https://shop.example/p",
               "value": "78.00", "value_display": "$78.00", "currency": "USD", "total_price": "78.00",
               "total_price_display": "$78.00", "net_total": "78.00", "net_total_display": "$78.00",
               "paid": True, "from_browser": False, "segment_id": "vip", "channel": "email",
               "old_state": None, "new_state": "subscribed", "source": "shopify", "channels": ["email"],
               "entered_at": "2026-01-01T00:00:00Z", "merged_profile_id": "p"}
    profile = {"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace",
               "email": "ada@example.com", "phone": "+15555550100", "country": "GB", "orders_count": 3,
               "total_spent": "120.00", "total_spent_display": "$120.00", "currency": "USD", "tags": ["vip"]}
    store = {"name": "Example Shop", "from_address": "hello@shop.example", "reply_to": "help@shop.example",
             "postal_address": "1 Main St, Springfield"}
    cross_sell = [{"title": "Silk tie", "product_url": "https://shop.example/products/silk-tie",
                   "image_url": "https://shop.example/tie.jpg"}]
    return {"profile": profile, "trigger": trigger, "store": store, "cross_sell": cross_sell,
            "unsubscribe_url": "https://crm.example/unsubscribe/token", "confirm_url": "https://crm.example/confirm/t"}


# --- checking a template at save time ----------------------------------------------------------


def _problem(part: str, error: Exception) -> str:
    if isinstance(error, TemplateSyntaxError):
        return f"{part}: line {error.lineno}: {error.message}"
    if isinstance(error, SecurityError):
        return f"{part}: not allowed in a template: {error}"
    line = _line_of(error)
    where = f"line {line}: " if line else ""
    return f"{part}: {where}{error}"


def _line_of(error: Exception) -> int | None:
    """The template line a runtime error came from (Jinja2 tags the traceback's frames "<template>")."""
    traceback = error.__traceback__
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def validate_template(template: EmailTemplate | SmsTemplate,
                      context: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with a template, as "path: problem" lines (empty: it may be saved): syntax errors with
    their line, variables the context does not have (StrictUndefined), anything the sandbox refuses."""
    values = dict(context or sample_context())
    parts: list[tuple[str, str, ImmutableSandboxedEnvironment]]
    if isinstance(template, EmailTemplate):
        parts = [("subject", template.subject, _CHECK_TEXT), ("html", template.html, _CHECK_HTML)]
        if template.text is not None:
            parts.append(("text", template.text, _CHECK_TEXT))
    else:
        parts = [("body", template.body, _CHECK_TEXT)]
    errors = []
    for part, source, environment in parts:
        try:
            environment.from_string(source).render(values)
        except (TemplateError, SecurityError, TypeError, ValueError, ArithmeticError) as error:
            errors.append(_problem(part, error))
    return errors


def check_template(template: EmailTemplate | SmsTemplate) -> None:
    """Raise TemplateInvalid listing every problem of ``template`` (for the API's POST/PUT /templates)."""
    errors = validate_template(template)
    if errors:
        raise TemplateInvalid(errors)


# --- rendering at send time --------------------------------------------------------------------


def _render(environment: ImmutableSandboxedEnvironment, source: str, context: Mapping[str, Any]) -> str:
    return environment.from_string(source).render(dict(context))


def inline_css(html: str) -> str:
    """The HTML with its <style> rules moved onto the elements (mail clients drop <style> blocks)."""
    try:
        return css_inline.inline(html)
    except ValueError:  # CSS css-inline cannot parse: the message goes out with its <style> block as written
        return html


def footer_html(unsubscribe_url: str, postal_address: str | None) -> str:
    address = f"<br>{escape(postal_address)}" if postal_address else ""
    return (f'<p style="font-size:12px;color:#777777;text-align:center;margin-top:24px">'
            f'<a href="{escape(unsubscribe_url)}" style="color:#777777">Unsubscribe</a>{address}</p>')


def footer_text(unsubscribe_url: str, postal_address: str | None) -> str:
    return f"\n\n--\nUnsubscribe: {unsubscribe_url}" + (f"\n{postal_address}" if postal_address else "")


def _with_footer(html: str, footer: str) -> str:
    closing = html.lower().rfind("</body>")
    return html[:closing] + footer + html[closing:] if closing >= 0 else html + footer


def render_email(template: EmailTemplate, context: Mapping[str, Any]) -> RenderedEmail:
    """Subject, HTML (CSS inlined) and text of ``template`` for one shopper. A marketing template whose
    HTML does not show the context's ``unsubscribe_url`` gets the footer (unsubscribe link and postal
    address) appended, and so does its text part: every marketing email has a visible way out."""
    subject = " ".join(_render(_SEND_TEXT, template.subject, context).split())
    html = _render(_SEND_HTML, template.html, context)
    text = (_render(_SEND_TEXT, template.text, context) if template.text is not None else html_to_text(html))
    unsubscribe_url = context.get("unsubscribe_url")
    if template.marketing and isinstance(unsubscribe_url, str) and unsubscribe_url:
        postal = (context.get("store") or {}).get("postal_address")
        if escape(unsubscribe_url) not in html and unsubscribe_url not in html:
            html = _with_footer(html, footer_html(unsubscribe_url, postal))
        if unsubscribe_url not in text:
            text = text.rstrip() + footer_text(unsubscribe_url, postal)
    return RenderedEmail(subject=subject, html=inline_css(html), text=text.strip() + "\n")


def render_sms(template: SmsTemplate, context: Mapping[str, Any]) -> str:
    return _render(_SEND_TEXT, template.body, context).strip()


# --- plain text from HTML ----------------------------------------------------------------------

_BLOCKS = {"p", "div", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "section", "header",
           "footer", "blockquote"}
_SKIPPED = {"style", "script", "head", "title"}


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "td":
            self.parts.append(" ")
        elif tag == "img" and attributes.get("alt"):
            self.parts.append(f"{attributes['alt']}")
        elif tag == "a":
            self.links.append(attributes.get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and href.startswith(("http://", "https://", "mailto:")):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable plain-text version of an email's HTML: paragraphs, list items, links as "text (url)"."""
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    text = unescape("".join(parser.parts))
    lines = [re.sub(r" {2,}", " ", line.strip()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


__all__ = [
    "RenderedEmail", "TemplateInvalid", "check_template", "cross_sell_context", "footer_html", "footer_text",
    "html_to_text", "inline_css", "message_context", "money", "profile_context", "render_email", "render_sms",
    "sample_context", "store_context", "trigger_context", "trigger_event", "validate_template",
]
