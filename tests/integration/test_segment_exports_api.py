"""Segment exports on the provisioned stack (moto): the asynchronous job from POST through the exports function
to a presigned URL that downloads the file, redelivery, the direct export's 413, isolation between workspaces,
and the multipart writer against S3."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from chalice.test import Client
from crm.adapters.export_files import MIN_PART_SIZE, S3ExportFiles
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.profile import Profile
from crm.models.stores import Platform, StoreRegistration
from crm.ports import Change
from crm.segments import exports
from crm.stores import register_store
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event
from tests.builders import NOW
from tests.segment_workers import SegmentWorkers

pytestmark = pytest.mark.integration

BUYERS = {"name": "Buyers", "definition": {"field": "orders_count", "op": "gte", "value": 1}}
TRICKY = 'Ann "Nan", Jr'
UseEnv = Callable[[str], None]


@dataclass
class World:
    provisioned: Provisioned
    use: UseEnv
    api: Client
    a: StoreRegistration
    b: StoreRegistration
    workers: SegmentWorkers

    @classmethod
    def started(cls, provisioned: Provisioned, use: UseEnv, a: StoreRegistration, b: StoreRegistration) -> World:
        """The API function loaded in-process and the segment workers, over the two workspaces' stores."""
        workers = SegmentWorkers(provisioned, use)
        use("ApiFunction")
        spec = provisioned.functions["ApiFunction"]
        return cls(provisioned, use, Client(load_handler(spec.code_path, spec.handler, spec.logical_id)), a, b, workers)

    def call(self, method: str, path: str, key: str | None = None, body: Any = None) -> Any:
        self.use("ApiFunction")
        headers = {"x-api-key": key or self.a.api_key, "content-type": "application/json"}
        raw = json.dumps(body).encode() if body is not None else b""
        return getattr(self.api.http, method)(path, headers=headers, body=raw)

    def segment(self) -> str:
        """A new segment of workspace a, computed (creating it starts a run; the task workers carry it out)."""
        segment_id: str = self.call("post", "/segments", body=BUYERS).json_body["id"]
        self.workers.drain()
        return segment_id

    def recompute(self, segment_id: str, key: str) -> None:
        assert self.call("post", f"/segments/{segment_id}/recompute", key=key).status_code == 202
        self.workers.drain()

    def work_the_queue(self) -> list[dict[str, Any]]:
        """Invoke the exports function with what the export queue holds, as its event source mapping would
        (one message per invocation); the messages it received, for redelivery."""
        url = self.provisioned.outputs["ExportQueueUrl"]
        messages = receive_all(url)
        self.use("ExportsFunction")
        function = Function(self.provisioned.functions["ExportsFunction"])
        for message in messages:
            assert function.invoke(sqs_event([message], queue_arn(url))) == {"batchItemFailures": []}
        return messages

    def objects(self) -> list[str]:
        listed = client("s3").list_objects_v2(Bucket=self.provisioned.outputs["ExportsBucketName"])
        return [o["Key"] for o in listed.get("Contents", [])]


def profile(workspace_id: str, profile_id: str, orders: int, **extra: Any) -> Profile:
    return Profile(workspace_id=workspace_id, profile_id=profile_id, created_at=NOW - timedelta(days=40),
                   updated_at=NOW, orders_count=orders, total_spent=Decimal("12.50") * orders, **extra)


@pytest.fixture
def world(provisioned: Provisioned, function_env: UseEnv) -> World:
    """Workspace a: three buyers (one with quotes and a comma, one UTF-8 and subscribed by email) and a visitor;
    workspace b: one buyer."""
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    a = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    b = register_store(directory, Platform.SHOPIFY, "b.myshopify.com", "secret-b", NOW)
    subscribed = Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="test", at=NOW)
    ws = a.workspace_id
    for item in (profile(ws, "pa1", 1, email="ann@example.com", first_name=TRICKY),
                 profile(ws, "pa2", 2, email="zoe@example.com", first_name="Zoë", consents={"email": subscribed}),
                 profile(ws, "pa3", 3, email="formula@example.com", first_name="=HYPERLINK(\"http://x\")"),
                 profile(ws, "pa4", 0, email="visitor@example.com"),
                 profile(b.workspace_id, "pb1", 1, email="other@example.com")):
        repository.commit(Change(workspace_id=item.workspace_id, profiles=((item, None),)))
    return World.started(provisioned, function_env, a, b)


