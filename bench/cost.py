"""`make bench`, last: the reference store's monthly bill, all in, from the figures the other scripts recorded.

DESIGN.md's reference store (100k profiles, 300k orders and 3M storefront events a month) priced from counted
requests and units (bench/results/*.json, written by each script's ``figures.record``) at list prices, with the
wiring read from template.yaml (which API type serves each route, the event sources' batch sizes and windows,
memory sizes). It measures nothing itself: it prices what the others counted, so it runs in a second.

    .venv/bin/python bench/cost.py                       # after the other scripts (make bench runs them first)
    .venv/bin/python bench/cost.py --template OLD.yaml   # the same counts under another wiring

Its last lines are one line per component, the same DynamoDB units priced as provisioned capacity with auto
scaling (bench/capacity.py), the bill in the mode the template does not default to (``reference store all in,
TableCapacity=on-demand: $X.XX per month``) and, last, ``reference store all in: $X.XX per month (target
$15.00)`` in the template's default mode (provisioned); the assumed monthly mix and the wiring are printed above
them. Components whose script has not run here are
named as missing and left out of the total (which then says so).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capacity import (
    DIURNAL_UTC,
    Bounds,
    Load,
    bounds_of,
    chained,
    index_dollars,
    paced,
    paced_after,
    paced_seconds,
    read_hops,
    read_phase_seconds,
    run_hours,
    simulate,
    sliced,
    write_hops,
)
from crm.adapters.pacing import WRITE_UNIT_WEIGHT
from crm.archive import FIREHOSE_RECORD_BYTES
from crm.config import ClientSettings, Settings
from crm.predictions.refresh import HOP_AHEAD_SECONDS
from crm.segments.runs import DAILY_RUN_HOUR, HOURLY_SLICE_DELAY, HOURLY_SLICES, MOST_SHARES
from crm_local.template import read_sam
from figures import RESULTS, Counts, counts, plain, recorded

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
# Issue 12's starting point: the figures these scripts recorded at commit 0ccbb87 and its template's wiring,
# kept so that every run prints the bill before beside the bill now (`--save-before` wrote it).
BEFORE = Path(__file__).resolve().parent / "before.json"
REFERENCE_PROFILES = 100_000  # DESIGN.md's reference store
TARGET = 15.00  # DESIGN.md: "around $15 a month in infrastructure"; issue 12: <= $15.00
SCRIPTS = ("profile_events", "ingest_path", "segment_runs", "flows", "predictions_requests", "segments", "backtest",
           "cold_start")
PRICED = SCRIPTS[:5]  # what the bill is made of; the others give the issue's other figures
GROUPS = ("ingest", "segments", "flows", "predictions", "console")

# List prices, us-east-1, USD (DESIGN.md; check before quoting). Per million unless named otherwise.
PER_MILLION = {
    "REST": 3.50,  # API Gateway REST API requests (first 333M)
    "HTTP": 1.00,  # API Gateway HTTP API requests (first 300M, 512 KB each)
    "lambda": 0.20,  # Lambda invocations
    "sqs": 0.40,  # SQS standard requests, 64 KiB chunks (a batch of 10 is one request)
    "wru": 0.625,  # DynamoDB on-demand write request units
    "rru": 0.125,  # DynamoDB on-demand read request units
    "eventbridge": 1.00,  # EventBridge custom events (64 KB chunks)
    "scheduler": 1.00,  # EventBridge Scheduler invocations
    "s3_put": 5.00,
}
LAMBDA_GB_SECOND_ARM = 0.0000133334  # the template's functions are arm64 (x86: 0.0000166667)
FIREHOSE_PER_GB = 0.029  # Direct PUT ingestion, each record rounded up to 5 KB
FIREHOSE_RECORD_KB = 5
SECONDS_PER_MONTH = 30 * 24 * 3600

# Assumptions, printed with the bill. The events a /track request carries are not assumed here: profile_events
# records what the storefront snippet sends over simulated sessions (bench/track_batching.py) and folds its views
# in those requests, so both price the same requests. A run recorded before it did: one event a request.
UNRECORDED_EVENTS_PER_TRACK_REQUEST = 1.0
# Lambda polls an SQS queue with a few concurrent long polls (5 when messages flow, as few as 2 when traffic is
# low: "Configuring scaling behavior for SQS event source mappings"); each waits up to 20 s when the queue is
# empty, and a batching window is filled per poller, so the messages of a window are shared among them.
SQS_POLLERS = 2
LONG_POLL_S = 20
# Warm handler time a call (Lambda duration is billed; moto's times here say nothing about AWS's): the front
# door's two AWS calls and Chalice; the profiles function per queued message; the outbox per stream batch.
HANDLER_MS = {"WebhooksFunction": 30.0, "TrackFunction": 30.0, "ProfilesFunction": 60.0, "OutboxFunction": 20.0}
# The predictions functions' time is their models' CPU time as bench/predictions_requests.py measured it, plus
# this much per AWS request they make (moto's in-process time says nothing about AWS's round trips).
AWS_REQUEST_S = 0.010
# The orders the predictions worker refreshes a profile after: OrderPlaced and OrderRefunded from the bus
# (template.yaml's PredictionOrdersRule), one each of these arrivals of profile_events' month.
PREDICTED_AFTER = ("order created (new shopper)", "order created (returning)", "refund")
RUNS_PER_MONTH = 30  # the daily fit (PredictionsScheduleFunction: cron 03:00 UTC, with the segment run)
FIT_HOUR = 3  # it reads the segment run's work files once the run has read every profile (crm.predictions.daily)
S3_GET_PER_MILLION = 0.40  # S3 Standard GET requests (the fit's read of the run's work files)
# Assumed: the fit, queued as the segment run starts, waits on its queue a quarter of an hour at a time until the
# run has read every profile (an hour, paced): each wait an SQS send, receive and delete, an invocation and the
# run's two items read (1.5 RRU).
FIT_WAITS, FIT_WAIT_RRU = 4, 1.5
# A scheduled run's units come as fast as its tasks read and write: the daily segment run's 412 s of tasks are
# 4 shares side by side (segment_runs' model), the daily fit's ~100 s one task (predictions_requests); about
# 100 s either way, unpaced (assumed from those).
RUN_SECONDS = 100.0
# The console (functions/console) serves the store's marketers, not its shoppers: assumed 3 users x 200 page
# views a working day x 22 working days, each a request to the API its routes are on and one invocation of
# ConsoleFunction (server-rendered HTML, a handful of AWS reads: the dashboard's report rollups, a segment
# list, a profile and its timeline), at the template's memory.
CONSOLE_USERS, CONSOLE_VIEWS_A_DAY, CONSOLE_WORKING_DAYS = 3, 200, 22
CONSOLE_PAGE_MS = 300.0  # assumed: Chalice, Jinja and the page's reads
CONSOLE_PAGE_RRU = 20.0  # assumed: e.g. a year of daily report rollups read eventually consistent


@dataclass(frozen=True)
class Source:
    """An event source mapping as the template sets it: records per invocation at most, and the batching window."""

    batch_size: int
    window_s: float

    def batch_at(self, per_second: float, readers: int = 1) -> float:
        """Records per invocation at a steady rate shared by ``readers`` concurrent pollers: without a window a
        poll takes what has arrived (about one at these rates); with one, what arrives within it, up to the
        batch size."""
        return max(1.0, min(float(self.batch_size), per_second / readers * self.window_s))


@dataclass(frozen=True)
class Wiring:
    """What template.yaml decides about the bill."""

    api: dict[str, str]  # route -> "REST" or "HTTP"
    ingest: Source  # ProfilesFunction's SQS event source
    outbox: Source  # OutboxFunction's stream
    refresh: Source  # SegmentRefreshFunction's stream
    memory_mb: dict[str, int]
    firehose_interval_s: int
    predictions: Source | None = None  # PredictionsFunction's SQS event source (None: a template without it)
    console_api: str = "REST"  # the API type ConsoleFunction's routes are on
    # Functions on an SQS queue whose requests no other line prices: their pollers' idle long polls still bill.
    idle_queues: tuple[str, ...] = ()

    def gb(self, function: str) -> float:
        return self.memory_mb.get(function, self.memory_mb["Globals"]) / 1024


def _events(resource: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(resource.get("Properties", {}).get("Events", {}).values())


def wiring_from(stored: Mapping[str, Any]) -> Wiring:
    predictions = stored.get("predictions")
    return Wiring(dict(stored["api"]), Source(**stored["ingest"]), Source(**stored["outbox"]),
                  Source(**stored["refresh"]), dict(stored["memory_mb"]), int(stored["firehose_interval_s"]),
                  Source(**predictions) if predictions else None, str(stored.get("console_api", "REST")),
                  tuple(stored.get("idle_queues", ())))


def wiring_of(template: Path) -> Wiring:
    sam = read_sam(template)
    resources: dict[str, Any] = sam["Resources"]
    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    api: dict[str, str] = {}
    for resource in functions.values():
        for event in _events(resource):
            path = event.get("Properties", {}).get("Path")
            # A route on both: the REST one is kept for stores set up before; a store set up now (the
            # reference) is given the HTTP API's URLs.
            if (event["Type"] in ("Api", "HttpApi") and path in ("/track", "/webhooks/{platform}")
                    and (event["Type"] == "HttpApi" or path not in api)):
                api[path] = "HTTP" if event["Type"] == "HttpApi" else "REST"

    def source(function: str, kind: str) -> Source:
        for event in _events(functions[function]):
            if event["Type"] == kind:
                props = event["Properties"]
                return Source(int(props.get("BatchSize", 10 if kind == "SQS" else 100)),
                              float(props.get("MaximumBatchingWindowInSeconds", 0)))
        raise ValueError(f"{function} has no {kind} event source in {template}")

    memory = {name: int(r["Properties"]["MemorySize"]) for name, r in functions.items()
              if "MemorySize" in r.get("Properties", {})}
    memory["Globals"] = int(sam.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    interval = 300
    for resource in resources.values():
        if resource["Type"] == "AWS::KinesisFirehose::DeliveryStream":
            hints = resource["Properties"].get("ExtendedS3DestinationConfiguration", {}).get("BufferingHints", {})
            interval = int(hints.get("IntervalInSeconds", 300))
    console = [event["Type"] for event in _events(functions.get("ConsoleFunction", {}))]
    idle = tuple(sorted(name for name, r in functions.items() if name not in QUEUES_PRICED_BY_THEIR_LINES
                        and any(event["Type"] == "SQS" for event in _events(r))))
    return Wiring(api, source("ProfilesFunction", "SQS"), source("OutboxFunction", "DynamoDB"),
                  source("SegmentRefreshFunction", "DynamoDB"), memory, interval,
                  source("PredictionsFunction", "SQS") if "PredictionsFunction" in functions else None,
                  "HTTP" if console and all(kind == "HttpApi" for kind in console) else "REST", idle)


@dataclass(frozen=True)
class Line:
    group: str  # the component's part of the bill: ingest, segments, flows
    component: str
    dollars: float
    how: str
    loads: tuple[Load, ...] = ()  # the DynamoDB units it prices, a month, and when they come (bench/capacity.py)


@dataclass(frozen=True)
class Month:
    """The reference month's traffic as the ingest path sees it (from profile_events' MONTHLY_MIX)."""

    mix: dict[str, int]
    storefront: frozenset[str]
    events_per_track_request: float

    @property
    def events(self) -> int:
        return sum(self.mix.values())

    @property
    def storefront_events(self) -> int:
        return sum(n for kind, n in self.mix.items() if kind in self.storefront)

    @property
    def webhooks(self) -> int:
        return self.events - self.storefront_events

    @property
    def track_requests(self) -> float:
        return self.storefront_events / self.events_per_track_request

    @property
    def messages(self) -> float:
        """Queued for the profiles function: one per webhook delivery and one per /track request (crm.tracking)."""
        return self.webhooks + self.track_requests


def _spread(component: str, units: Mapping[str, float]) -> tuple[Load, ...]:
    """A month's DynamoDB units (``rru``, ``wru``; other units ignored) that come with the day's traffic."""
    return tuple(Load(component, unit, units[unit]) for unit in ("rru", "wru") if units.get(unit))


def _run_loads(component: str, units: Mapping[str, float]) -> tuple[Load, ...]:
    """A scheduled run's units a month: the daily run's at DAILY_RUN_HOUR, the hourly runs' at every hour's start,
    each at the pace its tasks read and write today (RUN_SECONDS); anything else with the day's traffic."""
    if component.startswith("segments: daily"):
        return tuple(Load(component, unit, n, at_hour=DAILY_RUN_HOUR, per_second=n / RUNS_PER_MONTH / RUN_SECONDS)
                     for unit, n in units.items() if n)
    if component.startswith("segments: hourly"):
        return tuple(Load(component, unit, n, every_hour=True, per_second=n / RUNS_PER_MONTH / 24 / RUN_SECONDS)
                     for unit, n in units.items() if n)
    return _spread(component, units)


