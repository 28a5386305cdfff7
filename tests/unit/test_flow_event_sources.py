"""What each source says that flow messages show: item pictures and links, a checkout's recovery link, and
that an order shipped (Shopify, WooCommerce, BigCommerce, custom /events, the public /track API)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crm.adapters.outbox_targets import RoutedPublisher, bus_types, queue_body, send_batches
from crm.connectors.base import PayloadNotUnderstood
from crm.connectors.bigcommerce import map_order
from crm.connectors.custom import CUSTOM, TOPIC
from crm.connectors.shopify import SHOPIFY
from crm.connectors.woocommerce import WOOCOMMERCE
from crm.flows.inbox import BusEvent, read_message
from crm.models.canonical import ActivityEvent, ActivityType, CanonicalEvent
from crm.models.events import FLOW_EVENT_TYPES, CustomerCreated, OrderPlaced
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder
from crm.models.stores import Platform
from crm.tracking import TrackRejected, parse_request, track_events
from crm_local.template import Stack

from tests.builders import NOW, bc_order_json, compact, envelope, fixture_json, woo_fixture_json, woo_wire
from tests.fakes import FakeStoreDirectory


def _shopify(topic: str, payload: dict[str, Any]) -> list[CanonicalEvent]:
    return SHOPIFY.events(envelope(None, topic=topic), compact(payload), FakeStoreDirectory())


def test_a_shopify_checkout_keeps_its_recovery_link() -> None:
    payload = fixture_json("checkouts/create")
    [checkout] = _shopify("checkouts/create", payload)
    assert isinstance(checkout, ActivityEvent)
    assert checkout.recovery_url == payload["abandoned_checkout_url"]
    # The published sample's lines carry no picture: none is made up.
    assert [p.image_url for p in checkout.products] == [None] * len(payload["line_items"])


@pytest.mark.parametrize("picture", [{"image_url": "https://cdn.example/a.png"},
                                     {"image": {"src": "https://cdn.example/a.png"}},
                                     {"image": "https://cdn.example/a.png"}])
def test_a_shopify_line_item_picture_is_read_in_any_of_its_shapes(picture: dict[str, Any]) -> None:
    payload = fixture_json("checkouts/create")
    payload["line_items"][0].update(picture)
    [checkout] = _shopify("checkouts/create", payload)
    assert isinstance(checkout, ActivityEvent)
    assert checkout.products[0].image_url == "https://cdn.example/a.png"


def test_a_shopify_fulfillment_is_an_order_fulfilled_activity_naming_the_order() -> None:
    payload = fixture_json("fulfillments/create")
    [fulfillment] = _shopify("fulfillments/create", payload)
    assert isinstance(fulfillment, ActivityEvent)
    assert (fulfillment.type, fulfillment.order_id) == (ActivityType.ORDER_FULFILLED, str(payload["order_id"]))
    assert [p.title for p in fulfillment.products] == [line["title"] for line in payload["line_items"]]


def test_a_shopify_order_carries_its_fulfillment_status() -> None:
    # The published orders/fulfilled sample is a test order left unfulfilled; a live one says "fulfilled".
    [order] = _shopify("orders/fulfilled", {**fixture_json("orders/fulfilled"), "fulfillment_status": "fulfilled"})
    assert isinstance(order, CanonicalOrder)
    assert order.fulfillment_status == "fulfilled"


@pytest.mark.parametrize(("status", "fulfilled"), [("completed", "fulfilled"), ("processing", None),
                                                   ("on-hold", None), ("cancelled", None)])
def test_a_woocommerce_order_is_fulfilled_once_completed(status: str, fulfilled: str | None) -> None:
    payload = {**woo_fixture_json("order.updated"), "status": status}
    woo = envelope(None, topic="order.updated", platform=Platform.WOOCOMMERCE)
    [order] = WOOCOMMERCE.events(woo, woo_wire(payload), FakeStoreDirectory())
    assert isinstance(order, CanonicalOrder)
    assert order.fulfillment_status == fulfilled


@pytest.mark.parametrize(("status_id", "status", "fulfilled"), [
    (2, "Shipped", "fulfilled"), (10, "Completed", "fulfilled"), (3, "Partially Shipped", None),
    (11, "Awaiting Fulfillment", None), (None, "Shipped", "fulfilled"), (None, "Pending", None)])
def test_a_bigcommerce_order_is_fulfilled_once_shipped(status_id: int | None, status: str,
                                                      fulfilled: str | None) -> None:
    payload = {**bc_order_json(), "status_id": status_id, "status": status}
    bc = envelope(b"{}", topic="store/order/updated", platform=Platform.BIGCOMMERCE, store_id="st_bc")
    assert map_order(payload, bc).fulfillment_status == fulfilled


def _custom(payload: dict[str, Any]) -> list[CanonicalEvent]:
    return CUSTOM.events(envelope(None, topic=TOPIC, platform=Platform.CUSTOM), compact(payload),
                         FakeStoreDirectory())


CUSTOM_CHECKOUT = {
    "type": "activity", "event_id": "co-1", "activity": "checkout_started", "occurred_at": "2026-02-28T10:00:00Z",
    "email": "ada@example.com", "checkout_token": "tok-1", "recovery_url": "https://shop.custom.example/r/tok-1",
    "products": [{"product_id": "p-1", "title": "Mug", "price": "12.50", "quantity": 2,
                  "image_url": "https://shop.custom.example/mug.png", "url": "https://shop.custom.example/p/mug"}],
}


def test_a_custom_checkout_carries_pictures_links_and_its_recovery_url() -> None:
    [checkout] = _custom({"events": [CUSTOM_CHECKOUT]})
    assert isinstance(checkout, ActivityEvent)
    assert checkout.recovery_url == "https://shop.custom.example/r/tok-1"
    [product] = checkout.products
    assert (product.image_url, product.url) == ("https://shop.custom.example/mug.png",
                                                "https://shop.custom.example/p/mug")
    assert checkout.from_browser is False  # signed by the store


@pytest.mark.parametrize("link", ["javascript:alert(1)", "data:text/html,hi", "//evil.example/x", "mug.png"])
def test_a_custom_link_a_message_would_show_must_be_a_web_address(link: str) -> None:
    with pytest.raises(PayloadNotUnderstood, match="recovery_url"):
        _custom({"events": [{**CUSTOM_CHECKOUT, "recovery_url": link}]})


def _track_body(**event: Any) -> bytes:
    return json.dumps({"anonymous_id": "browser-1", "events": [{
        "type": "checkout_started", "event_id": "co-1", "occurred_at": "2026-03-01T11:00:00Z", **event}]}).encode()


def test_a_tracked_checkout_carries_pictures_links_and_its_recovery_url() -> None:
    raw = _track_body(recovery_url="https://shop.example/cart/recover",
                      products=[{"title": "Mug", "image_url": "https://shop.example/mug.png",
                                 "url": "https://shop.example/p/mug"}])
    message = IngestEnvelope(platform=Platform.SHOPIFY, source="track", workspace_id="ws_a", store_id="st_a",
                             meta=DeliveryMeta(topic="track", delivery_id="d"), received_at=NOW, body=raw.decode())
    [checkout] = track_events(message, raw)
    assert checkout.recovery_url == "https://shop.example/cart/recover"
    assert (checkout.products[0].image_url, checkout.products[0].url) == ("https://shop.example/mug.png",
                                                                          "https://shop.example/p/mug")
    assert checkout.from_browser is True


@pytest.mark.parametrize("field", ["recovery_url", "image_url"])
def test_a_tracked_link_must_be_a_web_address(field: str) -> None:
    raw = (_track_body(recovery_url="javascript:alert(1)") if field == "recovery_url"
           else _track_body(products=[{"title": "Mug", "image_url": "javascript:alert(1)"}]))
    with pytest.raises(TrackRejected, match=field):
        parse_request(raw)


# --- the flows queue in template.yaml ------------------------------------------------------------

FLOWS_FUNCTION_TIMEOUT = 60  # the flows function's timeout (runtime's FlowsFunction)


def test_the_flows_queue_outlasts_six_function_timeouts_and_parks_after_five_receives(stack: Stack) -> None:
    queue = stack.resources["FlowsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * FLOWS_FUNCTION_TIMEOUT
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["FlowsDeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": 5}


def test_the_outbox_sends_the_flow_events_and_no_rule_on_the_bus_feeds_the_flows_queue(stack: Stack) -> None:
    """The flows' events go straight from the outbox (crm.adapters.outbox_targets): a rule on the bus sending
    them too would deliver each twice (and bill each entry)."""
    outbox = stack.resources["OutboxFunction"]["Properties"]
    assert outbox["Environment"]["Variables"]["FLOWS_QUEUE_URL"] == {"Ref": "FlowsQueue"}
    assert outbox["Environment"]["Variables"]["BUS_EVENT_TYPES"] == {"Ref": "BusEventTypes"}
    [statements] = [policy["PolicyDocument"]["Statement"]
                    for policy in stack.resources["OutboxFunctionRole"]["Properties"]["Policies"]]
    sends = [s["Resource"] for s in statements if any(str(action).startswith("sqs:") for action in s["Action"])]
    # The flows queue, and the stream's dead letters (Lambda sends a failed batch's description there).
    assert sorted(sends, key=str) == [{"Fn::GetAtt": ["FlowsQueue", "Arn"]},
                                      {"Fn::GetAtt": ["OutboxDeadLetterQueue", "Arn"]}]
    for name, rule in stack.of_type("AWS::Events::Rule").items():
        targets = [target["Arn"] for target in rule["Properties"].get("Targets", [])]
        assert {"Fn::GetAtt": ["FlowsQueue", "Arn"]} not in targets or \
            rule["Properties"].get("EventBusName") != {"Ref": "EventBus"}, name
    policies = {p["Properties"]["Queues"][0]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
                for p in stack.of_type("AWS::SQS::QueuePolicy").values()}
    for queue in ("FlowsQueue", "FlowsDeadLetterQueue"):
        by_service = [s for s in policies[queue] if "Service" in s["Principal"]]
        sources = [value.get("aws:SourceArn") for s in by_service for value in s.get("Condition", {}).values()]
        # Without a source condition any rule or topic in any account could send.
        assert len(sources) == len(by_service) and all(sources), queue
        assert all(s["Resource"] == {"Fn::GetAtt": [queue, "Arn"]} for s in by_service), queue


def test_the_bus_carries_by_default_every_type_the_stacks_own_rules_read(stack: Stack) -> None:
    """BusEventTypes' default (docs/events.md): a rule of the stack on the bus whose type the outbox left off it
    would never fire."""
    published = set(stack.parameters["BusEventTypes"]["Default"].split(","))
    for name, rule in stack.of_type("AWS::Events::Rule").items():
        if rule["Properties"].get("EventBusName") == {"Ref": "EventBus"}:
            pattern = rule["Properties"]["EventPattern"]
            assert pattern["source"] == ["crm"], name
            assert set(pattern["detail-type"]) <= published, name


def test_the_outbox_routes_each_event_by_type_and_a_refusal_by_either_target_fails_it() -> None:
    sent: list[str] = []
    bus: list[str] = []

    class Recording:
        def __init__(self, into: list[str]) -> None:
            self.into = into

        def publish(self, events: Any) -> list[int]:
            self.into.extend(event.type for event in events)
            return [index for index, event in enumerate(events) if event.type == "CustomerCreated"]

    events = [OrderPlaced(event_id="OrderPlaced:ws_a:st_a:1", workspace_id="ws_a", profile_id="p1", occurred_at=NOW,
                          store_id="st_a", order_id="1", currency="USD", total_price="4.00", net_total="4.00"),
              CustomerCreated(event_id="CustomerCreated:ws_a:p1", workspace_id="ws_a", profile_id="p1",
                              occurred_at=NOW)]
    routed = RoutedPublisher(Recording(sent), Recording(bus), bus_types("*"))
    assert routed.publish(events) == [1]  # a refused send is the event's failure, whichever target refused it
    assert sent == bus == ["OrderPlaced", "CustomerCreated"]
    sent.clear()
    bus.clear()
    # By default the bus takes what the stack's rules read; the flows their types whatever the bus takes.
    assert RoutedPublisher(Recording(sent), Recording(bus), bus_types("OrderPlaced")).publish(events) == [1]
    assert (sent, bus) == (["OrderPlaced", "CustomerCreated"], ["OrderPlaced"])
    sent.clear()
    assert RoutedPublisher(Recording(sent), Recording(bus), bus_types(""), ("CheckoutStarted",)).publish(events) == []
    assert sent == []
    assert bus_types(" OrderPlaced , ContactCreated,") == {"OrderPlaced", "ContactCreated"}
    assert bus_types("") == frozenset()
    assert set(FLOW_EVENT_TYPES) >= {"CheckoutStarted", "ProductViewed", "OrderPlaced", "ProfilesMerged"}


def test_the_outbox_sends_ten_to_a_batch_and_under_sqs_size_limit() -> None:
    assert [len(batch) for batch in send_batches(["{}"] * 25)] == [10, 10, 5]
    large = ["x" * 100_000] * 5  # SendMessageBatch takes 256 KiB in all
    assert [len(batch) for batch in send_batches(large)] == [2, 2, 1]
    assert [index for batch in send_batches(large) for index in batch] == list(range(5))
    assert send_batches([]) == []


def test_a_queued_event_is_what_the_flows_function_reads_as_a_bus_event() -> None:
    placed = OrderPlaced(event_id="OrderPlaced:ws_a:st_a:1", workspace_id="ws_a", profile_id="p1", occurred_at=NOW,
                         store_id="st_a", order_id="1", currency="USD", total_price="4.00", net_total="4.00")
    read = read_message(queue_body(placed))
    assert isinstance(read, BusEvent) and read.detail_type == "OrderPlaced"
    assert OrderPlaced.model_validate(read.detail) == placed
