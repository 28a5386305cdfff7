"""`make bench`: AWS requests and handler time on the ingest path, ours against naive baselines in the same run.

Everything runs in this process on moto's mock_aws, with the stack provisioned from template.yaml and the
real function handlers (the webhooks Chalice app through chalice.test.Client, the profiles and outbox
handlers with Lambda's SQS / stream event shapes). Every boto3 client the code under test uses is metered
with a botocore event handler: requests by service and operation, and DynamoDB capacity units estimated
from item sizes with DynamoDB's published rules.

Request counts are deterministic (fixed seed, one thread) and are the figure that transfers to AWS;
handler times are dominated by moto's own time per request and do not.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from chalice.app import Chalice, Response
from chalice.test import Client
from crm import config, wiring
from crm.adapters import clients
from crm.adapters.items import from_item, to_item
from crm.adapters.messaging import SqsIngestQueue
from crm.adapters.secrets import SecretsManagerVault
from crm.adapters.stores import STORE_CACHE_TTL, DynamoStoreDirectory
from crm.archive import frame, frames_to_archive
from crm.clock import utc_now
from crm.connectors import connector_for
from crm.connectors.base import DeliveryRejected, base64_hmac_sha256_matches
from crm.identity import identities_of
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder
from crm.models.profile import OrderRecord, Profile, new_profile
from crm.models.stores import Platform, StoreRegistration
from crm.profiles import apply_order_record, profile_id_for
from crm.stores import register_store
from crm.tracking import TokenBucketLimiter, accept_track
from crm.webhooks import accept_webhook
from crm_local import moto_patches
from crm_local.event_shapes import read_stream, sqs_record
from crm_local.lambdas import Function, LambdaContext, load_handler
from crm_local.provision import Provisioned, provision
from crm_local.template import load_stack
from figures import per, record
from moto import mock_aws
from order_workload import Delivery, Expected, fixture, order_payload, simulate_orders

ORDERS, CUSTOMERS, SEED = 300, 80, 7
HEAVY_ORDERS = 300  # one customer's order history, to show how each design scales with it
PROFILES_BATCH = 10  # the template's SQS BatchSize
OUTBOX_BATCH = 100  # the template's stream BatchSize
MONTHLY_ORDERS = 300_000
REGION = "us-east-1"
STACK = "bench"
DOMAIN = "bench-outfitters.myshopify.com"
SECRET = "bench-webhook-secret"
TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
ANY_BODY = ["application/json", "text/plain", "application/x-www-form-urlencoded", "application/octet-stream"]

# List prices, us-east-1, USD: (what is billed, price per million of it).
PRICES = {
    "api_gateway": ("API Gateway REST requests", 3.50),
    "lambda": ("Lambda invocations", 0.20),  # duration is not priced: moto-bound handler times do not transfer
    "sqs": ("SQS requests (64 KiB chunks)", 0.40),
    "wru": ("DynamoDB write request units", 0.625),
    "rru": ("DynamoDB read request units", 0.125),
    "s3_put": ("S3 PUT", 5.00),
    "s3_get": ("S3 GET", 0.40),
    "firehose_gb": ("Firehose ingestion (GB, 5 KB/record)", 0.029 * 1_000_000),  # $0.029 per GB
    "eventbridge": ("EventBridge events (outbox)", 1.00),
}
SECONDS_PER_MONTH = 30 * 24 * 3600

Item = dict[str, Any]
Counts = dict[tuple[str, ...], float]


# --- DynamoDB capacity, estimated from item sizes -------------------------------------------------------------
# Item size: attribute names (UTF-8 bytes) + values: strings by UTF-8 length, numbers about 1 byte per two
# significant digits + 1, binary by length, booleans and nulls 1 byte, lists and maps 3 bytes + 1 per element
# (+ the element names of maps). Approximate, like DynamoDB's own documentation of it.


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


_SCALAR_SIZE: dict[str, Callable[[Any], int]] = {
    "S": lambda v: len(v.encode()),
    "N": _number_size,
    "B": len,
    "BOOL": lambda _: 1,
    "NULL": lambda _: 1,
    "SS": lambda v: sum(len(s.encode()) for s in v),
    "NS": lambda v: sum(_number_size(n) for n in v),
    "BS": lambda v: sum(len(b) for b in v),
}


def attribute_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in data.items())
    return _SCALAR_SIZE[kind](data)


def item_size(item: Item | None) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in (item or {}).items())


def read_units(size: int, consistent: bool) -> float:
    """1 RRU per 4 KB strongly consistent, half that eventually consistent; a missing item still costs one."""
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


def write_units(size: int) -> float:
    return float(max(1, math.ceil(size / 1024)))


def _get_item(params: Item, parsed: Item) -> tuple[float, float]:
    return read_units(item_size(parsed.get("Item")), bool(params.get("ConsistentRead"))), 0.0


def _batch_get_item(params: Item, parsed: Item) -> tuple[float, float]:
    """Each key is read (and rounded) as its own GetItem; unprocessed keys are not charged."""
    units = 0.0
    for table, request in params["RequestItems"].items():
        returned = parsed.get("Responses", {}).get(table, [])
        unprocessed = parsed.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        for key in request["Keys"]:
            if key in unprocessed:
                continue
            found = next((i for i in returned if all(i.get(k) == v for k, v in key.items())), None)
            units += read_units(item_size(found), bool(request.get("ConsistentRead")))
    return units, 0.0


def _query(params: Item, parsed: Item) -> tuple[float, float]:
    """A query is charged for the total size of what it read, rounded up once."""
    total = sum(item_size(i) for i in parsed.get("Items", []))
    return read_units(total, bool(params.get("ConsistentRead"))), 0.0


def _put_item(params: Item, parsed: Item) -> tuple[float, float]:
    return 0.0, write_units(item_size(params["Item"]))


def _update_item(params: Item, parsed: Item) -> tuple[float, float]:
    """Approximated as the key plus the values the update writes."""
    return 0.0, write_units(item_size(params["Key"]) + item_size(params.get("ExpressionAttributeValues")))


def _batch_write_item(params: Item, parsed: Item) -> tuple[float, float]:
    """Each put is billed as its own PutItem, each delete as one unit; unprocessed requests are not charged."""
    units = 0.0
    for table, requests in params["RequestItems"].items():
        unprocessed = parsed.get("UnprocessedItems", {}).get(table, [])
        for request in requests:
            if request in unprocessed:
                continue
            units += write_units(item_size(request["PutRequest"]["Item"])) if "PutRequest" in request else 1.0
    return 0.0, units


def _transact_write_items(params: Item, parsed: Item) -> tuple[float, float]:
    """Transactional writes cost twice a plain write of each item."""
    units = 0.0
    for entry in params["TransactItems"]:
        ((kind, op),) = entry.items()
        size = item_size(op["Item"]) if kind == "Put" else item_size(op["Key"])
        units += 2 * write_units(size)
    return 0.0, units


_DYNAMODB_UNITS: dict[str, Callable[[Item, Item], tuple[float, float]]] = {
    "GetItem": _get_item,
    "BatchGetItem": _batch_get_item,
    "Query": _query,
    "PutItem": _put_item,
    "UpdateItem": _update_item,
    "DeleteItem": lambda p, r: (0.0, 1.0),
    "BatchWriteItem": _batch_write_item,
    "TransactWriteItems": _transact_write_items,
}


def _chunks_64k(size: int) -> int:
    return max(1, math.ceil(size / 65536))


def billed_units(service: str, operation: str, params: Item, parsed: Item) -> dict[str, float]:
    """What a request is billed as, beyond being one request."""
    if service == "dynamodb" and operation in _DYNAMODB_UNITS:
        rru, wru = _DYNAMODB_UNITS[operation](params, parsed)
        return {"rru": rru, "wru": wru}
    if service == "sqs" and operation == "SendMessage":
        size = len(params["MessageBody"].encode()) + len(json.dumps(params.get("MessageAttributes", {})))
        return {"sqs": _chunks_64k(size)}
    if service == "sqs":
        return {"sqs": 1}
    if service == "events" and operation == "PutEvents":
        return {"eventbridge": sum(_chunks_64k(len(json.dumps(e, default=str))) for e in params["Entries"])}
    if service == "firehose":
        records = params["Records"] if operation == "PutRecordBatch" else [params["Record"]]
        return {"firehose_gb": sum(math.ceil(len(r["Data"]) / 5120) * 5120 for r in records) / 2**30}
    return {}


class Meter:
    """Counts every request the metered boto3 clients make, and what each is billed as."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, ...]] = Counter()  # floats too (capacity units)

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build", self._before, unique_id="bench-meter-params")
        client.meta.events.register("after-call", self._after, unique_id="bench-meter-count")

    def _before(self, params: Item, context: Item, **_: Any) -> None:
        context["bench_params"] = params

    def _after(self, parsed: Item, model: Any, context: Item, **_: Any) -> None:
        service, operation = model.service_model.service_name, model.name
        self.counts["req", service, operation] += 1
        for unit, amount in billed_units(service, operation, context.get("bench_params", {}), parsed).items():
            self.counts["unit", unit] += amount  # type: ignore[assignment]

    def mark(self) -> Counter[tuple[str, ...]]:
        return Counter(self.counts)

    def since(self, mark: Counter[tuple[str, ...]]) -> Counts:
        return {k: v - mark.get(k, 0) for k, v in self.counts.items() if v - mark.get(k, 0)}


