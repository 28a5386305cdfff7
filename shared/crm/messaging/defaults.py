"""The built-in templates: one per message of the built-in flows (crm.flows.builtin), and the double opt-in
email. A workspace reads these until it saves its own under the same id (crm.flows.ports.MessagingStore).

Plain, decent HTML: one column, a <style> block (inlined when rendered, crm.messaging.render), the cart or
order items as rows with their image, a button to the recovery link, and the footer every marketing email
carries: the unsubscribe link and the store's postal address.
"""

# ruff: noqa: E501  (the templates are HTML and Jinja2, kept readable as a marketer would write them)
from __future__ import annotations

from crm.models.messaging import EmailTemplate, SmsTemplate

ABANDONED_CHECKOUT_1 = "builtin:abandoned_checkout_1"
ABANDONED_CHECKOUT_2 = "builtin:abandoned_checkout_2"
BROWSE_ABANDONMENT = "builtin:browse_abandonment"
WELCOME_1 = "builtin:welcome_1"
WELCOME_2 = "builtin:welcome_2"
POST_PURCHASE_THANKS = "builtin:post_purchase_thanks"
POST_PURCHASE_REVIEW = "builtin:post_purchase_review"
WIN_BACK = "builtin:win_back"
VIP = "builtin:vip"
DOUBLE_OPT_IN = "builtin:double_opt_in"

_STYLE = """<style>
body { margin: 0; padding: 0; background: #f4f4f5; font-family: Helvetica, Arial, sans-serif; color: #222222; }
.wrapper { max-width: 600px; margin: 0 auto; background: #ffffff; padding: 32px 24px; }
h1 { font-size: 22px; margin: 0 0 16px 0; }
p { font-size: 15px; line-height: 22px; margin: 0 0 16px 0; }
.items { width: 100%; border-collapse: collapse; margin: 8px 0 24px 0; }
.items td { padding: 8px 4px; border-bottom: 1px solid #eeeeee; font-size: 14px; vertical-align: middle; }
.items img { width: 64px; height: auto; border-radius: 4px; }
.price { text-align: right; white-space: nowrap; }
.button { display: inline-block; background: #111827; color: #ffffff; text-decoration: none; padding: 12px 24px;
  border-radius: 6px; font-weight: bold; }
.footer { font-size: 12px; line-height: 18px; color: #777777; text-align: center; padding: 24px; }
.footer a { color: #777777; }
</style>"""

_FOOTER = """<div class="footer">
  You receive this email because you subscribed to {{ store.name or "our" }} emails.
  <a href="{{ unsubscribe_url }}">Unsubscribe</a>{% if store.postal_address %}<br>{{ store.postal_address }}{% endif %}
</div>"""

_ITEMS = """<table class="items" role="presentation">
{% for item in trigger.items %}
  <tr>
    <td>{% if item.image_url %}<img src="{{ item.image_url }}" alt="{{ item.title }}">{% endif %}</td>
    <td>{% if item.product_url %}<a href="{{ item.product_url }}">{{ item.title }}</a>{% else %}{{ item.title }}{% endif %}
      &times; {{ item.quantity }}</td>
    <td class="price">{{ item.line_total_display }}</td>
  </tr>
{% endfor %}
</table>"""

_GREETING = "Hi{% if profile.first_name %} {{ profile.first_name }}{% endif %},"

# Products bought by the same shoppers as the order's, not bought by this one (crm.affinity; docs/affinity.md).
_CROSS_SELL = """{% if cross_sell %}
<h2>Often bought with your order</h2>
<table class="items" role="presentation">
{% for product in cross_sell %}
  <tr>
    <td>{% if product.image_url %}<img src="{{ product.image_url }}" alt="{{ product.title }}">{% endif %}</td>
    <td>{% if product.product_url %}<a href="{{ product.product_url }}">{{ product.title }}</a>{% else %}{{ product.title }}{% endif %}</td>
  </tr>
{% endfor %}
</table>
{% endif %}"""


def _page(body: str, marketing: bool = True) -> str:
    footer = _FOOTER if marketing else ""
    return (f'<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n{_STYLE}\n</head>\n<body>\n'
            f'<div class="wrapper">\n{body}\n</div>\n{footer}\n</body>\n</html>\n')


def _email(name: str, subject: str, body: str, marketing: bool = True) -> EmailTemplate:
    return EmailTemplate(name=name, subject=subject, html=_page(body, marketing), marketing=marketing)


_CART_BUTTON = """{% if trigger.recovery_url %}
<p><a class="button" href="{{ trigger.recovery_url }}">Return to your cart</a></p>
{% endif %}"""

