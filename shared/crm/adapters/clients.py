"""boto3 clients, created lazily once per process and shared (clients are thread-safe; sessions are not,
so creation is serialised).

The endpoint comes from configuration only: boto3 itself honours ``AWS_ENDPOINT_URL``, so the
same code talks to AWS or to the embedded moto stack.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from crm.adapters import pacing
from crm.config import client_settings

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_meters: dict[str, pacing.Meter] = {}
_RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})
# Presigned S3 URLs are signed with SigV4 (botocore still presigns with SigV2 by default, which newer
# regions refuse and which cannot say how long it is valid in the URL itself).
_CONFIGS = {"s3": _RETRIES.merge(Config(signature_version="s3v4"))}


def client(service: str) -> Any:
    """The process's boto3 client for ``service``."""
    found = _clients.get(service)
    if found is None:
        with _lock:
            found = _clients.get(service)
            if found is None:
                found = boto3.session.Session().client(  # type: ignore[call-overload]
                    service, config=_CONFIGS.get(service, _RETRIES))
                rate = client_settings().dynamodb_units_per_second
                if service == "dynamodb" and rate:
                    _meters[service] = pacing.Meter(rate)
                    pacing.install(found, _meters[service])
                _clients[service] = found
    return found


def dynamodb_meter() -> pacing.Meter | None:
    """What the process's DynamoDB client consumed, when a pace is set (DYNAMODB_UNITS_PER_SECOND)."""
    client("dynamodb")
    return _meters.get("dynamodb")


def query_items(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item a DynamoDB Query answers (in wire format), page after page."""
    while True:
        answer = client("dynamodb").query(**request)
        yield from answer.get("Items", [])
        if "LastEvaluatedKey" not in answer:
            return
        request = {**request, "ExclusiveStartKey": answer["LastEvaluatedKey"]}


def put_if_absent(table: str, item: dict[str, Any]) -> bool:
    """Put ``item`` unless an item with its key exists (then False, and nothing is written)."""
    try:
        client("dynamodb").put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def reset() -> None:
    """Drop the clients (after the endpoint or credentials change)."""
    with _lock:
        _clients.clear()
        _meters.clear()
