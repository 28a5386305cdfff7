"""`make bench`: flows on the local runtime. (a) Webhook arrival to the SES send for a zero-wait email step,
p50 and p95, against the same webhook's event leaving the outbox (its send to the flows queue) as the baseline in
the same run; (b) AWS requests and capacity units per flow run for six flow shapes, and per step kind by difference;
(c) the monthly cost of flows for DESIGN.md's reference store from those counts and its list prices, with SES's
and SNS's delivery fees listed apart.

Everything runs in this process: `crm local`'s LocalRuntime (moto's server, the template's functions, the
pollers, the Scheduler emulation), driven over HTTP with signed Shopify webhooks and the marketer API. The
requests are counted with a botocore event hook on the process's boto3 clients (ingest_path's Meter), only
while the flows function runs (a thread-local flag set around its invocation), so the profiles and outbox
functions' requests, measured by the other benches, are not counted twice. Request counts are deterministic
for a given stack; latencies are this machine's (moto-bound, polled queues) and compare only with the baseline.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import flows_ledger_before
import flows_reads_before
import flows_today
from backtest import REACHABLE_VIEWS
from cost import LONG_POLL_S, SECONDS_PER_MONTH, SQS_POLLERS, TEMPLATE, Source
from crm import wiring
from crm.adapters import clients, keys
from crm.adapters.flow_runs import PACKED_RUN, run_item, run_of_item
from crm.adapters.flow_stats import CARRIED_PREFIX, COUNTER_PREFIX, counter_attribute
from crm.adapters.items import Item, wire_key
from crm.adapters.outbox_targets import SqsFlowEvents
from crm.clock import utc_now
from crm.flows import service as flows_service_module
from crm.flows.actions import ExitReason, FlowEvent
from crm.flows.builtin import (
    ABANDONED_CHECKOUT,
    BROWSE_ABANDONMENT,
    BUILTIN_FLOWS,
    POST_PURCHASE,
    VIP,
    WELCOME,
    WIN_BACK,
)
from crm.flows.catalogue import event_types
from crm.flows.definition import walk_steps
from crm.models.events import SegmentEntered
from crm.models.flow_stats import ALL_STEPS, CounterName
from crm.models.flows import (
    Delay,
    EventTrigger,
    FlowDefinition,
    FlowRecord,
    FlowRun,
    SendEmail,
    SendSms,
    SkipReason,
    WaitForEvent,
)
from crm_local.demo import http
from crm_local.operations import add_store
from crm_local.runtime import LocalRuntime
from crm_local.template import read_sam
from crm_local.wire import compact, shopify_fixture, shopify_headers
from figures import billed, record
from ingest_path import Counts, Meter, add, fake_aws_environment, item_size, read_units, write_units

FLOWS_FUNCTION = "FlowsFunction"
SES_RULE = "SesFeedbackRule"
SERVICES = ("dynamodb", "sqs", "scheduler", "sesv2", "sns", "events", "secretsmanager")
DOMAIN_PREFIX = "bench-flows"
SECRET = "bench-flows-secret"
# No quiet hours (start == end): an SMS step sends at whatever hour the bench runs, rather than waiting for a
# morning that a later shape's clock step would reach and count as its own.
SENDER = {"from_address": "hello@bench-flows.example", "from_name": "Bench Outfitters",
          "postal_address": "1 Market Street, San Francisco, CA 94105",
          "quiet_hours": {"start": "00:00", "end": "00:00"}}
EMAIL_TEMPLATE = "builtin:abandoned_checkout_1"
SMS_TEMPLATE_ID = "bench_sms"
SMS_TEMPLATE = {"channel": "sms", "name": "Bench text", "body": "You left something in your cart."}

# --- (c) the cost model ---------------------------------------------------------------------------------------

# List prices, us-east-1, USD per million (DESIGN.md; check before quoting). Lambda duration is not priced:
# moto-bound handler times do not transfer (as in ingest_path.py).
PRICES: dict[str, tuple[str, Decimal]] = {
    "lambda": ("Lambda invocations", Decimal("0.20")),
    "sqs": ("SQS requests", Decimal("0.40")),
    "wru": ("DynamoDB write request units", Decimal("0.625")),
    "rru": ("DynamoDB read request units", Decimal("0.125")),
    "eventbridge": ("EventBridge events put", Decimal("1.00")),
    "scheduler": ("EventBridge Scheduler invocations", Decimal("1.00")),
}
# Delivery fees, listed apart: SES $0.10 per 1,000 emails (DESIGN.md); SNS SMS to US numbers $0.00581 per
# message plus carrier fees (AWS End User Messaging's price list; varies by country: check before quoting).
SES_PER_EMAIL = Decimal("0.0001")
SMS_PER_MESSAGE = Decimal("0.00581")

# DESIGN.md's reference store, a month: 300k checkouts (150k abandoned: no order within 4 h), 300k orders,
# 2.4M product views, 1M messages. How the work divides among the step kinds (assumed, printed with the cost):
REFERENCE_MONTH: dict[str, int] = {
    # Every flow event the flows queue receives is checked against the live triggers, exits and the profile's
    # runs: 300k checkouts, 300k orders, 150k fulfilments, the product views of shoppers with an email or a phone
    # (840k, bench/backtest.py's share: the bus publishes no anonymous view, crm.outbox), 100k contact and consent
    # changes, 50k segment entries. Priced per flow event (one message on the queue), not per webhook.
    "trigger_check": 300_000 + 300_000 + 150_000 + REACHABLE_VIEWS + 100_000 + 50_000,
    # Runs started, beyond their event's check: abandoned checkout 300k, browse abandonment 150k, welcome 50k,
    # post-purchase 300k, win-back 30k, VIP 20k.
    "run_start": 850_000,
    # Durable waits (a one-time schedule created, fired, its wake-up on the queue): abandoned checkout 300k + 150k,
    # browse 150k, welcome 50k, post-purchase's review 150k.
    "delay": 800_000,
    # Emails: abandoned 300k, browse 100k, welcome 100k, post-purchase 450k, win-back 30k, VIP 20k = 1M.
    "email": 1_000_000,
    "sms": 0,
    "tag": 0,
    # Runs ended by an event (an order within 4 h, an order after the first reminder, a newer checkout).
    "exit_on_event": 250_000,
}



def records_per_batch(template: Path, month: Mapping[str, int], window_s: float | None = None) -> float:
    """What shares one receive, one delete and one invocation: the flows queue's messages (the month's flow
    events and wake-ups) at their average rate under the flows function's SQS event source as the template
    sets it (BatchSize, MaximumBatchingWindowInSeconds; ``window_s`` in its place), shared by Lambda's pollers,
    as bench/cost.py prices the ingest queue. Without a window (before issue 12) a batch was about one message."""
    source = flows_source(template)
    window = source.window_s if window_s is None else window_s
    messages = month["trigger_check"] + month["delay"] + month["exit_on_event"]
    return Source(source.batch_size, window).batch_at(messages / SECONDS_PER_MONTH, SQS_POLLERS)


def flows_source(template: Path) -> Source:
    """The flows function's SQS event source as the template sets it."""
    for event in read_sam(template)["Resources"][FLOWS_FUNCTION]["Properties"]["Events"].values():
        if event["Type"] == "SQS":
            props = event["Properties"]
            return Source(int(props.get("BatchSize", 10)), float(props.get("MaximumBatchingWindowInSeconds", 0)))
    raise ValueError(f"{FLOWS_FUNCTION} has no SQS event source in {template}")


