"""Custom storefronts: the CRM's own canonical event API (POST /events), documented in docs/events-api.md.

Any storefront registered with platform ``custom`` sends bodies in our schema rather than a platform's:
one JSON object ``{"type": "order" | "customer" | "refund" | "order_removed" | "activity", ...}``, or
``{"events": [...]}`` with up to 100 of them. The models below are that schema; their fields mirror the
canonical models, less the workspace, store and platform, which come from the registered store.

Signing: ``X-CRM-Signature`` is base64 HMAC-SHA256, keyed with the store's webhook secret, of
``{X-CRM-Timestamp}.{raw body}``; the timestamp (Unix seconds) is required and must be within five minutes
of now. Signing it with the body means a captured request cannot be replayed later under a fresh
timestamp; within the window a replay is harmless, because every event is applied idempotently (orders and
customers by version, the rest by id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from crm.connectors.base import (
    BodyHmacSigned,
    MissingHeader,
    PayloadNotUnderstood,
    SignatureMissing,
    base64_hmac_sha256_matches,
    header,
    json_object,
    required_header,
    unix_seconds,
)
from crm.contact import normalise_email, normalise_phone
from crm.models.canonical import (
    ActivityEvent,
    ActivityType,
    CanonicalEvent,
    CustomerRecord,
    OrderRemoved,
    ProductRef,
    RefundRecord,
    Touch,
)
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder, LineItem, version_stamp
from crm.models.stores import Platform
from crm.models.tracking import WebUrl
from crm.money import to_money
from crm.ports import StoreDirectory
from crm.stores import normalise_domain

STORE_HEADER = "X-CRM-Store"
SIGNATURE_HEADER = "X-CRM-Signature"
EVENT_ID_HEADER = "X-CRM-Event-Id"
TIMESTAMP_HEADER = "X-CRM-Timestamp"
TIMESTAMP_TOLERANCE = timedelta(minutes=5)
MAX_BATCH = 100
# Every delivery has the same topic: what it holds is in the body, read by ingestion, never at the door.
TOPIC = "events"
_TAGS = ("order", "customer", "refund", "order_removed", "activity")  # the body types, as "type" names them


def _money(value: object) -> Decimal:
    """A decimal string or a JSON number (parsed as Decimal), rounded to cents; never a float or a bool."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("an amount must be a decimal string such as \"12.50\" or a JSON number")
    try:
        return to_money(value)
    except ArithmeticError:
        raise ValueError(f"not an amount: {value!r}") from None


Money = Annotated[Decimal, BeforeValidator(_money)]
Amount = Annotated[Money, Field(ge=0)]


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


Currency = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z]{2}$")]
Id = Annotated[str, Field(min_length=1, max_length=200)]


class _Schema(BaseModel):
    # Unknown fields are refused: a misspelt field ("total" for "total_price") would otherwise vanish silently.
    # Ids may be sent as JSON numbers; they are kept as strings.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class ConsentBody(_Schema):
    channel: Channel
    state: ConsentState
    at: AwareDatetime
    source: str | None = None  # defaults to "custom:<type>"


class LineItemBody(_Schema):
    product_id: Id | None = None
    variant_id: Id | None = None
    sku: str | None = None
    title: str
    category: str | None = None
    quantity: int = Field(ge=0)
    price: Money


class ProductBody(_Schema):
    product_id: Id | None = None
    variant_id: Id | None = None
    sku: str | None = None
    title: str | None = None
    category: str | None = None
    price: Money | None = None
    quantity: int = Field(default=1, ge=0)
    image_url: WebUrl | None = None
    url: WebUrl | None = None


class TouchBody(_Schema):
    source: str = Field(min_length=1)
    medium: str | None = None
    campaign: str | None = None
    term: str | None = None
    content: str | None = None
    landing_page: str | None = None
    referrer: str | None = None
    at: AwareDatetime


class OrderBody(_Schema):
    """An order, whole, as it is now: a newer ``version`` replaces an older one; an older is ignored."""

    type: Literal["order"]
    order_id: Id
    order_number: str | None = None
    email: str | None = None
    phone: str | None = None
    customer_id: Id | None = None
    first_name: str | None = None
    last_name: str | None = None
    currency: Currency
    total_price: Amount
    refunds: dict[str, Amount] = Field(default_factory=dict)
    financial_status: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    cancelled_at: AwareDatetime | None = None
    version: str | None = Field(default=None, min_length=1)
    landing_site: str | None = None
    referring_site: str | None = None
    line_items: tuple[LineItemBody, ...] = ()
    discount_codes: tuple[str, ...] = ()
    fulfillment_status: str | None = None
    cart_token: str | None = None
    checkout_token: str | None = None
    anonymous_id: str | None = None
    country: Country | None = None
    consents: tuple[ConsentBody, ...] = ()

    @model_validator(mode="after")
    def _versioned(self) -> Self:
        # Without either, a re-sent older copy could not be told from a newer one.
        if self.version is None and self.updated_at is None:
            raise ValueError("an order needs updated_at or version: either tells a newer copy from an older one")
        return self


