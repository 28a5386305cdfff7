"""DynamoDB items from pydantic models and back: the one place that serializes the single table's items."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Collection
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from pydantic import BaseModel

from crm.adapters import keys

serializer = TypeSerializer()
_deserializer = TypeDeserializer()

Item = dict[str, Any]


def plain(value: Any) -> Any:
    """A model dump as DynamoDB takes it: datetimes as ISO strings, no None values (empty strings are kept)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def to_item(key: keys.Key, entity: str, model: BaseModel, **extra: Any) -> Item:
    """The DynamoDB wire form of a model stored under ``key``."""
    return _wire(key, entity, plain(model.model_dump(mode="python", exclude_computed_fields=True)), extra)


def to_compact_item(key: keys.Key, entity: str, model: BaseModel, **extra: Any) -> Item:
    """The same without the fields (nested ones too) at their defaults: DynamoDB bills a write per KB of the whole
    item, names included, and reading the item back through the model restores them."""
    body = plain(model.model_dump(mode="python", exclude_computed_fields=True, exclude_defaults=True))
    return _wire(key, entity, body, extra)


def to_packed_item(key: keys.Key, entity: str, model: BaseModel, kept: Collection[str] = (), **extra: Any) -> Item:
    """The compact item with every field but ``kept`` packed into one attribute (PACKED): the model's JSON without
    the fields at their defaults, deflated against a dictionary of the names and formats every such item repeats.
    DynamoDB bills a write per started KB of the whole item, and a profile's or an order record's JSON deflates to
    about a third. ``kept`` and ``extra`` stay attributes of their own: what a key, an index, a condition or a
    filter names (a profile's ``revision``, an order record's ``version``). The entity names the dictionary
    (``DICTIONARY_OF``). Read back by ``from_item``."""
    body = model.model_dump_json(exclude_defaults=True, exclude_computed_fields=True, exclude=set(kept))
    # Kept even at their defaults: a condition on a missing attribute fails (a profile at revision 0).
    plain_fields = plain(model.model_dump(mode="python", include=set(kept)))
    packed = pack(body.encode(), DICTIONARY_OF.get(entity, PROFILES))
    return {**_wire(key, entity, plain_fields, extra), PACKED: {"B": packed}}


def _wire(key: keys.Key, entity: str, body: dict[str, Any], extra: dict[str, Any]) -> Item:
    return {name: serializer.serialize(v) for name, v in {**body, **extra, **key, "entity": entity}.items()}


def from_item(item: Item) -> dict[str, Any]:
    """An item's plain values (a packed item's fields unpacked; an attribute of its own wins over the packed one,
    so that an update of one attribute, a profile's prediction, is read over what was packed before it)."""
    values = {name: _deserializer.deserialize(v) for name, v in item.items() if name != PACKED}
    if PACKED not in item:
        return values
    return {**json.loads(unpack(item[PACKED]["B"])), **values}


def wire_key(key: keys.Key) -> Item:
    return {name: {"S": value} for name, value in key.items()}


def plain_item(values: dict[str, Any]) -> Item:
    return {k: serializer.serialize(v) for k, v in values.items()}


# --- Packed items ------------------------------------------------------------------------------------------------
# Binary, not a base64 string (a third larger): nothing filters on it (the stream's filters name keys only).

PACKED = "packed"

