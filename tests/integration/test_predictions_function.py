"""The predictions functions on the provisioned stack, with the real models: the daily schedule queues a fit
per workspace, the worker fits it and writes each profile's prediction; an order placed afterwards reaches
the worker through the bus rule and the profile is predicted again with the kept fit; the API shows the
prediction and the settings, and docs/segments.md's "Likely to churn, worth keeping" matches. Every AWS call
is checked against the functions' roles (tests/integration/conftest.py)."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from chalice.test import Client
from crm.adapters.predictions import DynamoPredictionStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segment_runs import DynamoSegmentRuns
from crm.adapters.segments import DynamoSegmentStore
from crm.adapters.stores import DynamoStoreDirectory
from crm.ingestion import apply_event
from crm.models.events import OrderPlaced
from crm.models.predictions import PredictionSettings
from crm.models.segment_runs import RunTask
from crm.models.stores import Platform, StoreRegistration
from crm.profiles import profile_id_for
from crm.segments import runs
from crm.stores import register_store
from crm_local.event_shapes import sqs_record
from crm_local.lambdas import LambdaContext, load_handler
from crm_local.provision import Provisioned

from tests.builders import NOW, order
from tests.fakes import FakeTaskQueue

pytestmark = pytest.mark.integration

LATER = NOW + timedelta(days=1)


def _history(store: StoreRegistration, repository: DynamoProfileRepository) -> dict[str, str]:
    """40 shoppers over two years: regulars, one-time buyers, and big spenders who bought often and went quiet.
    Their profile ids by kind."""
    rng = random.Random(13)
    kinds: dict[str, str] = {}
    for number in range(40):
        kind = "lapsed_whale" if number < 5 else "regular" if number < 25 else "one_time"
        email = f"{kind}{number}@example.com"
        if kind == "lapsed_whale":
            days = sorted(rng.sample(range(420, 700), 8), reverse=True)
            amount = Decimal("9000.00")
        elif kind == "regular":
            days = sorted(rng.sample(range(1, 700), rng.randint(2, 8)), reverse=True)
            amount = Decimal(rng.randint(20, 120))
        else:
            days = [rng.randint(1, 700)]
            amount = Decimal(rng.randint(20, 120))
        for order_number, ago in enumerate(days):
            apply_event(repository, order(f"{number}-{order_number}", workspace_id=store.workspace_id,
                                          store_id=store.store_id, email=email, total=amount,
                                          created_at=NOW - timedelta(days=ago)), NOW)
        kinds[profile_id_for(store.workspace_id, f"email#{email}")] = kind
    return kinds


class Predictions:
    def __init__(self, provisioned: Provisioned, function_env: Callable[[str], None],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.provisioned, self.function_env = provisioned, function_env
        self.url = provisioned.physical["PredictionsQueue"].attributes["QueueUrl"]
        self.arn = provisioned.physical["PredictionsQueue"].attributes["Arn"]
        self.handlers: dict[str, Any] = {}
        for name in ("PredictionsScheduleFunction", "PredictionsFunction"):
            spec = provisioned.functions[name]
            self.handlers[name] = load_handler(spec.code_path, spec.handler, spec.logical_id)
            monkeypatch.setattr(sys.modules[f"crm_function_{spec.logical_id}"], "utc_now", lambda: LATER)

    def schedule(self) -> Any:
        self.function_env("PredictionsScheduleFunction")
        return self.handlers["PredictionsScheduleFunction"]({}, LambdaContext(
            function_name="PredictionsScheduleFunction"))

    def segment_run(self, workspace_id: str) -> None:
        """The day's segment run of the workspace at LATER (its tasks carried out here), whose work files the
        fit reads."""
        table = self.provisioned.outputs["TableName"]
        store = DynamoSegmentStore(table)
        segment_runs = DynamoSegmentRuns(table, self.provisioned.outputs["ArchiveBucketName"])
        tasks = FakeTaskQueue()
        runs.start_run(segment_runs, tasks, workspace_id, LATER, 2, runs.SCHEDULE)
        while tasks.tasks:
            task = tasks.tasks.pop(0)
            assert isinstance(task, RunTask)
            runs.carry_out(task, store, segment_runs, tasks, lambda: LATER)

    def drain(self) -> list[dict[str, Any]]:
        """Every queued message through the worker, as Lambda's SQS poller would; the bodies."""
        sqs = boto3.client("sqs", region_name=self.provisioned.region)
        self.function_env("PredictionsFunction")
        bodies = []
        while messages := sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            answer = self.handlers["PredictionsFunction"](
                {"Records": [sqs_record(m, self.arn, self.provisioned.region) for m in messages]},
                LambdaContext(function_name="PredictionsFunction"))
            assert answer == {"batchItemFailures": []}, answer
            for message in messages:
                sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
                bodies.append(json.loads(message["Body"]))
        return bodies