RECORDS_PER_BATCH = records_per_batch(TEMPLATE, REFERENCE_MONTH)
# BEFORE (labelled): the flows queue's batching window until issue 12's flowcut lane (60 s since). Every design
# measured before that lane is priced at it.
WINDOW_BEFORE_S = 20.0
RECORDS_PER_BATCH_BEFORE = records_per_batch(TEMPLATE, REFERENCE_MONTH, WINDOW_BEFORE_S)


def events_per_send(template: Path, month: Mapping[str, int]) -> float:
    """How many flow events share one SendMessageBatch of the outbox (crm.adapters.outbox_targets, at most 10):
    the month's flow events that arrive within one stream batching window of the outbox (template.yaml). Before
    issue 12 each went through the bus and its rule's SendMessage: 1."""
    for event in read_sam(template)["Resources"]["OutboxFunction"]["Properties"]["Events"].values():
        if event["Type"] == "DynamoDB":
            window = float(event["Properties"].get("MaximumBatchingWindowInSeconds", 0))
            flow_events = month["trigger_check"] + month["exit_on_event"]
            return Source(10, window).batch_at(flow_events / SECONDS_PER_MONTH)
    raise ValueError(f"OutboxFunction has no stream event source in {template}")


EVENTS_PER_SEND = events_per_send(TEMPLATE, REFERENCE_MONTH)


# --- the counters' writes, a batch at a time ----------------------------------------------------------------------
# The flows function writes what an SQS batch counted once per flow and day at the batch's end
# (crm.flows.batch_counts), so a counter write is not any one step's: it is priced per batch, from how many of
# the month's flows a batch of RECORDS_PER_BATCH messages counts on. The month's messages that count on each
# built-in flow (starts, wake-ups, runs ended by an event, waits resumed by one; REFERENCE_MONTH's comments):
FLOW_MIX: dict[str, dict[str, int]] = {
    ABANDONED_CHECKOUT: {"run_start": 300_000, "delay": 450_000, "exit_on_event": 250_000},
    BROWSE_ABANDONMENT: {"run_start": 150_000, "delay": 150_000},
    WELCOME: {"run_start": 50_000, "delay": 50_000},
    # An order's fulfilment resumes its run's wait_for (a trigger check in REFERENCE_MONTH): counted too.
    POST_PURCHASE: {"run_start": 300_000, "delay": 150_000, "resumed": 150_000},
    WIN_BACK: {"run_start": 30_000},
    VIP: {"run_start": 20_000},
}
COUNTER_FLUSH = "counter_flush"  # the step kind of a batch's counter writes (per batch, not per step)
# The receives the pollers make beyond one a batch: Lambda long-polls the queue (LONG_POLL_S) whether or not
# messages come, and an empty receive is billed (bench/cost.py prices the ingest queue the same way), so a
# window long enough to make batches rarer than the idle polls saves deletes, invocations and counter writes,
# not receives.
IDLE_RECEIVES = "idle_receives"
IDLE_RECEIVE: Counts = {("req", "sqs", "ReceiveMessage"): 1.0, ("unit", "sqs"): 1.0}


def queue_messages(month: Mapping[str, int]) -> int:
    """The flows queue's messages a month: the flow events and the wake-ups (records_per_batch's)."""
    return month["trigger_check"] + month["delay"] + month["exit_on_event"]


def idle_receives(month: Mapping[str, int], per_batch: float) -> float:
    """The month's receives beyond one a batch: the pollers' idle long polls the batches leave over."""
    return max(0.0, SQS_POLLERS * SECONDS_PER_MONTH / LONG_POLL_S - queue_messages(month) / per_batch)


def at_batch(counts: Counts, measured_at: float, priced_at: float) -> Counts:
    """``counts`` (a shape's or a step kind's, measured with the queue's receive, delete and invocation shared
    by ``measured_at`` messages) as they are with those shared by ``priced_at``: the figures a batching window
    changes; what the function reads and writes stays as measured."""
    messages = counts.get(MESSAGES, 0)
    if not messages:
        return dict(counts)
    share = 1 / priced_at - 1 / measured_at
    return {**counts, ("unit", "lambda"): counts.get(("unit", "lambda"), 0) + messages * share,
            ("unit", "sqs"): counts.get(("unit", "sqs"), 0) + 2 * messages * share}


def flows_per_batch(mix: Mapping[str, Mapping[str, int]], messages: int, per_batch: float) -> dict[str, float]:
    """Each flow's chance of being counted on in a batch: 1 - (1 - its share of the messages)^batch. Their sum
    is the batch's expected writes (one a flow; a batch spans seconds, so one day but at midnight). At the mean
    batch: the chance is concave in the batch's size, so varying batches make fewer writes, not more."""
    return {flow: 1 - (1 - sum(kinds.values()) / messages) ** per_batch for flow, kinds in mix.items()}


def _exit_reasons(definition: FlowDefinition) -> set[str]:
    trigger = definition.trigger.event if isinstance(definition.trigger, EventTrigger) else None
    reasons = {ExitReason.SUPERSEDED.value if exit.event == trigger else f"{ExitReason.EXIT_EVENT.value}:{exit.event}"
               for exit in definition.exits}
    return reasons | {ExitReason.WAIT_TIMEOUT.value for _, step in walk_steps(definition.steps)
                      if isinstance(step, WaitForEvent) and step.on_timeout == "exit"}


_MESSAGE_COUNTERS = (CounterName.BOUNCED, CounterName.OPENED, CounterName.CLICKED, CounterName.COMPLAINED,
                     CounterName.UNSUBSCRIBED, CounterName.CONVERTED, CounterName.REVENUE, CounterName.RECOVERED,
                     CounterName.RECOVERED_REVENUE)


def long_counter_attribute(own: tuple[str, str], row: tuple[str, str], name: str) -> str:
    """BEFORE (labelled): a counter's attribute as add_rows named it before the short names (counter_names)."""
    return f"{COUNTER_PREFIX}{name}" if row == own else f"{CARRIED_PREFIX}{row[0]}|{row[1]}|{name}"


def fullest_counter_item(workspace_id: str, flow_id: str, definition: FlowDefinition,
                         attribute: Callable[[tuple[str, str], tuple[str, str], str], str] = counter_attribute) -> Item:
    """A flow's counters item at its fullest: every counter the flow can have on a day (each skip and exit reason
    its steps can give, every message event and conversion), every row carried on the first step row's item, as
    ``DynamoFlowCounters.add_rows`` writes them (``attribute``: its names; ``long_counter_attribute`` the
    labelled before); counts of 4 digits, revenue of 7. A batch's write lands on one
    item, and over a day that item gathers the rows the batches carried on it: this bounds its size."""
    exits = sorted(_exit_reasons(definition))
    rows: dict[tuple[str, str], set[str]] = {(ALL_STEPS, ALL_STEPS): {
        CounterName.ENTERED, CounterName.COMPLETED, CounterName.SENT, CounterName.DELIVERED, *_MESSAGE_COUNTERS,
        *(f"{CounterName.EXITED}:{reason}" for reason in exits)}}
    for _, step in walk_steps(definition.steps):
        names = {CounterName.RECIPIENTS.value}
        if isinstance(step, SendEmail | SendSms):
            skips = {SkipReason.EXITED, SkipReason.NO_ADDRESS, SkipReason.NO_CONSENT, SkipReason.SUPPRESSED,
                     *([SkipReason.FILTER] if definition.profile_filter else []),
                     *([SkipReason.SMART_SENDING] if step.smart_sending else [])}
            names |= {CounterName.SENT, CounterName.DELIVERED, *_MESSAGE_COUNTERS, "skipped:not_composed",
                      *(f"{CounterName.SKIPPED}:{skip.value}" for skip in skips)}
            rows[ALL_STEPS, ALL_STEPS] |= names - {CounterName.RECIPIENTS.value}
        elif isinstance(step, Delay | WaitForEvent):
            names |= {f"{CounterName.EXITED}:{reason}" for reason in exits}
        rows[step.id, ALL_STEPS] = names
    carrier = min(row for row in rows if row != (ALL_STEPS, ALL_STEPS))
    day = "2026-12-04"
    item: Item = {**wire_key(keys.flow_counters(workspace_id, flow_id, day, *carrier)),
                  "entity": {"S": "flow_counters"}, "workspace_id": {"S": workspace_id}, "flow_id": {"S": flow_id},
                  "day": {"S": day}, "step_id": {"S": carrier[0]}, "variant": {"S": carrier[1]}}
    for row, names in rows.items():
        for name in names:
            value = "99999.99" if "revenue" in name else "9999"
            item[attribute(carrier, row, name)] = {"N": value}
    return item