def _m(value: float) -> str:
    return f"{value / 1e6:,.2f}M" if value >= 1e5 else f"{value:,.0f}"


def _usd(dollars: float) -> str:
    return f"${dollars:,.2f}".rjust(8)


def lambda_cost(wiring: Wiring, function: str, invocations: float, ms: float) -> float:
    duration = invocations * ms / 1000 * wiring.gb(function) * LAMBDA_GB_SECOND_ARM
    return invocations * PER_MILLION["lambda"] / 1e6 + duration


def unit_cost(units: Mapping[str, float]) -> float:
    """Dollars for billed units by the meter's names (rru, wru, sqs, eventbridge, scheduler, firehose_gb...)."""
    total = 0.0
    for unit, amount in units.items():
        if unit in PER_MILLION:
            total += amount * PER_MILLION[unit] / 1e6
        elif unit == "firehose_gb":
            total += amount * FIREHOSE_PER_GB
    return total


def per_month(per_kind: Mapping[str, Counts], month: Month, key: tuple[str, ...]) -> float:
    return sum(n * per_kind.get(kind, {}).get(key, 0.0) for kind, n in month.mix.items())


def ingest_lines(events: Mapping[str, Any], ingest: Mapping[str, Any] | None, wiring: Wiring,
                 month: Month) -> list[Line]:
    """The front door, the queue, the profile upsert and the outbox for the month's events."""
    per_kind = {kind: counts(c) for kind, c in events["per_event"].items()}
    folded = events.get("folded")  # the views of a /track request written as one (profile_events' section 5b)
    if folded:
        per_kind[folded["kind"]] = counts(folded["per_view"])
    changed = sum(n * events["changed_per_event"].get(kind, 1.0) for kind, n in month.mix.items())
    published = sum(n * events["published_per_event"].get(kind, 0.0) for kind, n in month.mix.items())
    requests = month.messages  # API requests: one per webhook delivery, one per /track request
    lines = []
    for route, label, n in (("/webhooks/{platform}", "webhooks", month.webhooks),
                            ("/track", "/track", month.track_requests)):
        kind = wiring.api.get(route, "REST")
        lines.append(Line("ingest", f"API Gateway {kind} API: {label}", n * PER_MILLION[kind] / 1e6,
                          f"{_m(n)} requests at ${PER_MILLION[kind]:.2f}/M"))
    lines.append(Line("ingest", "Lambda: webhooks + track functions",
                      lambda_cost(wiring, "WebhooksFunction", month.webhooks, HANDLER_MS["WebhooksFunction"])
                      + lambda_cost(wiring, "TrackFunction", month.track_requests, HANDLER_MS["TrackFunction"]),
                      f"{_m(requests)} invocations, {HANDLER_MS['TrackFunction']:.0f} ms each (assumed)"))
    front: Counts = counts(ingest["webhook_per_delivery"]) if ingest else {}
    front_units = {key[1]: value * requests for key, value in front.items() if key[0] == "unit"}
    front_requests = sum(v for k, v in front.items() if k[0] == "req")
    if ingest:
        lines.append(Line("ingest", "front door's own AWS requests (not SQS)",
                          unit_cost({k: v for k, v in front_units.items() if k not in ("sqs", "firehose_gb")}),
                          f"{front_requests:.2f} requests a delivery measured (ingest_path), /track alike: "
                          f"{', '.join(f'{k[2]} {v:.2f}' for k, v in sorted(front.items()) if k[0] == 'req')}",
                          _spread("front door", front_units)))
    else:
        lines.append(Line("ingest", "front door's own AWS requests: MISSING (run bench/ingest_path.py)", 0.0, ""))
    rate = requests / SECONDS_PER_MONTH
    batch = wiring.ingest.batch_at(rate, SQS_POLLERS)
    invocations = requests / batch
    sends = front_units.get("sqs", requests)
    receives = max(invocations, SQS_POLLERS * SECONDS_PER_MONTH / LONG_POLL_S)  # at least the idle long polls
    lines.append(Line("ingest", "SQS: ingest queue", (sends + receives + invocations) * PER_MILLION["sqs"] / 1e6,
                      f"{_m(sends)} sends, {_m(receives)} receives, a delete per batch of {batch:.1f} "
                      f"(BatchSize {wiring.ingest.batch_size}, window {wiring.ingest.window_s:g} s, "
                      f"{rate:.2f} messages/s, {SQS_POLLERS} pollers)"))
    lines.append(Line("ingest", "Lambda: profiles function",
                      invocations * PER_MILLION["lambda"] / 1e6
                      + requests * HANDLER_MS["ProfilesFunction"] / 1000 * wiring.gb("ProfilesFunction")
                      * LAMBDA_GB_SECOND_ARM,
                      f"{_m(invocations)} invocations, {HANDLER_MS['ProfilesFunction']:.0f} ms a message (assumed)"))
    rru, wru = per_month(per_kind, month, ("unit", "rru")), per_month(per_kind, month, ("unit", "wru"))
    lines.append(Line("ingest", "DynamoDB WRU: profile upsert", wru * PER_MILLION["wru"] / 1e6,
                      f"{_m(wru)} measured (profile_events"
                      + (f"; {folded['kind']}: {folded['views_per_request']} a request folded into one write)"
                         if folded else ")"), _spread("profile upsert", {"wru": wru})))
    lines.append(Line("ingest", "DynamoDB RRU: profile upsert", rru * PER_MILLION["rru"] / 1e6,
                      f"{_m(rru)} measured (profile_events)", _spread("profile upsert", {"rru": rru})))
    # The table has one stream shard at these rates; the window's records at the month's average rate (the local
    # runtime hands a poller's whole backlog over at once, so its batches say nothing about AWS's).
    stream_batch = wiring.outbox.batch_at(changed / SECONDS_PER_MONTH)
    lines.append(Line("ingest", "Lambda: outbox function",
                      lambda_cost(wiring, "OutboxFunction", changed / stream_batch, HANDLER_MS["OutboxFunction"]),
                      f"{_m(changed / stream_batch)} invocations: a stream batch of {stream_batch:.1f} profile writes "
                      f"(window {wiring.outbox.window_s:g} s at {changed / SECONDS_PER_MONTH:.2f} writes/s)"))
    # Billed per entry (64 KB chunks): the outbox's 10 entries a PutEvents save requests, not dollars. Only the
    # template's BusEventTypes go on the bus; the flows' events go to their queue (their sends priced with flows).
    lines.append(Line("ingest", "EventBridge: outbox events", published * PER_MILLION["eventbridge"] / 1e6,
                      f"{_m(published)} entries measured (profile_events: BusEventTypes), in PutEvents of up to 10"))
    lines.append(firehose_line(ingest, wiring, month, batch))
    return lines


