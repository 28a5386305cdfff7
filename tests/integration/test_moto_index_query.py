"""The local runtime's index Query (moto_patches.index_query) answers what stock moto answers: the same
entries, in the same order, page by page, and only those under the asked key."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from crm_local import moto_patches

pytestmark = pytest.mark.integration


def _pages(dynamodb: Any, bucket: str) -> list[list[str]]:
    request: dict[str, Any] = {"TableName": "t", "IndexName": "by_bucket", "Limit": 3,
                               "KeyConditionExpression": "b = :b", "ExpressionAttributeValues": {":b": {"S": bucket}}}
    pages = []
    while True:
        answer = dynamodb.query(**request)
        pages.append([f"{i['pk']['S']}/{i['sk']['S']}" for i in answer["Items"]])
        if "LastEvaluatedKey" not in answer:
            return pages
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


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