def requests_in(counts: Counts) -> float:
    return sum(v for k, v in counts.items() if k[0] == "req")


def add(*parts: Counts) -> Counts:
    total: Counts = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total


# --- The local stack ------------------------------------------------------------------------------------------


def fake_aws_environment() -> None:
    """Fake credentials and no endpoint: nothing here can reach a real AWS account."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            del os.environ[name]
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # botocore would route stream calls to {account}.streams-ddb.{region}, a host moto does not serve.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    })


def harness(service: str) -> Any:
    """An unmetered client for the bench's own reads and set-up (never counted)."""
    return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]


class _NullStream:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def mute_function_logs() -> None:
    """Keep the functions' JSON logging (its cost is part of the handler) but send it nowhere."""
    for name in ("webhooks", "profiles", "outbox"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(_NullStream())


@dataclass
class Baseline:
    """Resources of the baseline designs, next to the stack's."""

    table: str
    idempotency_table: str
    queue_url: str


@dataclass
class Bench:
    provisioned: Provisioned
    store: StoreRegistration
    meter: Meter
    baseline: Baseline
    # The mean frame the profiles function archives for one of the bench's deliveries (measure_profiles).
    webhook_frame_bytes: float = 0.0

    def use_function(self, logical_id: str) -> None:
        """The process environment of one function, as Lambda sets it."""
        for spec in self.provisioned.functions.values():
            for name in spec.environment:
                os.environ.pop(name, None)
        os.environ.update(self.provisioned.functions[logical_id].environment)
        config.reset()
        wiring.reset()  # the boto3 clients stay: they carry the meter, and region and credentials are unchanged

    @property
    def outputs(self) -> dict[str, str]:
        return self.provisioned.outputs


def _key_table(name: str, keys: Sequence[str]) -> str:
    harness("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
        KeySchema=[{"AttributeName": k, "KeyType": kind} for k, kind in zip(keys, ("HASH", "RANGE"), strict=False)])
    return name


def set_up(stack: Any) -> Bench:
    provisioned = provision(stack, stack_name=STACK, region=REGION)
    store = register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN, SECRET,
                           utc_now())
    baseline = Baseline(
        table=_key_table(f"{STACK}-baseline-table", ("pk", "sk")),
        idempotency_table=_key_table(f"{STACK}-baseline-idempotency", ("id",)),
        queue_url=harness("sqs").create_queue(QueueName=f"{STACK}-baseline-ingest")["QueueUrl"],
    )
    meter = Meter()
    for service in ("dynamodb", "s3", "sqs", "events", "firehose", "secretsmanager"):
        meter.attach(clients.client(service))
    return Bench(provisioned, store, meter, baseline)


def moto_ms_per_request(table: str) -> float:
    dynamodb = harness("dynamodb")
    key = {"pk": {"S": f"STORE#shopify#{DOMAIN}"}, "sk": {"S": "STORE"}}
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        dynamodb.get_item(TableName=table, Key=key)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


# --- BASELINE designs (written here only to be measured against) -----------------------------------------------


def _request(app: Chalice) -> tuple[Any, bytes]:
    """The current request's (case-insensitive) headers and raw body."""
    request = app.current_request
    assert request is not None
    raw = request.raw_body or b""
    return request.headers, raw.encode() if isinstance(raw, str) else raw


