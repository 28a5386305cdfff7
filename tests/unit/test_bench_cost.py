"""bench/cost.py's and bench/figures.py's arithmetic: figures kept and read back, the wiring read from a template,
batches at a steady rate, and the bill priced from counted units. The figures themselves are measured by
`make bench`, never asserted here."""

from __future__ import annotations

import importlib.util
import io
import math
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    # The bench scripts import each other as top-level modules (`from figures import ...`).
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    return _load("cost")


@pytest.fixture(scope="module")
def figures() -> ModuleType:
    return _load("figures")


TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    MemorySize: 256
Resources:
  WebhooksFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Shopify: {Type: Api, Properties: {Path: "/webhooks/{platform}", Method: post}}
  TrackFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Track: {Type: HttpApi, Properties: {Path: /track, Method: post}}
        TrackBefore: {Type: Api, Properties: {Path: /track, Method: post}}
  ProfilesFunction:
    Type: AWS::Serverless::Function
    Properties:
      MemorySize: 512
      Events:
        Ingest: {Type: SQS, Properties: {Queue: arn, BatchSize: 10, MaximumBatchingWindowInSeconds: 20}}
  OutboxFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Stream: {Type: DynamoDB, Properties: {Stream: arn, StartingPosition: LATEST, BatchSize: 100}}
  SegmentRefreshFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Stream: {Type: DynamoDB, Properties: {Stream: arn, StartingPosition: LATEST, BatchSize: 100,
                                              MaximumBatchingWindowInSeconds: 1}}
  PredictionsFunction:
    Type: AWS::Serverless::Function
    Properties:
      MemorySize: 1024
      Events:
        Orders: {Type: SQS, Properties: {Queue: arn, BatchSize: 10, MaximumBatchingWindowInSeconds: 5}}
  ArchiveStream:
    Type: AWS::KinesisFirehose::DeliveryStream
    Properties:
      ExtendedS3DestinationConfiguration: {BufferingHints: {IntervalInSeconds: 900}}