@pytest.fixture
def predictions(provisioned: Provisioned, function_env: Callable[[str], None],
                monkeypatch: pytest.MonkeyPatch) -> Predictions:
    return Predictions(provisioned, function_env, monkeypatch)


def test_the_schedule_fits_each_workspace_and_an_order_refreshes_its_profile(
        provisioned: Provisioned, function_env: Callable[[str], None], predictions: Predictions) -> None:
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    shop = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    empty = register_store(directory, Platform.SHOPIFY, "b.myshopify.com", "secret-b", NOW)
    kinds = _history(shop, repository)
    store = DynamoPredictionStore(table)
    store.put_settings(shop.workspace_id, PredictionSettings(min_repeat_buyers=10))

    for workspace in (shop, empty):
        predictions.segment_run(workspace.workspace_id)
    assert predictions.schedule() == {"workspaces": 2}
    fitted = predictions.drain()
    assert sorted(body["fit_workspace"] for body in fitted) == sorted([shop.workspace_id, empty.workspace_id])

    fit = store.fit(shop.workspace_id)
    assert fit is not None and fit.status == "fitted" and fit.chosen in ("bgnbd", "mbgnbd")
    assert fit.customers == 40 and fit.repeat_buyers == 25 and fit.why_chosen
    empty_fit = store.fit(empty.workspace_id)
    assert empty_fit is not None and empty_fit.status == "no_orders"
    profiles = {pid: repository.get_profile(shop.workspace_id, pid) for pid in kinds}
    for profile in profiles.values():
        assert profile is not None and profile.prediction is not None
        assert profile.prediction.status == "predicted"
        # In the reporting currency wherever there is money (Gamma-Gamma may have no finite mean for a
        # one-time buyer: then no CLV, and no currency).
        assert profile.prediction.currency == ("USD" if profile.prediction.clv is not None else None)
        assert profile.prediction.computed_at == LATER

    # The docs' example: likely to churn, worth keeping: the big spenders who went quiet, no one else.
    function_env("ApiFunction")
    spec = provisioned.functions["ApiFunction"]
    api = Client(load_handler(spec.code_path, spec.handler, spec.logical_id))
    headers = {"x-api-key": shop.api_key, "content-type": "application/json"}
    draft = {"name": "Likely to churn, worth keeping", "definition": {"all": [
        {"field": "predicted.churn_probability", "op": "gte", "value": "0.6"},
        {"field": "predicted.clv", "op": "gt", "value": "300"}]}}
    preview = api.http.post("/segments/preview", headers=headers, body=json.dumps(draft).encode())
    assert preview.status_code == 200, preview.json_body
    whales = {pid for pid, kind in kinds.items() if kind == "lapsed_whale"}
    churning = {pid for pid, p in profiles.items() if p and p.prediction and p.prediction.churn_probability
                and p.prediction.churn_probability >= Decimal("0.6") and p.prediction.clv
                and p.prediction.clv > 300}
    assert churning and churning <= whales  # the big spenders who went quiet, and no one else
    assert preview.json_body["size"] == len(churning)

    # The profile API shows it; the settings show the fit.
    whale = sorted(churning)[0]
    shown = api.http.get(f"/customers/{whale}", headers=headers).json_body
    assert shown["prediction"]["status"] == "predicted" and Decimal(shown["prediction"]["clv"]) > 300
    settings = api.http.get("/settings/predictions", headers=headers).json_body
    assert settings["min_repeat_buyers"] == 10 and settings["last_fit"]["status"] == "fitted"
    refused = api.http.put("/settings/predictions", headers=headers, body=b'{"clv_months": 0}')
    assert refused.status_code == 400 and refused.json_body["Message"].startswith("clv_months")

    # The whale comes back: the order reaches the worker through the bus rule, and the kept fit says so.
    before = profiles[whale]
    assert before is not None and before.prediction is not None
    apply_event(repository, order("back", workspace_id=shop.workspace_id, store_id=shop.store_id,
                                  email=before.email, total=Decimal("9000.00"), created_at=LATER), LATER)
    placed = OrderPlaced(event_id="OrderPlaced:back", workspace_id=shop.workspace_id, profile_id=whale,
                         occurred_at=LATER, store_id=shop.store_id, order_id="back", currency="USD",
                         total_price="9000.00", net_total="9000.00")
    boto3.client("events", region_name=provisioned.region).put_events(Entries=[{
        "Source": "crm", "DetailType": "OrderPlaced", "Detail": placed.model_dump_json(),
        "EventBusName": provisioned.outputs["EventBusName"]}])
    refreshed = predictions.drain()
    assert [body["detail-type"] for body in refreshed] == ["OrderPlaced"]
    after = repository.get_profile(shop.workspace_id, whale)
    assert after is not None and after.prediction is not None and after.prediction.p_alive is not None
    assert before.prediction.p_alive is not None and after.prediction.p_alive > before.prediction.p_alive
    assert store.fit(shop.workspace_id) == fit  # predicted with the kept fit, not fitted again