# A workspace id as the API makes them (a UUID), so the key's size is a real one.
_WORKSPACE_ID = "0f9c2c1e-5b7a-4a8e-9c55-1c2d3e4f5a6b"


@dataclass(frozen=True)
class CounterWrites:
    """The month's counter writes: one per counting delivery and flow (before: each delivery wrote its own at 1
    WRU, as the meter priced an UpdateItem) and one per batch and flow (after: at its fullest item's units)."""

    batches: float
    chance: Mapping[str, float]  # flow -> chance a batch counts on it
    item_bytes: Mapping[str, int]
    deliveries: int
    item_bytes_before: Mapping[str, int]  # BEFORE (labelled): the fullest items with long counter names

    @property
    def wru_per_batch_before(self) -> float:
        return sum(chance * write_units(self.item_bytes_before[flow]) for flow, chance in self.chance.items())

    @property
    def per_batch_before(self) -> Counts:
        return {**self.per_batch, ("unit", "wru"): self.wru_per_batch_before}

    @property
    def per_batch(self) -> Counts:
        return {("req", "dynamodb", "UpdateItem"): sum(self.chance.values()),
                ("unit", "wru"): sum(chance * write_units(self.item_bytes[flow])
                                     for flow, chance in self.chance.items())}


def counter_writes(month: Mapping[str, int], per_batch: float) -> CounterWrites:
    messages = queue_messages(month)
    return CounterWrites(batches=messages / per_batch, chance=flows_per_batch(FLOW_MIX, messages, per_batch),
                         item_bytes={flow: item_size(fullest_counter_item(_WORKSPACE_ID, flow, BUILTIN_FLOWS[flow]))
                                     for flow in FLOW_MIX},
                         deliveries=sum(sum(kinds.values()) for kinds in FLOW_MIX.values()),
                         item_bytes_before={flow: item_size(fullest_counter_item(
                             _WORKSPACE_ID, flow, BUILTIN_FLOWS[flow], long_counter_attribute)) for flow in FLOW_MIX})


@dataclass(frozen=True)
class CostLine:
    component: str
    dollars: Decimal


def monthly_cost(per_step: Mapping[str, Counts], month: Mapping[str, int | float]) -> list[CostLine]:
    """Infrastructure dollars a month: each step kind's measured units times how often the month does it, at
    the list prices; one line per billed component, then the delivery fees apart (not in the total)."""
    billed: dict[str, Decimal] = {unit: Decimal(0) for unit in PRICES}
    for kind, times in month.items():
        for key, amount in per_step.get(kind, {}).items():
            if key[0] == "unit" and key[1] in billed:
                billed[key[1]] += Decimal(str(amount)) * Decimal(str(times))
    lines = [CostLine(f"{name} ({billed[unit] / 1_000_000:,.2f}M)", _cents(billed[unit] * price / 1_000_000))
             for unit, (name, price) in PRICES.items()]
    lines.append(CostLine("total, infrastructure", sum((line.dollars for line in lines), Decimal(0))))
    emails = _sent(per_step, month, "ses")
    texts = _sent(per_step, month, "sms")
    lines.append(CostLine(f"SES delivery, apart ({emails:,.0f} emails at $0.10/1,000)", _cents(emails * SES_PER_EMAIL)))
    lines.append(CostLine(f"SNS SMS delivery, apart ({texts:,.0f} messages at ${SMS_PER_MESSAGE} + carrier fees)",
                          _cents(texts * SMS_PER_MESSAGE)))
    return lines


def _sent(per_step: Mapping[str, Counts], month: Mapping[str, int | float], unit: str) -> Decimal:
    return sum((Decimal(str(per_step.get(kind, {}).get(("unit", unit), 0))) * Decimal(str(times))
                for kind, times in month.items()), Decimal(0))


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def flow_units(service: str, operation: str, params: dict[str, Any]) -> dict[str, float]:
    """What a flows request is billed as beyond ingest_path's units: an email, an SMS."""
    if service == "sesv2" and operation == "SendEmail":
        return {"ses": 1}
    if service == "sns" and operation == "Publish" and params.get("PhoneNumber"):
        return {"sms": 1}
    return {}


MESSAGES = ("msg", "flows queue")  # messages the flows function received (a key of Counts, not billed)
_PER_MESSAGE = {("unit", "lambda"), ("unit", "sqs"), MESSAGES}


def per_message(counts: Counts) -> Counts:
    """A shape's figures for one flow event: its queue's units divided among the messages its webhook brought
    (a checkout brings its CheckoutStarted and another flow event no flow of the shape listens to), its reads
    all the heard event's."""
    messages = counts.get(MESSAGES, 1) or 1
    return {key: value / messages if key in _PER_MESSAGE else value for key, value in counts.items()}


def per_run(counts: Counts, runs: int) -> Counts:
    return {key: value / runs for key, value in counts.items()} if runs else {}


def minus(left: Counts, right: Counts) -> Counts:
    """``left - right``, floored at zero (a difference of shapes: one step kind's share)."""
    keys = set(left) | set(right)
    return {key: max(0.0, left.get(key, 0) - right.get(key, 0)) for key in keys
            if max(0.0, left.get(key, 0) - right.get(key, 0))}


def step_kinds(shapes: Mapping[str, Counts]) -> dict[str, Counts]:
    """Each step kind's requests and units per occurrence, from the shapes' per-run figures:
    trigger_check = an event a live flow hears and does not start on (``heard``: every flow event of a store
    whose flows are live, as the reference store's are), per flow event; run_start = a one-step [exit] flow
    less ``heard``'s webhook (whose other flow events, a segment entry, are the month's own trigger checks);
    email / sms / tag = that one-step flow less [exit]; delay = [delay, email] less [email]; exit_on_event =
    [delay, email] whose run an order ends, less [exit], the delay and the order's own check (counted with the
    trigger checks)."""
    check = shapes["heard"]
    started = shapes["exit"]
    kinds = {"trigger_check": per_message(check), "run_start": minus(started, check)}
    for kind in ("email", "sms", "tag"):
        if kind in shapes:
            kinds[kind] = minus(shapes[kind], started)
    kinds["delay"] = minus(shapes["delay_email"], shapes["email"])
    kinds["exit_on_event"] = minus(shapes["delay_exit"], add(started, kinds["delay"], check))
    return kinds


