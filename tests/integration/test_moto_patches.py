"""The local runtime's TransactWriteItems behaves as DynamoDB's (and stock moto's): all writes or none; a global
index is described with its item count, as DynamoDB describes it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from crm_local import moto_patches

pytestmark = pytest.mark.integration


@pytest.fixture(params=["stock", "patched"])
def table(request: pytest.FixtureRequest, aws: None) -> Iterator[Any]:
    if request.param == "patched":
        moto_patches.install()
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    try:
        yield dynamodb
    finally:
        moto_patches.uninstall()


def put(pk: str, version: str, condition: str | None = None, expected: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"TableName": "t", "Item": {"pk": {"S": pk}, "v": {"S": version}}}
    if condition:
        operation["ConditionExpression"] = condition
    if expected:
        operation["ExpressionAttributeValues"] = {":v": {"S": expected}}
    return {"Put": operation}


def items(dynamodb: Any) -> dict[str, str]:
    return {i["pk"]["S"]: i["v"]["S"] for i in dynamodb.scan(TableName="t")["Items"]}


def test_all_conditions_hold_so_every_write_lands(table: Any) -> None:
    table.transact_write_items(TransactItems=[put("a", "1", "attribute_not_exists(pk)"), put("b", "1")])
    table.transact_write_items(TransactItems=[put("a", "2", "v = :v", "1"), put("c", "1")])
    assert items(table) == {"a": "2", "b": "1", "c": "1"}


def test_one_failed_condition_cancels_every_write_with_a_reason_per_item(table: Any) -> None:
    table.transact_write_items(TransactItems=[put("a", "1")])
    with pytest.raises(ClientError) as raised:
        table.transact_write_items(TransactItems=[put("b", "1"), put("a", "2", "attribute_not_exists(pk)")])
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert items(table) == {"a": "1"}


def test_two_operations_on_one_item_are_refused(table: Any) -> None:
    with pytest.raises(ClientError, match=r"ValidationException|multiple operations"):
        table.transact_write_items(TransactItems=[put("a", "1"), put("a", "2")])
    assert items(table) == {}


def test_item_reads_answer_the_same_items_as_stock_moto(table: Any) -> None:
    """The patched answers skip moto's response serializer: every attribute type must still round-trip."""
    item = {"pk": {"S": "a"}, "n": {"N": "12.50"}, "b": {"B": b"\x00\xffraw"}, "t": {"BOOL": True},
            "z": {"NULL": True}, "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": [b"1"]},
            "l": {"L": [{"S": "x"}, {"N": "1"}]}, "m": {"M": {"k": {"S": "v"}, "d": {"M": {}}}}}
    table.put_item(TableName="t", Item=item)
    assert table.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"] == item
    assert table.batch_get_item(RequestItems={"t": {"Keys": [{"pk": {"S": "a"}}]}})["Responses"]["t"] == [item]
    assert table.query(TableName="t", KeyConditionExpression="pk = :a",
                       ExpressionAttributeValues={":a": {"S": "a"}})["Items"] == [item]
    assert table.scan(TableName="t")["Items"] == [item]
    updated = table.update_item(TableName="t", Key={"pk": {"S": "a"}}, UpdateExpression="SET n = :n",
                                ExpressionAttributeValues={":n": {"N": "3"}}, ReturnValues="ALL_NEW")
    assert updated["Attributes"] == {**item, "n": {"N": "3"}}