def test_post_then_the_worker_then_the_presigned_url_downloads_the_file(world: World) -> None:
    segment_id = world.segment()
    started = world.call("post", f"/segments/{segment_id}/exports",
                         body={"format": "csv", "fields": ["email", "first_name", "total_spent"]})
    assert started.status_code == 202, started.body
    job = started.json_body
    export_id = job["export_id"]
    assert export_id.startswith("exp_") and job["status"] == "queued" and job["url"] is None
    assert started.headers["Location"] == f"/segments/{segment_id}/exports/{export_id}"
    assert world.call("get", started.headers["Location"]).json_body["status"] == "queued"

    world.work_the_queue()
    done = world.call("get", f"/segments/{segment_id}/exports/{export_id}").json_body
    assert (done["status"], done["rows"], done["error"]) == ("done", 3, None)
    assert done["fields"] == ["email", "first_name", "total_spent"] and done["format"] == "csv"

    download = requests.get(done["url"], timeout=10)  # a plain HTTP GET, no AWS credentials
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="{segment_id}-{export_id}.csv"')
    assert len(download.content) == done["bytes"] and download.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"), newline="")))
    assert rows == [["email", "first_name", "total_spent"], ["ann@example.com", TRICKY, "12.50"],
                    ["zoe@example.com", "Zoë", "25.00"], ["formula@example.com", "'=HYPERLINK(\"http://x\")", "37.50"]]
    assert "X-Amz-Signature=" in done["url"] and "X-Amz-Expires=3600" in done["url"]  # SigV4, an hour


def test_a_redelivered_message_changes_nothing(world: World) -> None:
    segment_id = world.segment()
    export_id = world.call("post", f"/segments/{segment_id}/exports",
                           body={"format": "jsonl", "consent": "email"}).json_body["export_id"]
    [message] = world.work_the_queue()
    first = world.call("get", f"/segments/{segment_id}/exports/{export_id}").json_body
    assert (first["status"], first["rows"]) == ("done", 1)
    objects = world.objects()
    assert objects == [f"exports/{world.a.workspace_id}/{export_id}/1.jsonl"]

    url = world.provisioned.outputs["ExportQueueUrl"]
    again = {**message, "Attributes": {**message["Attributes"], "ApproximateReceiveCount": "2"}}
    world.use("ExportsFunction")
    function = Function(world.provisioned.functions["ExportsFunction"])
    assert function.invoke(sqs_event([again], queue_arn(url))) == {"batchItemFailures": []}

    second = world.call("get", f"/segments/{segment_id}/exports/{export_id}").json_body
    assert {k: v for k, v in second.items() if not k.startswith("url")} == {
        k: v for k, v in first.items() if not k.startswith("url")}
    assert world.objects() == objects
    content = requests.get(second["url"], timeout=10).content.decode()
    assert [json.loads(line) for line in content.splitlines()] == [{"email": "zoe@example.com"}]


def test_options_in_the_body_are_checked_naming_the_field(world: World) -> None:
    segment_id = world.segment()
    for body, problem in (({"fields": ["email", "password"]}, "fields.1: unknown field 'password'"),
                          ({"format": "xlsx"}, "format: "), ({"fields": "email", "limit": 3}, "limit: unknown option")):
        response = world.call("post", f"/segments/{segment_id}/exports", body=body)
        assert response.status_code == 400 and response.json_body["Message"].startswith(problem), response.body
    assert receive_all(world.provisioned.outputs["ExportQueueUrl"]) == []


