"""The mailbox simulator on the provisioned stack: an SES v2 send to a simulator address publishes SES's event on
the default bus, the template's rule queues it for the flows function, and the address ends up suppressed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from crm.adapters.stores import DynamoStoreDirectory
from crm.adapters.suppressions import DynamoSuppressions
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store
from crm_local import mailbox_simulator
from crm_local.lambdas import Function
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event
from tests.builders import DOMAIN, NOW, SECRET

pytestmark = pytest.mark.integration

SENDER = "shop@shop.example"


@pytest.fixture
def simulator(provisioned: Provisioned) -> Iterator[list[mailbox_simulator.EventDestination]]:
    yield mailbox_simulator.install(provisioned)
    mailbox_simulator.uninstall()


@pytest.fixture
def workspace(provisioned: Provisioned) -> str:
    client("sesv2").create_email_identity(EmailIdentity=SENDER)
    registration: StoreRegistration = register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]),
                                                     Platform.SHOPIFY, DOMAIN, SECRET, NOW)
    return registration.workspace_id


def _send(provisioned: Provisioned, workspace: str, *to: str, configuration_set: bool = True) -> None:
    request = {"FromEmailAddress": SENDER, "Destination": {"ToAddresses": list(to)},
               "Content": {"Simple": {"Subject": {"Data": "Your cart"}, "Body": {"Text": {"Data": "Come back"}}}},
               "EmailTags": [{"Name": "workspace", "Value": workspace}]}
    if configuration_set:
        request["ConfigurationSetName"] = provisioned.outputs["MessagesConfigurationSetName"]
    client("sesv2").send_email(**request)


def test_the_template_destination_is_what_the_simulator_serves(
    simulator: list[mailbox_simulator.EventDestination], provisioned: Provisioned
) -> None:
    assert [(d.configuration_set, sorted(d.matching_types), d.bus_arn) for d in simulator] == [
        (provisioned.outputs["MessagesConfigurationSetName"],
         ["bounce", "click", "complaint", "delivery", "deliverydelay", "open", "reject", "renderingfailure", "send"],
         "arn:aws:events:us-east-1:123456789012:event-bus/default")]


def test_a_send_to_the_bounce_and_complaint_mailboxes_ends_suppressed(
    simulator: list[mailbox_simulator.EventDestination], provisioned: Provisioned, workspace: str,
    function_env: Callable[[str], None],
) -> None:
    _send(provisioned, workspace, "bounce+alice@simulator.amazonses.com")
    _send(provisioned, workspace, "complaint+bob@simulator.amazonses.com", "success+carol@simulator.amazonses.com")
    _send(provisioned, workspace, "bounce+dave@simulator.amazonses.com", configuration_set=False)  # no events
    flows_queue = provisioned.physical["FlowsQueue"].ref
    messages = receive_all(flows_queue)
    # "Email Sent" and "Email Delivered" are published too, and stay on the default bus (the rule takes what
    # became of a message but its send and delivery: crm.flows.counting counts a delivery at the send).
    assert sorted(json.loads(m["Body"])["detail-type"] for m in messages) == \
        ["Email Bounced", "Email Complaint Received"]

    function_env("FlowsFunction")
    assert Function(provisioned.functions["FlowsFunction"]).invoke(sqs_event(messages, queue_arn(flows_queue))) == \
        {"batchItemFailures": []}
    suppressions = DynamoSuppressions(provisioned.outputs["TableName"])
    held = {address: suppressions.suppression(workspace, address) for address in (
        "bounce+alice@simulator.amazonses.com", "complaint+bob@simulator.amazonses.com",
        "success+carol@simulator.amazonses.com", "bounce+dave@simulator.amazonses.com")}
    assert {address: found[0] if found else None for address, found in held.items()} == {
        "bounce+alice@simulator.amazonses.com": "hard bounce (General, 5.1.1)",
        "complaint+bob@simulator.amazonses.com": "complaint (abuse)",
        "success+carol@simulator.amazonses.com": None, "bounce+dave@simulator.amazonses.com": None}
