"""Audiences for ads through the API on the provisioned stack (moto): a segment downloaded directly as a Meta
customer file, and exported asynchronously as a Google Customer Match file read back from S3; only what
consent lets out is in either."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
import requests
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.audiences import sha256_hex
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.stores import Platform
from crm.ports import Change
from crm.stores import register_store
from crm_local.provision import Provisioned

from tests.aws import client
from tests.builders import NOW
from tests.integration.test_segment_exports_api import World, profile

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]


def stated(channel: Channel, state: ConsentState) -> Consent:
    return Consent(channel=channel, state=state, source="shopify:customers/update", at=NOW)


@pytest.fixture
def world(provisioned: Provisioned, function_env: UseEnv) -> World:
    """Workspace a's buyers: one subscribed by email (a dotted Gmail address), one by SMS only, one who
    unsubscribed and one never asked; workspace b: a subscribed buyer of its own."""
    table = provisioned.outputs["TableName"]
    directory, repository = DynamoStoreDirectory(table), DynamoProfileRepository(table)
    a = register_store(directory, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    b = register_store(directory, Platform.SHOPIFY, "b.myshopify.com", "secret-b", NOW)
    ws = a.workspace_id
    for item in (profile(ws, "pa1", 1, email="Jane.Doe@gmail.com", first_name="Jane", last_name="Doe",
                         country="GB", consents={"email": stated(Channel.EMAIL, ConsentState.SUBSCRIBED)}),
                 profile(ws, "pa2", 2, email="sms@example.com", phone="+16502530000",
                         consents={"sms": stated(Channel.SMS, ConsentState.SUBSCRIBED),
                                   "email": stated(Channel.EMAIL, ConsentState.UNSUBSCRIBED)}),
                 profile(ws, "pa3", 3, email="gone@example.com", phone="+442071838750",
                         consents={"email": stated(Channel.EMAIL, ConsentState.UNSUBSCRIBED)}),
                 profile(ws, "pa4", 1, email="never@example.com", first_name="Never"),
                 profile(b.workspace_id, "pb1", 1, email="other@example.com",
                         consents={"email": stated(Channel.EMAIL, ConsentState.SUBSCRIBED)})):
        repository.commit(Change(workspace_id=item.workspace_id, profiles=((item, None),)))
    return World.started(provisioned, function_env, a, b)


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_a_direct_download_as_a_meta_customer_file(world: World) -> None:
    segment_id = world.segment()
    response = world.call("get", f"/segments/{segment_id}/export?format=meta_audience")
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{segment_id}-meta_audience.csv"'
    text = response.body.decode("utf-8")
    assert rows(text) == [["email", "phone", "fn", "ln", "country"],
                          [sha256_hex("jane.doe@gmail.com"), "", sha256_hex("jane"), sha256_hex("doe"),
                           sha256_hex("gb")],
                          ["", sha256_hex("16502530000"), "", "", ""]]
    for secret in ("gone", "never", "other", sha256_hex("gone@example.com"), sha256_hex("442071838750")):
        assert secret not in text


def test_an_asynchronous_google_customer_match_file_read_back_from_s3(world: World) -> None:
    segment_id = world.segment()
    started = world.call("post", f"/segments/{segment_id}/exports", body={"format": "google_audience"})
    assert started.status_code == 202, started.body
    export_id = started.json_body["export_id"]
    assert started.json_body["fields"] == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    world.work_the_queue()
    done = world.call("get", f"/segments/{segment_id}/exports/{export_id}").json_body
    assert (done["status"], done["rows"], done["format"]) == ("done", 2, "google_audience")

    key = f"exports/{world.a.workspace_id}/{export_id}/1.csv"
    held = client("s3").get_object(Bucket=world.provisioned.outputs["ExportsBucketName"], Key=key)
    assert held["ContentDisposition"] == f'attachment; filename="{segment_id}-{export_id}-google_audience.csv"'
    stored = held["Body"].read()
    assert stored == requests.get(done["url"], timeout=10).content
    assert not stored.startswith(b"\xef\xbb\xbf")  # Google reads the header names exactly
    assert rows(stored.decode("utf-8")) == [
        ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"],
        [sha256_hex("janedoe@gmail.com"), "", sha256_hex("jane"), sha256_hex("doe"), "gb", ""],
        ["", sha256_hex("+16502530000"), "", "", "", ""]]


def test_fields_with_an_audience_format_is_a_400_naming_it(world: World) -> None:
    segment_id = world.segment()
    response = world.call("post", f"/segments/{segment_id}/exports",
                          body={"format": "meta_audience", "fields": ["email"]})
    assert response.status_code == 400 and response.json_body["Message"].startswith("fields: "), response.body
    direct = world.call("get", f"/segments/{segment_id}/export?format=google_audience&fields=email")
    assert direct.status_code == 400 and "google_audience" in direct.json_body["Message"]
