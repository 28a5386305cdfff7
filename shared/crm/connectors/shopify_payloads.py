"""Shopify's webhook payloads, as far as the CRM reads them; every other field stays in the raw archive.

Ids exceed 2^53, so they are declared ``int`` (JSON integers parse exactly, never via float) and the
mapping keeps them as strings. Amounts are decimal strings (or JSON numbers parsed as Decimal), bounded
(crm.money.Amount: at most 1e12, 38 significant digits).
Timestamps must carry a zone: a naive one is refused, not guessed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from crm.money import Amount


class MarketingConsent(BaseModel):
    """``email_marketing_consent`` / ``sms_marketing_consent`` on a customer."""

    state: str | None = None
    consent_updated_at: AwareDatetime | None = None


class Address(BaseModel):
    first_name: str | None = None
    last_name: str | None = None
    country_code: str | None = None


class Customer(BaseModel):
    id: int | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    default_address: Address | None = None
    email_marketing_consent: MarketingConsent | None = None
    sms_marketing_consent: MarketingConsent | None = None


class NoteAttribute(BaseModel):
    name: str | None = None
    # Any JSON value: a merchant's odd attribute must not make the whole order unreadable.
    value: Any = None


class DiscountCode(BaseModel):
    code: str | None = None


class Transaction(BaseModel):
    kind: str | None = None
    status: str | None = None
    amount: Amount = Decimal("0")


class Refund(BaseModel):
    """A refund as listed on an order."""

    id: int
    transactions: list[Transaction] = Field(default_factory=list)

    def amount(self) -> Decimal:
        """What went back to the shopper: successful refund transactions (a missing status is an
        older payload that only lists settled ones); failures, captures and voids move no money back."""
        return sum(
            (t.amount for t in self.transactions if t.kind == "refund" and t.status in (None, "success")),
            Decimal("0"),
        )


class RefundPayload(Refund):
    """refunds/create."""

    order_id: int
    created_at: AwareDatetime


class _Image(BaseModel):
    src: str | None = None
    url: str | None = None


class LineItem(BaseModel):
    product_id: int | None = None
    variant_id: int | None = None
    sku: str | None = None
    title: str | None = None
    # Not in Shopify's line items today; read if a payload (or a later API version) carries it.
    product_type: str | None = None
    quantity: int = 0
    price: Amount = Decimal("0")
    line_price: Amount | None = None
    # The published checkout and order samples carry no picture; some payloads (and apps) add ``image_url``
    # or an ``image`` object, which a cart reminder shows when present.
    image_url: str | None = None
    image: _Image | str | None = None

    def picture(self) -> str | None:
        if self.image_url:
            return self.image_url
        if isinstance(self.image, str):
            return self.image or None
        return (self.image.src or self.image.url or None) if self.image else None


class _ShopMoney(BaseModel):
    amount: Amount | None = None
    currency_code: str | None = None


class _MoneySet(BaseModel):
    shop_money: _ShopMoney | None = None


# The financial statuses whose order is revenue (docs/revenue.md): paid, or authorized and to be captured.
# pending, voided and expired are kept as unpaid; a payload without one (older exports) counts.
PAID_FINANCIAL_STATUSES = frozenset({"authorized", "paid", "partially_paid", "partially_refunded", "refunded"})


def is_paid(financial_status: str | None) -> bool:
    return financial_status is None or financial_status.lower() in PAID_FINANCIAL_STATUSES


class Order(BaseModel):
    """orders/create, orders/updated, orders/paid, orders/cancelled, orders/fulfilled."""

    id: int
    name: str | None = None
    email: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    currency: str
    total_price: Amount
    # The amounts in the shop's currency, whatever the currency the shopper paid in (presentment money).
    total_price_set: _MoneySet | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    cancelled_at: AwareDatetime | None = None
    landing_site: str | None = None
    referring_site: str | None = None
    cart_token: str | None = None
    checkout_token: str | None = None
    buyer_accepts_marketing: bool = False
    customer: Customer | None = None
    billing_address: Address | None = None
    shipping_address: Address | None = None
    note_attributes: list[NoteAttribute] = Field(default_factory=list)
    discount_codes: list[DiscountCode] = Field(default_factory=list)
    refunds: list[Refund] = Field(default_factory=list)
    line_items: list[LineItem] = Field(default_factory=list)


    def shop_total(self) -> tuple[str, Decimal]:
        """(currency, total) in the shop's money: total_price_set.shop_money when sent, else the top-level
        fields (which Shopify also states in the shop's currency)."""
        shop = self.total_price_set.shop_money if self.total_price_set else None
        if shop is not None and shop.amount is not None and shop.currency_code:
            return shop.currency_code, shop.amount
        return self.currency, self.total_price


class Checkout(BaseModel):
    """checkouts/create, checkouts/update (the published sample has no ``id``: the token names it)."""

    token: str = Field(min_length=1)
    cart_token: str | None = None
    email: str | None = None
    phone: str | None = None
    sms_marketing_phone: str | None = None
    buyer_accepts_marketing: bool = False
    buyer_accepts_sms_marketing: bool = False
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    currency: str | None = None
    total_price: Amount | None = None
    abandoned_checkout_url: str | None = None
    customer: Customer | None = None
    billing_address: Address | None = None
    shipping_address: Address | None = None
    note_attributes: list[NoteAttribute] = Field(default_factory=list)
    line_items: list[LineItem] = Field(default_factory=list)


class CartLine(LineItem):
    line_price_set: _MoneySet | None = None


class Cart(BaseModel):
    """carts/create, carts/update: line items only, no customer and no currency of its own."""

    token: str = Field(min_length=1)
    updated_at: AwareDatetime
    line_items: list[CartLine] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _token_or_id(cls, data: Any) -> Any:
        """Carts have carried their token as ``token``, ``id`` or both; either names the cart."""
        if isinstance(data, dict) and not data.get("token") and isinstance(data.get("id"), str):
            data = {**data, "token": data["id"]}
        return data


class CustomerPayload(Customer):
    """customers/create, customers/update, customers/delete (which carries little beyond the id)."""

    id: int
    tags: str | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None


class Fulfillment(BaseModel):
    """fulfillments/create."""

    id: int
    order_id: int
    email: str | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None
    line_items: list[LineItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _dated(self) -> Fulfillment:
        if self.created_at is None and self.updated_at is None:
            raise ValueError("a fulfillment needs created_at or updated_at")
        return self


class ComplianceCustomer(BaseModel):
    id: int | None = None
    email: str | None = None
    phone: str | None = None


class _DataRequestRef(BaseModel):
    id: int


class CustomersDataRequest(BaseModel):
    """customers/data_request (a mandatory compliance topic)."""

    customer: ComplianceCustomer = Field(default_factory=ComplianceCustomer)
    orders_requested: list[int] = Field(default_factory=list)
    data_request: _DataRequestRef | None = None


class CustomersRedact(BaseModel):
    """customers/redact (a mandatory compliance topic)."""

    customer: ComplianceCustomer = Field(default_factory=ComplianceCustomer)
    orders_to_redact: list[int] = Field(default_factory=list)


class ShopRedact(BaseModel):
    """shop/redact (a mandatory compliance topic), sent 48 hours after the store uninstalls the app."""

    shop_id: int | None = None
