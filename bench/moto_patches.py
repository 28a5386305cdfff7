"""moto's cost per request as the local runtime serves it, stock moto against crm_local.moto_patches in the same
run: CPU milliseconds per request for what the demo does most (a profile's items read by partition key, an item
of many attributes written, a receive from a queue holding a backlog, an event delivered through an input
transformer), over moto's in-process backends (``mock_aws``) so that only moto's own work is timed. CPU time,
not wall time, so that a loaded machine changes the figures little; the ratios are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3
from crm_local import moto_patches
from figures import record
from moto import mock_aws

ATTRIBUTES = 60  # a profile item's attributes, about (its totals, counts, consents, channels, RFM, prediction)


def cpu_ms(requests: int, send: Callable[[int], Any]) -> float:
    began = time.process_time()
    for n in range(requests):
        send(n)
    return 1000 * (time.process_time() - began) / requests


def measure(profiles: int, backlog: int, requests: int) -> dict[str, float]:
    dynamodb: Any = boto3.client("dynamodb")
    sqs: Any = boto3.client("sqs")
    events: Any = boto3.client("events")
    item = {f"a{n}": {"S": "v" * 20} for n in range(ATTRIBUTES)}
    return {
        "query by partition": cpu_ms(requests, lambda n: dynamodb.query(
            TableName="t", KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"p{(n * 7919) % profiles}"}})),
        f"put item of {ATTRIBUTES} attributes": cpu_ms(requests, lambda n: dynamodb.put_item(
            TableName="t", Item={"pk": {"S": f"new{n}"}, "sk": {"S": "PROFILE"}, **item})),
        f"receive 10 of {backlog} queued": cpu_ms(requests, lambda n: sqs.receive_message(
            QueueUrl=sqs.get_queue_url(QueueName="q")["QueueUrl"], MaxNumberOfMessages=10, VisibilityTimeout=0)),
        "event through an input transformer": cpu_ms(requests, lambda n: events.put_events(Entries=[
            {"Source": "shop", "DetailType": "order", "Detail": json.dumps({"who": f"p{n}"})}])),
    }


def stack(profiles: int, backlog: int) -> None:
    dynamodb: Any = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")])
    moto_patches.install()  # filled fast: the figures are about the requests below
    try:
        for profile in range(profiles):
            for sk in ("PROFILE", "T#1", "T#2", "O#1", "O#2"):
                dynamodb.put_item(TableName="t", Item={"pk": {"S": f"p{profile}"}, "sk": {"S": sk},
                                                       "v": {"S": "x" * 40}})
    finally:
        moto_patches.uninstall()
    sqs: Any = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for _ in range(0, backlog, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": "m"} for n in range(10)])
    target = sqs.create_queue(QueueName="target")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events: Any = boto3.client("events")
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["shop"]}))
    events.put_targets(Rule="r", Targets=[{"Id": "q", "Arn": arn, "InputTransformer": {
        "InputPathsMap": {"who": "$.detail.who", "what": "$.detail-type"},
        "InputTemplate": '{"who": "<who>", "what": "<what>"}'}}])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1000, help="profiles in the table (5 items each)")
    parser.add_argument("--backlog", type=int, default=500, help="messages waiting in the queue")
    parser.add_argument("--requests", type=int, default=40, help="requests timed per figure and design")
    args = parser.parse_args(argv)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    with mock_aws():
        stack(args.profiles, args.backlog)
        stock = measure(args.profiles, args.backlog, args.requests)
        moto_patches.install()
        try:
            patched = measure(args.profiles, args.backlog, args.requests)
        finally:
            moto_patches.uninstall()
    print(f"moto per request, CPU ms ({args.profiles * 5:,} items, {args.requests} requests each): "
          "stock / local runtime's")
    for name in stock:
        print(f"  {name:38} {stock[name]:7.2f} / {patched[name]:6.2f}   {stock[name] / patched[name]:5.1f}x")
    record("moto_patches", {"stock_cpu_ms": stock, "patched_cpu_ms": patched, "items": args.profiles * 5,
                            "backlog": args.backlog})
    return 0


if __name__ == "__main__":
    sys.exit(main())