def baseline_webhooks_app(bench: Bench) -> Chalice:
    """BASELINE webhook handler: the common "Powertools idempotency + S3 put + SQS send" design.

    Same store lookup and HMAC check as ours, then the delivery is de-duplicated by Powertools' DynamoDB
    idempotency record (conditional PutItem, then UpdateItem with the result), the raw body is put in S3 and
    only a pointer to it is queued (claim check), so the consumer re-reads the body from S3.
    Also serves /floor/{platform}: HMAC verify + JSON parse only, no AWS at all.
    """
    app = Chalice(app_name="bench-baseline-webhooks")
    dynamodb = clients.client("dynamodb")
    bucket, table = bench.outputs["ArchiveBucketName"], bench.outputs["TableName"]
    stores = DynamoStoreDirectory(table)
    persistence = DynamoDBPersistenceLayer(table_name=bench.baseline.idempotency_table, boto3_client=dynamodb)
    idempotency = IdempotencyConfig(event_key_jmespath="delivery_id")

    @idempotent_function(data_keyword_argument="delivery", persistence_store=persistence,  # type: ignore[untyped-decorator]
                         config=idempotency)
    def archive_and_enqueue(delivery: dict[str, Any]) -> dict[str, Any]:
        key = f"baseline/{delivery['store_id']}/{delivery['delivery_id']}"
        clients.client("s3").put_object(Bucket=bucket, Key=key, Body=delivery["body"].encode())
        pointer = {k: delivery[k] for k in ("workspace_id", "store_id", "topic", "delivery_id", "triggered_at")}
        clients.client("sqs").send_message(QueueUrl=bench.baseline.queue_url,
                                           MessageBody=json.dumps({**pointer, "bucket": bucket, "key": key}))
        return {"status": "accepted", "delivery_id": delivery["delivery_id"]}

    @app.route("/webhooks/{platform}", methods=["POST"], content_types=ANY_BODY)
    def receive(platform: str) -> Response:
        headers, body = _request(app)
        domain = headers.get("x-shopify-shop-domain", "").lower()
        store = stores.store_by_domain(Platform(platform), domain)  # the same read as ours (secrets cached)
        if store is None or not base64_hmac_sha256_matches(body, headers.get("x-shopify-hmac-sha256", ""),
                                                           store.webhook_secrets):
            return Response(status_code=401, body={"error": "not authenticated"})
        idempotency.register_lambda_context(cast(Any, app.lambda_context))
        return Response(status_code=200, body=archive_and_enqueue(delivery={
            "delivery_id": headers["x-shopify-webhook-id"], "topic": headers["x-shopify-topic"],
            "triggered_at": headers.get("x-shopify-triggered-at"), "workspace_id": store.workspace_id,
            "store_id": store.store_id, "body": body.decode()}))

    @app.route("/floor/{platform}", methods=["POST"], content_types=ANY_BODY)
    def floor(platform: str) -> Response:
        headers, body = _request(app)
        if not base64_hmac_sha256_matches(body, headers.get("x-shopify-hmac-sha256", ""), (SECRET,)):
            return Response(status_code=401, body={"error": "not authenticated"})
        json.loads(body)
        return Response(status_code=200, body={"status": "accepted"})

    return app


def naive_record(order: CanonicalOrder, profile_id: str) -> OrderRecord:
    return OrderRecord(workspace_id=order.workspace_id, store_id=order.store_id, order_id=order.order_id,
                       profile_id=profile_id, order=order)


class NaiveProfiles:
    """BASELINE profile upsert: recompute the profile from the customer's whole order history.

    Per order: Query every item of the customer's partition (orders + profile), skip the order if we hold
    a newer version, else PutItem the order and PutItem the profile recomputed from all orders. Correct
    (duplicates and out-of-order updates are handled), but each read grows with the customer's history.
    """

    def __init__(self, table: str) -> None:
        self.table = table
        self.stores = DynamoStoreDirectory(table)  # only BigCommerce's connector reads it
        self.processor = BatchProcessor(event_type=EventType.SQS)

    def handler(self, event: dict[str, Any], context: Any) -> Any:
        return process_partial_response(event=event, record_handler=self.apply_record, processor=self.processor,
                                        context=context)

    def apply_record(self, record: SQSRecord) -> None:
        envelope = IngestEnvelope.model_validate_json(record.body)
        body = envelope.body.encode() if envelope.body is not None else b""
        for order in connector_for(envelope.platform).events(envelope, body, self.stores):
            if isinstance(order, CanonicalOrder):
                self.upsert(order)

    def seed(self, message: str) -> None:
        """Write the order item upsert would write, unmetered and without the recompute (saves minutes)."""
        envelope = IngestEnvelope.model_validate_json(message)
        for order in connector_for(envelope.platform).events(envelope, (envelope.body or "").encode(), self.stores):
            if not isinstance(order, CanonicalOrder):
                continue
            identity = identities_of(order)[0]
            record = naive_record(order, profile_id_for(order.workspace_id, identity))
            key = {"pk": f"WS#{order.workspace_id}#CUSTOMER#{identity}",
                   "sk": f"ORDER#{order.store_id}#{order.order_id}"}
            harness("dynamodb").put_item(TableName=self.table,
                                         Item=to_item(key, "order", record, version=order.version))

    def _history(self, pk: str) -> dict[str, OrderRecord]:
        dynamodb, held = clients.client("dynamodb"), {}
        request: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                   "ExpressionAttributeValues": {":pk": {"S": pk}}, "ConsistentRead": True}
        while True:
            page = dynamodb.query(**request)
            for item in page["Items"]:
                if item["sk"]["S"] != "PROFILE":
                    held[item["sk"]["S"]] = OrderRecord.model_validate(from_item(item))
            if "LastEvaluatedKey" not in page:
                return held
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def upsert(self, order: CanonicalOrder) -> bool:
        # The strongest identity (email, else the platform account) names the customer's partition.
        identity = identities_of(order)[0]
        pk, sk = f"WS#{order.workspace_id}#CUSTOMER#{identity}", f"ORDER#{order.store_id}#{order.order_id}"
        history = self._history(pk)
        if sk in history and order.version <= history[sk].version:
            return False
        now, profile_id = utc_now(), profile_id_for(order.workspace_id, identity)
        history[sk] = naive_record(order, profile_id)
        profile: Profile = new_profile(order.workspace_id, profile_id, now)
        for held in sorted(history.values(), key=lambda r: (r.order.created_at, r.order_id) if r.order else ()):
            profile = apply_order_record(profile, None, held, now).profile
        dynamodb = clients.client("dynamodb")
        dynamodb.put_item(TableName=self.table, Item=to_item({"pk": pk, "sk": sk}, "order", history[sk],
                                                             version=order.version))
        dynamodb.put_item(TableName=self.table, Item=to_item({"pk": pk, "sk": "PROFILE"}, "profile", profile))
        return True


