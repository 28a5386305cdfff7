"""GET and PUT /settings/messaging on the provisioned stack: defaults, normalised addresses, the SES identity
verification requested on PUT (in moto's SES), 400s naming the field, 401 and workspace isolation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from crm_local.provision import Provisioned

from tests.marketer_api import MarketerApi, marketer_api

pytestmark = pytest.mark.integration

DEFAULTS = {"from_address": None, "from_name": None, "reply_to": None, "postal_address": None, "sms_sender": None,
            "time_zone": "UTC", "quiet_hours": {"start": "21:00", "end": "08:00"},
            "smart_sending": {"email": "PT16H", "sms": "P1D"},
            "attribution": {"email_click": "P5D", "email_open": "P5D", "sms_click": "P5D", "sms_delivery": "P1D"},
            "sender_verification": None}


@pytest.fixture
def world(provisioned: Provisioned, function_env: Callable[[str], None],
          monkeypatch: pytest.MonkeyPatch) -> MarketerApi:
    return marketer_api(provisioned, function_env, monkeypatch)


def _identities(world: MarketerApi) -> set[str]:
    ses = boto3.client("sesv2", region_name=world.provisioned.region)
    return {i["IdentityName"] for i in ses.list_email_identities()["EmailIdentities"]}


def test_the_defaults_until_replaced(world: MarketerApi) -> None:
    assert world.ok("get", "/settings/messaging") == DEFAULTS


def test_put_normalises_and_asks_ses_to_verify_the_from_address(world: MarketerApi) -> None:
    chosen = {"from_address": " Hello@Shop.Example ", "from_name": "Shop", "reply_to": "Help@Shop.Example",
              "postal_address": "1 Main St, Springfield", "sms_sender": "+1 202-555-0101",
              "time_zone": "America/New_York", "quiet_hours": {"start": "20:00", "end": "09:00"},
              "smart_sending": {"email": "PT12H", "sms": "P1D"},
              "attribution": {"email_click": "P7D", "email_open": "PT12H", "sms_click": "P5D", "sms_delivery": "P0D"}}
    held = world.ok("put", "/settings/messaging", body=chosen)
    assert held == {**chosen, "from_address": "hello@shop.example", "reply_to": "help@shop.example",
                    "attribution": {**chosen["attribution"], "sms_delivery": "PT0S"},  # zero, as pydantic writes it
                    "sms_sender": "+12025550101", "smart_sending": {"email": "PT12H", "sms": "P1D"},
                    "sender_verification": {"identity": "hello@shop.example", "status": "PENDING"}}
    assert _identities(world) == {"hello@shop.example"}
    # GET answers SES's status now (moto verifies at once) and asks nothing more.
    assert world.ok("get", "/settings/messaging")["sender_verification"] == {"identity": "hello@shop.example",
                                                                             "status": "SUCCESS"}
    assert world.ok("put", "/settings/messaging", body=chosen)["sender_verification"]["status"] == "SUCCESS"
    assert _identities(world) == {"hello@shop.example"}


def test_a_verified_domain_covers_its_addresses(world: MarketerApi) -> None:
    boto3.client("sesv2", region_name=world.provisioned.region).create_email_identity(EmailIdentity="shop.example")
    held = world.ok("put", "/settings/messaging", body={"from_address": "news@shop.example"})
    assert held["sender_verification"] == {"identity": "shop.example", "status": "SUCCESS"}
    assert _identities(world) == {"shop.example"}


@pytest.mark.parametrize(("body", "field"), [
    ({"from_address": "not an address"}, "from_address"),
    ({"reply_to": "a@b"}, "reply_to"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"quiet_hours": {"start": "25:00"}}, "quiet_hours.start"),
    ({"smart_sending": {"email": "often"}}, "smart_sending.email"),
    ({"attribution": {"email_open": "P91D"}}, "attribution.email_open"),
    ({"attribution": {"sms_delivery": "-PT1H"}}, "attribution.sms_delivery"),
    ({"sms_sender": "+1 555"}, "sms_sender"),
    ({"sms_sender": "TOO-LONG-SENDER"}, "sms_sender"),
    ({"colour": "red"}, "colour"),
])
def test_a_refused_document_is_400_naming_the_field_and_nothing_is_stored(world: MarketerApi, body: dict[str, Any],
                                                                         field: str) -> None:
    response = world.call("put", "/settings/messaging", body=body)
    assert response.status_code == 400 and response.json_body["Message"].startswith(f"{field}:"), response.json_body
    assert world.ok("get", "/settings/messaging") == DEFAULTS and _identities(world) == set()


def test_without_a_key_is_401(world: MarketerApi) -> None:
    assert world.api.http.get("/settings/messaging").status_code == 401
    assert world.call("put", "/settings/messaging", key="crm_not-a-key", body={}).status_code == 401


def test_another_workspace_keeps_its_own(world: MarketerApi) -> None:
    world.ok("put", "/settings/messaging", body={"from_address": "a@shop.example", "time_zone": "Europe/Paris"})
    assert world.ok("get", "/settings/messaging", key=world.b.api_key) == DEFAULTS
