"""The profiles function under a running clock: a batch that runs short of time fails only what it did not start."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chalice.test import Client
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.models.stores import Platform
from crm.stores import register_store
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import Countdown, queue_arn, receive_all, sqs_event
from tests.builders import DOMAIN, NOW, SECRET, compact, placed_order_json, shopify_headers

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]


def test_records_not_started_for_lack_of_time_are_reported_as_failures_and_applied_on_their_retry(
        provisioned: Provisioned, function_env: UseEnv) -> None:
    registration = register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN,
                                  SECRET, NOW)
    function_env("WebhooksFunction")
    spec = provisioned.functions["WebhooksFunction"]
    webhooks = Client(load_handler(spec.code_path, spec.handler, spec.logical_id))
    emails = [f"shopper{n}@example.com" for n in range(3)]
    for n, email in enumerate(emails):
        body = compact(placed_order_json(id=8_100_000_000_000 + n, email=email, contact_email=email, customer=None))
        answer = webhooks.http.post("/webhooks/shopify", body=body,
                                    headers=shopify_headers(body, delivery_id=f"budget-{n}"))
        assert answer.status_code == 200, answer.body
    url = provisioned.outputs["IngestQueueUrl"]
    messages = receive_all(url)
    assert len(messages) == 3
    function_env("ProfilesFunction")
    function = Function(provisioned.functions["ProfilesFunction"])
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])

    # Time for the first record only: the two after it are handed back, not attempted and not lost.
    answer = function.handler(sqs_event(messages, queue_arn(url)), Countdown("ProfilesFunction", calls=2,
                                                                              timeout_ms=60_000))

    assert answer == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages[1:]]}
    known = [repository.profile_id_for_identity(registration.workspace_id, f"email#{e}") for e in emails]
    assert known[0] is not None and known[1:] == [None, None]

    assert function.invoke(sqs_event(messages[1:], queue_arn(url))) == {"batchItemFailures": []}
    assert None not in [repository.profile_id_for_identity(registration.workspace_id, f"email#{e}") for e in emails]
