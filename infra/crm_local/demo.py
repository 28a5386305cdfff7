"""`make demo`: a simulated workspace (a Shopify and a WooCommerce store, their shoppers over months) driven
over HTTP into the embedded stack, a report of what the CRM made of it, and a check against the simulation;
then its segments: a few custom ones created over the API, every segment computed, their sizes, the RFM
groups and a CSV export, checked against the simulation where that is cheap. Beside them, once the history is
sent, each on a stack of its own: the flows (demo_flows.py: the built-ins live, checkouts abandoned, a month
fast-forwarded, what was sent checked against the simulation) and what the flows earn (demo_attribution.py:
an A/B split in the abandoned-checkout flow, reminders opened and clicked through the runtime's tracking
links, orders attributed, the stats checked against the simulation), reported after the main parts. Last,
the wall time of each phase and the requests' latencies (demo_timing.py)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http.client import HTTPConnection
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

import boto3
from crm.adapters.items import from_item
from crm.models.profile import OrderRecord, Profile
from crm.segments.rfm import GRID, GROUP_NAMES, RfmGroup

from crm_local.demo_console import ConsoleLook, demo_user, show_console, until_interrupted
from crm_local.demo_predictions import demo_predictions
from crm_local.demo_reports import draw_reports
from crm_local.demo_timing import Phases, percentile_ms
from crm_local.operations import add_store, stack_outputs
from crm_local.runtime import LocalRuntime
from crm_local.simulation import (
    BROWSE,
    CURRENCY,
    DOMAINS,
    LINKS,
    ORDERS,
    RATES,
    SHOPIFY,
    START,
    STORE_CURRENCY,
    WAVES,
    WOOCOMMERCE,
    Expected,
    Message,
    Simulation,
    Store,
    TrackBatch,
    Webhook,
    catalogue,
    simulate,
)

STACK = "crm-demo"
SECRETS = {SHOPIFY: "demo-shopify-webhook-secret", WOOCOMMERCE: "demo-woocommerce-webhook-secret"}
SENDERS = 8
SEGMENT_WORKERS = 4
DRAIN_TIMEOUT_SECONDS = 900
SEGMENTS_TIMEOUT_SECONDS = 600
EXPORT_FIELDS = ("email", "phone", "first_name", "last_name", "orders_count", "total_spent", "last_order_at")
EXPORTED = "builtin:vip"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         source_ip: str | None = None) -> tuple[int, Any]:
    """One request on a connection of its own; ``source_ip`` (any 127.x.y.z) makes it come from another client."""
    parts = urlsplit(url)
    connection = HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60,
                                            source_address=(source_ip, 0) if source_ip else None)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data or b"null")
        except json.JSONDecodeError:
            return response.status, data.decode(errors="replace")
    finally:
        connection.close()


@dataclass(frozen=True)
class Sent:
    kind: str  # "shopify", "woocommerce" or "track"
    status: int
    seconds: float
    events: int = 0


def send(api_url: str, stores: dict[str, Store], message: Message) -> Sent:
    store = stores[message.platform]
    started = time.perf_counter()
    if isinstance(message, TrackBatch):
        body = message.body(store)
        for _ in range(5):
            status, _ = http("POST", api_url + message.path, body, message.headers(store), message.client_ip)
            if status != 429:
                break
            time.sleep(1.0)  # the browser's beacon would be retried later; the demo waits a second
        return Sent("track", status, time.perf_counter() - started, len(message.events))
    status, _ = http("POST", api_url + message.path, message.body, message.headers(store))
    return Sent(message.platform, status, time.perf_counter() - started)


class EventTap:
    """A queue subscribed to every CRM event on the bus: the demo counts what the outbox put there.

    A thread empties it as the events arrive: moto's queue walks every message it holds on each receive and
    each delete, so a tap left to fill until the report (thousands of events) would cost the main process a
    receive and a delete per ten events over all of them, and slow the bus's deliveries to it meanwhile."""

    EVERY_SECONDS = 0.5

    def __init__(self, bus_name: str) -> None:
        sqs, events = boto3.client("sqs"), boto3.client("events")
        self.url = str(sqs.create_queue(QueueName="demo-event-tap")["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="demo-event-tap", EventBusName=bus_name, EventPattern=json.dumps({"source": ["crm"]}))
        events.put_targets(Rule="demo-event-tap", EventBusName=bus_name, Targets=[{"Id": "tap", "Arn": arn}])
        self.counts: Counter[str] = Counter()
        self._sqs = sqs
        self._lock = threading.Lock()  # one drainer at a time: a message is counted once
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-tap", daemon=True)

    def start(self) -> EventTap:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.wait(self.EVERY_SECONDS):
            with contextlib.suppress(Exception):  # the stack stopping under it; the report drains the rest
                self.drain()

    def drain(self) -> Counter[str]:
        """Count and delete what the queue holds now; every event counted so far."""
        with self._lock:
            while batch := self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
                for message in batch:
                    self.counts[json.loads(message["Body"])["detail-type"]] += 1
                self._sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
            return Counter(self.counts)

    def stop(self) -> Counter[str]:
        """Stop the thread, count what is left; every event published."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.drain()


def table_entities(table: str) -> dict[str, list[dict[str, Any]]]:
    """Every item by entity (the demo's own scan; the functions never scan)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            plain = from_item(item)
            found.setdefault(str(plain.get("entity")), []).append(plain)
    return found


def queue_depth(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def run_demo(shoppers: int = 250, seed: int = 7, out_dir: Path = Path("demo-output"), serve: bool = False,
             until: Callable[[], None] = until_interrupted) -> int:
    """The demo and its report, then the console's URL and sign-in; ``serve``: the main stack stays up after
    the report until ``until`` returns (Ctrl-C)."""
    phases = Phases()
    simulation = simulate(shoppers, seed)
    # The simulation replays months of storefront browsing through /track, which refuses events older than a
    # week from a live page (docs/consent.md): the demo's runtime accepts its whole span.
    os.environ["TRACK_MAX_EVENT_AGE_DAYS"] = str(max(7, (datetime.now(UTC) - START).days + 1))
    with contextlib.ExitStack() as kept:
        with PartBeside("the flows part", (*FLOWS, "--seed", str(seed))) as flows, \
                PartBeside("the attribution part", ATTRIBUTION) as attribution:
            # Their stacks start now, beside the main one's, and wait: each part runs once the history is answered.
            flows.start()
            attribution.start()
            wrong, results, drained, look = main_parts(simulation, shoppers, seed, out_dir, phases,
                                                       (flows, attribution), kept if serve else None)
            with phases.phase("the flows and attribution parts' ends awaited"):
                wrong += flows.finish()
                wrong += attribution.finish()
        phases.add("flows part, on its own stack", flows.seconds, beside=True)
        phases.add("attribution part, on its own stack", attribution.seconds, beside=True)
        phases.report(latencies(results))
        show_console(look, serve, until)
    return 0 if drained and not wrong else 1


def main_parts(simulation: Simulation, shoppers: int, seed: int, out_dir: Path, phases: Phases,
               beside: Sequence[PartBeside], keep: contextlib.ExitStack | None = None,
               ) -> tuple[list[str], list[Sent], bool, ConsoleLook]:
    """The history, its report and the segments on the main stack (the flows and attribution parts started
    beside them once the history's requests are answered); the mismatches, the requests sent, whether it drained,
    the console's demo user. ``keep``: the main stack is left running, for ``keep`` to stop."""
    # The segment runs and the currency job fan out over shares of the workspace's profiles (a share is one
    # worker's scan; 25,000 profiles each by default, so one share here): a share of about a quarter of the
    # workspace's profiles (about 1.2 a shopper), worked by four workers side by side, as Lambda scales out.
    os.environ["SEGMENT_ITEMS_PER_SHARE"] = str(max(1, -(-shoppers * 6 // 5) // SEGMENT_WORKERS))
    with contextlib.ExitStack() as running:
        runtime = running.enter_context(LocalRuntime(port=free_port(), aws_port=free_port(), stack_name=STACK,
                                                     scaled_out={"SegmentTasksFunction": SEGMENT_WORKERS}))
        print(f"local stack up: api {runtime.api_url}, aws {runtime.aws_endpoint}", flush=True)
        phases.add("simulated, stack up", phases.total(), cpu=time.process_time())
        outputs = stack_outputs(STACK)
        # The first store names its currency: the workspace reports in it (`crm store add --currency`).
        shop = add_store(STACK, SHOPIFY, DOMAINS[SHOPIFY], SECRETS[SHOPIFY], currency=STORE_CURRENCY[SHOPIFY])
        # The WooCommerce store (in EUR) joins the Shopify store's workspace (`crm store add --workspace`): one
        # shopper, one profile across both.
        woo = add_store(STACK, WOOCOMMERCE, DOMAINS[WOOCOMMERCE], SECRETS[WOOCOMMERCE], workspace_id=shop.workspace_id,
                        currency=STORE_CURRENCY[WOOCOMMERCE])
        for registered in (shop, woo):
            print(f"store {registered.platform.value:<12} {registered.domain}: store_id {registered.store_id}, "
                  f"workspace {registered.workspace_id}, api_key {registered.api_key}, "
                  f"write_key {registered.write_key}", flush=True)
        stores = {SHOPIFY: Store(SHOPIFY, shop.domain, SECRETS[SHOPIFY], shop.write_key or ""),
                  WOOCOMMERCE: Store(WOOCOMMERCE, woo.domain, SECRETS[WOOCOMMERCE], woo.write_key or "")}
        tap = EventTap(outputs["EventBusName"]).start()
        # The custom segments exist before the history: creating one starts a run of the workspace, which over
        # an empty workspace costs nothing; the event-driven refresh then keeps them current with the others,
        # and the segments part's one run computes them all (created after the history, they would cost a
        # whole run of the workspace each time, and the part's recomputation another).
        custom = create_custom_segments(Api(runtime.api_url, shop.api_key))
        print(f"simulated {shoppers} shoppers (seed {seed}): {len(simulation.messages)} requests, "
              f"{dict(sorted(simulation.counts().items()))}", flush=True)
        # Once the last request is answered no request's latency is reported: the flows and what they earn run
        # beside the main stack from then on, while it drains.
        def let_parts_go() -> None:
            for part in beside:
                part.go()

        results, sending, drained = drive(runtime, stores, simulation, phases, answered=let_parts_go)
        with phases.phase("edge cases, currency rates set and re-derived"):
            extras = edge_cases(runtime.api_url, stores)
            drained = runtime.wait_idle(timeout=DRAIN_TIMEOUT_SECONDS) and drained
            drained = set_rates(Api(runtime.api_url, shop.api_key)) and runtime.wait_idle(
                timeout=DRAIN_TIMEOUT_SECONDS) and drained
        with phases.phase("report and verification (GET /customers)"):
            # One scan of the table for the report and every check on the stored profiles after it: nothing
            # writes a profile once the queues drained (the segment runs write memberships beside them).
            profiles = report(outputs, results, sending, extras, simulation.expected, tap, drained)
            wrong = verify(runtime.api_url, shop.api_key, profiles, simulation.expected)
        with phases.phase("segments (computed, checked, exported)"):
            wrong += segments(Api(runtime.api_url, shop.api_key), custom, profiles, simulation.expected, out_dir)
        with phases.phase("predictions (fitted, shown)"):
            wrong += demo_predictions(runtime, Api(runtime.api_url, shop.api_key), outputs["TableName"],
                                      shop.workspace_id, DRAIN_TIMEOUT_SECONDS)
        with phases.phase("reports (charts drawn to demo-output/reports)"):
            wrong += draw_reports(lambda path: Api(runtime.api_url, shop.api_key).call("GET", path), out_dir,
                                  START.date())
        look = demo_user(STACK, shop.workspace_id, runtime.api_url)
        if keep is not None:
            keep.push(running.pop_all())
        stopping, stopping_cpu = time.perf_counter(), time.process_time()
    phases.add("main stack stopped", time.perf_counter() - stopping, cpu=time.process_time() - stopping_cpu)
    return wrong, results, drained, look


def latencies(results: list[Sent]) -> dict[str, list[float]]:
    """Each request's time to answer, by kind: the webhooks of both platforms together, the /track requests."""
    return {"webhooks (shopify and woocommerce)": [r.seconds for r in results if r.kind != "track"],
            "track requests": [r.seconds for r in results if r.kind == "track"]}


# The parts run beside the main stack, each on a stack of its own in a process of its own; with --wait, a part
# starts its stack, then waits for a line on its standard input before it runs.
FLOWS = (sys.executable, "-m", "crm_local.demo_flows", "--wait")
ATTRIBUTION = (sys.executable, "-m", "crm_local.demo_attribution", "--wait")


def _read_into(stream: IO[bytes], into: list[bytes]) -> None:
    into.append(stream.read())


class PartBeside:
    """A part of the demo on a stack of its own, in a process of its own, run beside the main stack's later
    parts; its report is printed, as it wrote it, once theirs are.

    The main stack's process holds moto, the pollers and the HTTP server: one process, one GIL, about one core
    busy while the functions' workers use part of the other. A part after the main ones would add its whole
    time to the demo's; beside them, it takes the core the main stack's process leaves. On the main stack,
    each clock stop of the flows (a month) and of the attribution part (a week) would also recompute the main
    workspace's segments and move its flows; on a stack of its own a part pays only for its own shoppers.
    The parts' stacks start with the main one (``start``), and wait; the parts run once the history's requests
    are answered (``go``): those latencies, which the report gives, do not share the machine with them. The
    time reported is from ``go`` to the end.
    """

    def __init__(self, name: str, command: Sequence[str]) -> None:
        self.name = name
        self.command = list(command)
        self.process: subprocess.Popen[bytes] | None = None
        self.out, self.err = b"", b""
        self.seconds = 0.0
        self._went: float | None = None
        self._waiter: threading.Thread | None = None

    def start(self) -> None:
        """Start the part's process: its stack comes up, then it waits for ``go``."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.process = subprocess.Popen(self.command, env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self._waiter = threading.Thread(target=self._wait, args=(self.process,), name=self.name, daemon=True)
        self._waiter.start()

    def go(self) -> None:
        """Let the part run (a line on its standard input, then end of input)."""
        if self.process is None or self.process.stdin is None or self._went is not None:
            return
        self._went = time.perf_counter()
        with contextlib.suppress(OSError):  # ended already (it failed to start): finish() reports its status
            self.process.stdin.write(b"go\n")
            self.process.stdin.close()

    def _wait(self, process: subprocess.Popen[bytes]) -> None:
        # Both streams read to their end, held until the main parts are reported; standard input is go's.
        assert process.stdout is not None and process.stderr is not None
        errors: list[bytes] = []
        reader = threading.Thread(target=_read_into, args=(process.stderr, errors), name=f"{self.name} stderr",
                                  daemon=True)
        reader.start()
        self.out = process.stdout.read()
        reader.join()
        self.err = b"".join(errors)
        process.wait()
        self.seconds = time.perf_counter() - (self._went or time.perf_counter())

    def finish(self) -> list[str]:
        """Wait for the part to end, print what it wrote; the mismatches (its exit status)."""
        if self.process is None or self._waiter is None:
            return [f"{self.name} did not start"]
        self.go()
        self._waiter.join()
        for held, stream in ((self.err, sys.stderr), (self.out, sys.stdout)):
            stream.write(held.decode(errors="replace"))
            stream.flush()
        code = self.process.returncode
        return [] if code == 0 else [f"{self.name} exited {code}"]

    def __enter__(self) -> PartBeside:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:  # the main parts failed: no waiting
            self.process.kill()
            self.process.wait()


# The waves sent together, each group drained before the next: anonymous browsing and the orders no browser
# names touch different profiles (the links of the last wave join them), so they arrive at once, as real
# storefront events and webhooks do; the links must find every profile they join already written.
SENT_TOGETHER = ((BROWSE, ORDERS), (LINKS,))


def drive(runtime: LocalRuntime, stores: dict[str, Store], simulation: Simulation, phases: Phases,
          answered: Callable[[], None] = lambda: None) -> tuple[list[Sent], float, bool]:
    """Send the waves over HTTP with a few concurrent senders, and let the stack drain before the next ones;
    ``answered`` is called once the last request is answered, before that last drain."""
    results: list[Sent] = []
    sending, drained = 0.0, True
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        for waves in SENT_TOGETHER:
            numbers = " and ".join(map(str, waves))
            with phases.phase(f"wave{'s' if len(waves) > 1 else ''} {numbers} sent and processed"):
                messages = [m for wave in waves for m in simulation.wave(wave)]
                started = time.perf_counter()
                results += pool.map(lambda m: send(runtime.api_url, stores, m), messages)
                sent = time.perf_counter() - started
                sending += sent
                if waves is SENT_TOGETHER[-1]:
                    answered()
                drained = runtime.wait_idle(timeout=DRAIN_TIMEOUT_SECONDS) and drained
                print(f"wave{'s' if len(waves) > 1 else ''} {numbers} ({'; '.join(WAVES[w] for w in waves)}): "
                      f"{len(messages)} requests sent in {sent:.1f} s, processed {time.perf_counter() - started:.1f} "
                      "s after the first", flush=True)
    return results, sending, drained


def set_rates(api: Api, timeout: float = DRAIN_TIMEOUT_SECONDS) -> bool:
    """PUT /settings/currency with the simulation's rates, after the orders: until then the EUR orders were
    named in unconverted_currencies; the job re-derives every profile. Waits for it to finish."""
    body = {"reporting_currency": CURRENCY, "rates": {code: str(rate) for code, rate in RATES.items()}}
    job = api.ok("PUT", "/settings/currency", body)["job"]
    deadline = time.monotonic() + timeout
    while job["status"] != "done":
        if time.monotonic() > deadline:
            print(f"currency job {job['job_id']} not done after {timeout:.0f} s", flush=True)
            return False
        time.sleep(0.5)
        job = api.ok("GET", f"/settings/currency/jobs/{job['job_id']}")
    print(f"rates set                {body['rates']} ({CURRENCY} reporting): job {job['job_id']} re-derived "
          f"{job['rederived']} of {job['profiles']} profiles over {job['shares']} shares", flush=True)
    return True


def edge_cases(api_url: str, stores: dict[str, Store]) -> dict[str, int]:
    """A body Shopify signed that nobody can read (kept and parked, not lost), and a forged signature."""
    unreadable = Webhook(SHOPIFY, "orders/create", b"<html>not json</html>", "demo-unreadable",
                         datetime.now(UTC), 0)
    shop = stores[SHOPIFY]
    forged = Store(SHOPIFY, shop.domain, "not-the-secret", shop.write_key)
    return {"unreadable": http("POST", api_url + unreadable.path, unreadable.body, unreadable.headers(shop))[0],
            "forged": http("POST", api_url + unreadable.path, unreadable.body, unreadable.headers(forged))[0]}


def bought_in_both_stores(profiles: list[Profile], orders: list[OrderRecord]) -> int:
    # An order keeps the profile it was placed on; that profile may have been merged into another since.
    merged_into = {p.profile_id: p.merged_into for p in profiles}

    def survivor(profile_id: str | None) -> str | None:
        while profile_id is not None and merged_into.get(profile_id):
            profile_id = merged_into[profile_id]
        return profile_id

    bought_in: dict[str | None, set[str]] = defaultdict(set)
    for record in orders:
        if record.counts:
            bought_in[survivor(record.profile_id)].add(record.store_id)
    return sum(1 for stores in bought_in.values() if len(stores) == 2)


def report( outputs: dict[str, str], results: list[Sent], sending: float, extras: dict[str, int],
           expected: Expected, tap: EventTap, drained: bool) -> list[Profile]:
    """The history's report; the profiles as stored (merged ones included)."""
    entities = table_entities(outputs["TableName"])
    profiles = [Profile.model_validate(p) for p in entities.get("profile", [])]
    live = [p for p in profiles if p.merged_into is None]
    merged = len(profiles) - len(live)
    orders = [OrderRecord.model_validate(o) for o in entities.get("order", [])]
    events = tap.stop()
    print("\n== CRM demo report ==")
    print(f"requests sent            {len(results)} in {sending:.1f} s of sending ({len(results) / sending:.0f}/s)")
    for kind, accepted in (("shopify", 200), ("woocommerce", 200), ("track", 202)):
        mine = [r for r in results if r.kind == kind]
        statuses = Counter(r.status for r in mine)
        others = {k: v for k, v in statuses.items() if k != accepted} or "none"
        extra = f", {sum(r.events for r in mine)} events" if kind == "track" else ""
        seconds = [r.seconds for r in mine] or [0.0]
        label = kind + (" webhooks" if kind != "track" else " requests")
        print(f"  {label:<23}{statuses.get(accepted, 0)}/{len(mine)} accepted{extra} "
              f"(p50 {percentile_ms(seconds, 0.5)}, p95 {percentile_ms(seconds, 0.95)}; other answers: {others})")
    print(f"unreadable signed body   answered {extras['unreadable']}; forged signature answered {extras['forged']}")
    print(f"queues drained           {'yes' if drained else 'NO (timed out)'}")
    both = bought_in_both_stores(profiles, orders)
    print(f"profiles                 {len(live)} live; {merged} merged into others (expected {expected.merges})")
    print(f"shoppers in both stores  {both} bought in both (expected {expected.in_both_stores} shoppers with orders "
          f"in both); {sum(1 for p in live if len(p.store_ids) == 2)} profiles seen in both")
    counted = [o for o in orders if o.counts]
    unpaid = [o for o in orders if o.unpaid]
    cancelled = [o for o in orders if o.order is not None and not o.counts and not o.unpaid]
    by_store: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    refunds: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    names = {s["store_id"]: s["platform"] for s in entities.get("store", [])}
    for record in counted:
        by_store[names.get(record.store_id, record.store_id)] += record.net_total
        refunds[record.order.currency if record.order else "?"] += record.refunded
    print(f"orders                   {len(counted)} counted, {len(unpaid)} unpaid (failed or pending), "
          f"{len(cancelled)} cancelled (expected {expected.orders_counted}, {expected.orders_unpaid} and "
          f"{expected.orders_cancelled}); profiles' unpaid_orders_count add up to "
          f"{sum(p.unpaid_orders_count for p in live)}")
    print("refunds                  " + ", ".join(
        f"{refunds[code]:.2f} {code} (expected {expected.refunds[code]:.2f})" for code in sorted(expected.refunds)))
    for platform in (SHOPIFY, WOOCOMMERCE):
        print(f"revenue {platform:<17}{by_store[platform]:>12.2f} {STORE_CURRENCY[platform]} net of refunds "
              f"(expected {expected.revenue[platform]:.2f})")
    stated = sum((p.total_spent for p in live), Decimal("0.00"))
    print(f"revenue in {CURRENCY:<14}{stated:>12.2f} {CURRENCY}: the profiles' total_spent at "
          f"{', '.join(f'1 {code} = {rate} {CURRENCY}' for code, rate in RATES.items())} "
          f"(expected {expected.total_revenue:.2f}, computed by the simulation)")
    channels: dict[str, list[Decimal]] = defaultdict(list)
    for record in counted:
        channels[record.last_touch.channel if record.last_touch else "unattributed"].append(record.net_total)
    print("counted orders by last-touch channel of the order:")
    for channel, amounts in sorted(channels.items(), key=lambda c: -len(c[1])):
        print(f"  {channel:<26}{len(amounts):>5} orders")
    first = Counter(p.first_touch.channel if p.first_touch else "none recorded" for p in live)
    print("profiles by first-touch channel:")
    for channel, count in first.most_common():
        print(f"  {channel:<26}{count:>6}")
    print(f"events on the bus        {dict(sorted(events.items())) or 'none'} (BusEventTypes; the flows' events go "
          "to their queue: docs/events.md)")
    print(f"ingest DLQ depth         {queue_depth(outputs['IngestDeadLetterQueueUrl'])} "
          "(the signed, unreadable delivery: archived and parked with its reason; `crm dlq list`)")
    return profiles


def verify(api_url: str, api_key: str, profiles: list[Profile], expected: Expected) -> list[str]:
    """Every shopper as the marketer API answers for them, against the simulation's own totals."""
    def check(outcome: Any) -> str | None:
        status, view = http("GET", f"{api_url}/customers?{outcome.by}={quote(outcome.key)}",
                            headers={"x-api-key": api_key})
        if not outcome.known:
            return None if status == 404 else f"{outcome.key}: expected no profile, got {status}"
        if status != 200:
            return f"{outcome.key}: expected a profile, got {status} {view}"
        got = (int(view["orders_count"]), Decimal(view["total_spent"]), int(view["unpaid_orders_count"]))
        if got != (outcome.orders, outcome.net, outcome.unpaid):
            return (f"{outcome.key}: expected {outcome.orders} orders, {outcome.net:.2f} {CURRENCY}, "
                    f"{outcome.unpaid} unpaid; got {got[0]}, {got[1]:.2f} {view['currency']}, {got[2]}")
        if outcome.orders and (view["currency"], view["unconverted_currencies"]) != (CURRENCY, []):
            return f"{outcome.key}: expected figures in {CURRENCY}, got {view['currency']} less " \
                   f"{view['unconverted_currencies']}"
        return None

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        wrong = [w for w in pool.map(check, expected.shoppers.values()) if w]
    merged = sum(1 for p in profiles if p.merged_into)
    if merged != expected.merges:
        wrong.append(f"merges: expected {expected.merges}, found {merged} profiles merged into others")
    print(f"verified                 {len(expected.shoppers) - len([w for w in wrong if not w.startswith('merges')])}"
          f"/{len(expected.shoppers)} shoppers match the expected orders, unpaid orders and net revenue in "
          f"{CURRENCY} to the cent (GET /customers); merges {'match' if merged == expected.merges else 'DIFFER'}")
    for line in wrong[:50]:
        print(f"  MISMATCH {line}")
    if len(wrong) > 50:
        print(f"  ... and {len(wrong) - 50} more")
    return wrong


# --- segments ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Api:
    """The marketer API, as the workspace's key reaches it."""

    url: str
    key: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        return http(method, self.url + path, data, {"x-api-key": self.key, "Content-Type": "application/json"})

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        if status not in (200, 201, 202):
            raise RuntimeError(f"{method} {path} answered {status}: {answer}")
        return answer


def custom_segments() -> list[dict[str, Any]]:
    """What a marketer of the simulated stores would want to reach, as segment documents (docs/segments.md)."""
    return [
        {"name": "Bought in both stores",
         "description": "Bought from the Shopify store's range and from the WooCommerce store's (they sell different "
                        "products): the shoppers to tell about the other shop's news",
         "definition": {"all": [{"field": "products", "op": "contains_any", "value": list(catalogue(SHOPIFY))},
                                {"field": "products", "op": "contains_any", "value": list(catalogue(WOOCOMMERCE))}]}},
        {"name": "Came from Google Ads, bought twice or more",
         "description": "First touch google / cpc, two orders or more: the campaigns that bring loyal shoppers",
         "definition": {"all": [{"field": "utm_source", "op": "eq", "value": "google"},
                                {"field": "orders_count", "op": "gte", "value": 2}]}},
        {"name": "Viewed products 3+ times, never bought",
         "description": "Browse abandonment: interested, not yet convinced",
         "definition": {"all": [{"event": "product_viewed", "op": "at_least", "count": 3},
                                {"field": "orders_count", "op": "eq", "value": 0}]}},
    ]


def _segment_path(segment_id: str, action: str = "") -> str:
    return f"/segments/{quote(segment_id, safe=':')}" + (f"/{action}" if action else "")


def recompute_all(api: Api, timeout: float = SEGMENTS_TIMEOUT_SECONDS) -> list[dict[str, Any]]:
    """Compute every segment of the workspace now and wait until each is computed; the segments as listed then.

    One refresh starts a run of the whole workspace (or asks for one after the run under way, which the
    segments just created started); the run is done when every segment's last_computed_at is at or after
    the request.
    """
    started = datetime.now(UTC)
    api.ok("POST", _segment_path("builtin:vip", "recompute"))
    deadline = time.monotonic() + timeout
    while True:
        listed = api.ok("GET", "/segments")["segments"]
        pending = [s["id"] for s in listed
                   if s["last_computed_at"] is None or datetime.fromisoformat(s["last_computed_at"]) < started]
        if not pending:
            return list(listed)
        if time.monotonic() > deadline:
            raise TimeoutError(f"segments not computed after {timeout:.0f} s: {', '.join(pending)}")
        time.sleep(0.5)


@dataclass(frozen=True)
class SegmentFacts:
    """What the simulation says about the workspace's buyers, computed without the CRM's code."""

    buyers: int
    one_time: int
    repeat: int
    in_both: int
    vip_seats: int
    vip: dict[str, Decimal]  # shopper key (email, else phone) -> net spent

    @classmethod
    def of(cls, expected: Expected, vip_top_percent: int) -> SegmentFacts:
        buyers = [o for o in expected.shoppers.values() if o.orders >= 1]
        nets = sorted((o.net for o in buyers), reverse=True)
        seats = -(-len(nets) * vip_top_percent // 100)
        threshold = nets[seats - 1] if nets else Decimal("0")
        vip = {o.key: o.net for o in buyers if o.net >= threshold and o.net > 0}
        return cls(len(buyers), sum(o.orders == 1 for o in buyers), sum(o.orders >= 2 for o in buyers),
                   expected.in_both_stores, seats, vip)


def _span(values: Sequence[int]) -> str:
    ordered = sorted(values)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return str(ordered[0]) if len(ordered) == 1 else f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, ordered))


def rfm_regions() -> dict[RfmGroup, str]:
    """Each group's cells of the R x FM grid, as score ranges: "R4-5 FM4-5", "R3 FM4-5; R4-5 FM3"."""
    by_column: dict[RfmGroup, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for fm, row in GRID.items():
        for r, rfm_group in enumerate(row, start=1):
            by_column[rfm_group][r].append(fm)
    regions: dict[RfmGroup, str] = {}
    for rfm_group, columns in by_column.items():
        runs: list[tuple[list[int], list[int]]] = []  # (R scores, their FM scores), neighbours merged
        for r in sorted(columns):
            fms = sorted(columns[r])
            if runs and runs[-1][1] == fms and runs[-1][0][-1] == r - 1:
                runs[-1][0].append(r)
            else:
                runs.append(([r], fms))
        regions[rfm_group] = "; ".join(f"R{_span(rs)} FM{_span(fms)}" for rs, fms in runs)
    return regions


# Two letters per group, for the grid.
ABBREVIATIONS = {RfmGroup.CHAMPIONS: "CH", RfmGroup.LOYAL: "LO", RfmGroup.POTENTIAL_LOYALISTS: "PL",
                 RfmGroup.NEW_CUSTOMERS: "NC", RfmGroup.PROMISING: "PR", RfmGroup.NEED_ATTENTION: "NA",
                 RfmGroup.ABOUT_TO_SLEEP: "AS", RfmGroup.AT_RISK: "AR", RfmGroup.CANNOT_LOSE_THEM: "CL",
                 RfmGroup.HIBERNATING: "HI", RfmGroup.LOST: "LS"}


def print_rfm(sizes: dict[str, int], buyers: int) -> list[str]:
    """The 11 RFM groups on their grid, with how many buyers each holds; they partition the buyers."""
    print("RFM groups               R = recency, FM = the mean of frequency and monetary (rounded down), each "
          "scored 1-5 by quintiles of the buyers")
    print(f"  {'':<8}" + "".join(f"R{r:<5}" for r in range(1, 6)).rstrip())
    for fm in sorted(GRID, reverse=True):
        print(f"  {'FM' + str(fm):<8}" + "".join(f"{ABBREVIATIONS[g]:<6}" for g in GRID[fm]).rstrip())
    regions = rfm_regions()
    total = 0
    for rfm_group in RfmGroup:
        size = sizes.get(f"builtin:rfm:{rfm_group.value}", 0)
        total += size
        print(f"  {ABBREVIATIONS[rfm_group]} {GROUP_NAMES[rfm_group]:<20}{regions[rfm_group]:<22}{size:>6}")
    fine = total == buyers
    print(f"  {'all 11 groups':<45}{total:>6} buyers ({'=' if fine else '!='} the simulation's {buyers} buyers: "
          f"the groups partition them)")
    return [] if fine else [f"RFM groups: they hold {total} buyers, the simulation has {buyers}"]


def _checked(got: int, want: int, what: str, wrong: list[str], detail: str = "") -> str:
    if got != want:
        wrong.append(f"{what}: expected {want}, the segment holds {got}")
    return f"(expected {want}{detail}){'' if got == want else ' MISMATCH'}"


def print_sizes(listed: list[dict[str, Any]], facts: SegmentFacts, table: dict[str, int], percent: int,
                custom: dict[str, str]) -> list[str]:
    """Every segment's size but the RFM groups' (printed on their grid), with what it is checked against."""
    wrong: list[str] = []
    size = {s["id"]: int(s["size"]) for s in listed}
    both = custom["Bought in both stores"]
    notes = {
        "builtin:vip": _checked(size["builtin:vip"], len(facts.vip), "VIP", wrong,
                                f": ceil({percent} % of {facts.buyers} buyers) = {facts.vip_seats} seats, "
                                f"{len(facts.vip) - facts.vip_seats} more tied"),
        "builtin:one_time_buyers": _checked(size["builtin:one_time_buyers"], facts.one_time, "one-time buyers", wrong),
        "builtin:repeat_buyers": _checked(size["builtin:repeat_buyers"], facts.repeat, "repeat buyers", wrong),
        both: _checked(size[both], facts.in_both, "bought in both stores", wrong, " shoppers with orders in both"),
    }
    for name, want in table.items():  # the segment engine against the stored profiles, read directly
        notes[custom[name]] = _checked(size[custom[name]], want, name, wrong, " in the table's profiles")
    by_id = {s["id"]: s for s in listed}
    # The built-ins as listed, then the custom segments in the order they were created.
    for segment in [*(s for s in listed if s["builtin"]), *(by_id[i] for i in custom.values())]:
        if not segment["id"].startswith("builtin:rfm:"):
            print(f"  {segment['name']:<44}{segment['size']:>6}  {segment['id']} {notes.get(segment['id'], '')}"
                  .rstrip())
    one_time, repeat = size["builtin:one_time_buyers"], size["builtin:repeat_buyers"]
    fine = one_time + repeat == facts.buyers
    print(f"  one-time + repeat buyers {one_time} + {repeat} = {one_time + repeat} "
          f"({'=' if fine else '!='} the simulation's {facts.buyers} buyers)")
    if not fine:
        wrong.append(f"one-time + repeat buyers: {one_time + repeat}, the simulation has {facts.buyers} buyers")
    return wrong


def table_counts(profiles: list[Profile]) -> dict[str, int]:
    """The custom segments' sizes counted on the stored profiles directly (not with the segment engine)."""
    live = [p for p in profiles if p.merged_into is None]
    return {
        "Came from Google Ads, bought twice or more": sum(
            1 for p in live if p.first_touch and p.first_touch.source == "google" and p.orders_count >= 2),
        "Viewed products 3+ times, never bought": sum(
            1 for p in live if p.activity_counts.get("product_viewed", 0) >= 3 and p.orders_count == 0),
    }


def export_csv(api: Api, segment_id: str, size: int, facts: SegmentFacts, out_dir: Path) -> list[str]:
    """GET the segment's CSV export into ``out_dir``; the VIPs exported must be the simulation's VIPs."""
    query = f"?format=csv&fields={','.join(EXPORT_FIELDS)}"
    status, body = api.call("GET", _segment_path(segment_id, "export") + query)
    if status != 200 or not isinstance(body, str):
        return [f"export of {segment_id}: answered {status}"]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = (out_dir / f"{segment_id.replace(':', '-')}.csv").resolve()
    path.write_text(body, encoding="utf-8", newline="")
    # The file keeps the export's byte order mark (Excel needs it to read UTF-8); csv does not skip it.
    rows = list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"), newline="")))
    exported = {row["email"] or row["phone"]: Decimal(row["total_spent"]) for row in rows}
    fine = len(rows) == size and exported == facts.vip
    print(f"export                   {segment_id} as CSV: {len(rows)} rows and a header ({','.join(EXPORT_FIELDS)})\n"
          f"                         -> {path}\n"
          f"                         {'the' if fine else 'NOT the'} simulation's {len(facts.vip)} VIPs, "
          f"{'each with their' if fine else 'or not with their'} net spend")
    return [] if fine else [f"export of {segment_id}: {len(rows)} rows, not the expected VIPs and their spend"]


def create_custom_segments(api: Api) -> dict[str, str]:
    """POST /segments for each of custom_segments(); their ids by name."""
    return {document["name"]: api.ok("POST", "/segments", document)["id"] for document in custom_segments()}


def segments(api: Api, custom: dict[str, str], profiles: list[Profile], expected: Expected, out_dir: Path
             ) -> list[str]:
    """The custom segments (created before the history), every segment computed, sizes, RFM groups, one CSV
    export."""
    print("\n== segments ==")
    try:
        settings = api.ok("GET", "/segments/settings")
        print("settings                 " + ", ".join(f"{k} {v}" for k, v in settings.items())
              + " (GET /segments/settings)")
        print(f"custom segments          {len(custom)} created before the history (POST /segments; demo.py "
              "custom_segments())")
        started = time.perf_counter()
        listed = recompute_all(api)
    except (RuntimeError, TimeoutError) as error:
        print(f"  MISMATCH segments could not be computed: {error}")
        return [str(error)]
    computed = max(datetime.fromisoformat(s["last_computed_at"]) for s in listed)
    print(f"computed                 {len(listed)} segments in {time.perf_counter() - started:.1f} s, at "
          f"{computed:%Y-%m-%d %H:%M} UTC (the simulated months start {START:%Y-%m-%d};\n"
          "                         churn risk, new customers and cart abandoners count back from the time of the run)")
    facts = SegmentFacts.of(expected, int(settings["vip_top_percent"]))
    wrong = print_sizes(listed, facts, table_counts(profiles), int(settings["vip_top_percent"]), custom)
    wrong += print_rfm({s["id"]: int(s["size"]) for s in listed}, facts.buyers)
    wrong += export_csv(api, EXPORTED, next(int(s["size"]) for s in listed if s["id"] == EXPORTED), facts, out_dir)
    for line in wrong:
        print(f"  MISMATCH {line}")
    return wrong
