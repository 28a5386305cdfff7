"""A workspace's profiles, read through the sparse index ProfilesByWorkspace instead of a Scan of the table.

Only profile items carry the index's keys (``keys.workspace_index``), so the index holds one small entry
per profile (keys only) and nothing of any other workspace or entity: timelines, orders, member items and
other tenants are never read. Each entry names a profile partition; the profile and its set of segments
(the item beside it) are then read with BatchGetItem. Why keys only, and not the whole profile: every
profile write would also be written to an index holding it (~2 WRU a write, the refresh's write volume),
while a keys-only entry is written once, when the profile is created (docs/workspace-reads.md).

A workspace's entries are spread over ``keys.WORKSPACE_BUCKETS`` index partitions by a hash of the profile
id; share ``s`` of ``n`` reads the buckets ``b`` with ``b % n == s``, so the shares together read every
profile once, and each bucket is an even, random part of the workspace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from crm.adapters import keys
from crm.adapters.clients import client, query_items
from crm.adapters.items import PACKED, from_item
from crm.adapters.throttling import BATCH_GET_KEYS, DEFAULT_BACKOFF, Backoff, batch_get

Item = dict[str, Any]
# Index entries a Query page asks for: a reader that stops early (a bounded preview) has read at most this
# many more than it used.
INDEX_PAGE = 1_000


def buckets_of(share: int, shares: int) -> range:
    """The index buckets of one share; shares beyond the number of buckets have none."""
    if not 0 <= share < shares:
        raise ValueError(f"share {share} is not one of {shares}")
    return range(share, keys.WORKSPACE_BUCKETS, shares)


def profile_partitions(table: str, workspace_id: str, share: int = 0, shares: int = 1) -> Iterator[str]:
    """The partition key of every profile (merged ones too) of the share's buckets, page by page."""
    for bucket in buckets_of(share, shares):
        request: dict[str, Any] = {
            "TableName": table, "IndexName": keys.WORKSPACE_INDEX, "Limit": INDEX_PAGE,
            "KeyConditionExpression": "ws_bucket = :bucket",
            "ExpressionAttributeValues": {":bucket": {"S": keys.workspace_bucket(workspace_id, bucket)}}}
        yield from (str(entry["pk"]["S"]) for entry in query_items(request))


def partition_pages(table: str, workspace_id: str, share: int = 0, shares: int = 1,
                    after: str | None = None) -> Iterator[tuple[list[str], str | None]]:
    """profile_partitions an index page at a time, from the position ``after`` (a page's own, None: the start),
    each page with the position after it (None after the share's last page). A position is the bucket and the
    Query's LastEvaluatedKey, as JSON: whoever holds it resumes the share where the page stopped."""
    buckets = list(buckets_of(share, shares))
    bucket, start = json.loads(after) if after else (buckets[0], None)
    for index in range(buckets.index(bucket), len(buckets)):
        request: dict[str, Any] = {
            "TableName": table, "IndexName": keys.WORKSPACE_INDEX, "Limit": INDEX_PAGE,
            "KeyConditionExpression": "ws_bucket = :bucket",
            "ExpressionAttributeValues": {":bucket": {"S": keys.workspace_bucket(workspace_id, buckets[index])}}}
        if start is not None:
            request["ExclusiveStartKey"] = start
        while True:
            answer = client("dynamodb").query(**request)
            stopped = answer.get("LastEvaluatedKey")
            if stopped is not None:
                resume: str | None = json.dumps([buckets[index], stopped])
            else:
                resume = json.dumps([buckets[index + 1], None]) if index + 1 < len(buckets) else None
            yield [str(entry["pk"]["S"]) for entry in answer.get("Items", [])], resume
            if stopped is None:
                break
            request["ExclusiveStartKey"] = stopped
        start = None


def partition_items(table: str, partitions: Iterable[str], sort_keys: tuple[str, ...],
                    backoff: Backoff = DEFAULT_BACKOFF) -> Iterator[list[Item]]:
    """For each partition, in order, its items of these sort keys (wire form; those that exist), read with
    eventually consistent BatchGetItem calls, as a Scan reads."""
    per_request = BATCH_GET_KEYS // len(sort_keys)
    chunk: list[str] = []
    for pk in partitions:
        chunk.append(pk)
        if len(chunk) == per_request:
            yield from _read(table, chunk, sort_keys, backoff)
            chunk = []
    if chunk:
        yield from _read(table, chunk, sort_keys, backoff)


def _read(table: str, chunk: list[str], sort_keys: tuple[str, ...], backoff: Backoff) -> Iterator[list[Item]]:
    wanted = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk in chunk for sk in sort_keys]
    found: dict[str, list[Item]] = {}
    for item in batch_get(table, wanted, consistent=False, backoff=backoff):
        found.setdefault(str(item["pk"]["S"]), []).append(item)
    for pk in chunk:
        if pk in found:
            yield found[pk]




def backfill(table: str) -> int:
    """Give every profile item written before the index its index attributes; how many it gave them to.

    A one-off Scan of the table (profile items lacking them), safe to run again and beside live traffic: it
    sets only the two attributes, on an item that still exists (a profile erased meanwhile is left alone),
    and a profile written meanwhile carries them already. ``crm profiles index`` runs it."""
    request: dict[str, Any] = {
        "TableName": table, "ProjectionExpression": f"pk, sk, workspace_id, profile_id, {PACKED}",
        "FilterExpression": "sk = :profile AND attribute_not_exists(ws_bucket)",
        "ExpressionAttributeValues": {":profile": {"S": keys.PROFILE_SK}}}
    indexed = 0
    while True:
        answer = client("dynamodb").scan(**request)
        for item in answer.get("Items", []):
            ids = from_item(item)  # a packed profile holds its ids in PACKED (crm.adapters.items)
            attributes = keys.workspace_index(str(ids["workspace_id"]), str(ids["profile_id"]))
            try:
                client("dynamodb").update_item(
                    TableName=table, Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET ws_bucket = :bucket, ws_order = :order",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(ws_bucket)",
                    ExpressionAttributeValues={":bucket": {"S": attributes["ws_bucket"]},
                                               ":order": {"S": attributes["ws_order"]}})
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue
            indexed += 1
        if "LastEvaluatedKey" not in answer:
            return indexed
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


__all__ = ["INDEX_PAGE", "backfill", "buckets_of", "partition_items", "partition_pages", "profile_partitions"]
