"""A flow run is stored without its fields at their defaults, deflated against the flow-run dictionary into one Binary
attribute (crm.adapters.flow_runs.run_item): read back it is the run that was written, whichever way it was written
(packed, zlib and base64 as before, plain JSON before that) and whoever reads it (the store, the outbox's stream)."""

from __future__ import annotations

import base64
import zlib
from datetime import timedelta
from typing import Any

from crm.adapters.flow_runs import run_item, run_of_item
from crm.adapters.items import PACKED, Item, unpack
from crm.adapters.streams import image
from crm.models.events import CheckoutStarted, OrderPlaced
from crm.models.events import Item as LineItem
from crm.models.flows import FlowRun, RunStatus, StepOutcome, StepRecord, run_id_for
from crm.outbox import events_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW

WS = "ws_01JDQ3V6Z8K2M4N6P8R0S2T4V6"
PROFILE = "01JDQ3W0A2C4E6G8J0K2M4N6P8"
EMAIL_ID = "0100019385f3c6a1-6a3e2f4b-8c1d-4e5f-9a7b-3c2d1e0f9a8b-000000"


def _checkout_run(*steps: StepRecord) -> FlowRun:
    """An abandoned checkout's run as the engine keeps it: the checkout's detail (three lines), its records."""
    lines = tuple(LineItem(title=f"Merino crew sweater, {colour}", price="89.00", product_id=f"81234567890{n}",
                           variant_id=f"4412345678901{n}", sku=f"MCS-{colour.upper()}-M",
                           image_url=f"https://cdn.shopify.com/s/files/1/0612/3456/7890/products/mcs-{colour}.jpg?v=1",
                           product_url=f"https://bench-outfitters.myshopify.com/products/merino-crew-{colour}")
                  for n, colour in enumerate(("navy", "oatmeal", "charcoal")))
    event = CheckoutStarted(event_id=f"CheckoutStarted:{WS}:st_01JDQ3V:a1b2c3d4e5f6", workspace_id=WS,
                            profile_id=PROFILE, occurred_at=NOW, store_id="st_01JDQ3V", checkout_id="a1b2c3d4e5f6",
                            items=lines, value="267.00", currency="USD",
                            recovery_url="https://bench-outfitters.myshopify.com/checkouts/a1b2c3d4e5f6/recover?key=k1")
    flow = "builtin:abandoned_checkout"
    return FlowRun(workspace_id=WS, flow_id=flow, flow_version=1, run_id=run_id_for(flow, event.event_id),
                   profile_id=PROFILE, trigger_type="CheckoutStarted", trigger_event_id=event.event_id,
                   trigger=event.model_dump(mode="json"), entered_at=NOW, next_step="email_2",
                   wake_at=NOW + timedelta(hours=28), steps=steps, revision=len(steps))


_SENT_TWICE = (StepRecord(step_id="wait_4h", outcome=StepOutcome.WAITED, at=NOW + timedelta(hours=4)),
               StepRecord(step_id="email_1", outcome=StepOutcome.SENT, at=NOW + timedelta(hours=4), channel="email",
                          message_id=EMAIL_ID),
               StepRecord(step_id="wait_24h", outcome=StepOutcome.WAITED, at=NOW + timedelta(hours=28)),
               StepRecord(step_id="email_2", outcome=StepOutcome.SENT, at=NOW + timedelta(hours=28), channel="email",
                          message_id=EMAIL_ID.replace("a1", "b2")))


def _size(item: Item) -> int:
    """DynamoDB's billed size of an item of strings, numbers and binaries: names and values, in bytes."""
    return sum(len(name.encode()) + len(value["B"] if "B" in value else next(iter(value.values())).encode())
               for name, value in item.items())


def _before(run: FlowRun) -> Item:
    """The item as stored before: the whole JSON zlib-compressed and base64'd (``run_z``)."""
    item = {name: value for name, value in run_item(run).items() if name != PACKED}
    return {**item, "run_z": {"S": base64.b64encode(zlib.compress(run.model_dump_json().encode(), 9)).decode()}}


def test_a_checkout_run_that_sent_twice_reads_back_and_is_under_a_kilobyte_where_before_it_was_over() -> None:
    run = _checkout_run(*_SENT_TWICE)
    item = run_item(run)
    assert run_of_item(item) == run
    # A write is a unit per started KB: the run's saves at each wake-up are one unit, where they were two.
    assert _size(item) <= 1024 < _size(_before(run))