class CustomerBody(_Schema):
    """A customer account as it is now; ``deleted`` says the store deleted it (its history is kept)."""

    type: Literal["customer"]
    customer_id: Id
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    country: Country | None = None
    tags: tuple[str, ...] = ()
    consents: tuple[ConsentBody, ...] = ()
    created_at: AwareDatetime
    updated_at: AwareDatetime
    version: str | None = Field(default=None, min_length=1)
    deleted: bool = False


class RefundBody(_Schema):
    """One refund of an order, on its own; unioned by ``refund_id`` with the order's ``refunds``."""

    type: Literal["refund"]
    order_id: Id
    refund_id: Id
    amount: Amount
    created_at: AwareDatetime


class OrderRemovedBody(_Schema):
    """The store deleted an order: it stops counting, like a cancellation."""

    type: Literal["order_removed"]
    order_id: Id
    removed_at: AwareDatetime


class ActivityBody(_Schema):
    """Something a shopper did. ``activity`` is the canonical event's ``type`` (``type`` names the body kind)."""

    type: Literal["activity"]
    event_id: Id
    activity: ActivityType
    occurred_at: AwareDatetime
    anonymous_id: str | None = None
    email: str | None = None
    phone: str | None = None
    customer_id: Id | None = None
    first_name: str | None = None
    last_name: str | None = None
    cart_token: str | None = None
    checkout_token: str | None = None
    order_id: Id | None = None
    url: str | None = None
    recovery_url: WebUrl | None = None  # a checkout's link back to itself (abandoned-checkout reminders)
    products: tuple[ProductBody, ...] = ()
    value: Money | None = None
    currency: Currency | None = None
    touch: TouchBody | None = None
    consents: tuple[ConsentBody, ...] = ()


EventBody = Annotated[
    OrderBody | CustomerBody | RefundBody | OrderRemovedBody | ActivityBody, Field(discriminator="type")
]


class BatchBody(_Schema):
    events: list[EventBody] = Field(min_length=1, max_length=MAX_BATCH)


_EVENT = TypeAdapter[OrderBody | CustomerBody | RefundBody | OrderRemovedBody | ActivityBody](EventBody)


def parse_events(payload: Any) -> list[OrderBody | CustomerBody | RefundBody | OrderRemovedBody | ActivityBody]:
    """A parsed JSON body as our event models (raises PayloadNotUnderstood naming the first bad field)."""
    if not isinstance(payload, dict):
        raise PayloadNotUnderstood("body is not a JSON object")
    if "type" in payload:
        try:
            return [_EVENT.validate_python(payload)]
        except ValidationError as error:
            raise PayloadNotUnderstood(f"not a CRM event: {_describe(error, tag_at=0)}") from None
    if "events" in payload:
        try:
            return list(BatchBody.model_validate(payload).events)
        except ValidationError as error:
            raise PayloadNotUnderstood(f"not a CRM event batch: {_describe(error, tag_at=2)}") from None
    raise PayloadNotUnderstood('not a CRM event: the body has neither "type" nor "events"')


def _describe(error: ValidationError, tag_at: int) -> str:
    """The first problem as "field.path: message", the path as the sender wrote it: pydantic puts the
    union's tag (e.g. ``order``) into the path at ``tag_at``, which the sender never wrote."""
    first = error.errors()[0]
    loc = list(first["loc"])
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return ".".join([*map(str, loc), "type"]) + f": must be one of {', '.join(_TAGS)}"
    if len(loc) > tag_at and loc[tag_at] in _TAGS:
        del loc[tag_at]
    message = first["msg"].removeprefix("Value error, ")
    return f"{'.'.join(map(str, loc))}: {message}" if loc else message


def signed_message(timestamp: str, raw_body: bytes) -> bytes:
    """What X-CRM-Signature signs: the timestamp header's value, a dot, the raw body."""
    return f"{timestamp}.".encode() + raw_body