"""


def test_figures_round_trip_tuple_keys_and_decimals(figures: ModuleType, tmp_path: Path) -> None:
    measured = {("req", "dynamodb", "GetItem"): 2.0, ("unit", "rru"): 1.5}
    figures.record("x", {"per": measured, "money": Decimal("1.25"), "kinds": frozenset({"b", "a"})}, tmp_path)
    found = figures.load("x", tmp_path)
    assert found is not None
    assert figures.counts(found["per"]) == measured
    assert found["money"] == 1.25 and found["kinds"] == ["a", "b"]
    assert figures.load("never_ran", tmp_path) is None


def test_billed_sums_each_kind_times_its_month(figures: ModuleType) -> None:
    per_kind = {"email": {("unit", "wru"): 5.0, ("req", "sesv2", "SendEmail"): 1.0}, "tag": {("unit", "wru"): 2.0}}
    assert figures.billed(per_kind, {"email": 10, "tag": 3, "sms": 7}) == {"wru": 56.0, "requests": 10.0}


def test_a_batch_fills_only_within_its_window(cost: ModuleType) -> None:
    assert cost.Source(10, 0).batch_at(0.8) == 1.0
    assert cost.Source(10, 5).batch_at(0.8) == pytest.approx(4.0)
    assert cost.Source(10, 20).batch_at(0.8) == 10.0
    assert cost.Source(10, 20).batch_at(0.01) == 1.0
    assert cost.Source(10, 5).batch_at(0.8, readers=2) == pytest.approx(2.0)


def test_the_wiring_is_read_from_the_template(cost: ModuleType, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    wiring = cost.wiring_of(template)
    assert wiring.api == {"/webhooks/{platform}": "REST", "/track": "HTTP"}
    assert wiring.ingest == cost.Source(10, 20.0)
    assert wiring.outbox == cost.Source(100, 0.0) and wiring.refresh == cost.Source(100, 1.0)
    assert wiring.predictions == cost.Source(10, 5.0)
    assert wiring.gb("ProfilesFunction") == 0.5 and wiring.gb("TrackFunction") == 0.25
    assert wiring.firehose_interval_s == 900


def _found() -> dict[str, Any]:
    return {"profile_events": {
        "monthly_mix": {"view": 1_000_000, "order": 100_000}, "storefront": ["view"],
        "per_event": {"view": {"unit wru": 1.0, "unit rru": 0.5}, "order": {"unit wru": 10.0}},
        "changed_per_event": {"view": 1.0, "order": 0.5}, "published_per_event": {"order": 2.0}}}


def test_the_bill_prices_counted_units_under_the_wiring(cost: ModuleType, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    lines = {line.component: line.dollars for line in cost.bill(_found(), cost.wiring_of(template), 2.0)}
    assert lines["API Gateway HTTP API: /track"] == pytest.approx(500_000 * 1.00 / 1e6)
    assert lines["API Gateway REST API: webhooks"] == pytest.approx(100_000 * 3.50 / 1e6)
    assert lines["DynamoDB WRU: profile upsert"] == pytest.approx(2_000_000 * 0.625 / 1e6)
    assert lines["DynamoDB RRU: profile upsert"] == pytest.approx(500_000 * 0.125 / 1e6)
    assert lines["EventBridge: outbox events"] == pytest.approx(200_000 * 1.00 / 1e6)
    # 600k messages a month (0.23/s) shared by 2 pollers in a 20 s window: batches of 2.3; a send each, a delete
    # a batch, and a receive a batch or the pollers' idle 20 s long polls, whichever is more
    month = 30 * 24 * 3600
    batch = 600_000 / month / 2 * 20
    receives = max(600_000 / batch, 2 * month / 20)
    assert lines["SQS: ingest queue"] == pytest.approx((600_000 + receives + 600_000 / batch) * 0.40 / 1e6)


def test_the_last_line_is_the_total_and_names_what_did_not_run(cost: ModuleType, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    out = io.StringIO()
    total = cost.print_bill(_found(), cost.wiring_of(template), 2.0, out)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith(f"reference store all in: ${total:.2f} per month (target $15.00)")
    assert "WITHOUT ingest_path, segment_runs, flows, predictions_requests" in last
    assert total == pytest.approx(sum(line.dollars for line in cost.bill(_found(), cost.wiring_of(template), 2.0)))


def test_the_recorded_starting_point_is_priced_beside_now(cost: ModuleType, figures: ModuleType,
                                                         tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    wiring = cost.wiring_of(template)
    stored = figures.plain(wiring)
    stored["api"]["/track"] = "REST"  # the starting point: /track on the REST API
    before = {"label": "at the start", "wiring": stored, "figures": _found()}
    out = io.StringIO()
    total = cost.print_bill(_found(), wiring, 2.0, out, before=before)
    text = out.getvalue().splitlines()
    [ingest] = [line for line in text if line.strip().startswith("ingest ")]
    then_now = [float(part.strip("$")) for part in ingest.split() if part.startswith("$")]
    assert then_now[0] - then_now[1] == pytest.approx(500_000 * (3.50 - 1.00) / 1e6)
    assert text[-1].startswith(f"reference store all in: ${total:.2f} per month")


def test_the_issue_figures_read_every_script_that_recorded(cost: ModuleType) -> None:
    found = {
        "ingest_path": {"webhook_per_delivery": {"req dynamodb GetItem": 0.0, "req sqs SendMessage": 1.0,
                                                 "req firehose PutRecord": 1.0},
                        "webhook_cold_container": {"req dynamodb GetItem": 1.0, "req sqs SendMessage": 1.0,
                                                   "req firehose PutRecord": 1.0,
                                                   "req secretsmanager GetSecretValue": 1.0},
                        "webhook_before_issue12_per_delivery": {"req dynamodb GetItem": 1.0, "req sqs SendMessage": 1.0,
                                                                "req firehose PutRecord": 1.0},
                        "webhook_handler_ms": {"p50": 20.0, "p95": 40.0}},
        "segments": {"sizes": {"100000": {"ours_to_duckdb": 0.6, "before_to_duckdb": 0.07, "same_members": True}}},
        "flows": {"webhook_to_send_ms": {"p50": 400.0, "p95": 600.0}},
        "cold_start": {"layer_bytes": {"before": 88 * 2**20, "after": 20 * 2**20},
                       "layer_zipped": {"before": 30 * 2**20, "after": 7 * 2**20},
                       "import_s_median": {"before": 1.2, "today": 0.4}, "cold_webhook_s": {"today": 0.9}},
    }
    text = "\n".join(cost.issue_figures(found))
    assert "2.00 AWS requests a delivery on a warm container, 4 on a new one, 3.00 before issue 12" in text
    assert "0.600x DuckDB's rate (before issue 12, same run: 0.070x), members identical" in text
    assert "88.0 MB -> 20.0 MB unzipped" in text and "p95 600 ms" in text


def test_the_upsert_measured_before_in_the_same_run_prices_the_starting_point(cost: ModuleType, figures: ModuleType,
                                                                               tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    wiring = cost.wiring_of(template)
    found = _found()
    found["profile_events"]["before"] = {"per_event": {"view": {"unit wru": 3.0}, "order": {"unit wru": 10.0}}}
    before = {"label": "at the start", "wiring": figures.plain(wiring), "figures": _found()}
    out = io.StringIO()
    cost.print_bill(found, wiring, 2.0, out, before=before)
    [ingest] = [line for line in out.getvalue().splitlines() if line.strip().startswith("ingest ")]
    then_now = [float(part.strip("$").replace(",", "")) for part in ingest.split() if part.startswith("$")]
    # views' 2 WRU more each (1M views) and their 0.5 RRU gone: the rest is priced alike
    assert then_now[0] - then_now[1] == pytest.approx((2_000_000 * 0.625 - 500_000 * 0.125) / 1e6, abs=0.01)


def test_folded_views_replace_their_one_at_a_time_figures(cost: ModuleType, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    found = _found()
    found["profile_events"]["folded"] = {"kind": "view", "views_per_request": 4, "per_view": {"unit wru": 0.25}}
    lines = {line.component: line.dollars for line in cost.bill(found, cost.wiring_of(template), 2.0)}
    assert lines["DynamoDB WRU: profile upsert"] == pytest.approx((250_000 + 1_000_000) * 0.625 / 1e6)
    assert lines["DynamoDB RRU: profile upsert"] == 0.0


def test_track_requests_are_priced_as_profile_events_recorded_the_snippet_sends(cost: ModuleType) -> None:
    found = _found()["profile_events"]
    assert cost.events_per_track_request(found) == cost.UNRECORDED_EVENTS_PER_TRACK_REQUEST
    assert cost.events_per_track_request({**found, "events_per_track_request": 1.6}) == 1.6


def test_predictions_are_priced_per_profile_daily_and_per_order_refreshed(cost: ModuleType, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    wiring = cost.wiring_of(template)
    found = _found()
    found["profile_events"]["monthly_mix"] = {"order created (returning)": 200_000, "refund": 100_000}
    found["predictions_requests"] = {
        "profiles": 1000, "daily_written_share": 0.25, "daily_models_cpu_s_per_profile": 0.001,
        "daily_per_profile": {"req dynamodb UpdateItem": 0.25, "unit wru": 0.25, "unit rru": 0.5},
        "refresh_per_order": {"req dynamodb GetItem": 2.0, "unit rru": 1.0, "unit wru": 1.0},
        "refresh_models_cpu_s_per_order": 0.002,
        "refresh_fit_read": {"req dynamodb GetItem": 1.0, "unit rru": 2.0}}
    lines = {line.component: line.dollars for line in cost.bill(found, wiring, 2.0)}
    month, profiles, runs = 30 * 24 * 3600, cost.REFERENCE_PROFILES, cost.RUNS_PER_MONTH
    run_s = profiles * (0.001 + 0.25 * cost.AWS_REQUEST_S)
    # units; a task's send, receive and delete; two invocations a run (the schedule at 256 MB for 20 ms, the worker
    # at 1 GB for the run)
    daily = ((0.25 * 0.625 + 0.5 * 0.125) * profiles * runs + 3 * runs * 0.40 + 2 * runs * 0.20) / 1e6 \
        + runs * (run_s * 1.0 + 0.020 * 0.25) * cost.LAMBDA_GB_SECOND_ARM
    assert lines["predictions: daily fit"] == pytest.approx(daily)
    orders = 300_000  # the refunds count: OrderRefunded reaches the worker too
    # Two pollers share a 5 s window: batches of one at this rate, each reading the fit (2 RRU); the pollers'
    # idle long polls outnumber the batches.
    batch = max(1.0, orders / month / 2 * 5)
    order_s = 0.002 + 2 * cost.AWS_REQUEST_S + cost.AWS_REQUEST_S / batch
    receives = max(orders / batch, 2 * month / 20)
    refresh = ((0.625 + 0.125) * orders + 2 * 0.125 * orders / batch
               + (orders + receives + orders / batch) * 0.40 + orders / batch * 0.20) / 1e6 \
        + orders * order_s * 1.0 * cost.LAMBDA_GB_SECOND_ARM
    assert lines["predictions: refresh after orders"] == pytest.approx(refresh)
    # A minute's window: batches of 3.5 orders, the fit read and a delete once each; the idle polls stay.
    wider = cost.Wiring(**{**vars(wiring), "predictions": cost.Source(10, 60)})
    batched = {line.component: line.dollars for line in cost.bill(found, wider, 2.0)}
    batch = orders / month / 2 * 60
    assert batch == pytest.approx(3.47, abs=0.01)
    saved = (2 * 0.125 + 0.40 + 0.20) * (orders - orders / batch) / 1e6 + (receives - 2 * month / 20) * 0.40 / 1e6 \
        + orders * cost.AWS_REQUEST_S * (1 - 1 / batch) * cost.LAMBDA_GB_SECOND_ARM
    assert lines["predictions: refresh after orders"] - batched["predictions: refresh after orders"] \
        == pytest.approx(saved)

    # The same run's labelled before (the write rule it replaced) is priced beside the daily line, not in the bill.
    rule_before = {"daily_per_profile": {"req dynamodb UpdateItem": 0.5, "unit wru": 0.5, "unit rru": 0.5},
                   "daily_written_share": 0.5, "daily_models_cpu_s_per_profile": 0.001}
    found["predictions_requests"]["daily_before_write_rule"] = rule_before
    with_before = {line.component: line for line in cost.bill(found, wiring, 2.0)}
    assert with_before["predictions: daily fit"].dollars == pytest.approx(daily)
    found["predictions_requests"] = {**found["predictions_requests"], **rule_before}
    priced_before = {line.component: line.dollars for line in cost.bill(found, wiring, 2.0)}["predictions: daily fit"]
    assert priced_before > daily
    assert f"(written 50%), ${priced_before:.2f}" in with_before["predictions: daily fit"].how
    # The batch's profiles read in one request: Lambda time for it once a batch, not once an order.
    found["predictions_requests"]["refresh_profiles_read"] = {"req dynamodb BatchGetItem": 1.0}
    shared = {line.component: line.dollars for line in cost.bill(found, wider, 2.0)}
    assert shared["predictions: refresh after orders"] - batched["predictions: refresh after orders"] \
        == pytest.approx(orders * cost.AWS_REQUEST_S / batch * cost.LAMBDA_GB_SECOND_ARM)


def test_the_console_is_priced_from_its_assumed_page_views_on_its_api(cost: ModuleType, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    console = """
  ConsoleFunction:
    Type: AWS::Serverless::Function
    Properties:
      MemorySize: 512
      Events:
        Page: {Type: %s, Properties: {Path: /console, Method: get}}