def test_a_post_purchase_run_that_sent_its_thanks_and_review_is_under_a_kilobyte_where_before_it_was_over() -> None:
    lines = tuple(LineItem(title=f"Linen shirt, {colour}", price="64.00", product_id=f"71234567890{n}",
                           sku=f"LS-{colour.upper()}-L", image_url=f"https://cdn.shopify.com/s/files/1/ls-{colour}.jpg")
                  for n, colour in enumerate(("white", "sage")))
    order = OrderPlaced(event_id=f"OrderPlaced:{WS}:st_01JDQ3V:5123456789012", workspace_id=WS, profile_id=PROFILE,
                        occurred_at=NOW, store_id="st_01JDQ3V", order_id="5123456789012", currency="USD",
                        total_price="128.00", net_total="128.00", order_number="#1042", items=lines,
                        checkout_token="a1b2c3d4e5f6", cart_token="c1d2e3f4")
    steps = (StepRecord(step_id="thanks", outcome=StepOutcome.SENT, at=NOW, channel="email", message_id=EMAIL_ID),
             StepRecord(step_id="fulfilled", outcome=StepOutcome.WAITED, at=NOW + timedelta(days=2)),
             StepRecord(step_id="review", outcome=StepOutcome.SENT, at=NOW + timedelta(days=9), channel="email",
                        message_id=EMAIL_ID))
    flow = "builtin:post_purchase"
    run = FlowRun(workspace_id=WS, flow_id=flow, flow_version=1, run_id=run_id_for(flow, order.event_id),
                  profile_id=PROFILE, trigger_type="OrderPlaced", trigger_event_id=order.event_id,
                  trigger=order.model_dump(mode="json"), entered_at=NOW, status=RunStatus.COMPLETED,
                  ended_at=NOW + timedelta(days=9), steps=steps, revision=3)
    assert run_of_item(run_item(run)) == run
    assert _size(run_item(run)) <= 1024 < _size(_before(run))


def test_what_is_packed_is_the_runs_json_without_its_defaults() -> None:
    started = _checkout_run()
    packed = unpack(run_item(started)[PACKED]["B"])
    assert b'"status"' not in packed and b'"steps"' not in packed and b'"revision"' not in packed
    assert run_of_item(run_item(started)).status is RunStatus.ACTIVE


def test_runs_stored_before_are_read() -> None:
    run = _checkout_run(*_SENT_TWICE[:2])
    plain = {name: value for name, value in run_item(run).items() if name != PACKED}
    assert run_of_item(_before(run)) == run
    assert run_of_item({**plain, "run": {"S": run.model_dump_json()}}) == run


def _in_lambdas_stream_event(item: Item) -> dict[str, Any]:
    """A stream record's image as Lambda's JSON event carries it: binary values as base64 text."""
    wire = {name: {"B": base64.b64encode(value["B"]).decode()} if "B" in value else value
            for name, value in item.items()}
    return {"eventName": "MODIFY", "dynamodb": {"NewImage": wire, "OldImage": wire}}


def test_the_outbox_reads_a_run_off_the_stream_and_makes_no_event_of_it() -> None:
    record = _in_lambdas_stream_event(run_item(_checkout_run(*_SENT_TWICE)))
    seen = image(record, "NewImage")
    assert seen is not None and seen["entity"] == "flow_run"
    assert events_for(record) == []


_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=4), max_leaves=12)
_records = st.builds(StepRecord, step_id=st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True),
                     outcome=st.sampled_from(StepOutcome), at=st.just(NOW),
                     reason=st.none() | st.text(max_size=30), channel=st.sampled_from([None, "email", "sms"]),
                     message_id=st.none() | st.text(max_size=60), path=st.none() | st.integers(0, 9))


@settings(max_examples=80, deadline=None)
@given(trigger=st.dictionaries(st.text(max_size=12), _json, max_size=6), steps=st.lists(_records, max_size=5),
       status=st.sampled_from(RunStatus), revision=st.integers(0, 50), waiting=st.none() | st.text(max_size=20))
def test_any_run_reads_back_as_it_was_written(trigger: dict[str, Any], steps: list[StepRecord], status: RunStatus,
                                              revision: int, waiting: str | None) -> None:
    order = OrderPlaced(event_id="o", workspace_id=WS, profile_id=PROFILE, occurred_at=NOW, store_id="st",
                        order_id="o1", currency="USD", total_price="12.00", net_total="12.00")
    run = FlowRun(workspace_id=WS, flow_id="builtin:post_purchase", flow_version=3, run_id="r1", profile_id=PROFILE,
                  trigger_type="OrderPlaced", trigger_event_id=order.event_id,
                  trigger={**order.model_dump(mode="json"), **trigger}, entered_at=NOW, status=status,
                  waiting_for=waiting, steps=tuple(steps), revision=revision)
    assert run_of_item(run_item(run)) == run
    assert run_of_item({name: {"B": base64.b64encode(value["B"]).decode()} if "B" in value else value
                        for name, value in run_item(run).items()}) == run


def test_a_run_packed_against_the_flow_run_dictionary_reads_for_good() -> None:
    # Runs stay in the table: the dictionary they were packed against must never change (a new one takes a new
    # version byte). This one was packed when the flow-run dictionary was written.
    assert unpack(base64.b64decode(_PACKED_BY_THE_FLOW_RUN_DICTIONARY)) == _ITS_JSON


_ITS_JSON = (b'{"workspace_id":"ws_a","flow_id":"builtin:abandoned_checkout",'
             b'"steps":[{"step_id":"email_1","outcome":"sent"}]}')
_PACKED_BY_THE_FLOW_RUN_DICTIONARY = "AsMWx4nERzLITZD8SITramNrAQ=="
