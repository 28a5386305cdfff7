"""The local runtime's index Query (moto_patches.index_query) answers what stock moto answers: the same
entries, in the same order, page by page, and only those under the asked key."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from crm_local import moto_patches

pytestmark = pytest.mark.integration


def _pages(dynamodb: Any, bucket: str) -> list[list[str]]:
    return _partition_pages(dynamodb, {"IndexName": "by_bucket", "Limit": 3, "KeyConditionExpression": "b = :b",
                                       "ExpressionAttributeValues": {":b": {"S": bucket}}})


def test_an_index_query_answers_as_stock_motos(aws: None) -> None:
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "b", "o")],
        GlobalSecondaryIndexes=[{"IndexName": "by_bucket", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                 "KeySchema": [{"AttributeName": "b", "KeyType": "HASH"},
                                               {"AttributeName": "o", "KeyType": "RANGE"}]}])
    for index in range(20):
        item = {"pk": {"S": f"p{index}"}, "sk": {"S": "PROFILE"}, "o": {"S": f"{(index * 7) % 20:02d}"}}
        if index % 4:  # sparse: some items are not in the index at all
            item["b"] = {"S": f"bucket{index % 2}"}
        dynamodb.put_item(TableName="t", Item=item)
        dynamodb.put_item(TableName="t", Item={"pk": {"S": f"p{index}"}, "sk": {"S": "T#1"}})
    stock = {bucket: _pages(dynamodb, bucket) for bucket in ("bucket0", "bucket1", "none")}
    moto_patches.install()
    try:
        patched = {bucket: _pages(dynamodb, bucket) for bucket in ("bucket0", "bucket1", "none")}
    finally:
        moto_patches.uninstall()
    assert patched == stock
    assert sum(len(page) for page in stock["bucket1"]) == 10 and stock["none"] == [[]]


def _partition_pages(dynamodb: Any, request: dict[str, Any]) -> list[list[str]]:
    request = {"TableName": "t", "Limit": 4, **request}
    pages = []
    while True:
        answer = dynamodb.query(**request)
        pages.append([f"{i['pk']['S']}/{i['sk']['S']}" for i in answer["Items"]])
        if "LastEvaluatedKey" not in answer:
            return pages
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def test_a_table_query_answers_as_stock_motos_from_its_partition_alone(aws: None) -> None:
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")])
    for profile in range(5):
        for line in (13, 2, 7, 11, 5, 3, 17, 1):  # written out of order: the answer is sorted by sort key
            dynamodb.put_item(TableName="t", Item={"pk": {"S": f"p{profile}"}, "sk": {"S": f"T#{line:02d}"},
                                                   "n": {"N": str(line)}})
        dynamodb.put_item(TableName="t", Item={"pk": {"S": f"p{profile}"}, "sk": {"S": "PROFILE"}})
    by_key = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p3"}}}
    requests: list[dict[str, Any]] = [
        by_key,
        {**by_key, "ScanIndexForward": False},
        {"KeyConditionExpression": "pk = :p AND begins_with(sk, :t)",
         "ExpressionAttributeValues": {":p": {"S": "p1"}, ":t": {"S": "T#"}}},
        {"KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b", "FilterExpression": "n > :n",
         "ExpressionAttributeValues": {":p": {"S": "p2"}, ":a": {"S": "T#03"}, ":b": {"S": "T#17"},
                                       ":n": {"N": "4"}}},
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "nobody"}}},
    ]
    stock = [_partition_pages(dynamodb, request) for request in requests]
    moto_patches.install()
    try:
        patched = [_partition_pages(dynamodb, request) for request in requests]
        scanned = dynamodb.scan(TableName="t", Select="COUNT")["Count"]
    finally:
        moto_patches.uninstall()
    assert patched == stock
    assert stock[0][0] == ["p3/PROFILE", "p3/T#01", "p3/T#02", "p3/T#03"] and sum(map(len, stock[0])) == 9
    assert [entry for page in stock[3] for entry in page] == ["p2/T#05", "p2/T#07", "p2/T#11", "p2/T#13", "p2/T#17"]
    assert stock[4] == [[]] and scanned == 45  # asking for a partition that is not there adds nothing
