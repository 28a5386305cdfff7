"""Bounces on `crm local`: a send to SES's mailbox simulator comes back as SES's event on the default bus, and the
flows function puts the address on the workspace's suppression list, as in AWS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from crm.adapters import keys

from tests.e2e.conftest import LocalStack

SENDER = "shop@e2e-shop.example"


@pytest.fixture(scope="module")
def workspace(local_stack: LocalStack, store: dict[str, str]) -> Iterator[str]:
    local_stack.client("sesv2").create_email_identity(EmailIdentity=SENDER)
    yield store["workspace_id"]


def _suppression(local_stack: LocalStack, workspace: str, address: str, timeout: float = 30.0) -> dict[str, str]:
    table = local_stack.outputs()["TableName"]
    key = {name: {"S": value} for name, value in keys.suppression(workspace, address).items()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = local_stack.client("dynamodb").get_item(TableName=table, Key=key).get("Item")
        if item is not None:
            return {name: value["S"] for name, value in item.items()}
        time.sleep(0.2)
    return {}


def test_a_send_to_the_bounce_mailbox_ends_with_the_address_suppressed(local_stack: LocalStack,
                                                                        workspace: str) -> None:
    address = "bounce+e2e-alice@simulator.amazonses.com"
    sent = local_stack.client("sesv2").send_email(
        FromEmailAddress=SENDER, Destination={"ToAddresses": [address]},
        Content={"Simple": {"Subject": {"Data": "Your cart"}, "Body": {"Text": {"Data": "Come back"}}}},
        ConfigurationSetName=local_stack.outputs()["MessagesConfigurationSetName"],
        EmailTags=[{"Name": "workspace", "Value": workspace}])
    assert sent["MessageId"]
    held = _suppression(local_stack, workspace, address)
    assert (held.get("reason"), held.get("workspace_id")) == ("hard bounce (General, 5.1.1)", workspace)
    # Another workspace's list is untouched, and so is the plain address without its label.
    assert _suppression(local_stack, "ws_other", address, timeout=0.5) == {}
    assert _suppression(local_stack, workspace, "bounce@simulator.amazonses.com", timeout=0.5) == {}
    assert json.dumps(held).count("@") == 0  # the item names no address