def firehose_line(ingest: Mapping[str, Any] | None, wiring: Wiring, month: Month, batch: float) -> Line:
    """The archive: the profiles function packs a batch's frames into one record (crm.archive.pack), billed in
    5 KB steps, so a month is its batches' bytes as measured. The labelled before: the front door's record a
    delivery (a webhook's as measured at the door, a /track request's one 5 KB step)."""
    s3_puts = SECONDS_PER_MONTH / wiring.firehose_interval_s
    s3 = s3_puts * PER_MILLION["s3_put"] / 1e6
    step = FIREHOSE_RECORD_KB * 1024
    at_the_door = counts(ingest.get("webhook_archived_at_the_door_per_delivery", {})) if ingest else {}
    before_gb = (at_the_door.get(("unit", "firehose_gb"), step / 2**30) * month.webhooks
                 + step / 2**30 * month.track_requests)
    before = f"before (a record a delivery at the door): {_m(month.messages)} records, {before_gb:.1f} GB, " \
             f"${before_gb * FIREHOSE_PER_GB + s3:.2f}"
    frames = ingest.get("archived_frame_bytes") if ingest else None
    if not frames:
        return Line("ingest", "Firehose archive (frame sizes MISSING: run bench/ingest_path.py)",
                    before_gb * FIREHOSE_PER_GB + s3, before)
    track = frames["track"]["fixed"] + frames["track"]["per_event"] * month.events_per_track_request
    frame_bytes = (frames["webhook"] * month.webhooks + track * month.track_requests) / month.messages
    batch_bytes = batch * frame_bytes
    records_a_batch = math.ceil(batch_bytes / FIREHOSE_RECORD_BYTES)
    billed = records_a_batch * math.ceil(batch_bytes / records_a_batch / step) * step
    batches = month.messages / batch
    firehose_gb = batches * billed / 2**30
    return Line("ingest", "Firehose archive", firehose_gb * FIREHOSE_PER_GB + s3,
                f"{_m(batches * records_a_batch)} records, one a batch of {batch:.1f} messages "
                f"({batch_bytes / 1024:.1f} KB: frames as measured, a webhook {frames['webhook'] / 1024:.1f} KB, "
                f"a /track request {track / 1024:.1f} KB), {firehose_gb:.2f} GB billed in 5 KB steps, "
                f"<= 1 S3 object per {wiring.firehose_interval_s} s; {before}")