# --- (a), (b) measured on the local runtime ------------------------------------------------------------------------


# shape -> the last step of each run item the flows function put -> (bytes stored, bytes as stored before)
RunSizes = dict[str, dict[str, list[tuple[int, int]]]]


def run_item_before(run: FlowRun) -> Item:
    """A run's item as stored before (issue 12's flowrun lane): its whole JSON zlib-compressed and base64'd."""
    packed = base64.b64encode(zlib.compress(run.model_dump_json().encode(), 9)).decode()
    item = {**run_item(run), "run_z": {"S": packed}}
    del item[PACKED_RUN]
    return item


def counter_write(service: str, operation: str, params: dict[str, Any]) -> bool:
    """An UpdateItem of a flow's counters item (keys.flow_counters)."""
    return service == "dynamodb" and operation == "UpdateItem" and "#FLOWSTATS#" in str(
        params.get("Key", {}).get("pk", {}).get("S", ""))


class FlowsMeter(Meter):
    """ingest_path's Meter, counting only while this thread runs the flows function; and when each email left."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()
        self.sends: dict[str, float] = {}  # recipient -> perf_counter of SES's answer
        # (perf_counter, detail-type) of what the outbox sent to the flows queue (SendMessageBatch) or the bus
        self.published: list[tuple[float, str]] = []
        self.records_per_batch = RECORDS_PER_BATCH
        self.events_per_send = EVENTS_PER_SEND
        # The counters' writes left out (a design that writes them per batch: priced by counter_writes, since
        # the local poller's batches are not the month's)
        self.counters_apart = False
        self.shape = ""  # the shape being measured, for run_sizes
        self.profiles: dict[str, list[str]] = {}  # workspace -> the profiles of the flow events the outbox sent
        self.run_sizes: RunSizes = {}

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        service, operation = model.service_model.service_name, model.name
        params = context.get("bench_params", {})
        now = time.perf_counter()
        if service == "sesv2" and operation == "SendEmail":
            for address in params.get("Destination", {}).get("ToAddresses", []):
                self.sends.setdefault(address.lower(), now)
        if service == "events" and operation == "PutEvents":
            self.published += [(now, str(e.get("DetailType"))) for e in params.get("Entries", [])]
        if service == "sqs" and operation == "SendMessageBatch":
            bodies = [json.loads(e["MessageBody"]) for e in params.get("Entries", [])
                      if '"source":"crm"' in e.get("MessageBody", "")]
            self.published += [(now, str(body.get("detail-type"))) for body in bodies]
            for detail in (body.get("detail", {}) for body in bodies):
                if detail.get("profile_id"):
                    self.profiles.setdefault(str(detail.get("workspace_id")), []).append(str(detail["profile_id"]))
        if getattr(self.local, "flows", False) and not (self.counters_apart and counter_write(service, operation,
                                                                                              params)):
            super()._after(parsed, model, context, **kwargs)
            for unit, amount in flow_units(service, operation, params).items():
                self.counts["unit", unit] += amount  # type: ignore[assignment]
            if self.shape and service == "dynamodb" and operation == "PutItem" and str(params.get("Item", {}).get(
                    "sk", {}).get("S", "")).startswith(keys.FLOW_RUN_PREFIX):
                run = run_of_item(params["Item"])
                step = run.steps[-1].step_id if run.steps else "(started)"
                self.run_sizes.setdefault(self.shape, {}).setdefault(step, []).append(
                    (item_size(params["Item"]), item_size(run_item_before(run))))

    def invoking(self, records: Iterable[dict[str, Any]]) -> None:
        """One invocation of the flows function, on its way in: Lambda, and the queue's own requests, per message
        at ``records_per_batch`` (the local poller's batches depend on timing, so they are not what is counted:
        the designs compare on what they read and write)."""
        batch = list(records)
        self.counts[MESSAGES] += len(batch)
        self.counts["unit", "lambda"] += len(batch) / self.records_per_batch  # type: ignore[assignment]
        # The event source mapping's receive and delete, and each message's send: a wake-up's by the Scheduler
        # (also one Scheduler invocation), a flow event's share of the outbox's SendMessageBatch (before issue 12,
        # the bus rule's SendMessage each). SQS bills them all.
        wakes = sum(1 for r in batch if '"wake"' in str(r.get("body", "")))
        sends = wakes + (len(batch) - wakes) / self.events_per_send
        self.counts["unit", "sqs"] += sends + len(batch) * 2 / self.records_per_batch  # type: ignore[assignment]
        self.counts["unit", "scheduler"] += wakes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Workspace:
    """A Shopify store in a workspace of its own, with one flow shape live."""

    api_url: str
    domain: str
    api_key: str
    workspace_id: str = ""
    flow_id: str | None = None
    shoppers: list[str] = field(default_factory=list)

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http(method, self.api_url + path, json.dumps(body).encode() if body is not None else None,
                    {"x-api-key": self.api_key, "Content-Type": "application/json"})

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.api(method, path, body)
        if status not in (200, 201, 202):
            raise RuntimeError(f"{method} {path} answered {status}: {answer}")
        return answer

    def webhook(self, topic: str, payload: dict[str, Any]) -> None:
        body = compact(payload)
        status, answer = http("POST", f"{self.api_url}/webhooks/shopify", body, shopify_headers(
            body, secret=SECRET, topic=topic, domain=self.domain, delivery_id=str(uuid.uuid4()),
            triggered_at=utc_now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
        if status != 200:
            raise RuntimeError(f"webhook {topic} answered {status}: {answer}")


def _customer(email: str, account: int, phone: str | None) -> dict[str, Any]:
    at = utc_now().isoformat()
    consent = {"state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": at}
    return {"id": account, "email": email, "phone": phone, "first_name": "Ada", "last_name": "Lovelace",
            "created_at": at, "updated_at": at, "state": "enabled", "verified_email": True, "currency": "USD",
            "addresses": [], "email_marketing_consent": consent,
            **({"sms_marketing_consent": consent} if phone else {})}


def _checkout(email: str, phone: str | None, domain: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(shopify_fixture("checkouts/create"))
    token, at = uuid.uuid4().hex, utc_now().isoformat()
    payload.update(token=token, cart_token=f"cart-{token}", email=email, phone=phone, created_at=at, updated_at=at,
                   buyer_accepts_marketing=False, buyer_accepts_sms_marketing=False, sms_marketing_phone=None,
                   completed_at=None, customer=None, note_attributes=[],
                   abandoned_checkout_url=f"https://{domain}/checkouts/{token}/recover?key=k{token}")
    return payload


def _order(email: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(shopify_fixture("orders/create"))
    at, order_id = utc_now().isoformat(), uuid.uuid4().int % 10**13
    payload.update(id=order_id, name=f"#{order_id % 10000}", email=email, contact_email=email, created_at=at,
                   processed_at=at, updated_at=at, cancelled_at=None, cancel_reason=None, financial_status="paid",
                   buyer_accepts_marketing=False, customer=None, test=False)
    return payload


# A live flow the checkouts are heard by but never start (the profile it is for never matches: read, as a
# re-entry rule or a filter refuses the month's trigger checks), and one they are not heard by at all (it starts
# on a fulfilment and has no exits). Before issue 12's flowcut lane the heard flow's trigger filter refused them
# (NEVER_HOLDS): that is now decided on the event alone (crm.flows.catalogue.hears), reading nothing.
NEVER_HOLDS = [{"property": "checkout_id", "op": "eq", "value": "no-such-checkout"}]
NEVER_MATCHES = {"field": "orders_count", "op": "gte", "value": 1_000_000}
SEGMENT_STARTED = "builtin:vip"  # segment_other's flow starts on entering it; its events enter another
SEGMENT_OTHER = "builtin:window_shoppers"
SHAPES: dict[str, dict[str, Any] | None] = {
    "no_flow": None,
    "no_flow_order": None,  # orders, not checkouts: attribution in a workspace that never saved a flow
    "heard": {"profile_filter": NEVER_MATCHES, "steps": [{"kind": "exit", "id": "done"}]},
    "heard_filtered": {"trigger": {"kind": "event", "event": "CheckoutStarted", "where": NEVER_HOLDS},
                       "steps": [{"kind": "exit", "id": "done"}]},
    # Entries of a segment no flow starts on (every membership a refresh or a run moves reaches the flows queue),
    # in a workspace whose live flow starts on another segment's: per entry, not per run.
    "segment_other": {"trigger": {"kind": "segment", "segment_id": SEGMENT_STARTED, "on": "entered"},
                      "steps": [{"kind": "exit", "id": "done"}]},
    "unheard": {"trigger": {"kind": "event", "event": "OrderFulfilled"}, "steps": [{"kind": "exit", "id": "done"}]},
    "exit": {"steps": [{"kind": "exit", "id": "done"}]},
    "email": {"steps": [{"kind": "email", "id": "mail", "template_id": EMAIL_TEMPLATE, "smart_sending": False}]},
    "tag": {"steps": [{"kind": "tag", "id": "label", "tag": "bench"}]},
    "sms": {"steps": [{"kind": "sms", "id": "text", "template_id": SMS_TEMPLATE_ID, "smart_sending": False}]},
    "delay_email": {"steps": [{"kind": "delay", "id": "wait", "duration": "PT1H"},
                              {"kind": "email", "id": "mail", "template_id": EMAIL_TEMPLATE, "smart_sending": False}]},
    "delay_exit": {"exits": [{"event": "OrderPlaced"}],
                   "steps": [{"kind": "delay", "id": "wait", "duration": "PT1H"},
                             {"kind": "email", "id": "mail", "template_id": EMAIL_TEMPLATE, "smart_sending": False}]},
}


class FlowsBench:
    def __init__(self, runtime: Any, meter: FlowsMeter) -> None:
        self.runtime, self.meter = runtime, meter
        self.numbers = 0

    def idle(self) -> None:
        if not self.runtime.wait_idle(timeout=300):
            raise RuntimeError("the stack did not go idle within 300 s")

    def workspace(self, name: str, shape: dict[str, Any] | None) -> Workspace:
        domain = f"{DOMAIN_PREFIX}-{name.replace('_', '-')}.myshopify.com"
        registered = add_store(self.runtime.stack_name, "shopify", domain, SECRET)
        workspace = Workspace(self.runtime.api_url, domain, registered.api_key, registered.workspace_id)
        workspace.ok("PUT", "/settings/messaging", SENDER)
        if shape is not None:
            if any(s.get("template_id") == SMS_TEMPLATE_ID for s in shape["steps"]):
                workspace.ok("POST", "/templates", {"id": SMS_TEMPLATE_ID, **SMS_TEMPLATE})
            definition = {"name": f"bench {name}", "trigger": {"kind": "event", "event": "CheckoutStarted"},
                          "reentry": {"mode": "every_time"}, **shape}
            created = workspace.ok("POST", "/flows", definition)
            workspace.flow_id = str(created["id"])
            workspace.ok("PUT", f"/flows/{quote(workspace.flow_id, safe=':')}/status", {"status": "live"})
        return workspace

    def shoppers(self, workspace: Workspace, count: int, phones: bool) -> list[tuple[str, str | None]]:
        """Accounts with email (and SMS) consent, made before the measuring starts."""
        made = []
        for _ in range(count):
            self.numbers += 1
            email = f"shopper{self.numbers}@bench-flows.example"
            phone = f"+1212736{self.numbers % 10000:04d}" if phones else None
            workspace.webhook("customers/create", _customer(email, 9_100_000_000_000 + self.numbers, phone))
            made.append((email, phone))
        self.idle()
        return made

    def shape(self, name: str, runs: int, design: str) -> Counts:
        """Requests and units per run of one flow shape (the flows function only), in a workspace of its own."""
        shape = SHAPES[name]
        self.meter.shape = name if design == DESIGNS[-1] else ""
        workspace = self.workspace(f"{design}-{name}", shape)
        shoppers = self.shoppers(workspace, runs, phones=name == "sms")
        if name == "segment_other":
            return self.segment_entries(workspace, shoppers, runs)
        mark = self.meter.mark()
        for email, phone in shoppers:
            if name == "no_flow_order":
                workspace.webhook("orders/create", _order(email))
            else:
                workspace.webhook("checkouts/create", _checkout(email, phone, workspace.domain))
        self.idle()
        if name == "delay_exit":
            for email, _ in shoppers:
                workspace.webhook("orders/create", _order(email))
            self.idle()
        if shape is not None and shape["steps"][0]["kind"] == "delay":
            self.runtime.advance_clock(timedelta(hours=1, minutes=5))
            self.idle()
        return per_run(self.meter.since(mark), runs)

    def segment_entries(self, workspace: Workspace, shoppers: list[tuple[str, str | None]], runs: int) -> Counts:
        """Each shopper enters SEGMENT_OTHER: the SegmentEntered the outbox would send for a member item, put on
        the flows queue as it does (crm.adapters.outbox_targets). The shoppers' checkouts before the mark name
        their profiles (no flow of the workspace hears a checkout)."""
        for email, phone in shoppers:
            workspace.webhook("checkouts/create", _checkout(email, phone, workspace.domain))
        self.idle()
        profiles = sorted(set(self.meter.profiles.get(workspace.workspace_id, [])))
        if len(profiles) != len(shoppers):
            raise RuntimeError(f"{len(profiles)} profiles seen for {len(shoppers)} shoppers")
        mark = self.meter.mark()
        queue = SqsFlowEvents(self.runtime.provisioned.physical["FlowsQueue"].ref)
        queue.publish([SegmentEntered(event_id=f"SegmentEntered:{workspace.workspace_id}:{profile}",
                                      workspace_id=workspace.workspace_id, profile_id=profile,
                                      occurred_at=utc_now(), segment_id=SEGMENT_OTHER) for profile in profiles])
        self.idle()
        return per_run(self.meter.since(mark), runs)

    def latency(self, runs: int) -> tuple[list[float], list[float]]:
        """Seconds from the webhook's POST to SES's answer (a live [email] flow), and to the CheckoutStarted
        event's send by the outbox (the baseline: the event out before the flows hop), one checkout at a time."""
        workspace = self.workspace("latency", SHAPES["email"])
        shoppers = self.shoppers(workspace, runs, phones=False)
        to_send, to_bus = [], []
        for email, _ in shoppers:
            published = len(self.meter.published)
            started = time.perf_counter()
            workspace.webhook("checkouts/create", _checkout(email, None, workspace.domain))
            deadline = started + 60
            while email not in self.meter.sends and time.perf_counter() < deadline:
                time.sleep(0.002)
            if email not in self.meter.sends:
                raise RuntimeError(f"no email to {email} within 60 s")
            to_send.append(self.meter.sends[email] - started)
            bus = [t for t, kind in self.meter.published[published:] if kind == "CheckoutStarted"]
            to_bus.append((bus[0] if bus else self.meter.sends[email]) - started)
            self.idle()
        return to_send, to_bus