def test_the_fit_waits_on_its_queue_for_the_days_segment_run_and_reads_no_profile_from_the_table(
        provisioned: Provisioned, predictions: Predictions, monkeypatch: pytest.MonkeyPatch) -> None:
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    shop = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    kinds = _history(shop, repository)
    store = DynamoPredictionStore(table)
    store.put_settings(shop.workspace_id, PredictionSettings(min_repeat_buyers=10))
    sqs = boto3.client("sqs", region_name=provisioned.region)

    def delayed() -> int:
        attributes = sqs.get_queue_attributes(QueueUrl=predictions.url, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesDelayed"])

    assert predictions.schedule() == {"workspaces": 1}
    [waited] = predictions.drain()  # no run yet today: the fit goes back to its queue, a quarter of an hour
    assert store.fit(shop.workspace_id) is None and delayed() == 1

    predictions.segment_run(shop.workspace_id)
    # The fit delivered again after its delay (moto keeps the 900 s): the same body, on the worker as Lambda
    # hands it over; no profile is read from the table (its workspace index is not queried).
    worker = sys.modules["crm_function_PredictionsFunction"]
    read_the_table = []
    monkeypatch.setattr(DynamoProfileRepository, "workspace_profiles",
                        lambda *args, **kwargs: read_the_table.append(args) or iter(()))
    predictions.function_env("PredictionsFunction")
    message = {"messageId": "again", "receiptHandle": "r", "body": json.dumps(waited), "attributes": {},
               "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": predictions.arn,
               "awsRegion": provisioned.region}
    answer = worker.on_message({"Records": [message]}, LambdaContext(function_name="PredictionsFunction"))
    assert answer == {"batchItemFailures": []} and read_the_table == []
    fit = store.fit(shop.workspace_id)
    assert fit is not None and fit.status == "fitted" and fit.customers == 40
    for profile_id in kinds:
        profile = repository.get_profile(shop.workspace_id, profile_id)
        assert profile is not None and profile.prediction is not None and profile.prediction.computed_at == LATER


def test_a_paced_fit_writes_a_minutes_units_then_hands_the_rest_to_its_queue_held_back(
        provisioned: Provisioned, predictions: Predictions, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a provisioned table (half a unit a second here, a write counted as five: 40 profiles take hops) the worker
    writes until it is a minute ahead of the pace and sends the rest back with the delay it ran ahead; no hop
    waits. Every profile is predicted once the rests are delivered (each as Lambda would hand it over)."""
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    shop = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    kinds = _history(shop, repository)
    store = DynamoPredictionStore(table)
    store.put_settings(shop.workspace_id, PredictionSettings(min_repeat_buyers=10))
    provisioned.functions["PredictionsFunction"].environment["DYNAMODB_UNITS_PER_SECOND"] = "0.5"
    assert predictions.schedule() == {"workspaces": 1}
    [waiting] = predictions.drain()
    predictions.segment_run(shop.workspace_id)
    worker = sys.modules["crm_function_PredictionsFunction"]
    sent: list[tuple[dict[str, Any], int | None]] = []
    real_send = worker.send_fit_later
    monkeypatch.setattr(worker, "send_fit_later", lambda task, delay=None: (
        sent.append((json.loads(task.model_dump_json()), delay)), real_send(task, delay))[-1])
    predictions.function_env("PredictionsFunction")
    body: dict[str, Any] | None = waiting
    hops = 0
    while body is not None:
        hops += 1
        message = {"messageId": f"hop{hops}", "receiptHandle": "r", "body": json.dumps(body), "attributes": {},
                   "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                   "eventSourceARN": predictions.arn, "awsRegion": provisioned.region}
        answer = worker.on_message({"Records": [message]}, LambdaContext(function_name="PredictionsFunction"))
        assert answer == {"batchItemFailures": []}
        body = sent[-1][0] if len(sent) == hops else None
    assert hops >= 3 and len(sent) == hops - 1
    fit = store.fit(shop.workspace_id)
    assert fit is not None and fit.status == "fitted"
    for rest, delay in sent:
        assert rest["read_from"].startswith("run_") and rest["fitted_at"] is not None
        assert delay is not None and 60 <= delay <= 900  # a minute ahead at least, within what SQS holds back
    assert sorted(rest["rest_after"] for rest, _ in sent) == [rest["rest_after"] for rest, _ in sent]
    for profile_id in kinds:
        profile = repository.get_profile(shop.workspace_id, profile_id)
        assert profile is not None and profile.prediction is not None and profile.prediction.computed_at == LATER