# What every profile and order record repeats: field names, identity and stamp formats, activity types. Deflate
# finds these in its window before the item's own bytes, so a small item compresses as well as a large one would.
# Never change a dictionary once items were written with it: add another under the next version byte.
_DICTIONARY_1 = (
    b'T00:00:00.000000Z|0001-01-01T00:00:00.000000Z"shopify""woocommerce""bigcommerce"'
    b'"financial_status":"paid","fulfillment_status":"fulfilled","landing_site":"/","referring_site":"https://'
    b'"line_items":[{"product_id":"","variant_id":"","sku":"","title":"","category":"","quantity":1,"price":"'
    b'"order":{"workspace_id":"ws_","store_id":"st_","platform":"shopify","order_id":"","order_number":"#'
    b'"email":"","customer_id":"","currency":"USD","total_price":"","created_at":"","updated_at":"","version":"'
    b'"refunds":{},"refund_dates":{},"removed_at":"","cancelled_at":"","discount_codes":[],"checkout_token":"'
    b'"consents":{"email":{"channel":"email","state":"subscribed","source":"shopify:customers/update","at":"'
    b'"sms":{"channel":"sms","state":"not_subscribed","unsubscribed","track:identify","consent_requests":{}'
    b'"prediction":{"status":"","model":"","computed_at":"","p_alive":"","clv":"","expected_order_value":"'
    b'"contact_sources":{"email":"|order|st_","first_name":"|customer|st_","last_name":"|track|st_","phone":"'
    b'"country":"US","identities":["anon#st_","customer#st_","order#st_","phone#+1","email#@gmail.com"]'
    b'"signed_browsers":["anon#st_"],"merged_from":[""],"store_ids":["st_"],"tags":[""],"merged_into":"'
    b'"orders_count":1,"cancelled_count":1,"unpaid_orders_count":1,"spent_by_currency":{"USD":"'
    b'"refunded_by_currency":{"USD":"","orders_by_currency":{"USD":1},"total_spent":"","total_refunded":"'
    b'"unconverted_currencies":[],"currency_settings_version":1,"first_order_at":"","last_order_at":"'
    b'"products":{"":1},"categories":{"":1},"skus":{"":1},"coupons":{"":1}'
    b'"first_touch":{"source":"direct","landing_page":"/","at":"'
    b'"last_touch":{"source":"newsletter","medium":"email","campaign":"","landing_page":"/?utm_source=&utm_medium='
    b'&utm_campaign=","referrer":"https://www.google.com/","at":"'
    b'"activity_counts":{"page_viewed":1,"product_added_to_cart":1,"cart_viewed":1,"checkout_updated":1,'
    b'"checkout_started":1,"identify":1,"product_viewed":1},"last_cart":{"at":"'
    b'"last_browse":{"at":"","event_id":"","type":"product_viewed","url":"https:///products/","products":[{'
    b'"last_checkout":{"at":"","event_id":"","type":"checkout_started","value":"","currency":"USD","url":"https://'
    b'"last_seen_at":"","recent":{"activity":{"product_viewed":[17,60000000,],"orders":[17,'
    b'"unmarked_events":["","unwritten_orders":{"st_:":{"state":"","since":"'
    b'{"workspace_id":"ws_","profile_id":"","email":"@","first_name":"","last_name":"'
    b'"created_at":"20","updated_at":"20'
)
# What every flow run repeats (crm.adapters.flow_runs): its field names, its step records', and its trigger's, an
# event's detail (a checkout's lines the most). The likeliest strings last: deflate reaches them in fewer bits.
_DICTIONARY_2 = (
    b'"trigger_type":"OrderFulfilled","waiting_for":"OrderFulfilled","trigger_type":"OrderPlaced",'
    b'"order_id":"","order_number":"#","net_total":"","total_price":"","paid":false,"checkout_token":"",'
    b'"cart_token":"","segment_id":"","channels":["email","sms"],"from_browser":true,"product":{'
    b'{"step_id":"thanks","outcome":"sent","at":"20"},{"step_id":"fulfilled","outcome":"waited","at":"20"},'
    b'{"step_id":"review","outcome":"skipped","reason":"smart_sending","at":"20"},{"step_id":"wait_7d",'
    b'"status":"exited","exit_reason":"exit_event:OrderPlaced","ended_at":"20","status":"completed","ended_at":"20'
    b'"items":[{"title":"","price":"","product_id":"","variant_id":"","sku":"","image_url":"https://cdn.shopify.com'
    b'/s/files/1/products/.jpg?v=","product_url":"https:///products/"},{"title":"","quantity":2,"price":"'
    b'"recovery_url":"https://.myshopify.com/checkouts//recover?key=","value":"","currency":"USD"'
    b'"store_id":"st_","checkout_id":"","occurred_at":"20","profile_id":"'
    b'{"workspace_id":"ws_","flow_id":"builtin:abandoned_checkout","flow_version":1,"run_id":"","profile_id":"'
    b'"trigger_type":"CheckoutStarted","trigger_event_id":"CheckoutStarted:ws_","trigger":{"event_id":"'
    b'CheckoutStarted:ws_","workspace_id":"ws_","entered_at":"20","next_step":"email_2","wake_at":"20"'
    b'{"step_id":"wait_4h","outcome":"waited","at":"20"},{"step_id":"wait_24h","outcome":"waited","at":"20'
    b'{"step_id":"email_1","outcome":"sent","at":"20","channel":"email","message_id":"0100019'
)
# What every timeline line repeats (crm.adapters.timeline_items): a line's and a line group's field names, the
# summaries crm.changes, crm.consent and the flows write, a storefront's item links. The likeliest last.
_DICTIONARY_3 = (
    b'"type":"flow_message","summary":{"flow_id":"builtin:","step_id":"email_1","channel":"email","message_id":"'
    b'"type":"order_attributed","summary":{"order":"st_","variant":"","touch":"","touched_at":"20","revenue":"'
    b'"recovered_checkout":false,"type":"email_opened","type":"email_clicked","link":"https://","detail":"'
    b'"type":"consent_changed","summary":{"channel":"email","old":"not_subscribed","new":"subscribed","source":"'
    b'shopify:customers/update","type":"consent_requested","type":"double_opt_in_sent","type":"account_created",'
    b'"type":"profile_merged","summary":{"merged":[""],"linked_by":["anon","email","customer","order"]},'
    b'"type":"refund","summary":{"amount":"","type":"order_cancelled","type":"order_removed","type":"order_fulfilled"'
    b'"type":"order","summary":{"number":"#","currency":"USD","total":"","net":"","counted":true,"status":"paid",'
    b'"version":"T00:00:00.000000Z|0001-01-01T00:00:00.000000Z","items":2,"channel":"direct"},'
    b'"type":"identify","type":"page_viewed","type":"cart_viewed","type":"product_added_to_cart",'
    b'"type":"checkout_started","summary":{"url":"https://","checkout":"","recovery_url":"https://.myshopify.com/'
    b'checkouts//recover?key=","value":"","currency":"USD","from_browser":true,"reachable":true,'
    b'"image_url":"https://cdn.shopify.com/s/files/1/products/.jpg?v=","product_url":"https:///products/"},'
    b'{"workspace_id":"ws_","profile_id":"","occurred_at":"20","lines":[{"store_id":"st_","occurred_at":"20'
    b'{"workspace_id":"ws_","profile_id":"","store_id":"st_","occurred_at":"20'
    b':00+00:00","type":"product_viewed","ref":"","summary":{"url":"https:///products/","products":["'
    b'"],"items":[{"title":"","quantity":1,"price":"","product_id":"","variant_id":"","sku":"'
)
_DICTIONARIES = {1: _DICTIONARY_1, 2: _DICTIONARY_2, 3: _DICTIONARY_3}
PROFILES, FLOW_RUNS, TIMELINE = 1, 2, 3  # the dictionaries' versions
DICTIONARY_OF = {"timeline": TIMELINE, "timeline_lines": TIMELINE}  # an entity's, when not PROFILES
_LATEST = PROFILES


def pack(body: bytes, version: int = _LATEST) -> bytes:
    """``body`` deflated, raw (no header or checksum): the version byte in front names the dictionary."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=_DICTIONARIES[version])
    return bytes([version]) + deflate.compress(body) + deflate.flush()


def unpack(packed: bytes | str) -> bytes:
    """What ``pack`` packed: as bytes (boto3's client), or base64 text (a stream record in Lambda's JSON event)."""
    raw = base64.b64decode(packed) if isinstance(packed, str) else packed
    inflate = zlib.decompressobj(-15, zdict=_DICTIONARIES[raw[0]])
    return inflate.decompress(raw[1:]) + inflate.flush()
