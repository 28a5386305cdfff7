"""docs/events-api.md says what the code does: its examples are read by the connector they document."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from crm.connectors.base import json_object
from crm.connectors.custom import CUSTOM, TOPIC, parse_events
from crm.models.stores import Platform
from crm_local.wire import events_headers

from tests.builders import ROOT, envelope
from tests.fakes import FakeStoreDirectory

DOC = ROOT / "docs" / "events-api.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(language: str) -> list[str]:
    return [text for lang, text in _BLOCK.findall(DOC.read_text()) if lang == language]


JSON_EXAMPLES = _blocks("json")


def test_the_doc_has_an_example_of_every_type_and_a_batch() -> None:
    kinds = {event.type for text in JSON_EXAMPLES for event in parse_events(json_object(text.encode()))}
    assert kinds == {"order", "customer", "refund", "order_removed", "activity"}
    assert any('"events"' in text for text in JSON_EXAMPLES)


@pytest.mark.parametrize("example", JSON_EXAMPLES, ids=[f"json-{n}" for n in range(len(JSON_EXAMPLES))])
def test_every_json_example_is_a_valid_body(example: str) -> None:
    """Read exactly as a delivery would be: the bytes, through the connector, to canonical events."""
    events = CUSTOM.events(envelope(None, topic=TOPIC, platform=Platform.CUSTOM), example.encode(),
                           FakeStoreDirectory())
    assert events and all(event.platform is Platform.CUSTOM for event in events)


def _wire_signature(body: bytes) -> str:
    """How the demo and the tests sign (crm_local.wire), at 1772366400 (2026-03-01T12:00:00Z)."""
    sent_at = datetime.fromtimestamp(1772366400, UTC)
    return events_headers(body, secret="the-store-secret", store="shop.example.com", event_id="e", sent_at=sent_at)[
        "X-CRM-Signature"]


def test_the_python_example_signs_as_the_connector_verifies() -> None:
    [example] = _blocks("python")
    namespace: dict[str, Any] = {"__name__": "docs_example"}  # defines sign() and send(); sends nothing
    exec(compile(example, str(DOC), "exec"), namespace)
    body = JSON_EXAMPLES[0].encode()
    signature = namespace["sign"]("1772366400", body, "the-store-secret")
    assert signature == _wire_signature(body)
    headers = {"X-CRM-Timestamp": "1772366400"}
    assert CUSTOM.is_signed_by(headers, body, signature, ["the-store-secret"])
    assert not CUSTOM.is_signed_by({"X-CRM-Timestamp": "1772366401"}, body, signature, ["the-store-secret"])


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("base64") is None, reason="needs openssl")
def test_the_openssl_example_signs_as_the_connector_verifies(tmp_path: Path) -> None:
    [command] = [line for shell in _blocks("sh") for line in shell.splitlines() if line.startswith("SIGNATURE=$(")]
    body = JSON_EXAMPLES[0].encode()
    (tmp_path / "order.json").write_bytes(body)
    done = subprocess.run(["sh", "-c", f'{command}\nprintf %s "$SIGNATURE"'], cwd=tmp_path, capture_output=True,
                          env={"CRM_SECRET": "the-store-secret", "TIMESTAMP": "1772366400", "PATH": os.environ["PATH"]},
                          check=True, timeout=30)
    assert done.stdout.decode() == _wire_signature(body)