def claim_check_reads(bench: Bench) -> int:
    """What the baseline's consumer does first with each queued pointer: GetObject the body (metered)."""
    messages = receive_all(bench.baseline.queue_url)
    for message in messages:
        pointer = json.loads(message["Body"])
        clients.client("s3").get_object(Bucket=pointer["bucket"], Key=pointer["key"])["Body"].read()
    return len(messages)


# --- Driving the functions ------------------------------------------------------------------------------------


def receive_all(url: str) -> list[dict[str, Any]]:
    sqs, found = harness("sqs"), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                       MessageAttributeNames=["All"], VisibilityTimeout=900).get("Messages", []):
        found += batch
    return found


def sqs_batches(messages: Sequence[dict[str, Any]], source_arn: str) -> list[dict[str, Any]]:
    return [{"Records": [sqs_record(m, source_arn, REGION) for m in messages[i:i + PROFILES_BATCH]]}
            for i in range(0, len(messages), PROFILES_BATCH)]


@dataclass
class Run:
    """One design over a workload: per-event handler times and the metered requests."""

    seconds: list[float]
    counts: Counts

    def ms(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


def post_all(bench: Bench, client: Client, path: str, deliveries: Sequence[Delivery]) -> Run:
    signed = [(d.body, d.headers(DOMAIN, SECRET)) for d in deliveries]
    client.http.post(path, headers={**signed[0][1], "X-Shopify-Hmac-Sha256": "d2FybS11cA=="}, body=signed[0][0])
    mark, seconds = bench.meter.mark(), []
    for body, headers in signed:
        started = time.perf_counter()
        response = client.http.post(path, headers=headers, body=body)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.body!r}")
    return Run(seconds, bench.meter.since(mark))


def invoke_batches(bench: Bench, handler: Callable[[dict[str, Any], Any], Any], name: str,
                   events: Iterable[dict[str, Any]]) -> Run:
    mark, seconds = bench.meter.mark(), []
    for event in events:
        context = LambdaContext(function_name=name)
        started = time.perf_counter()
        result = handler(event, context)
        elapsed = time.perf_counter() - started
        seconds += [elapsed / len(event["Records"])] * len(event["Records"])
        if result != {"batchItemFailures": []}:
            raise SystemExit(f"{name} failed records: {result}")
    return Run(seconds, bench.meter.since(mark))


def stream_records(bench: Bench) -> list[dict[str, Any]]:
    """The table's stream, shaped as Lambda's DynamoDB event source delivers it (reading it is free in AWS)."""
    return read_stream(harness("dynamodbstreams"), bench.provisioned.physical["Table"].attributes["StreamArn"])


def profile_totals(table: str) -> dict[str, tuple[int, Decimal]]:
    found = {}
    for page in harness("dynamodb").get_paginator("scan").paginate(TableName=table):
        for item in map(from_item, page["Items"]):
            if item.get("entity") == "profile":
                found[str(item.get("email"))] = (int(item.get("orders_count", 0)),
                                                 Decimal(item.get("total_spent", "0.00")))  # defaults left out
    return found


def verify(table: str, expected: Expected) -> str:
    held, wanted = profile_totals(table), expected.by_email()
    right = sum(held.get(email) == totals for email, totals in wanted.items())
    if right != len(wanted):
        raise SystemExit(f"{table}: only {right}/{len(wanted)} profiles match the simulated orders")
    return f"{right}/{len(wanted)} profiles match"


class ArchivedAtTheDoor:
    """The design BEFORE the archive lane (issue 12), as a labelled baseline: the front door wrote each
    delivery's frame to Firehose (a PutRecord, billed 5 KB at least) before enqueueing it; a body the message
    cannot carry was an S3 object then as now (accept_webhook still writes it)."""

    def __init__(self, bench: Bench, queue: SqsIngestQueue) -> None:
        self.stream = bench.provisioned.physical["ArchiveStream"].ref
        self.queue = queue

    def enqueue(self, envelope: IngestEnvelope) -> None:
        if envelope.body is not None:
            clients.client("firehose").put_record(DeliveryStreamName=self.stream,
                                                  Record={"Data": frame(envelope, envelope.body.encode())})
        self.queue.enqueue(envelope)

    def dead_letter(self, message: str, reason: str) -> None:
        self.queue.dead_letter(message, reason)


def store_lookup_app(bench: Bench, cache_ttl: timedelta, archive_at_the_door: bool = False) -> Chalice:
    """Our webhook path (crm.webhooks.accept_webhook, the function's adapters) in a container of its own,
    with its store lookups kept for ``cache_ttl``; ``timedelta(0)`` is the design BEFORE issue 12 (a store
    GetItem per delivery), measured here as a labelled baseline, and ``archive_at_the_door`` the design before
    the archive lane (ArchivedAtTheDoor). It enqueues to a queue of its own, so the profile sections see only
    the function's messages."""
    app = Chalice(app_name="bench-store-lookup")
    table = bench.outputs["TableName"]
    stores = DynamoStoreDirectory(table, SecretsManagerVault(table), cache_ttl=cache_ttl)
    own = SqsIngestQueue(harness("sqs").create_queue(QueueName=f"{STACK}-lookup-{uuid.uuid4().hex[:8]}")["QueueUrl"])
    # Before issue 12 the door archived too.
    queue = ArchivedAtTheDoor(bench, own) if archive_at_the_door or cache_ttl == timedelta(0) else own

    @app.route("/webhooks/{platform}", methods=["POST"], content_types=ANY_BODY)
    def receive(platform: str) -> Response:
        headers, body = _request(app)
        try:
            accept_webhook(platform, headers, body, stores, wiring.raw_archive(), queue, utc_now())
        except DeliveryRejected as error:
            return Response(status_code=error.status, body={"error": str(error)})
        return Response(status_code=200, body={"status": "accepted"})

    return app