def run(latency_runs: int, shape_runs: int) -> tuple[list[float], list[float], dict[str, dict[str, Counts]], RunSizes]:
    fake_aws_environment()
    os.environ.pop("AWS_ENDPOINT_URL", None)
    meter = FlowsMeter()
    with LocalRuntime(port=free_port(), aws_port=free_port(), stack_name="bench-flows", workers=False) as runtime:
        for service in SERVICES:
            meter.attach(clients.client(service))
        flows = next((p.function for p in runtime.pollers if p.function.spec.logical_id == FLOWS_FUNCTION), None)
        if flows is None:
            raise RuntimeError(f"the template has no {FLOWS_FUNCTION} with an event source")
        original: Callable[[dict[str, Any]], Any] = flows.invoke

        def invoke(event: dict[str, Any]) -> Any:
            meter.invoking(event.get("Records", []))
            meter.local.flows = True
            try:
                return original(event)
            finally:
                meter.local.flows = False

        flows.invoke = invoke  # type: ignore[method-assign]
        bench = FlowsBench(runtime, meter)
        to_send, to_bus = bench.latency(latency_runs)
        designs = {}
        for design in DESIGNS:
            meter.records_per_batch = 1 if design == "today" else RECORDS_PER_BATCH_BEFORE
            meter.events_per_send = 1 if design == "today" else EVENTS_PER_SEND
            meter.counters_apart = design != "today"
            with design_in_place(design, runtime):
                designs[design] = {name: bench.shape(name, shape_runs, design) for name in SHAPES}
    return to_send, to_bus, with_window(designs), meter.run_sizes