EMAIL_TEMPLATES: dict[str, EmailTemplate] = {
    ABANDONED_CHECKOUT_1: _email(
        "Abandoned checkout: reminder", "You left something in your cart",
        f"""<h1>Still thinking it over?</h1>
<p>{_GREETING} you left these in your cart at {{{{ store.name or "our shop" }}}}. We kept them for you.</p>
{_ITEMS}
{{% if trigger.value_display %}}<p>Total: <strong>{{{{ trigger.value_display }}}}</strong></p>{{% endif %}}
{_CART_BUTTON}"""),
    ABANDONED_CHECKOUT_2: _email(
        "Abandoned checkout: last reminder", "Your cart is waiting{% if profile.first_name %}, {{ profile.first_name }}{% endif %}",
        f"""<h1>Your cart is about to expire</h1>
<p>{_GREETING} the items below are still waiting, but we cannot hold them forever.</p>
{_ITEMS}
{_CART_BUTTON}
<p>Questions? Just reply to this email.</p>"""),
    BROWSE_ABANDONMENT: _email(
        "Browse abandonment", "Still interested in {{ trigger.product.title or 'it' }}?",
        f"""<h1>{{{{ trigger.product.title or "Still looking?" }}}}</h1>
<p>{_GREETING} we noticed you looking at {{{{ trigger.product.title or "one of our products" }}}}.</p>
{{% if trigger.product.image_url %}}<p><img src="{{{{ trigger.product.image_url }}}}" alt="{{{{ trigger.product.title }}}}" width="240"></p>{{% endif %}}
{{% if trigger.product.price_display %}}<p>{{{{ trigger.product.price_display }}}}</p>{{% endif %}}
{{% if trigger.product.product_url or trigger.url %}}
<p><a class="button" href="{{{{ trigger.product.product_url or trigger.url }}}}">Take another look</a></p>
{{% endif %}}"""),
    WELCOME_1: _email(
        "Welcome 1", "Welcome to {{ store.name or 'our shop' }}",
        f"""<h1>Welcome!</h1>
<p>{_GREETING} thank you for subscribing. You will be the first to hear about new arrivals and offers.</p>"""),
    WELCOME_2: _email(
        "Welcome 2", "A few favourites from {{ store.name or 'us' }}",
        f"""<h1>Glad you are here</h1>
<p>{_GREETING} here is what our customers love most. Reply to this email if we can help you choose.</p>"""),
    POST_PURCHASE_THANKS: _email(
        "Post-purchase: thank you", "Thank you for your order{% if trigger.order_number %} #{{ trigger.order_number }}{% endif %}",
        f"""<h1>Thank you for your order</h1>
<p>{_GREETING} we received your order{{% if trigger.order_number %}} #{{{{ trigger.order_number }}}}{{% endif %}}.</p>
{_ITEMS}
{{% if trigger.total_price_display %}}<p>Total: <strong>{{{{ trigger.total_price_display }}}}</strong></p>{{% endif %}}
{_CROSS_SELL}"""),
    POST_PURCHASE_REVIEW: _email(
        "Post-purchase: review request",
        "How {% if trigger.items|length == 1 %}is your {{ trigger.items[0].title }}{% else %}are your items{% endif %}?",
        f"""<h1>How did we do?</h1>
<p>{_GREETING} your order arrived a few days ago. Would you tell other shoppers what you think of
{{% for item in trigger.items %}}{{% if not loop.first %}}{{% if loop.last %}} and {{% else %}}, {{% endif %}}{{% endif %}}{{{{ item.title }}}}{{% else %}}your items{{% endfor %}}?</p>
{_ITEMS.replace('{{ item.line_total_display }}', '{% if item.product_url %}<a href="{{ item.product_url }}">Review</a>{% endif %}')}"""),
    WIN_BACK: _email(
        "Win-back", "We miss you{% if profile.first_name %}, {{ profile.first_name }}{% endif %}",
        f"""<h1>It has been a while</h1>
<p>{_GREETING} a lot has changed since your last visit to {{{{ store.name or "our shop" }}}}. Come and see what is new.</p>"""),
    VIP: _email(
        "VIP", "You are one of our best customers",
        f"""<h1>Thank you for being a VIP</h1>
<p>{_GREETING} you have ordered from us {{{{ profile.orders_count }}}} times. You are now one of our VIPs: expect
early access to new collections.</p>"""),
    DOUBLE_OPT_IN: _email(
        "Double opt-in", "Please confirm your subscription to {{ store.name or 'our emails' }}",
        f"""<h1>Confirm your subscription</h1>
<p>{_GREETING} someone (we hope you) asked to receive emails from {{{{ store.name or "us" }}}} at
{{{{ profile.email }}}}. Please confirm:</p>
<p><a class="button" href="{{{{ confirm_url }}}}">Yes, subscribe me</a></p>
<p>If you did not ask, ignore this email: you will not be subscribed.</p>
{{% if store.postal_address %}}<p class="footer">{{{{ store.postal_address }}}}</p>{{% endif %}}""",
        marketing=False),
}

SMS_TEMPLATES: dict[str, SmsTemplate] = {
    "builtin:abandoned_checkout_sms": SmsTemplate(
        name="Abandoned checkout (SMS)",
        body="{{ store.name or 'We' }}: you left items in your cart. {{ trigger.recovery_url }} Reply STOP to opt out."),
}

TEMPLATES: dict[str, EmailTemplate | SmsTemplate] = {**EMAIL_TEMPLATES, **SMS_TEMPLATES}


def default_template(template_id: str) -> EmailTemplate | SmsTemplate | None:
    return TEMPLATES.get(template_id)


__all__ = [
    "ABANDONED_CHECKOUT_1", "ABANDONED_CHECKOUT_2", "BROWSE_ABANDONMENT", "DOUBLE_OPT_IN", "EMAIL_TEMPLATES",
    "POST_PURCHASE_REVIEW", "POST_PURCHASE_THANKS", "SMS_TEMPLATES", "TEMPLATES", "VIP", "WELCOME_1", "WELCOME_2",
    "WIN_BACK", "default_template",
]