@dataclass
class StoreLookups:
    """The webhook's requests per delivery around the store cache: a new container's first delivery, every
    delivery of the design before issue 12 (no store cache, archived at the door), and of the design before
    the archive lane (archived at the door, warm); and /track's per request (before, a new container's first,
    warm, warm archived at the door)."""

    cold: Counts
    before: Run
    track: dict[str, float]
    archived_at_the_door: Run


TRACK_REQUESTS = 100


def track_requests_per_request(bench: Bench, cache_ttl: timedelta, requests: int, warm: bool = False,
                               archive_at_the_door: bool = False) -> float:
    """POST /track's path (crm.tracking.accept_track with the function's adapters) in a new container:
    AWS requests per request over ``requests`` page views (after one uncounted first request if ``warm``),
    enqueued to a queue of its own (archived at the door first for the labelled befores)."""
    table = bench.outputs["TableName"]
    stores = DynamoStoreDirectory(table, cache_ttl=cache_ttl)
    own = SqsIngestQueue(harness("sqs").create_queue(QueueName=f"{STACK}-track-{uuid.uuid4().hex[:8]}")["QueueUrl"])
    queue = ArchivedAtTheDoor(bench, own) if archive_at_the_door or cache_ttl == timedelta(0) else own
    limiter = TokenBucketLimiter(rate=1e9, burst=1e9, clock=time.monotonic)
    headers = {"Origin": f"https://{DOMAIN}", "Content-Type": "text/plain"}
    mark = bench.meter.mark()
    for n in range(-1 if warm else 0, requests):
        if n == 0:
            mark = bench.meter.mark()
        body = json.dumps({"write_key": bench.store.write_key, "anonymous_id": f"anon-{n}", "events": [
            {"type": "page_viewed", "event_id": f"pv-{n}", "occurred_at": utc_now().isoformat(),
             "url": f"https://{DOMAIN}/products/{n}"}]}).encode()
        accept_track(headers, body, "203.0.113.7", stores, wiring.raw_archive(), queue, limiter, utc_now())
    return requests_in(bench.meter.since(mark)) / requests


def measure_store_lookups(bench: Bench, deliveries: list[Delivery]) -> StoreLookups:
    cold_client = Client(store_lookup_app(bench, STORE_CACHE_TTL))
    first = deliveries[0]
    mark = bench.meter.mark()
    answer = cold_client.http.post("/webhooks/shopify", headers=first.headers(DOMAIN, SECRET), body=first.body)
    if answer.status_code != 200:
        raise SystemExit(f"a new container answered {answer.status_code}: {answer.body!r}")
    cold = bench.meter.since(mark)
    before = post_all(bench, Client(store_lookup_app(bench, timedelta(0))), "/webhooks/shopify", deliveries)
    at_the_door = post_all(bench, Client(store_lookup_app(bench, STORE_CACHE_TTL, archive_at_the_door=True)),
                           "/webhooks/shopify", deliveries)
    track = {"before": track_requests_per_request(bench, timedelta(0), TRACK_REQUESTS),
             "cold": track_requests_per_request(bench, STORE_CACHE_TTL, 1),
             "warm": track_requests_per_request(bench, STORE_CACHE_TTL, TRACK_REQUESTS, warm=True),
             "warm_archived_at_the_door": track_requests_per_request(bench, STORE_CACHE_TTL, TRACK_REQUESTS,
                                                                     warm=True, archive_at_the_door=True)}
    return StoreLookups(cold, before, track, at_the_door)


TRACK_FRAME_EVENTS = 20  # the snippet's largest batch


def track_frame_bytes(bench: Bench) -> dict[str, float]:
    """A /track request's archived frame, as the profiles function frames it: its fixed bytes (header, write
    key, anonymous id) and its bytes per page view, from a request of one view and one of TRACK_FRAME_EVENTS."""
    def framed(views: int) -> int:
        body = json.dumps({"write_key": bench.store.write_key, "anonymous_id": "4f1c9a2e-anon", "events": [
            {"type": "page_viewed", "event_id": f"pv-{uuid.uuid4()}", "occurred_at": utc_now().isoformat(),
             "url": f"https://{DOMAIN}/products/classic-leather-jacket-{n}?utm_source=newsletter",
             "referrer": "https://www.google.com/"} for n in range(views)]})
        envelope = IngestEnvelope(platform=Platform.SHOPIFY, source="track", workspace_id=bench.store.workspace_id,
                                  store_id=bench.store.store_id, meta=DeliveryMeta(topic="track", delivery_id="x" * 64),
                                  received_at=utc_now(), body=body)
        return len(frame(envelope, body.encode()))

    one, many = framed(1), framed(TRACK_FRAME_EVENTS)
    per_event = (many - one) / (TRACK_FRAME_EVENTS - 1)
    return {"fixed": one - per_event, "per_event": per_event}


# --- The measurements -----------------------------------------------------------------------------------------


@dataclass
class Results:
    deliveries: list[Delivery]
    expected: Expected
    moto_ms: float
    ours_webhook: Run
    baseline_webhook: Run
    floor: Run
    claim_checks: Counts
    ours_profiles: Run
    baseline_profiles: Run
    outbox: Counts
    verified: tuple[str, str]
    heavy: list[tuple[int, Counts, float, Counts, float]]
    firehose_interval: int | None
    webhook_frame_bytes: float
    track_frame: dict[str, float]
    store_lookups: StoreLookups | None = None


def measure_webhooks(bench: Bench, deliveries: list[Delivery]) -> tuple[Run, Run, Run, Counts]:
    bench.use_function("WebhooksFunction")
    spec = bench.provisioned.functions["WebhooksFunction"]
    ours = Client(load_handler(spec.code_path, spec.handler, spec.logical_id))
    mute_function_logs()
    ours_run = post_all(bench, ours, "/webhooks/shopify", deliveries)
    baseline = Client(baseline_webhooks_app(bench))
    baseline_run = post_all(bench, baseline, "/webhooks/shopify", deliveries)
    floor_run = post_all(bench, baseline, "/floor/shopify", deliveries)
    mark = bench.meter.mark()
    claim_check_reads(bench)
    return ours_run, baseline_run, floor_run, bench.meter.since(mark)