def with_window(designs: Mapping[str, dict[str, Counts]]) -> dict[str, dict[str, Counts]]:
    """The measured designs (every one but today's at the window before, WINDOW_BEFORE_S) with this design at
    the template's window too: the same requests, its batches' share of the queue and the invocations at
    RECORDS_PER_BATCH (the local poller's batches are not AWS's, so a window is priced, not measured)."""
    ours = designs["held"]
    return {**{design: shapes for design, shapes in designs.items() if design != "held"}, "window_before": ours,
            "held": {name: at_batch(counts, RECORDS_PER_BATCH_BEFORE, RECORDS_PER_BATCH)
                     for name, counts in ours.items()}}


# today's baseline (bench/flows_today.py, commit 0ccbb87); the ledger's labelled before (bench/flows_ledger_before.py:
# an email's record apart from its timeline line); this design with its runs read as before the flowreads lane
# (bench/flows_reads_before.py); then this design (the last: its shapes are the run sizes' too)
DESIGNS = ("today", "three_writes", "reads_before", "hears_before", "held")
DESIGN_LABELS = {"today": "before: today's design (baseline, commit 0ccbb87; batches of 1)",
                 "held": f"after: catalogue held, unheard events read nothing, no SES Delivery events, "
                         f"batches of {RECORDS_PER_BATCH_BEFORE:.1f}, counter rows folded, flow events sent by the "
                         f"outbox ({EVENTS_PER_SEND:.1f} a SendMessageBatch), an email's record its timeline line; "
                         f"counter writes apart (below)",
                 "three_writes": "before: as after, but an email's record an item apart from its timeline line "
                                 "(claim, record, line: 3 writes an email)"}
DESIGN_LABELS["reads_before"] = ("before: " + DESIGN_LABELS["held"].removeprefix("after: ") + "; a wake-up reads "
                                 "its run by GetItem and every send's Smart Sending Queries the runs again")
DESIGN_LABELS["held"] += "; a delivery reads the profile's runs once (a wake-up's run among them)"
DESIGN_LABELS["hears_before"] = ("before: " + DESIGN_LABELS["held"].removeprefix("after: ") + "; a start heard by "
                                 "the event's type alone (a segment entry of any segment, a trigger its filter "
                                 "refuses: the profile and its runs read)")
DESIGN_LABELS["window_before"] = ("before: " + DESIGN_LABELS["held"].removeprefix("after: ")
                                  + f" (the flows queue's batching window {WINDOW_BEFORE_S:.0f} s)")
DESIGN_LABELS["held"] = (DESIGN_LABELS["held"].replace(f"batches of {RECORDS_PER_BATCH_BEFORE:.1f}",
                                                       f"batches of {RECORDS_PER_BATCH:.1f}")
                         + f" (the flows queue's batching window {flows_source(TEMPLATE).window_s:.0f} s)")
# The month is priced three ways: today's baseline as measured; this design with its counters written per
# delivery (issue 12's fifth pass: one UpdateItem of each counting delivery, 1 WRU as the meter prices it); and
# with them written per batch (crm.flows.batch_counts), at each flow's fullest item.
PRICED = ("today", "per_delivery", "long_names", "three_writes", "reads_before", "window_before", "held")
PRICED_LABELS = {"today": DESIGN_LABELS["today"],
                 "per_delivery": "counters per delivery (fifth pass)",
                 "long_names": "before: counters per batch, long names",
                 "three_writes": "before: an email's record apart from its line",
                 "reads_before": "before: runs read again by a wake-up and each send",
                 "window_before": f"before: a {WINDOW_BEFORE_S:.0f} s batching window",
                 "held": f"after: a {flows_source(TEMPLATE).window_s:.0f} s batching window"}


def priced(kinds: Mapping[str, Mapping[str, Counts]], month: Mapping[str, int] = REFERENCE_MONTH,
           per_batch: float = RECORDS_PER_BATCH, per_batch_before: float = RECORDS_PER_BATCH_BEFORE,
           ) -> dict[str, tuple[dict[str, Counts], dict[str, int | float]]]:
    """Each priced design's step kinds and month (the counters' writes a kind of their own, COUNTER_FLUSH, and
    the pollers' idle receives, IDLE_RECEIVES): this design's at ``per_batch`` messages a batch, the designs
    before it at ``per_batch_before`` (the window before, WINDOW_BEFORE_S)."""
    writes, writes_before = counter_writes(month, per_batch), counter_writes(month, per_batch_before)

    def batched(by_kind: Mapping[str, Counts], counter_flush: Counts, at: float,
                flushes: float) -> tuple[dict[str, Counts], dict[str, int | float]]:
        return ({**by_kind, COUNTER_FLUSH: counter_flush, IDLE_RECEIVES: IDLE_RECEIVE},
                {**month, COUNTER_FLUSH: flushes, IDLE_RECEIVES: idle_receives(month, at)})

    ours, before = dict(kinds["held"]), dict(kinds.get("window_before", kinds["held"]))
    one_write: Counts = {("req", "dynamodb", "UpdateItem"): 1.0, ("unit", "wru"): 1.0}
    designs: dict[str, tuple[dict[str, Counts], dict[str, int | float]]] = {
        "today": (dict(kinds["today"]), dict(month)),
        "per_delivery": batched(before, one_write, per_batch_before, writes_before.deliveries),
        "long_names": batched(before, writes_before.per_batch_before, per_batch_before, writes_before.batches)}
    for earlier in ("three_writes", "reads_before", "window_before"):
        if earlier in kinds:
            designs[earlier] = batched(kinds[earlier], writes_before.per_batch, per_batch_before,
                                       writes_before.batches)
    return {**designs, "held": batched(ours, writes.per_batch, per_batch, writes.batches)}