def test_a_read_on_another_thread_never_sees_an_update_half_applied(aws: None) -> None:
    """moto's UpdateItem first stores the bare key, then applies its clauses; patched, a concurrent read sees
    the item before or after, as DynamoDB's atomic item writes allow, never the bare key in between."""
    from moto.dynamodb.models import DynamoDBBackend

    moto_patches.install()
    try:
        stepping = threading.Event()
        original = moto_patches._ORIGINAL_ITEM_OPERATIONS["update_item"]
        reads: list[Any] = []

        def slow_update(backend: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
            # Between storing the key and applying the clauses, let a reader try.
            table = backend.get_table("t")
            table.put_item({"pk": {"S": "a"}})
            stepping.set()
            time.sleep(0.2)
            return original(backend, *args, **kwargs)

        def read() -> None:
            stepping.wait(5)
            reads.append(DynamoDBBackend.get_item(backend, "t", {"pk": {"S": "a"}}))

        backend = _backend()
        DynamoDBBackend.update_item = moto_patches._atomic(slow_update)  # type: ignore[method-assign]
        reader = threading.Thread(target=read)
        reader.start()
        DynamoDBBackend.update_item(backend, "t", {"pk": {"S": "a"}}, update_expression="SET v = :v",
                                    expression_attribute_names=None, expression_attribute_values={":v": {"S": "1"}})
        reader.join(5)
        assert [r.to_json()["Attributes"] for r in reads] == [{"pk": {"S": "a"}, "v": {"S": "1"}}]
    finally:
        moto_patches.uninstall()


def _backend() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    if "t" not in backend.tables:
        boto3.client("dynamodb").create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    return backend


def test_the_item_size_limit_holds_as_in_stock_moto(table: Any) -> None:
    big = "x" * 100_000
    attributes = {f"a{n}": {"S": big} for n in range(3)}
    table.put_item(TableName="t", Item={"pk": {"S": "under"}, **attributes, "m": {"M": {"k": {"S": big}}}})
    with pytest.raises(ClientError, match=r"Item size (to update )?has exceeded"):
        table.put_item(TableName="t", Item={"pk": {"S": "over"}, **attributes, "m": {"M": {"k": {"S": big}}},
                                            "last": {"S": "y" * 10_000}})
    with pytest.raises(ClientError, match=r"Item size (to update )?has exceeded"):
        table.update_item(TableName="t", Key={"pk": {"S": "under"}}, UpdateExpression="SET more = :v",
                          ExpressionAttributeValues={":v": {"S": "y" * 10_000}})
    table.update_item(TableName="t", Key={"pk": {"S": "under"}}, UpdateExpression="SET a0 = :v",
                      ExpressionAttributeValues={":v": {"S": "small"}})  # a smaller value replaces a big one
    table.update_item(TableName="t", Key={"pk": {"S": "under"}}, UpdateExpression="SET more = :v",
                      ExpressionAttributeValues={":v": {"S": "y" * 10_000}})
    item = table.get_item(TableName="t", Key={"pk": {"S": "under"}})["Item"]
    assert (item["a0"]["S"], len(item["more"]["S"]), "over") == ("small", 10_000, "over")
    assert "Item" not in table.get_item(TableName="t", Key={"pk": {"S": "over"}})


def test_a_global_index_is_described_with_the_count_of_items_it_holds(aws: None) -> None:
    moto_patches.install()
    try:
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="indexed", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "ws", "b")],
            GlobalSecondaryIndexes=[{"IndexName": "by_ws", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                     "KeySchema": [{"AttributeName": "ws", "KeyType": "HASH"},
                                                   {"AttributeName": "b", "KeyType": "RANGE"}]}])
        for pk, sk, extra in (("p1", "profile", {"ws": "w", "b": "1"}), ("p2", "profile", {"ws": "w", "b": "2"}),
                              ("p2", "order#1", {"ws": "w"}), ("p3", "timeline", {})):
            dynamodb.put_item(TableName="indexed", Item={"pk": {"S": pk}, "sk": {"S": sk},
                                                         **{k: {"S": v} for k, v in extra.items()}})
        described = dynamodb.describe_table(TableName="indexed")["Table"]
    finally:
        moto_patches.uninstall()
    assert described["ItemCount"] == 4
    assert [(i["IndexName"], i["ItemCount"]) for i in described["GlobalSecondaryIndexes"]] == [("by_ws", 2)]