def segment_lines(segments: Mapping[str, Any] | None, events: Mapping[str, Any], wiring: Wiring,
                  month: Month) -> list[Line]:
    """The scheduled runs as segment_runs priced them, and the refresh for this month's profile writes."""
    if segments is None:
        return [Line("segments", "segments: MISSING (run bench/segment_runs.py)", 0.0, "")]
    runs: dict[str, float] = {}
    units: dict[str, dict[str, float]] = {}
    for line in segments["monthly"]:
        name = str(line["component"])
        if not name.startswith("refresh"):
            part = name.split(":")[0]
            runs[part] = runs.get(part, 0.0) + float(line["dollars"])
            for unit in ("rru", "wru"):
                if unit.upper() in name:  # "daily runs: DynamoDB read RRU": its units at the list price
                    units.setdefault(part, {})[unit] = float(line["dollars"]) / PER_MILLION[unit] * 1e6
    lines = [Line("segments", f"segments: {part}", dollars, "segment_runs' model (all its lines)",
                  _run_loads(f"segments: {part}", units.get(part, {})))
             for part, dollars in runs.items()]
    refresh = segments.get("refresh_per_write")
    if refresh:
        writes = sum(n * events["changed_per_event"].get(kind, 1.0) for kind, n in month.mix.items())
        batch = wiring.refresh.batch_at(writes / SECONDS_PER_MONTH)
        refreshed = {"rru": writes * refresh["rru"], "wru": writes * refresh["wru"]}
        units_dollars = unit_cost(refreshed)
        lambda_dollars = (writes / batch * PER_MILLION["lambda"] / 1e6
                          + writes * refresh["seconds"] * wiring.gb("SegmentRefreshFunction") * LAMBDA_GB_SECOND_ARM)
        lines.append(Line("segments", "segments: event-driven refresh", units_dollars + lambda_dollars,
                          f"{_m(writes)} profile writes x {refresh['rru']:.2f} RRU, {refresh['wru']:.2f} WRU; "
                          f"stream batches of {batch:.1f}", _spread("segments: refresh", refreshed)))
    else:
        lines += [Line("segments", f"segments: {line['component']}", float(line["dollars"]), str(line["how"]))
                  for line in segments["monthly"] if str(line["component"]).startswith("refresh")]
    return lines


def flows_lines(flows: Mapping[str, Any] | None) -> list[Line]:
    if flows is None:
        return [Line("flows", "flows' own requests: MISSING (run bench/flows.py)", 0.0, "")]
    billed = {unit: float(v) for unit, v in flows["billed"].items()}
    priced = {unit: amount for unit, amount in billed.items() if unit in PER_MILLION}
    how = ", ".join(f"{unit} {_m(amount)}" for unit, amount in priced.items())
    return [Line("flows", "flows' own requests", unit_cost(priced), how, _spread("flows", priced))]