"""
    views = cost.CONSOLE_USERS * cost.CONSOLE_VIEWS_A_DAY * cost.CONSOLE_WORKING_DAYS
    priced = {}
    for kind, price in (("Api", 3.50), ("HttpApi", 1.00)):
        template.write_text(TEMPLATE.replace("  ArchiveStream:", console % kind + "  ArchiveStream:"))
        wiring = cost.wiring_of(template)
        [line] = [line for line in cost.bill(_found(), wiring, 2.0) if line.group == "console"]
        priced[kind] = line.dollars
        assert line.dollars == pytest.approx(
            views * (price + 0.20 + cost.CONSOLE_PAGE_RRU * 0.125) / 1e6
            + views * cost.CONSOLE_PAGE_MS / 1000 * 0.5 * cost.LAMBDA_GB_SECOND_ARM)
    assert priced["Api"] - priced["HttpApi"] == pytest.approx(views * 2.50 / 1e6)


def test_a_batch_write_is_billed_as_each_of_its_writes_but_what_was_left_unprocessed() -> None:
    meter = _load("ingest_path")
    small = {"pk": {"S": "a"}, "body": {"S": "x" * 100}}
    large = {"pk": {"S": "b"}, "body": {"S": "x" * 1500}}  # two write units
    params = {"RequestItems": {"t": [{"PutRequest": {"Item": small}}, {"PutRequest": {"Item": large}},
                                     {"DeleteRequest": {"Key": {"pk": {"S": "c"}}}}]}}
    assert meter.billed_units("dynamodb", "BatchWriteItem", params, {}) == {"rru": 0.0, "wru": 4.0}
    left = {"UnprocessedItems": {"t": [{"PutRequest": {"Item": large}}]}}
    assert meter.billed_units("dynamodb", "BatchWriteItem", params, left) == {"rru": 0.0, "wru": 2.0}


def test_the_archive_is_priced_by_the_consumers_packed_records_against_a_record_a_delivery(
        cost: ModuleType, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    wiring = cost.wiring_of(template)
    month = cost.Month(mix={"order": 900_000, "view": 100_000}, storefront=frozenset({"view"}),
                       events_per_track_request=2.0)
    s3 = cost.SECONDS_PER_MONTH / wiring.firehose_interval_s * cost.PER_MILLION["s3_put"] / 1e6
    ingest = {"archived_frame_bytes": {"webhook": 3000.0, "track": {"fixed": 400.0, "per_event": 200.0}},
              "webhook_archived_at_the_door_per_delivery": {"unit firehose_gb": 10 * 1024 / 2**30}}
    line = cost.firehose_line(ingest, wiring, month, 9.5)
    # 950k messages, a frame of (900k x 3,000 + 50k x 800) / 950k bytes: 27.4 KB a batch of 9.5, billed 30 KB.
    assert line.dollars == pytest.approx(950_000 / 9.5 * 30 * 1024 / 2**30 * cost.FIREHOSE_PER_GB + s3)
    before = (900_000 * 10 + 50_000 * 5) * 1024 / 2**30 * cost.FIREHOSE_PER_GB + s3
    assert f"before (a record a delivery at the door): 0.95M records, 8.8 GB, ${before:.2f}" in line.how
    # Frames near SQS's limit: a batch is three records of whole frames, each rounded up on its own.
    large = {**ingest, "archived_frame_bytes": {"webhook": 240_000.0, "track": {"fixed": 240_000.0,
                                                                                "per_event": 0.0}}}
    per_record = math.ceil(9.5 * 240_000 / 3 / 5120) * 5120
    assert cost.firehose_line(large, wiring, month, 9.5).dollars == pytest.approx(
        950_000 / 9.5 * 3 * per_record / 2**30 * cost.FIREHOSE_PER_GB + s3)
    assert "MISSING" in cost.firehose_line(None, wiring, month, 9.5).component


def test_the_queues_no_line_prices_are_billed_their_idle_polls(cost: ModuleType) -> None:
    wiring = cost.wiring_of(cost.TEMPLATE)  # ours
    assert set(wiring.idle_queues) == {"SegmentTasksFunction", "ExportsFunction", "PrivacyFunction"}
    lines = cost.idle_queue_lines(wiring)
    polls = cost.SQS_POLLERS * cost.SECONDS_PER_MONTH / cost.LONG_POLL_S
    assert [line.dollars for line in lines] == [pytest.approx(polls * 0.40 / 1e6)] * 3
    assert {line.group for line in lines} == {"segments", "console"}
    assert cost.wiring_from({**cost.plain(wiring), "idle_queues": []}).idle_queues == ()