def test_a_direct_export_over_the_limit_is_413_pointing_at_the_asynchronous_one(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    segment_id = world.segment()
    assert world.call("get", f"/segments/{segment_id}/export").status_code == 200
    monkeypatch.setattr(exports, "MAX_DIRECT_MEMBERS", 2)
    response = world.call("get", f"/segments/{segment_id}/export")
    assert response.status_code == 413
    assert response.json_body["Code"] == "ContentTooLargeError"
    assert f"POST /segments/{segment_id}/exports" in response.json_body["Message"]


def test_another_workspace_can_neither_read_nor_export_the_segment_or_its_customers(world: World) -> None:
    segment_id = world.segment()
    export_id = world.call("post", f"/segments/{segment_id}/exports").json_body["export_id"]
    world.work_the_queue()
    key_b = world.b.api_key

    for method, path in (("get", f"/segments/{segment_id}/exports/{export_id}"),
                         ("post", f"/segments/{segment_id}/exports"), ("get", f"/segments/{segment_id}/export"),
                         ("get", f"/segments/{segment_id}/members"), ("get", "/customers/pa1"),
                         ("get", "/customers?email=ann@example.com")):
        response = world.call(method, path, key=key_b)
        assert response.status_code == 404, (method, path)
        # Nothing held on the customer (a 404 may echo the id or email asked about), and no download link.
        assert b"Nan" not in response.body and b"12.50" not in response.body and b"X-Amz" not in response.body
    # Workspace b's own export of the same built-in holds its own customers only.
    world.recompute("builtin:one_time_buyers", key_b)
    own = world.call("post", "/segments/builtin:one_time_buyers/exports", key=key_b).json_body
    world.work_the_queue()
    done = world.call("get", f"/segments/builtin:one_time_buyers/exports/{own['export_id']}", key=key_b).json_body
    assert requests.get(done["url"], timeout=10).content.decode("utf-8-sig") == "email\r\nother@example.com\r\n"
    assert world.call("get", f"/segments/{segment_id}/exports/{export_id}").json_body["status"] == "done"
    assert world.call("get", f"/segments/{segment_id}/exports/exp_0000000000000000").status_code == 404


# --- the multipart writer against S3 -------------------------------------------------------------


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = bytes([65 + (sent // size) % 26]) * min(size, total - sent)
        sent += len(chunk)
        yield chunk


def test_a_file_of_several_parts_is_assembled_whole(world: World) -> None:
    bucket = world.provisioned.outputs["ExportsBucketName"]
    total = 2 * MIN_PART_SIZE + 12345  # two full parts, then a smaller last one
    files = S3ExportFiles(bucket)
    assert files.write("exports/ws/big.csv", _chunks(total), "text/csv; charset=utf-8", "big.csv") == total
    held = client("s3").get_object(Bucket=bucket, Key="exports/ws/big.csv")
    assert held["ContentLength"] == total and held["Body"].read() == b"".join(_chunks(total))
    assert held["ContentDisposition"] == 'attachment; filename="big.csv"'
    assert held["ETag"].strip('"').endswith("-3")  # a multipart object of three parts

    files.write("exports/ws/small.csv", _chunks(10), "text/csv; charset=utf-8", "small.csv")
    assert client("s3").get_object(Bucket=bucket, Key="exports/ws/small.csv")["Body"].read() == b"A" * 10


def test_a_failed_stream_leaves_no_object_and_no_upload(world: World) -> None:
    bucket = world.provisioned.outputs["ExportsBucketName"]

    def failing() -> Iterator[bytes]:
        yield from _chunks(MIN_PART_SIZE + 1)  # one part sent
        raise RuntimeError("the table went away")

    with pytest.raises(RuntimeError):
        S3ExportFiles(bucket).write("exports/ws/broken.csv", failing(), "text/csv", "broken.csv")
    assert world.objects() == []
    assert client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