def predictions_lines(measured: Mapping[str, Any] | None, wiring: Wiring, month: Month,
                      profiles: int) -> list[Line]:
    """The daily fit of the reference store's profiles and the refresh after each order placed or refunded, from
    bench/predictions_requests.py's counts per profile and per order."""
    if wiring.predictions is None:  # a template without the predictions functions (issue 12's start)
        return []
    if measured is None:
        return [Line("predictions", "predictions: MISSING (run bench/predictions_requests.py)", 0.0, "")]
    daily, refresh = counts(measured["daily_per_profile"]), counts(measured["refresh_per_order"])

    def units(per_thing: Counts, times: float) -> dict[str, float]:
        return {key[1]: value * times for key, value in per_thing.items() if key[0] == "unit"}

    def requests(per_thing: Counts) -> float:
        return sum(value for key, value in per_thing.items() if key[0] == "req")

    runs = RUNS_PER_MONTH

    def daily_cost(run: Mapping[str, Any]) -> tuple[float, float]:
        """A month of daily runs in dollars, and a run's Lambda seconds, from a run's figures per profile."""
        per_profile = counts(run["daily_per_profile"])
        seconds = profiles * (float(run["daily_models_cpu_s_per_profile"]) + requests(per_profile) * AWS_REQUEST_S)
        # A run: the schedule's invocation, one SQS task (send, receive, delete) and the worker's long invocation.
        s3_gets = per_profile.get(("req", "s3", "GetObject"), 0.0) * profiles * runs
        waits = FIT_WAITS * runs if s3_gets else 0  # a fit that read the table did not wait
        return (unit_cost(units(per_profile, profiles * runs)) + 3 * runs * PER_MILLION["sqs"] / 1e6
                + s3_gets * S3_GET_PER_MILLION / 1e6
                + (waits * 3 * PER_MILLION["sqs"] + waits * PER_MILLION["lambda"] + waits * FIT_WAIT_RRU
                   * PER_MILLION["rru"]) / 1e6
                + lambda_cost(wiring, "PredictionsScheduleFunction", runs, HANDLER_MS["OutboxFunction"])
                + lambda_cost(wiring, "PredictionsFunction", runs, seconds * 1000)), seconds

    daily_dollars, run_s = daily_cost(measured)
    # The same run's before (bench/predictions_requests.py's moved_to_the_day): the write rule it replaced.
    before = measured.get("daily_before_write_rule")
    before_per_profile = counts(before["daily_per_profile"]) if before else {}
    before_note = "" if before is None else (
        f"; the same run before the precisions (next order to the day): {requests(before_per_profile):.2f} "
        f"requests, {units(before_per_profile, 1.0).get('wru', 0):.2f} WRU a profile (written "
        f"{before['daily_written_share']:.0%}), ${daily_cost(before)[0]:.2f}")
    # The same run's before of the fit reading every profile from the table (the fit now reads the segment
    # run's work files: crm.predictions.daily).
    table_read = measured.get("daily_before_table_read")
    if table_read is not None:
        read_per_profile = counts(table_read["daily_per_profile"])
        before_note += (f"; the same run reading the table: {units(read_per_profile, 1.0).get('rru', 0):.3f} RRU a "
                        f"profile, ${daily_cost(table_read)[0]:.2f}")
    orders = sum(n for kind, n in month.mix.items() if kind in PREDICTED_AFTER)
    # The queue's pollers share the orders as the ingest queue's do; a batch reads the kept fit once (a result
    # recorded before the worker read it once a batch counted it in each order's figures).
    batch = wiring.predictions.batch_at(orders / SECONDS_PER_MONTH, SQS_POLLERS)
    fit_read = counts(measured.get("refresh_fit_read", {}))
    # The batch's profiles read in one request (units per order, in refresh_per_order); recorded before, a read
    # per order was counted in each order's figures.
    profiles_read = counts(measured.get("refresh_profiles_read", {}))
    batches = orders / batch
    order_s = (float(measured["refresh_models_cpu_s_per_order"]) + requests(refresh) * AWS_REQUEST_S
               + (requests(fit_read) + requests(profiles_read)) * AWS_REQUEST_S / batch)
    receives = max(batches, SQS_POLLERS * SECONDS_PER_MONTH / LONG_POLL_S)  # at least the idle long polls
    refresh_dollars = (unit_cost(units(refresh, orders)) + unit_cost(units(fit_read, batches))
                       + (orders + receives + batches) * PER_MILLION["sqs"] / 1e6  # the rule's send; receive, delete
                       + lambda_cost(wiring, "PredictionsFunction", batches, 0.0)
                       + orders * order_s * wiring.gb("PredictionsFunction") * LAMBDA_GB_SECOND_ARM)
    per_profile, per_order = units(daily, 1.0), units(refresh, 1.0)
    fitted = units(daily, profiles * runs)
    return [
        Line("predictions", "predictions: daily fit", daily_dollars,
             f"{runs} runs of {profiles:,} profiles: {requests(daily):.2f} requests, {per_profile.get('rru', 0):.2f} "
             f"RRU, {per_profile.get('wru', 0):.2f} WRU a profile (written {measured['daily_written_share']:.0%}), "
             f"{run_s:.0f} s a run (measured at {int(measured['profiles']):,} profiles){before_note}",
             tuple(Load("predictions: daily fit", unit, n, at_hour=FIT_HOUR, per_second=n / runs / RUN_SECONDS)
                   for unit, n in fitted.items() if unit in ("rru", "wru") and n)),
        Line("predictions", "predictions: refresh after orders", refresh_dollars,
             f"{_m(orders)} orders and refunds x {requests(refresh):.2f} requests, {per_order.get('rru', 0):.2f} RRU, "
             f"{per_order.get('wru', 0):.2f} WRU; batches of {batch:.1f} (window {wiring.predictions.window_s:g} s, "
             f"{SQS_POLLERS} pollers), the fit read once each ({requests(fit_read):.0f} request, "
             f"{units(fit_read, 1.0).get('rru', 0):.1f} RRU) and the profiles in {requests(profiles_read):.0f} "
             f"request; {_m(receives)} receives; "
             f"{order_s * 1000:.0f} ms an order",
             _spread("predictions: refresh", {unit: units(refresh, orders).get(unit, 0.0)
                                              + units(fit_read, batches).get(unit, 0.0) for unit in ("rru", "wru")})),
    ]


# The SQS consumers whose receives their own lines price (ingest, predictions' refresh, flows in bench/flows.py).
QUEUES_PRICED_BY_THEIR_LINES = frozenset({"ProfilesFunction", "PredictionsFunction", "FlowsFunction"})
# The part of the bill an otherwise idle queue belongs to.
IDLE_QUEUE_GROUPS = {"SegmentTasksFunction": "segments"}


def idle_queue_lines(wiring: Wiring) -> list[Line]:
    """Lambda's pollers long-poll every queue it consumes, busy or not, and SQS bills each receive: the queues
    mostly idle (the segment runs' tasks, exports, erasures), their work's own requests being few."""
    receives = SQS_POLLERS * SECONDS_PER_MONTH / LONG_POLL_S
    return [Line(IDLE_QUEUE_GROUPS.get(function, "console"), f"SQS: {function}'s queue, idle polls",
                 receives * PER_MILLION["sqs"] / 1e6,
                 f"{_m(receives)} receives ({SQS_POLLERS} pollers' {LONG_POLL_S} s long polls)")
            for function in wiring.idle_queues]


def console_lines(wiring: Wiring) -> list[Line]:
    """The marketers' page views (assumed, CONSOLE_*): API requests, Lambda and the pages' reads."""
    views = CONSOLE_USERS * CONSOLE_VIEWS_A_DAY * CONSOLE_WORKING_DAYS
    dollars = (views * PER_MILLION[wiring.console_api] / 1e6
               + lambda_cost(wiring, "ConsoleFunction", views, CONSOLE_PAGE_MS)
               + unit_cost({"rru": views * CONSOLE_PAGE_RRU}))
    return [Line("console", "console: marketers' page views", dollars,
                 f"{views:,} page views ({CONSOLE_USERS} users x {CONSOLE_VIEWS_A_DAY} a working day x "
                 f"{CONSOLE_WORKING_DAYS} days, assumed) on the {wiring.console_api} API, "
                 f"{CONSOLE_PAGE_MS:.0f} ms and {CONSOLE_PAGE_RRU:.0f} RRU a page (assumed)",
                 _spread("console", {"rru": views * CONSOLE_PAGE_RRU}))]


def delivery_fees(flows: Mapping[str, Any] | None) -> list[str]:
    if flows is None:
        return []
    return [str(line["component"]) + f": ${float(line['dollars']):,.2f}" for line in flows["monthly"]
            if "apart" in str(line["component"])]


def bill(found: Mapping[str, Mapping[str, Any]], wiring: Wiring, per_track_request: float) -> list[Line]:
    events = found["profile_events"]
    month = Month({k: int(v) for k, v in events["monthly_mix"].items()}, frozenset(events["storefront"]),
                  per_track_request)
    return (ingest_lines(events, found.get("ingest_path"), wiring, month)
            + segment_lines(found.get("segment_runs"), events, wiring, month) + flows_lines(found.get("flows"))
            + predictions_lines(found.get("predictions_requests"), wiring, month, REFERENCE_PROFILES)
            + console_lines(wiring) + idle_queue_lines(wiring))


def _requests(measured: Counts) -> float:
    return sum(v for k, v in measured.items() if k[0] == "req")


