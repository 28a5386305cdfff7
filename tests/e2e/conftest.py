"""The local runtime as a user runs it: `crm local` in its own process, driven over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from crm_local.demo import free_port, http

from tests.builders import ROOT

READY_TIMEOUT_SECONDS = 60


@dataclass
class LocalStack:
    api_url: str
    aws_endpoint: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Keep reading what the runtime prints: a full pipe would block its logging, and with it the stack.
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def stop(self) -> int:
        """SIGTERM, as a service manager would; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)  # the runtime prints every thread's stack
            time.sleep(1)
            self.process.kill()
            self._reader.join(timeout=10)
            raise AssertionError("crm local did not stop on SIGTERM:\n" + "".join(self.output[-200:])) from None
        self._reader.join(timeout=10)
        return code

    def env(self) -> dict[str, str]:
        """Only the endpoint, as an operator would set it: `crm` needs no credentials for the local stack."""
        return {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                "AWS_ENDPOINT_URL": self.aws_endpoint}

    def crm(self, *args: str) -> str:
        """Run a `crm` command against this stack, as an operator would."""
        done = subprocess.run([sys.executable, "-m", "crm_local.cli", *args], env=self.env(), cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.aws_endpoint, region_name="us-east-1",  # type: ignore[call-overload]
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def outputs(self) -> dict[str, str]:
        stack = self.client("cloudformation").describe_stacks(StackName="crm")["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    def get(self, path: str, api_key: str | None) -> tuple[int, Any]:
        return http("GET", self.api_url + path, headers={"x-api-key": api_key} if api_key else {})

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        return http("POST", self.api_url + path, body, headers)

    def queue_busy(self, url: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def wait_drained(self, timeout: float = 20.0) -> None:
        """Wait until the ingest queue has been empty for a few polls (the profiles poller is done)."""
        url = self.outputs()["IngestQueueUrl"]
        deadline, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            quiet = 0 if self.queue_busy(url) else quiet + 1
            if quiet >= 3:
                return
            time.sleep(0.1)
        raise AssertionError("the ingest queue did not drain")


def start_local_stack(extra_env: Mapping[str, str] | None = None, arguments: Sequence[str] = ()) -> LocalStack:
    """`crm local` in a process of its own; ``extra_env`` adds settings (e.g. BIGCOMMERCE_API_URL), ``arguments``
    options of `crm local` (e.g. --parameter-overrides)."""
    port, aws_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_local.cli", "local", "--port", str(port), "--aws-port", str(aws_port),
         *arguments],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **(extra_env or {})},
    )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "ready" in line:
            return LocalStack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{aws_port}", process)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"crm local did not become ready: {process.stdout.read()}")


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    stack = start_local_stack()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def store(local_stack: LocalStack) -> dict[str, str]:
    registered: dict[str, str] = json.loads(local_stack.crm(
        "store", "add", "--platform", "shopify", "--domain", "e2e-shop.myshopify.com",
        "--webhook-secret", "e2e-secret"))
    return registered