def measure_profiles(bench: Bench, expected: Expected) -> tuple[Run, Run, Counts, tuple[str, str]]:
    messages = receive_all(bench.outputs["IngestQueueUrl"])
    arn = bench.provisioned.physical["IngestQueue"].attributes["Arn"]
    bench.use_function("ProfilesFunction")
    profiles = Function(bench.provisioned.functions["ProfilesFunction"])
    mute_function_logs()
    bodies = [m["Body"] for m in messages]
    bench.webhook_frame_bytes = sum(map(len, frames_to_archive(bodies))) / len(bodies)
    ours = invoke_batches(bench, lambda e, _: profiles.invoke(e), "ProfilesFunction",
                          sqs_batches(messages, arn))
    naive = NaiveProfiles(bench.baseline.table)
    baseline = invoke_batches(bench, naive.handler, "BaselineProfiles", sqs_batches(messages, arn))
    verified = (verify(bench.outputs["TableName"], expected), verify(bench.baseline.table, expected))
    # The outbox turns the stream into events on the bus: counted for the cost estimate.
    bench.use_function("OutboxFunction")
    outbox = Function(bench.provisioned.functions["OutboxFunction"])
    mute_function_logs()
    records, mark = stream_records(bench), bench.meter.mark()
    for start in range(0, len(records), OUTBOX_BATCH):
        if outbox.invoke({"Records": records[start:start + OUTBOX_BATCH]}) != {"batchItemFailures": []}:
            raise SystemExit("the outbox failed a batch")
    return ours, baseline, bench.meter.since(mark), verified


def heavy_customer_messages(store: StoreRegistration, count: int) -> list[str]:
    """``count`` orders/create deliveries of one customer, an hour apart, as queued envelopes."""
    template = json.loads(fixture("orders/create"))
    customer = {"id": 7_999_000_000_000, "raw_email": "heavy.buyer@example.com", "first_name": "Heavy",
                "last_name": "Buyer"}
    start, messages = datetime(2025, 1, 1, tzinfo=UTC), []
    for number in range(count):
        created = start + timedelta(hours=number)
        body = order_payload(template, 5_900_000_000_000 + number, customer, Decimal(1500 + number) / 100,
                             Decimal("0"), created, created, "USD", "USD")
        messages.append(IngestEnvelope(
            platform=store.platform, workspace_id=store.workspace_id, store_id=store.store_id,
            meta=DeliveryMeta(topic="orders/create", delivery_id=f"heavy-{number}", triggered_at=created),
            received_at=created, archive_key=f"raw/shopify/{store.store_id}/heavy-{number}", body=body.decode(),
        ).model_dump_json())
    return messages


def heavy_windows(count: int) -> list[tuple[int, int]]:
    return [(1, 10)] + [(end - 9, end) for end in range(100, count + 1, 100)]


def measure_heavy_customer(bench: Bench) -> list[tuple[int, Counts, float, Counts, float]]:
    """One customer's orders, each as its own SQS event: (n, ours, ours s, baseline, baseline s) per measured n.

    Ours applies every order. The baseline applies the measured ones; the others are seeded straight into its
    table (the order items its upsert would write), since recomputing them all takes minutes on moto.
    """
    bench.use_function("ProfilesFunction")
    profiles = Function(bench.provisioned.functions["ProfilesFunction"])
    mute_function_logs()
    naive = NaiveProfiles(bench.baseline.table)
    arn = bench.provisioned.physical["IngestQueue"].attributes["Arn"]
    measured = {n for first, last in heavy_windows(HEAVY_ORDERS) for n in range(first, last + 1)}
    rows = []
    for number, body in enumerate(heavy_customer_messages(bench.store, HEAVY_ORDERS), start=1):
        message_id = str(uuid.UUID(int=number))
        message = {"MessageId": message_id, "ReceiptHandle": f"bench-{message_id}", "Body": body,
                   "Attributes": {"ApproximateReceiveCount": "1"}}
        event = {"Records": [sqs_record(message, arn, REGION)]}
        ours = invoke_batches(bench, lambda e, _: profiles.invoke(e), "ProfilesFunction", [event])
        if number not in measured:
            naive.seed(body)
            continue
        baseline = invoke_batches(bench, naive.handler, "BaselineProfiles", [event])
        rows.append((number, ours.counts, ours.seconds[0], baseline.counts, baseline.seconds[0]))
    return rows


# --- The report -----------------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(indent + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                        for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
                     for line in lines)


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value else "-"


def ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}x" if baseline else "n/a"


def operations(*runs: Counts) -> list[tuple[str, str]]:
    found = sorted({k[1:] for counts in runs for k in counts if k[0] == "req"})
    return [(service, operation) for service, operation in found]


def request_rows(ours: Counts, baseline: Counts, per: float, extra_baseline: Counts | None = None
                 ) -> list[list[str]]:
    full = add(baseline, extra_baseline or {})
    rows = [["AWS requests", fmt(requests_in(ours) / per), fmt(requests_in(full) / per),
             ratio(requests_in(ours), requests_in(full))]]
    for service, operation in operations(ours, full):
        label = f"  {service} {operation}"
        if extra_baseline and ("req", service, operation) in extra_baseline:
            label += " (consumer re-read)"
        rows.append([label, fmt(ours.get(("req", service, operation), 0) / per),
                     fmt(full.get(("req", service, operation), 0) / per), ""])
    for unit, label in (("wru", "DynamoDB WRU"), ("rru", "DynamoDB RRU")):
        o, b = ours.get(("unit", unit), 0), full.get(("unit", unit), 0)
        rows.append([label, fmt(o / per), fmt(b / per), ratio(o, b)])
    return rows


def time_rows(ours: Run, baseline: Run) -> list[list[str]]:
    return [[f"handler ms {name}", fmt(ours.ms(q)), fmt(baseline.ms(q)), ratio(ours.ms(q), baseline.ms(q))]
            for name, q in (("median", 0.5), ("p95", 0.95))]