def issue_figures(found: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Issue 12's other figures as this run measured them, for the before/after table."""
    lines = []
    if ingest := found.get("ingest_path"):
        front = counts(ingest["webhook_per_delivery"])
        ms = ingest["webhook_handler_ms"]
        before = counts(ingest.get("webhook_before_issue12_per_delivery", {}))
        cold = counts(ingest.get("webhook_cold_container", {}))
        at_the_door = counts(ingest.get("webhook_archived_at_the_door_per_delivery", {}))
        lines.append(f"webhook: {_requests(front):.2f} AWS requests a delivery on a warm container"
                     + (f", {_requests(cold):.0f} on a new one" if cold else "")
                     + (f", {_requests(at_the_door):.2f} archiving at the door (before the archive lane, same run)"
                        if at_the_door else "")
                     + (f", {_requests(before):.2f} before issue 12 (same run)" if before else "")
                     + f" (ingest_path; handler on moto p50 {ms['p50']:.1f} ms, p95 {ms['p95']:.1f} ms)")
        if track := ingest.get("track_requests_per_request"):
            lines.append("/track: AWS requests a request " + ", ".join(f"{k} {v:.2f}" for k, v in track.items()))
    if segments := found.get("segments"):
        lines += [f"segment rule evaluation at {int(n):,} profiles: {size['ours_to_duckdb']:.3f}x DuckDB's rate"
                  + (f" (before issue 12, same run: {size['before_to_duckdb']:.3f}x)" if "before_to_duckdb" in size
                     else "")
                  + f", members {'identical' if size['same_members'] else 'DIFFERENT'}"
                  for n, size in segments["sizes"].items()]
    if cold_start := found.get("cold_start"):
        layer, zipped = cold_start["layer_bytes"], cold_start["layer_zipped"]
        lines.append(f"layer: {layer['before'] / 2**20:.1f} MB -> {layer['after'] / 2**20:.1f} MB unzipped "
                     f"({zipped['before'] / 2**20:.1f} -> {zipped['after'] / 2**20:.1f} MB zipped); a cold webhook "
                     + ", ".join(f"{label} {s:.2f} s" for label, s in cold_start["cold_webhook_s"].items())
                     + "; median import " + ", ".join(f"{label} {s:.3f} s"
                                                      for label, s in cold_start["import_s_median"].items()))
    if flows := found.get("flows"):
        ms = flows["webhook_to_send_ms"]
        lines.append(f"flows: webhook -> SES send p50 {ms['p50']:.0f} ms, p95 {ms['p95']:.0f} ms")
    return lines


def print_before(before: Mapping[str, Any], found: Mapping[str, Mapping[str, Any]], now: Sequence[Line],
                 per_track_request: float, out: Any) -> None:
    """The bill of the recorded starting point, priced the same way, by part of the stack beside now's. Where a
    script measured the starting point in this run too (its labelled "before"), that is used."""
    figures = dict(before["figures"])
    same_run = [name for name in PRICED if name in found and name in figures and "before" in found[name]]
    for name in same_run:
        figures[name] = {**figures[name], **found[name]["before"]}
    then = bill(figures, wiring_from(before["wiring"]), per_track_request)
    print(f"before: {before['label']}, priced the same way (same mix and assumptions)"
          + (f"; as {', '.join(same_run)} measured it in this run (their labelled before)" if same_run else "")
          + "; now: this run", file=out)
    for group in GROUPS:
        b = sum(line.dollars for line in then if line.group == group)
        n = sum(line.dollars for line in now if line.group == group)
        print(f"  {group:<11} before {_usd(b)}  now {_usd(n)}", file=out)
    print(f"  {'all in':<11} before {_usd(sum(x.dollars for x in then))}  now {_usd(sum(x.dollars for x in now))}",
          file=out)


def print_bill(found: Mapping[str, Mapping[str, Any]], wiring: Wiring, per_track_request: float,
               out: Any = sys.stdout, before: Mapping[str, Any] | None = None,
               capacity: Bounds | None = None) -> float:
    events = found["profile_events"]
    month = Month({k: int(v) for k, v in events["monthly_mix"].items()}, frozenset(events["storefront"]),
                  per_track_request)
    print("Reference store bill (bench/cost.py): counted requests from bench/results/ at list prices, us-east-1",
          file=out)
    print("  recorded: " + ", ".join(f"{name} {str(figures.get('recorded_at', '?'))[:16]}"
                                     for name, figures in found.items()), file=out)
    for figure in issue_figures(found):
        print(f"  {figure}", file=out)
    print("assumed month (profile_events' MONTHLY_MIX): "
          + ", ".join(f"{n:,} {kind}" for kind, n in month.mix.items()), file=out)
    measured = events.get("events_per_track_request")
    print(f"  {month.events:,} events: {month.webhooks:,} by webhook, {month.storefront_events:,} by /track at "
          f"{per_track_request:.2f} events a request ("
          + ("as profile_events recorded the snippet sends them" if measured == per_track_request
             else "NOT MEASURED: profile_events recorded none" if measured is None else "given")
          + f"; {_m(month.track_requests)} requests); "
          f"{_m(month.messages)} queued messages", file=out)
    if flows := found.get("flows"):
        print("  flows' month: " + ", ".join(f"{kind} {int(n):,}" for kind, n in flows["reference_month"].items()),
              file=out)
    print(f"wiring (template.yaml): webhooks on {wiring.api.get('/webhooks/{platform}')} API, /track on "
          f"{wiring.api.get('/track')} API; profiles' SQS BatchSize {wiring.ingest.batch_size} window "
          f"{wiring.ingest.window_s:g} s; outbox stream {wiring.outbox.batch_size}/{wiring.outbox.window_s:g} s; "
          f"refresh stream {wiring.refresh.batch_size}/{wiring.refresh.window_s:g} s", file=out)
    print("assumed handler ms: " + ", ".join(f"{k} {v:g}" for k, v in HANDLER_MS.items())
          + "; Lambda arm64 at the template's memory", file=out)
    for fee in delivery_fees(found.get("flows")):
        print(f"not in the total: {fee}", file=out)
    missing = [name for name in PRICED if name not in found
               and (name != "predictions_requests" or wiring.predictions is not None)]
    lines = bill(found, wiring, per_track_request)
    if before is not None:
        print_before(before, found, lines, per_track_request, out)
    width = max(len(line.component) for line in lines)
    for line in lines:
        print(f"{line.component:<{width}}  {_usd(line.dollars)}  {line.how}", file=out)
    total = sum(line.dollars for line in lines)
    headline = total
    if capacity is not None:
        # The last line prices the template's default capacity mode, the line above it the other.
        provisioned = print_provisioned(lines, capacity, total, wiring, out,
                                        found.get("segment_runs", {}).get("hourly_slice"))
        if capacity.default_mode == "provisioned":
            print(f"reference store all in, TableCapacity=on-demand: ${total:.2f} per month", file=out)
            headline = provisioned
        else:
            print(f"reference store all in, TableCapacity=provisioned: ${provisioned:.2f} per month", file=out)
    partial = f" (WITHOUT {', '.join(missing)}: not run here)" if missing else ""
    print(f"reference store all in: ${headline:.2f} per month (target ${TARGET:.2f}){partial}", file=out)
    return headline


# Before this session's queue pacing (template.yaml until 2026-12-05): each of the daily run's tasks slept inside
# Lambda to keep to 60 units a second, its shares side by side (crm.adapters.pacing's Pacer); a labelled before.
SLEEPING_TASK_UNITS_PER_SECOND = 60.0
# A chained hop's Lambda time beyond the work itself (its invocation, the run's record, its rules): assumed.
HOP_OVERHEAD_MS = 150.0


# A paced fit's rest (crm.predictions.daily) reads the run's work files again and predicts the profiles left:
# assumed 30 s of PredictionsFunction a hop at 100k profiles (the fit's ~90 s a run less its fitting; not measured).
FIT_REST_HOP_S = 30.0


def print_provisioned(lines: Sequence[Line], bounds: Bounds, total: float, wiring: Wiring, out: Any,
                      hourly_slice: Mapping[str, float] | None = None) -> float:
    """The same counted DynamoDB units as provisioned capacity (template.yaml's TableCapacity=provisioned),
    auto scaled hour by hour (bench/capacity.py); the bill all in with it in place of the on-demand units."""
    loads = [load for line in lines for load in line.loads]
    monthly = {unit: sum(load.monthly for load in loads if load.unit == unit) for unit in ("rru", "wru")}
    on_demand = unit_cost(monthly)
    print(f"TableCapacity=provisioned (bench/capacity.py), the same counted units: {_m(monthly['rru'])} RRU and "
          f"{_m(monthly['wru'])} WRU a month (${on_demand:.2f} on demand), by the hour (UTC) under an assumed "
          f"diurnal shape (a US store's evenings busiest: {min(DIURNAL_UTC):.2f}-{max(DIURNAL_UTC):.2f}x an "
          "hour's mean) and the scheduled runs' bursts:", file=out)
    weight = sum(DIURNAL_UTC)
    for unit in ("rru", "wru"):
        steady = sum(load.monthly for load in loads if load.unit == unit and not load.burst) / 30
        print(f"  {unit.upper()} a second, 00-23 UTC: "
              + " ".join(f"{steady * w / weight / 3600:.0f}" for w in DIURNAL_UTC), file=out)
    run = "segments: daily runs"
    for load in loads:
        if load.burst:
            when = "every hour" if load.every_hour else f"{load.at_hour:02d}:00 UTC"
            runs = 30 * (24 if load.every_hour else 1)
            print(f"  burst: {load.component} {load.monthly / runs:,.0f} {load.unit.upper()} at {when}, "
                  f"{load.per_second:,.0f} a second unpaced", file=out)
    # Before: the run's shares side by side, each task sleeping to keep its pace (Lambda time at its memory).
    shares = math.ceil(REFERENCE_PROFILES / Settings.model_fields["segment_items_per_share"].default)
    sleeping_pace = SLEEPING_TASK_UNITS_PER_SECOND * shares
    waiting = paced_seconds(loads, sleeping_pace, run)
    waiting_dollars = waiting * wiring.gb("SegmentTasksFunction") * LAMBDA_GB_SECOND_ARM
    # Now: chained, one share per index bucket a phase, the queue holding each next hop back; no task waits.
    pace = bounds.task_units_per_second
    unpaced_tasks = 2 * shares * RUNS_PER_MONTH

    def hop_dollars(laid_out: Sequence[Load]) -> float:
        """A month's hops beyond the unpaced run's tasks: each an SQS send, receive and delete, an invocation and
        its overhead."""
        hops = (read_hops(laid_out, run) + max(write_hops(laid_out, run), MOST_SHARES)) * RUNS_PER_MONTH
        extra_requests = (hops - unpaced_tasks) * (3 * PER_MILLION["sqs"] + PER_MILLION["lambda"]) / 1e6
        hop_lambda = hops * HOP_OVERHEAD_MS / 1000 * wiring.gb("SegmentTasksFunction") * LAMBDA_GB_SECOND_ARM
        return extra_requests + hop_lambda if pace else 0.0

    # The daily fit too, after the run's read phase (it waits for it), its writes at its pace in hops of a
    # minute's units, each rest a send, receive, delete and invocation and a read of the run's files again.
    fit, fit_pace = "predictions: daily fit", bounds.fit_units_per_second

    def fit_after(run_laid_out: list[Load]) -> tuple[list[Load], int]:
        laid = paced_after(run_laid_out, fit_pace, fit, HOP_AHEAD_SECONDS, read_phase_seconds(run_laid_out, run),
                           WRITE_UNIT_WEIGHT)
        return laid, sum(load.hops - 1 for load in laid if load.component == fit and load.unit == "wru")

    def rest_dollars(rests_a_day: int) -> float:
        rests = rests_a_day * RUNS_PER_MONTH
        return (rests * (3 * PER_MILLION["sqs"] + PER_MILLION["lambda"]) / 1e6
                + rests * FIT_REST_HOP_S * wiring.gb("PredictionsFunction") * LAMBDA_GB_SECOND_ARM)

    # Before subhops: each hop read a whole index bucket; now a read hop stops after SEGMENT_HOP_SECONDS of the pace.
    by_bucket = chained(loads, pace, run, MOST_SHARES, WRITE_UNIT_WEIGHT)
    by_bucket_fit, by_bucket_rests = fit_after(by_bucket)
    hop_seconds = ClientSettings.model_fields["segment_hop_seconds"].default
    # Before evalhops: a writing hop wrote a whole bucket (~674 WRU in seconds, which target tracking answered with
    # hours of scaled-out writes); now it stops after SEGMENT_HOP_SECONDS of the pace too.
    reads_by_minute = chained(loads, pace, run, MOST_SHARES, WRITE_UNIT_WEIGHT, hop_seconds)
    reads_by_minute_fit, reads_by_minute_rests = fit_after(reads_by_minute)
    by_minute = chained(loads, pace, run, MOST_SHARES, WRITE_UNIT_WEIGHT, hop_seconds, hop_seconds)
    fit_paced, rests_a_day = fit_after(by_minute)
    now_tasks = hop_dollars(by_minute) + rest_dollars(rests_a_day)
    # The hourly runs chained (crm.segments.runs.HOURLY_SLICES): each slice after a run's first is a send, receive,
    # delete and invocation more, and reads the rules and its hour again (segment_runs' next-hour run's units).
    hourly, spacing = "segments: hourly runs", HOURLY_SLICE_DELAY.total_seconds()
    slice_rru = (hourly_slice or {}).get("rru", 0.0)
    slicing = bool(pace) and any(load.every_hour and load.component == hourly for load in loads)
    more_slices = (HOURLY_SLICES - 1) * 24 * RUNS_PER_MONTH if slicing else 0
    extra_slice_rru = more_slices * slice_rru
    slice_dollars = (more_slices * (3 * PER_MILLION["sqs"] + PER_MILLION["lambda"]) / 1e6
                     + more_slices * (hourly_slice or {}).get("seconds", HOP_OVERHEAD_MS / 1000)
                     * wiring.gb("SegmentTasksFunction") * LAMBDA_GB_SECOND_ARM)
    layouts = (("before: the run unpaced", loads, 0.0),
               (f"before: the run's {shares} shares side by side, each task sleeping to keep "
                f"{SLEEPING_TASK_UNITS_PER_SECOND:g} units a second", paced(loads, sleeping_pace, run),
                waiting_dollars),
               (f"before: the run chained on its queue, {pace:g} units a second in hops of one index bucket "
                f"({MOST_SHARES} a phase), a write unit counted as a read unit",
                chained(loads, pace, run, MOST_SHARES), hop_dollars(by_bucket)),
               (f"before: the same, a write unit counted as {WRITE_UNIT_WEIGHT} read units (what provisioned "
                f"capacity charges for it: writes at {pace / WRITE_UNIT_WEIGHT:g} a second); the fit's writes at "
                f"{DAILY_RUN_HOUR:02d}:00 unpaced", by_bucket, hop_dollars(by_bucket)),
               (f"before: the same; the fit's writes after the run's read phase at {fit_pace:g} units a "
                f"second ({fit_pace / WRITE_UNIT_WEIGHT:g} WRU), {HOP_AHEAD_SECONDS} s of them a hop "
                f"({by_bucket_rests} rests a day)", by_bucket_fit,
                hop_dollars(by_bucket) + rest_dollars(by_bucket_rests)),
               (f"before: the same, the run's reading hops {hop_seconds:g} s of the pace each, writing hops a "
                f"bucket each ({read_hops(reads_by_minute, run)} reading, {write_hops(reads_by_minute, run)} "
                f"writing; {reads_by_minute_rests} fit rests a day)", reads_by_minute_fit,
                hop_dollars(reads_by_minute) + rest_dollars(reads_by_minute_rests)),
               (f"before: the same, the run's reading and writing hops {hop_seconds:g} s of the pace each "
                f"({read_hops(by_minute, run)} reading, {write_hops(by_minute, run)} writing; {rests_a_day} fit "
                f"rests a day); each hourly run all at once at the hour", fit_paced, now_tasks),
               ("what if: the same without the hourly runs (what spreading them could save at most)",
                [load for load in fit_paced if not load.every_hour], now_tasks),
               (f"now: the same, each hourly run in {HOURLY_SLICES} slices {spacing:g} s apart, each slice after the "
                f"first reading the rules and its hour again ({slice_rru:g} RRU)",
                sliced(fit_paced, HOURLY_SLICES, spacing, hourly, extra_slice_rru) if slicing else fit_paced,
                now_tasks + slice_dollars))
    index = index_dollars(bounds)
    figures = {}
    for label, laid_out, tasks in layouts:
        dimensions = [simulate(unit, laid_out, bounds.minimum[unit], bounds.maximum[unit], bounds.target)
                      for unit in ("rru", "wru")]
        figures[label] = sum(d.dollars_a_month for d in dimensions) + tasks
        hours = run_hours(laid_out, run)
        print(f"  auto scaling, {label}: target {bounds.target:.0%}, min {bounds.minimum['rru']:.0f}/"
              f"{bounds.minimum['wru']:.0f}, max {bounds.maximum['rru']:.0f}/{bounds.maximum['wru']:.0f} RCU/WCU: "
              f"${figures[label] - tasks:.2f} a month + its tasks' extra ${tasks:.2f}; the run from "
              f"{DAILY_RUN_HOUR:02d}:00 UTC takes {hours * 60:,.0f} min", file=out)
        for d in dimensions:
            print(f"    {'RCU' if d.unit == 'rru' else 'WCU'} by hour: "
                  + " ".join(f"{c:.0f}" for c in d.capacity_by_hour)
                  + f"; throttled (retried, nothing lost): {d.throttled_share(False):.2%} of the steady traffic's "
                    f"units, {d.throttled_share(True):.1%} of the bursts' ({d.component_throttled_share(run):.1%} of "
                    f"the daily segment run's), longest wait {d.longest_wait_minutes} min", file=out)
    before_unpaced, before_sleeping, _, before_fit, by_bucket_now, reads_by_minute_now, at_once, without_hourly, \
        now = figures.values()
    print(f"  the fit paced: ${by_bucket_now - before_fit:+.2f} a month (its rests' requests and Lambda "
          f"${rest_dollars(by_bucket_rests):.2f} included); reading hops of a minute: "
          f"${reads_by_minute_now - by_bucket_now:+.2f}; "
          f"writing hops of a minute: ${at_once - reads_by_minute_now:+.2f}; "
          f"the hourly runs in slices: ${now - at_once:+.2f} (their extra requests and Lambda "
          f"${slice_dollars:.2f} included; without the hourly runs at all ${without_hourly - at_once:+.2f})",
          file=out)
    sleeping_all_in = total - on_demand + before_sleeping + index
    print(f"  + the index at its minimum ${index:.2f}; all in, before: "
          f"${total - on_demand + before_unpaced + index:.2f} unpaced, ${sleeping_all_in:.2f} with sleeping tasks "
          f"({waiting / 30:,.0f} s of waiting a day)", file=out)
    return total - on_demand + now + index


def events_per_track_request(events: Mapping[str, Any]) -> float:
    """What the snippet sends a request, as profile_events recorded it (bench/track_batching.py)."""
    return float(events.get("events_per_track_request", UNRECORDED_EVENTS_PER_TRACK_REQUEST))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the wiring to price (default: ours)")
    parser.add_argument("--events-per-track-request", type=float,
                        help="price /track at this many events a request (default: what profile_events recorded "
                             "the snippet sends, bench/track_batching.py)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the scripts recorded their figures")
    parser.add_argument("--save-before", metavar="LABEL",
                        help=f"keep this run's figures and the template's wiring as the starting point ({BEFORE.name})")
    args = parser.parse_args(argv)
    found = recorded(SCRIPTS, args.results)
    if "profile_events" not in found:
        print(f"bench/cost.py: no profile_events.json in {args.results}; run bench/profile_events.py first",
              file=sys.stderr)
        return 1
    wiring = wiring_of(args.template)
    if args.save_before:
        kept = {name: found[name] for name in PRICED if name in found}
        BEFORE.write_text(json.dumps({"label": args.save_before, "wiring": plain(wiring), "figures": kept},
                                     indent=1) + "\n")
    before = json.loads(BEFORE.read_text()) if BEFORE.exists() else None
    try:
        capacity = bounds_of(read_sam(args.template))
    except (KeyError, ValueError):  # a template from before TableCapacity
        capacity = None
    print_bill(found, wiring, args.events_per_track_request or events_per_track_request(found["profile_events"]),
               before=before, capacity=capacity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