def hears_by_type(flows: Iterable[FlowRecord], event: FlowEvent) -> bool:
    """BEFORE (labelled): crm.flows.catalogue.listens_to until issue 12's flowcut lane: any saved flow whose
    trigger, exits or waits name the event's type hears it, whatever its segment or the trigger's filter."""
    return any(event.type in event_types(flow.definition) for flow in flows if flow.version > 0)


@contextmanager
def design_in_place(design: str, runtime: Any) -> Iterator[None]:
    """The flows function's services as the design builds them (the handler asks crm.wiring per record), and
    the SES events the design's rule brings to the flows queue."""
    if design == "hears_before":
        # The service module's own name for it (it imports hears from crm.flows.catalogue).
        names = vars(flows_service_module)
        heard = names["hears"]
        names["hears"] = hears_by_type
        try:
            yield
        finally:
            names["hears"] = heard
        return
    if design == "reads_before":
        built_service = wiring.flows_service
        wiring.flows_service = flows_reads_before.flows_service
        try:
            yield
        finally:
            wiring.flows_service = built_service
        return
    if design == "held":
        yield
        return
    ledger = wiring.message_ledger
    wiring.message_ledger = flows_ledger_before.ThreeWritesLedger  # type: ignore[assignment]
    if design == "three_writes":
        try:
            yield
        finally:
            wiring.message_ledger = ledger
        return
    built = wiring.flows_service, wiring.conversions_service, wiring.feedback_deps
    wiring.flows_service, wiring.conversions_service = flows_today.flows_service, flows_today.conversions_service
    wiring.feedback_deps = flows_today.feedback_deps
    rule = runtime.provisioned.physical[SES_RULE].ref
    events = clients.client("events")
    pattern = json.loads(events.describe_rule(Name=rule, EventBusName="default")["EventPattern"])
    events.put_rule(Name=rule, EventBusName="default",
                    EventPattern=json.dumps({**pattern, "detail-type": flows_today.SES_EVENTS_TODAY}))
    try:
        yield
    finally:
        events.put_rule(Name=rule, EventBusName="default", EventPattern=json.dumps(pattern))
        wiring.message_ledger = ledger
        wiring.flows_service, wiring.conversions_service, wiring.feedback_deps = built


# --- the report ------------------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _row(label: str, counts: Counts) -> str:
    requests = sum(v for k, v in counts.items() if k[0] == "req")
    units = {k[1]: v for k, v in counts.items() if k[0] == "unit"}
    ops = ", ".join(f"{k[2]} {v:.2f}" for k, v in sorted(counts.items()) if k[0] == "req" and v >= 0.005)
    return (f"| {label} | {requests:.2f} | {units.get('rru', 0):.2f} | {units.get('wru', 0):.2f} | "
            f"{units.get('sqs', 0):.2f} | {units.get('scheduler', 0):.2f} | {ops} |")


def print_report(to_send: list[float], to_bus: list[float], designs: dict[str, dict[str, Counts]]) -> None:
    print("## (a) webhook arrival to the SES send, a live flow whose first step is an email (no wait)\n")
    for label, values in (("webhook -> SES SendEmail", to_send),
                          ("baseline: webhook -> outbox's send", to_bus)):
        p50, p95 = percentile(values, 0.5) * 1000, percentile(values, 0.95) * 1000
        print(f"{label:<45} p50 {p50:7.0f} ms   p95 {p95:7.0f} ms   (n = {len(values)})")
    ratio = statistics.median(to_send) / statistics.median(to_bus)
    print(f"{'ratio to the baseline':<45} p50 {ratio:.2f}x")
    print("\n## (b) the flows function's AWS requests and units, per run of each shape and per step kind\n")
    print("shapes: no_flow / no_flow_order = checkouts / paid orders in a workspace that never saved a flow; heard = "
          "checkouts a live flow hears and never starts on (its profile filter refuses them); heard_filtered = "
          "checkouts its trigger filter refuses; segment_other = entries of a segment no flow starts on, where a "
          "live flow starts on another's; unheard = checkouts in a workspace whose live flow "
          "listens to fulfilments only; the rest start the named steps. Each design in workspaces of its own.")
    header = "| {} | requests | RRU | WRU | SQS req | Scheduler | by operation |\n|---|--:|--:|--:|--:|--:|---|"
    kinds = {design: step_kinds(shapes) for design, shapes in designs.items()}
    for design, shapes in designs.items():
        print(f"\n### {DESIGN_LABELS[design]}\n")
        print(header.format("shape (per run)"))
        for name, counts in shapes.items():
            print(_row(name, counts))
        print("\n" + header.format("step kind (per occurrence)"))
        for name, counts in kinds[design].items():
            print(_row(name, counts))
    if "hears_before" in designs:
        print("\n" + "\n".join(what_a_start_hears(designs)))
    print("\n## (c) monthly cost of flows, DESIGN.md's reference store (300k checkouts, 150k abandoned, 1M messages)\n")
    print("assumed month: " + ", ".join(f"{kind} {times:,}" for kind, times in REFERENCE_MONTH.items()))
    print_counter_writes(counter_writes(REFERENCE_MONTH, RECORDS_PER_BATCH),
                         counter_writes(REFERENCE_MONTH, RECORDS_PER_BATCH_BEFORE))
    print_window(REFERENCE_MONTH)
    costs = {design: monthly_cost(by_kind, month) for design, (by_kind, month) in priced(kinds).items()}
    print("\n| component | " + " | ".join(f"{PRICED_LABELS[d]} $/month" for d in costs) + " |")
    print("|---|" + "--:|" * len(costs))
    for lines in zip(*costs.values(), strict=True):
        print(f"| {lines[-1].component} | " + " | ".join(str(line.dollars) for line in lines) + " |")
    total = {design: next(line.dollars for line in lines if line.component == "total, infrastructure")
             for design, lines in costs.items()}
    print(f"\nflows' own requests, reference store: ${total['held']} per month ({WINDOW_BEFORE_S:.0f} s batching "
          f"window, before: ${total['window_before']}; runs read again, before: "
          f"${total['reads_before']}; an email's record apart from its line, before: ${total['three_writes']}; "
          f"long counter names, before: ${total['long_names']}; counters per delivery "
          f"${total['per_delivery']}; today's design ${total['today']})")


# What crm.flows.catalogue.hears decides on the event alone, per event: (shape, what it is)
HEARD_ALONE = (("segment_other", f"an entry of a segment no flow starts on ({SEGMENT_OTHER}; the live flow starts on "
                                 f"{SEGMENT_STARTED})"),
               ("heard_filtered", "a checkout the live flow's trigger filter refuses"))


