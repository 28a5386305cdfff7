"""The sample events in events/ (the shapes `sam local invoke` takes) drive each function as Lambda would."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from crm import clock
from crm.adapters.export_jobs import DynamoExportJobStore
from crm.adapters.privacy import DynamoPrivacyStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segment_runs import DynamoSegmentRuns
from crm.adapters.segments import DynamoSegmentStore
from crm.adapters.stores import DynamoStoreDirectory
from crm.adapters.streams import image
from crm.archive import ArchivedDelivery, frame, unframe
from crm.models.exports import ExportJob, ExportOptions, ExportStatus
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.privacy import PrivacyStage
from crm.models.profile import Profile
from crm.models.segment_runs import RunPhase
from crm.models.stores import Platform, Store
from crm.ports import Change
from crm.stores import register_store
from crm_local.lambdas import Function
from crm_local.provision import Provisioned

from tests.aws import bus_events, client, receive_all, subscribe_queue_to_bus
from tests.builders import NOW, ROOT

pytestmark = pytest.mark.integration

EVENTS = ROOT / "events"
UseEnv = Callable[[str], None]


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def invoke(provisioned: Provisioned, function_env: UseEnv, logical_id: str, event: dict[str, Any]) -> Any:
    function_env(logical_id)
    return Function(provisioned.functions[logical_id]).invoke(event)


def test_every_function_has_a_sample_event(provisioned: Provisioned) -> None:
    prefixes = {path.name.split("-")[0] for path in Path(EVENTS).glob("*.json")}
    assert prefixes == {name.removesuffix("Function").lower() for name in provisioned.functions}


def test_the_webhook_sample_is_accepted_and_the_api_sample_then_finds_the_customer(
        provisioned: Provisioned, function_env: UseEnv) -> None:
    registration = register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY,
                                  "sample-shop.myshopify.com", "sample-webhook-secret", NOW)
    answer = invoke(provisioned, function_env, "WebhooksFunction", sample("webhooks-shopify-orders-create.json"))
    assert answer["statusCode"] == 200, answer

    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    assert len(messages) == 1
    batch = sample("profiles-sqs-batch.json")
    batch["Records"][0]["body"] = messages[0]["Body"]
    assert invoke(provisioned, function_env, "ProfilesFunction", batch) == {"batchItemFailures": []}

    lookup = sample("api-find-customer.json")
    lookup["headers"]["x-api-key"] = registration.api_key
    found = invoke(provisioned, function_env, "ApiFunction", lookup)
    assert found["statusCode"] == 200
    customer = json.loads(found["body"])
    # The published sample is a cancelled, voided test order: the shopper is known, nothing counts.
    assert (customer["orders_count"], customer["cancelled_count"], customer["total_spent"]) == (0, 1, "0.00")


@pytest.fixture
def when_the_track_sample_was_sent() -> Iterator[None]:
    """The clock set to a moment after the sample's events: /track refuses events a week old (docs/consent.md),
    and the published sample keeps its dates."""
    back = datetime(2026, 11, 23, 10, 1, 30, tzinfo=UTC) - clock.utc_now()
    clock.shift(back)
    yield
    clock.shift(-back)


@pytest.mark.usefixtures("when_the_track_sample_was_sent")
def test_the_track_sample_is_accepted_from_its_store_origin(provisioned: Provisioned, function_env: UseEnv) -> None:
    DynamoStoreDirectory(provisioned.outputs["TableName"]).register(Store(
        store_id="st_sample", workspace_id="ws_sample", platform=Platform.CUSTOM, domain="sample-shop.example",
        webhook_secrets=("unused",), created_at=NOW, write_key="wk_sampleSampleSample0001"), "crm_sample")
    answer = invoke(provisioned, function_env, "TrackFunction", sample("track-storefront-events.json"))
    assert answer["statusCode"] == 202, answer
    assert json.loads(answer["body"]) == {"status": "accepted", "events": 3}
    assert answer["headers"]["Access-Control-Allow-Origin"] == "https://sample-shop.example"
    [message] = receive_all(provisioned.outputs["IngestQueueUrl"])
    envelope = IngestEnvelope.model_validate_json(message["Body"])
    assert (envelope.source, envelope.store_id, envelope.meta.topic) == ("track", "st_sample", "track")


def test_the_profiles_sample_upserts_its_profile(provisioned: Provisioned, function_env: UseEnv) -> None:
    assert invoke(provisioned, function_env, "ProfilesFunction", sample("profiles-sqs-batch.json")) == {
        "batchItemFailures": []}
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    profile_id = repository.profile_id_for_identity("ws_sample", "email#jon@example.com")
    assert profile_id is not None
    profile = repository.get_profile("ws_sample", profile_id)
    assert profile is not None
    assert str(profile.total_spent) == "404.95"


def test_the_outbox_sample_publishes_order_placed_customer_created_and_contact_created(
        provisioned: Provisioned, function_env: UseEnv) -> None:
    tap = subscribe_queue_to_bus(provisioned.outputs["EventBusName"], "sample-tap")
    assert invoke(provisioned, function_env, "OutboxFunction", sample("outbox-dynamodb-stream.json")) == {
        "batchItemFailures": []}
    # The sample's new profile holds an email: it can be reached from the start (ContactCreated). The flows get
    # every one on their queue; the bus the types the template's BusEventTypes names (docs/events.md).
    assert sorted(event["detail-type"] for event in bus_events(provisioned.outputs["FlowsQueueUrl"])) == [
        "ContactCreated", "CustomerCreated", "OrderPlaced"]
    assert [event["detail-type"] for event in bus_events(tap)] == ["OrderPlaced"]


def test_the_segment_samples_refresh_a_profile_start_a_run_and_carry_it_out(
        provisioned: Provisioned, function_env: UseEnv) -> None:
    table = provisioned.outputs["TableName"]
    DynamoStoreDirectory(table).register(Store(
        store_id="st_sample", workspace_id="ws_sample", platform=Platform.SHOPIFY, domain="sample-shop.myshopify.com",
        webhook_secrets=("unused",), created_at=NOW), "crm_sample")
    refresh = sample("segmentrefresh-dynamodb-stream.json")
    profile = Profile.model_validate(image(refresh["Records"][0], "NewImage"))
    DynamoProfileRepository(table).commit(Change(workspace_id="ws_sample", profiles=((profile, None),)))

    assert invoke(provisioned, function_env, "SegmentRefreshFunction", refresh) == {}
    segments = DynamoSegmentStore(table)
    found = segments.profile_with_segments("ws_sample", profile.profile_id)
    assert found is not None and "builtin:repeat_buyers" in found[1].segment_ids

    started = invoke(provisioned, function_env, "SegmentRunsFunction", sample("segmentruns-schedule.json"))
    run_id = started["runs"]["ws_sample"]
    batch = sample("segmenttasks-sqs-task.json")
    for _ in range(2):  # the sketch task, then the evaluate task it queues
        [message] = receive_all(provisioned.outputs["SegmentTasksQueueUrl"])
        batch["Records"][0]["body"] = message["Body"]
        assert invoke(provisioned, function_env, "SegmentTasksFunction", batch) == {"batchItemFailures": []}
    run = DynamoSegmentRuns(table, provisioned.outputs["ArchiveBucketName"]).get("ws_sample", run_id)
    assert run is not None and (run.phase, run.profiles) == (RunPhase.DONE, 1)
    # The sample task names a run that is not this one: a task for an unknown run is done already.
    assert invoke(provisioned, function_env, "SegmentTasksFunction", sample("segmenttasks-sqs-task.json")) == {
        "batchItemFailures": []}


def test_the_exports_sample_writes_its_export_and_a_repeat_changes_nothing(
        provisioned: Provisioned, function_env: UseEnv) -> None:
    jobs = DynamoExportJobStore(provisioned.outputs["TableName"])
    jobs.save(ExportJob(workspace_id="ws_sample", export_id="exp_0123456789abcdef", segment_id="builtin:vip",
                        options=ExportOptions(), created_at=NOW, updated_at=NOW), None)
    for _ in range(2):
        assert invoke(provisioned, function_env, "ExportsFunction", sample("exports-sqs-message.json")) == {
            "batchItemFailures": []}
    job = jobs.get("ws_sample", "exp_0123456789abcdef")
    assert job is not None and (job.status, job.attempts, job.rows) == (ExportStatus.DONE, 1, 0)  # no members yet


def test_the_privacy_sample_erases_the_shopper_from_its_workspace_only_and_a_redelivery_changes_nothing(
        provisioned: Provisioned, function_env: UseEnv) -> None:
    bucket = provisioned.outputs["ArchiveBucketName"]
    body = b'{"id": 1, "email": "erase.me@example.com"}'

    def framed(workspace_id: str) -> bytes:
        header = ArchivedDelivery(platform=Platform.SHOPIFY, workspace_id=workspace_id, store_id=f"st_{workspace_id}",
                                  meta=DeliveryMeta(topic="orders/create", delivery_id=workspace_id),
                                  received_at=NOW, body_length=len(body))
        return frame(header.envelope(body), body)

    client("s3").put_object(Bucket=bucket, Key="deliveries/2026/11/20/09/batch",
                            Body=framed("ws_sample") + framed("ws_other"))
    for _ in range(2):  # the second time, a redelivery of the same message
        answer = invoke(provisioned, function_env, "PrivacyFunction", sample("privacy-sqs-request.json"))
        assert answer == {"batchItemFailures": []}
    job = DynamoPrivacyStore(provisioned.outputs["TableName"]).job("ws_sample", "sample-redact-1")
    assert job is not None and (job.stage, job.runs, job.archive.deliveries_removed) == (PrivacyStage.DONE, 1, 1)
    left = client("s3").get_object(Bucket=bucket, Key="deliveries/2026/11/20/09/batch")["Body"].read()
    assert [header.workspace_id for header, _ in unframe(left)] == ["ws_other"]


def test_the_console_sample_sends_a_signed_out_visitor_to_sign_in(provisioned: Provisioned,
                                                                  function_env: UseEnv) -> None:
    answer = invoke(provisioned, function_env, "ConsoleFunction", sample("console-dashboard-signed-out.json"))
    assert answer["statusCode"] in (302, 303), answer
    location = answer["headers"].get("Location") or answer["headers"].get("location")
    assert location is not None and location.endswith("/console/sign-in")