def print_webhooks(r: Results) -> None:
    n = len(r.deliveries)
    print(f"\n1. Webhook path: POST /webhooks/shopify through the Chalice app (chalice.test.Client), per delivery "
          f"(n={n})")
    print("   baseline: store lookup + HMAC as ours, then a Powertools idempotency record, S3 put of the body and")
    print("   SQS send of a pointer to it (claim check), which its consumer re-reads from S3")
    rows = request_rows(r.ours_webhook.counts, r.baseline_webhook.counts, n, r.claim_checks)
    print(table(["per delivery", "ours", "baseline", "ours/baseline"], rows + time_rows(r.ours_webhook,
                                                                                        r.baseline_webhook)))
    print(f"  floor (same route, HMAC verify + JSON parse only, no AWS): median {r.floor.ms(0.5):.2f} ms, "
          f"p95 {r.floor.ms(0.95):.2f} ms")
    if r.store_lookups is not None:
        cold, before = r.store_lookups.cold, r.store_lookups.before
        print(f"  AWS requests per delivery around the store cache (a store found is kept {STORE_CACHE_TTL.seconds} s "
              "per container, crm.adapters.stores):")
        print(f"    before issue 12 (a store GetItem per delivery; baseline, same run): "
              f"{requests_in(before.counts) / n:.2f}")
        print(f"    a new container's first delivery: {requests_in(cold):.0f} ("
              + ", ".join(f"{k[2]} {v:.0f}" for k, v in sorted(cold.items()) if k[0] == "req") + ")")
        at_the_door = r.store_lookups.archived_at_the_door
        print(f"    a warm container archiving at the door (Firehose PutRecord, then SQS; before the archive lane, "
              f"same run): {requests_in(at_the_door.counts) / n:.2f}")
        print(f"    a warm container (ours, above: the profiles function archives): "
              f"{requests_in(r.ours_webhook.counts) / n:.2f}")
        track = r.store_lookups.track
        print(f"  POST /track (crm.tracking.accept_track, {TRACK_REQUESTS} page views), AWS requests per request: "
              f"before issue 12 {track['before']:.2f}, a new container's first {track['cold']:.0f}, "
              f"warm archiving at the door {track['warm_archived_at_the_door']:.2f}, warm {track['warm']:.2f}")
        print(f"  archived frames (header + body, as the profiles function packs them): a delivery here "
              f"{r.webhook_frame_bytes:,.0f} bytes; a /track request {r.track_frame['fixed']:,.0f} bytes + "
              f"{r.track_frame['per_event']:,.0f} a page view")


def print_profiles(r: Results) -> None:
    n, orders = len(r.deliveries), len(r.expected.orders)
    print(f"\n2. Profile upsert: the profiles function on SQS events of {PROFILES_BATCH} records, the same {n} "
          f"deliveries of {orders} orders")
    print("   baseline: recompute from history, on a fresh table: Query the customer's orders + profile,")
    print("   PutItem the order, PutItem the profile recomputed from all of them")
    ours, baseline = r.ours_profiles.counts, r.baseline_profiles.counts
    rows = request_rows(ours, baseline, orders)
    rows.insert(1, ["AWS requests per delivery", fmt(requests_in(ours) / n), fmt(requests_in(baseline) / n), ""])
    print(table(["per order", "ours", "baseline", "ours/baseline"], rows + [
        [f"handler ms per event {name}", fmt(r.ours_profiles.ms(q)), fmt(r.baseline_profiles.ms(q)),
         ratio(r.ours_profiles.ms(q), r.baseline_profiles.ms(q))] for name, q in (("median", 0.5), ("p95", 0.95))]))
    print(f"  both designs checked against the simulation: ours {r.verified[0]}, baseline {r.verified[1]}")
    print("  ours writes order + profile (+ identity, once per new customer) in one TransactWriteItems, which costs")
    print("  2 WRU per KB: the price of atomicity; the baseline's two PutItems are not atomic.")


def print_heavy(r: Results) -> None:
    print("\n3. One customer's order history: their n-th order, one SQS event each (mean of each window of 10)")
    rows = []
    for first, last in heavy_windows(HEAVY_ORDERS):
        chosen = [row for row in r.heavy if first <= row[0] <= last]
        ours, baseline = add(*(row[1] for row in chosen)), add(*(row[3] for row in chosen))
        size = len(chosen)
        rows.append([f"orders {first}-{last}",
                     fmt(requests_in(ours) / size), fmt(ours.get(("unit", "rru"), 0) / size),
                     fmt(ours.get(("unit", "wru"), 0) / size), fmt(statistics.mean(row[2] for row in chosen) * 1000),
                     fmt(requests_in(baseline) / size), fmt(baseline.get(("unit", "rru"), 0) / size),
                     fmt(baseline.get(("unit", "wru"), 0) / size),
                     fmt(statistics.mean(row[4] for row in chosen) * 1000)])
    print(table(["n-th order", "ours req", "RRU", "WRU", "ms", "baseline req", "RRU", "WRU", "ms"], rows))


def firehose_flush_interval(stack: Any) -> int | None:
    """The archive stream's buffering interval: Firehose writes at most one S3 object per interval."""
    for resource in stack.resources.values():
        if resource["Type"] == "AWS::KinesisFirehose::DeliveryStream":
            destination = resource["Properties"].get("ExtendedS3DestinationConfiguration", {})
            return int(destination.get("BufferingHints", {}).get("IntervalInSeconds", 300))
    return None


def billed_quantities(counts: Counts, deliveries: int, invocations: float) -> dict[str, float]:
    """What one design is billed for over the simulated workload.

    Thin traffic (~0.1 order/s) rarely fills a batch, so each queued delivery is assumed to be its own
    profiles invocation, with one ReceiveMessage and one DeleteMessage by the SQS event source.
    """
    return {
        "api_gateway": deliveries,
        "lambda": invocations,
        "sqs": counts.get(("unit", "sqs"), 0) + 2 * counts.get(("req", "sqs", "SendMessage"), 0),
        "wru": counts.get(("unit", "wru"), 0),
        "rru": counts.get(("unit", "rru"), 0),
        "s3_put": counts.get(("req", "s3", "PutObject"), 0),
        "s3_get": counts.get(("req", "s3", "GetObject"), 0),
        "firehose_gb": counts.get(("unit", "firehose_gb"), 0),
        "eventbridge": counts.get(("unit", "eventbridge"), 0),
    }


def monthly_costs(r: Results) -> list[tuple[str, float, float | None]]:
    """(component, ours $/month, baseline $/month or None when the baseline has no such part)."""
    n, scale = len(r.deliveries), MONTHLY_ORDERS / len(r.expected.orders)
    ours = add(r.ours_webhook.counts, r.ours_profiles.counts, r.outbox)
    baseline = add(r.baseline_webhook.counts, r.claim_checks, r.baseline_profiles.counts)
    # Webhook invocations, one profiles invocation per queued message, and for ours one outbox invocation
    # per transaction (its stream records arrive together).
    queued_o, queued_b = (c.get(("req", "sqs", "SendMessage"), 0) for c in (ours, baseline))
    ours_q = billed_quantities(ours, n, n + queued_o + ours.get(("req", "dynamodb", "TransactWriteItems"), 0))
    baseline_q = billed_quantities(baseline, n, n + queued_b)
    rows: list[tuple[str, float, float | None]] = []
    for key, (label, per_million) in PRICES.items():
        if ours_q[key] or baseline_q[key]:
            rows.append((label, ours_q[key] * scale * per_million / 1e6,
                         None if key == "eventbridge" else baseline_q[key] * scale * per_million / 1e6))
    if ours_q["firehose_gb"] and r.firehose_interval:
        rows.append((f"S3 PUT by Firehose (<= 1 object per {r.firehose_interval} s)",
                     SECONDS_PER_MONTH / r.firehose_interval * PRICES["s3_put"][1] / 1e6, 0.0))
    return rows


