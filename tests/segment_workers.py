"""The segment task workers, driven by hand on the provisioned stack: what Lambda's SQS poller would do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from crm_local.event_shapes import sqs_record
from crm_local.lambdas import LambdaContext, load_handler
from crm_local.provision import Provisioned


class SegmentWorkers:
    def __init__(self, provisioned: Provisioned, function_env: Callable[[str], None]) -> None:
        self.provisioned = provisioned
        self.function_env = function_env
        spec = provisioned.functions["SegmentTasksFunction"]
        self.handler: Any = load_handler(spec.code_path, spec.handler, spec.logical_id)
        self.url = provisioned.outputs["SegmentTasksQueueUrl"]
        self.arn = provisioned.physical["SegmentTasksQueue"].attributes["Arn"]

    def drain(self, then: str = "ApiFunction") -> int:
        """Carry out every queued task, and those they queue, one per invocation; then switch the
        environment back to ``then``'s. Returns how many tasks ran."""
        sqs = boto3.client("sqs", region_name=self.provisioned.region)
        done = 0
        self.function_env("SegmentTasksFunction")
        try:
            while True:
                messages = sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=1).get("Messages", [])
                if not messages:
                    return done
                answer = self.handler({"Records": [sqs_record(messages[0], self.arn, self.provisioned.region)]},
                                      LambdaContext(function_name="SegmentTasksFunction"))
                assert answer == {"batchItemFailures": []}, answer
                sqs.delete_message(QueueUrl=self.url, ReceiptHandle=messages[0]["ReceiptHandle"])
                done += 1
        finally:
            self.function_env(then)