def start_heard(designs: Mapping[str, Mapping[str, Counts]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per event of each HEARD_ALONE shape: requests and read units, heard by the type alone (before) and by
    the trigger (after)."""
    def figures(counts: Counts) -> dict[str, float]:
        return {"requests": sum(v for k, v in counts.items() if k[0] == "req"), "rru": counts.get(("unit", "rru"), 0)}
    return {shape: {"before": figures(designs["hears_before"][shape]), "after": figures(designs["held"][shape])}
            for shape, _ in HEARD_ALONE}


def what_a_start_hears(designs: Mapping[str, Mapping[str, Counts]]) -> list[str]:
    heard = start_heard(designs)
    lines = ["### a start heard on the event alone (crm.flows.catalogue.hears), per event, before -> after\n",
             "| event | requests | RRU |\n|---|--:|--:|"]
    for shape, what in HEARD_ALONE:
        before, after = heard[shape]["before"], heard[shape]["after"]
        lines.append(f"| {what} | {before['requests']:.2f} -> {after['requests']:.2f} | "
                     f"{before['rru']:.2f} -> {after['rru']:.2f} |")
    return lines


def print_counter_writes(writes: CounterWrites, at_window_before: CounterWrites) -> None:
    """The counters' writes at the template's window; the long names' labelled before at the window before, as
    that design is priced."""
    print(f"\ncounter writes ({COUNTER_FLUSH}): {writes.batches:,.0f} batches a month of {RECORDS_PER_BATCH:.1f} "
          f"messages; the month's counting deliveries by flow: " + ", ".join(
              f"{flow.removeprefix('builtin:')} {sum(kinds.values()):,}" for flow, kinds in FLOW_MIX.items()))
    print("\n| flow | counted on in a batch | fullest item, before: long names | WRU a write | fullest item, after: "
          "short names | WRU a write |\n|---|--:|--:|--:|--:|--:|")
    for flow, chance in writes.chance.items():
        before, after = writes.item_bytes_before[flow], writes.item_bytes[flow]
        print(f"| {flow} | {chance:.2f} | {before:,} B | {write_units(before):.0f} | {after:,} B | "
              f"{write_units(after):.0f} |")
    batch = writes.per_batch
    writes_a_batch, wru_a_batch = batch["req", "dynamodb", "UpdateItem"], batch["unit", "wru"]
    print(f"\nper batch: {writes_a_batch:.2f} writes, {wru_a_batch:.2f} WRU; a month: "
          f"{writes.batches * writes_a_batch / 1e6:.2f}M writes, {writes.batches * wru_a_batch / 1e6:.2f}M WRU "
          f"(per delivery: {writes.deliveries / 1e6:.2f}M writes, {writes.deliveries / 1e6:.2f}M WRU at 1 a write; "
          f"before, long names, batches of {RECORDS_PER_BATCH_BEFORE:.1f}: "
          f"{at_window_before.wru_per_batch_before:.2f} WRU a batch, "
          f"{at_window_before.batches * at_window_before.wru_per_batch_before / 1e6:.2f}M WRU a month)")


def print_window(month: Mapping[str, int]) -> None:
    """The flows queue's batches a month at the window before and the template's: what a batch shares."""
    print(f"\nthe flows queue's batching window ({queue_messages(month) / 1e6:.2f}M messages a month, "
          f"{SQS_POLLERS} pollers long-polling {LONG_POLL_S} s):\n")
    print("| window | messages a batch | batches = deletes = invocations | receives (at least the idle polls) | "
          "counter writes | counter WRU |\n|---|--:|--:|--:|--:|--:|")
    for label, at in ((f"before: {WINDOW_BEFORE_S:.0f} s", RECORDS_PER_BATCH_BEFORE),
                      (f"after: {flows_source(TEMPLATE).window_s:.0f} s", RECORDS_PER_BATCH)):
        writes = counter_writes(month, at)
        batches = writes.batches
        print(f"| {label} | {at:.1f} | {batches / 1e6:.3f}M | {(batches + idle_receives(month, at)) / 1e6:.3f}M | "
              f"{batches * writes.per_batch['req', 'dynamodb', 'UpdateItem'] / 1e6:.3f}M | "
              f"{batches * writes.per_batch['unit', 'wru'] / 1e6:.3f}M |")


def print_run_sizes(sizes: RunSizes) -> None:
    print("\n## the run item's size at each save (this design's shapes), packed against before in the same run\n")
    print("before: the run's whole JSON zlib-compressed and base64'd (run_z); after: without its defaults, deflated "
          "against crm.adapters.items' flow-run dictionary, Binary (packed)\n")
    print("| shape | saved after step | saves | before: bytes (max) | WRU | after: bytes (max) | WRU |\n"
          "|---|---|--:|--:|--:|--:|--:|")
    for shape, steps in sizes.items():
        for step, pairs in steps.items():
            after, before = max(p[0] for p in pairs), max(p[1] for p in pairs)
            print(f"| {shape} | {step} | {len(pairs)} | {before:,} | {write_units(before):.0f} | {after:,} | "
                  f"{write_units(after):.0f} |")


# Runs a profile holds (every run it ever had stays in its partition: nothing expires them)
RUNS_HELD = (1, 6, 12, 30, 100)


def runs_read(run_bytes: int, month: Mapping[str, int] = REFERENCE_MONTH) -> list[tuple[int, int, float, Decimal]]:
    """What a trigger check's Query of the profile's runs reads as the profile's runs accumulate: (runs held,
    bytes, RRU strongly consistent, the month's trigger checks' read dollars beyond the one unit the bench's
    shapes measure), each run at ``run_bytes``. The shapes start every profile with no run, so their 1 RRU is
    a new shopper's."""
    price = PRICES["rru"][1]
    rows = []
    for runs in RUNS_HELD:
        size = runs * run_bytes
        units = read_units(size, consistent=True)
        extra = Decimal(str(units - 1)) * month["trigger_check"] * price / 1_000_000
        rows.append((runs, size, units, _cents(extra)))
    return rows


def print_runs_read(sizes: RunSizes) -> None:
    largest = max((max(p[0] for p in pairs) for steps in sizes.values() for pairs in steps.values()), default=0)
    if not largest:
        return
    print(f"\n## a trigger check's read of the profile's runs as they accumulate (each at the largest run saved "
          f"above, {largest:,} B; strongly consistent)\n")
    print("| runs the profile holds | bytes | RRU a check's runs Query | the month's trigger checks: RRU $ beyond "
          "1 a check |\n|--:|--:|--:|--:|")
    for runs, size, units, extra in runs_read(largest):
        print(f"| {runs} | {size:,} | {units:.0f} | {extra} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency-runs", type=int, default=40)
    parser.add_argument("--shape-runs", type=int, default=20)
    args = parser.parse_args()
    started = time.perf_counter()
    to_send, to_bus, designs, run_sizes = run(args.latency_runs, args.shape_runs)
    print_report(to_send, to_bus, designs)
    print_run_sizes(run_sizes)
    print_runs_read(run_sizes)
    print(f"\n(bench ran in {time.perf_counter() - started:.0f} s)")
    kinds = {design: step_kinds(shapes) for design, shapes in designs.items()}
    designs_priced = priced(kinds)
    ours, month = designs_priced["held"]
    writes = counter_writes(REFERENCE_MONTH, RECORDS_PER_BATCH)
    record("flows", {"reference_month": REFERENCE_MONTH, "billed": billed(ours, month),
                     "monthly": monthly_cost(ours, month),
                     "counter_writes": {"batches": writes.batches, "per_batch": writes.per_batch[
                         "req", "dynamodb", "UpdateItem"], "wru_per_batch": writes.per_batch["unit", "wru"],
                         "per_delivery": writes.deliveries},
                     "before": {"billed": billed(*designs_priced["today"])},
                     "three_writes": {"billed": billed(*designs_priced["three_writes"])},
                     "per_delivery": {"billed": billed(*designs_priced["per_delivery"])},
                     "reads_before": {"billed": billed(*designs_priced["reads_before"])},
                     "window_before": {"billed": billed(*designs_priced["window_before"])},
                     "start_heard": start_heard(designs),
                     "webhook_to_send_ms": {"p50": percentile(to_send, 0.5) * 1000,
                                            "p95": percentile(to_send, 0.95) * 1000}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
