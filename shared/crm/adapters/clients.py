"""boto3 clients, created lazily and cached per thread.

The endpoint comes from configuration only: boto3 itself honours ``AWS_ENDPOINT_URL``, so the
same code talks to AWS or to the embedded moto stack.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_local = threading.local()
_RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})


def client(service: str) -> Any:
    """A cached boto3 client for ``service`` (clients are not shared across threads)."""
    cache: dict[str, Any] = _local.__dict__.setdefault("clients", {})
    if service not in cache:
        cache[service] = boto3.session.Session().client(service, config=_RETRIES)  # type: ignore[call-overload]
    return cache[service]


def reset() -> None:
    """Drop this thread's clients (after the endpoint or credentials change)."""
    _local.__dict__.pop("clients", None)