class CustomConnector(BodyHmacSigned):
    platform = Platform.CUSTOM
    signature_header = SIGNATURE_HEADER

    def store_domain(self, headers: Mapping[str, str], raw_body: bytes) -> str:
        domain = normalise_domain(required_header(headers, STORE_HEADER))
        if not domain:
            raise MissingHeader(f"a valid {STORE_HEADER} (the store's registered domain)")
        return domain

    def signature(self, headers: Mapping[str, str]) -> str:
        if header(headers, TIMESTAMP_HEADER) is None:
            raise SignatureMissing(f"missing {TIMESTAMP_HEADER} header (it is signed with the body)")
        return super().signature(headers)

    def is_signed_by(
        self, headers: Mapping[str, str], raw_body: bytes, signature: str, secrets: Iterable[str]
    ) -> bool:
        timestamp = header(headers, TIMESTAMP_HEADER)
        if timestamp is None:
            return False
        return base64_hmac_sha256_matches(signed_message(timestamp, raw_body), signature, secrets)

    def is_fresh(self, headers: Mapping[str, str], now: datetime) -> bool:
        """X-CRM-Timestamp is Unix seconds within five minutes of now, either way."""
        sent_at = unix_seconds(header(headers, TIMESTAMP_HEADER))
        return sent_at is not None and abs(sent_at - now) <= TIMESTAMP_TOLERANCE

    def delivery_meta(self, headers: Mapping[str, str], raw_body: bytes) -> DeliveryMeta:
        return DeliveryMeta(topic=TOPIC, delivery_id=required_header(headers, EVENT_ID_HEADER),
                            triggered_at=unix_seconds(header(headers, TIMESTAMP_HEADER)))

    def events(self, envelope: IngestEnvelope, body: bytes, stores: StoreDirectory) -> list[CanonicalEvent]:
        try:
            return [canonical(event, envelope) for event in parse_events(json_object(body))]
        except ValidationError as error:  # a canonical model refusing what the body's model let through
            raise PayloadNotUnderstood(f"not a CRM event: {_describe(error, tag_at=0)}") from None


def canonical(
    event: OrderBody | CustomerBody | RefundBody | OrderRemovedBody | ActivityBody, envelope: IngestEnvelope,
) -> CanonicalEvent:
    """One body event as the canonical event, in the sending store's workspace."""
    owner: dict[str, Any] = {"workspace_id": envelope.workspace_id, "store_id": envelope.store_id,
                             "platform": Platform.CUSTOM}
    match event:
        case OrderBody():
            return _order(event, owner)
        case CustomerBody():
            return CustomerRecord(
                **owner, customer_id=event.customer_id, email=normalise_email(event.email),
                phone=normalise_phone(event.phone, event.country), first_name=event.first_name,
                last_name=event.last_name, country=event.country, tags=event.tags,
                consents=_consents(event.consents, "customer"), created_at=event.created_at,
                updated_at=event.updated_at, version=event.version or version_stamp(event.updated_at, None),
                deleted=event.deleted,
            )
        case RefundBody():
            return RefundRecord(**owner, order_id=event.order_id, refund_id=event.refund_id, amount=event.amount,
                                created_at=event.created_at)
        case OrderRemovedBody():
            return OrderRemoved(**owner, order_id=event.order_id, removed_at=event.removed_at)
        case ActivityBody():
            return _activity(event, owner)


# The financial statuses whose order is revenue (docs/revenue.md); any other (pending, failed, voided,
# unpaid...) is kept as unpaid. An order sent without one counts: the store sends what it takes as placed.
PAID_FINANCIAL_STATUSES = frozenset({"authorized", "paid", "partially_paid", "partially_refunded", "refunded"})


def _order(event: OrderBody, owner: dict[str, Any]) -> CanonicalOrder:
    updated_at = event.updated_at or event.created_at  # only when a version was sent instead
    fields = event.model_dump(exclude={"type", "email", "phone", "updated_at", "version", "line_items",
                                       "consents"})
    return CanonicalOrder(
        **owner, **fields, email=normalise_email(event.email), phone=normalise_phone(event.phone, event.country),
        paid=event.financial_status is None or event.financial_status.lower() in PAID_FINANCIAL_STATUSES,
        updated_at=updated_at, version=event.version or version_stamp(updated_at, None),
        line_items=tuple(LineItem(**item.model_dump()) for item in event.line_items),
        consents=_consents(event.consents, "order"),
    )


def _activity(event: ActivityBody, owner: dict[str, Any]) -> ActivityEvent:
    fields = event.model_dump(exclude={"type", "activity", "email", "phone", "products", "touch", "consents"})
    return ActivityEvent(
        **owner, **fields, type=event.activity, email=normalise_email(event.email),
        phone=normalise_phone(event.phone),
        products=tuple(ProductRef(**product.model_dump()) for product in event.products),
        touch=Touch(**event.touch.model_dump()) if event.touch else None,
        consents=_consents(event.consents, "activity"),
    )


def _consents(consents: Iterable[ConsentBody], kind: str) -> tuple[Consent, ...]:
    return tuple(Consent(channel=consent.channel, state=consent.state, at=consent.at,
                         source=consent.source or f"custom:{kind}") for consent in consents)


CUSTOM = CustomConnector()