def print_costs(r: Results) -> None:
    orders, n = len(r.expected.orders), len(r.deliveries)
    print(f"\n4. Monthly cost estimate for {MONTHLY_ORDERS:,} orders/month ({n / orders:.2f} deliveries per order "
          "as simulated), list prices us-east-1")
    costs = monthly_costs(r)
    rows = [[name, f"${o:.2f}", "-" if b is None else f"${b:.2f}"] for name, o, b in costs]
    comparable_o = sum(o for _, o, b in costs if b is not None)
    comparable_b = sum(b for _, _, b in costs if b is not None)
    rows.append(["total without EventBridge", f"${comparable_o:.2f}", f"${comparable_b:.2f}"])
    rows.append(["total", f"${sum(o for _, o, _ in costs):.2f}", f"${comparable_b:.2f} (publishes no events)"])
    print(table(["component", "ours", "baseline"], rows))
    print(f"  ours/baseline without EventBridge: {ratio(comparable_o, comparable_b)}")
    print("  Assumes ~0.1 order/s, so batches of one: a profiles invocation + ReceiveMessage + DeleteMessage per")
    print("  queued delivery, one outbox invocation per transaction. Excludes Lambda duration, storage, data")
    print("  transfer and the SQS event source's idle long polls.")
    longest = max(Counter(email for email, _ in r.expected.orders.values()).values())
    print(f"  The baseline's reads grow with each customer's history (here at most {longest} orders). Were every")
    print("  order a customer's n-th (section 3), DynamoDB reads alone would cost:")
    for first, last in heavy_windows(HEAVY_ORDERS):
        chosen = [row for row in r.heavy if first <= row[0] <= last]
        rru = sum(row[3].get(("unit", "rru"), 0) for row in chosen) / len(chosen)
        ours_rru = sum(row[1].get(("unit", "rru"), 0) for row in chosen) / len(chosen)
        print(f"    orders {first}-{last}: baseline ${rru * MONTHLY_ORDERS * PRICES['rru'][1] / 1e6:.2f}/month, "
              f"ours ${ours_rru * MONTHLY_ORDERS * PRICES['rru'][1] / 1e6:.2f}/month")


def print_report(r: Results) -> None:
    n, orders = len(r.deliveries), len(r.expected.orders)
    topics = Counter(d.topic for d in r.deliveries)
    redelivered = n - len({d.webhook_id for d in r.deliveries})
    print("Ingest path benchmark: ours against naive baselines, in one run on moto's mock_aws (in-process)")
    print(f"python {platform.python_version()}, moto {metadata.version('moto')}, boto3 {metadata.version('boto3')}, "
          f"{os.cpu_count()} cpus; stack provisioned from template.yaml")
    print(f"workload: simulate_orders({orders}, {CUSTOMERS}, seed={SEED}) -> {n} signed deliveries "
          f"({topics['orders/create']} orders/create, {topics['orders/updated']} orders/updated, "
          f"{redelivered} redeliveries)")
    print(f"moto answers one request in ~{r.moto_ms:.1f} ms (median GetItem) and dominates the handler times below:")
    print("request counts (deterministic) are the figure that transfers to AWS; times do not.")
    print("DynamoDB units are estimated from item sizes by DynamoDB's rules (write 1 per KB, read 1 per 4 KB")
    print("consistent or 0.5 eventual, x2 in transactions); item sizes are approximate.")
    print_webhooks(r)
    print_profiles(r)
    print_heavy(r)
    print_costs(r)


def main() -> int:
    started = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        phases[name] = time.perf_counter() - started - sum(phases.values())

    fake_aws_environment()
    moto_patches.install()  # moto's own TransactWriteItems deep-copies the table on every call
    with mock_aws():
        stack = load_stack(TEMPLATE, region=REGION)
        bench = set_up(stack)
        deliveries, expected = simulate_orders(ORDERS, CUSTOMERS, SEED)
        moto_ms = moto_ms_per_request(bench.outputs["TableName"])
        lap("set-up")
        ours_webhook, baseline_webhook, floor, claim_checks = measure_webhooks(bench, deliveries)
        store_lookups = measure_store_lookups(bench, deliveries)
        lap("webhooks")
        ours_profiles, baseline_profiles, outbox, verified = measure_profiles(bench, expected)
        lap("profiles")
        heavy = measure_heavy_customer(bench)
        lap("history")
        track_frame = track_frame_bytes(bench)
    print_report(Results(deliveries, expected, moto_ms, ours_webhook, baseline_webhook, floor, claim_checks,
                         ours_profiles, baseline_profiles, outbox, verified, heavy, firehose_flush_interval(stack),
                         bench.webhook_frame_bytes, track_frame, store_lookups))
    print(f"\n(bench ran in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in phases.items()) + ")")
    record("ingest_path", {
        "deliveries": len(deliveries), "orders": len(expected.orders),
        "webhook_per_delivery": per(ours_webhook.counts, len(deliveries)),
        "webhook_baseline_per_delivery": per(add(baseline_webhook.counts, claim_checks), len(deliveries)),
        "webhook_handler_ms": {"p50": ours_webhook.ms(0.5), "p95": ours_webhook.ms(0.95)},
        "webhook_cold_container": store_lookups.cold,
        "webhook_before_issue12_per_delivery": per(store_lookups.before.counts, len(deliveries)),
        "webhook_archived_at_the_door_per_delivery": per(store_lookups.archived_at_the_door.counts, len(deliveries)),
        "archived_frame_bytes": {"webhook": bench.webhook_frame_bytes, "track": track_frame},
        "track_requests_per_request": store_lookups.track,
        "profiles_per_order": per(add(ours_profiles.counts, outbox), len(expected.orders)),
        "firehose_interval_s": firehose_flush_interval(stack)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
