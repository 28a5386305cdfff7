"""schemathesis drives every operation of docs/openapi.yaml against `crm local`, as the security review did.

schemathesis's CLI runs in a process of its own (its pytest plugin does not run under pytest 9) with a bounded
number of examples per operation, well-formed (positive) and malformed (negative), derandomized (each
operation's hypothesis seed is fixed, so a run repeats). A failure is reported under the operation's name
("POST /segments") with the answer and a curl command that reproduces it. The checks:

- not_a_server_error: no answer is a 5xx;
- status_code_conformance: every status answered is documented for the operation;
- content_type_conformance and response_schema_conformance: the body is the documented type and shape;
- positive_data_acceptance: a request the document calls valid is not refused (only 2xx, or 401/404/409:
  a missing resource or a conflict with the workspace's state).

A workspace is seeded first (two customers with orders, a custom segment holding them, a flow and its template)
and its ids (with the built-in flows' and templates') are mixed
into the path parameters, so generated requests reach real resources as well as missing ones; page cursors are
ones the API returned. tests/e2e/schemathesis_hooks.py holds what JSON Schema cannot say.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from crm_local.demo import http

from tests.builders import ROOT, compact, placed_order_json, shopify_headers
from tests.e2e.conftest import LocalStack, start_local_stack

pytestmark = pytest.mark.e2e

DOC = ROOT / "docs" / "openapi.yaml"
SEGMENT_DOCUMENTS = (("POST", "/segments"), ("POST", "/segments/preview"), ("PUT", "/segments/{segment_id}"))
FLOW_DOCUMENTS = (("POST", "/flows"), ("PUT", "/flows/{flow_id}"), ("POST", "/flows/backtest"))
STATS = ("/flows/{flow_id}/stats", "/flows/{flow_id}/steps/{step_id}/stats")
HOOKS = ROOT / "tests" / "e2e" / "schemathesis_hooks.py"
MAX_EXAMPLES = 15  # per operation: about 400 requests, two to three minutes on 2 busy cores
DOMAIN, SECRET = "conformance.myshopify.com", "conformance-secret"
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "positive_data_acceptance")


@pytest.fixture(scope="module")
def conformance_stack() -> Iterator[LocalStack]:
    stack = start_local_stack()
    yield stack
    stack.stop()


def _order(stack: LocalStack, email: str, order_id: int) -> None:
    sample = placed_order_json()
    account = {**sample["customer"], "id": int(hashlib.sha256(email.encode()).hexdigest()[:12], 16), "email": email}
    body = compact({**sample, "id": order_id, "email": email, "contact_email": email, "customer": account})
    headers = shopify_headers(body, secret=SECRET, domain=DOMAIN, delivery_id=f"conformance-{order_id}")
    assert stack.post("/webhooks/shopify", body, headers)[0] == 200


def _seed(stack: LocalStack, api_key: str) -> dict[str, list[str]]:
    """Two customers with orders and a custom segment holding both: the ids and page cursors they give."""
    _order(stack, "ann.conformance@example.com", 91_000_001)
    _order(stack, "ann.conformance@example.com", 91_000_002)
    _order(stack, "bo.conformance@example.com", 91_000_003)
    stack.wait_drained()

    def get(path: str) -> Any:
        status, answer = http("GET", stack.api_url + path, None, {"x-api-key": api_key})
        assert status == 200, (path, answer)
        return answer

    profile_id = get("/customers?email=ann.conformance@example.com")["profile_id"]
    segment = {"name": "Buyers", "definition": {"field": "orders_count", "op": "gte", "value": 1}}
    status, created = http("POST", f"{stack.api_url}/segments", json.dumps(segment).encode(),
                           {"x-api-key": api_key, "content-type": "application/json"})
    assert status == 201, created
    run_id = created["run"]["run_id"]
    deadline = time.monotonic() + 30
    while get(f"/segment-runs/{run_id}")["status"] != "done":
        assert time.monotonic() < deadline, "the seeding segment run did not finish"
        time.sleep(0.2)
    flow = {"id": "conformance-flow", "name": "Thanks", "trigger": {"kind": "event", "event": "OrderPlaced"},
            "reentry": {"mode": "every_time"}, "steps": [{"kind": "email", "id": "thanks", "template_id": "thanks"}]}
    template = {"id": "thanks", "name": "Thanks", "subject": "Thanks", "html": "<p>Thanks {{ profile.first_name }}</p>"}
    for path, body in (("/templates", template), ("/flows", flow)):
        status, answer = http("POST", stack.api_url + path, json.dumps(body).encode(),
                              {"x-api-key": api_key, "content-type": "application/json"})
        assert status == 201, (path, answer)
    timeline_cursor = get(f"/customers/{profile_id}/timeline?limit=1")["next_cursor"]
    members_cursor = get(f"/segments/{created['id']}/members?limit=1")["next_cursor"]
    assert timeline_cursor and members_cursor, "the seed gives no second page"
    today = datetime.now(UTC).date()
    return {"profile_id": [profile_id], "segment_id": [created["id"], "builtin:vip"], "run_id": [run_id],
            "timeline_cursor": [timeline_cursor], "members_cursor": [members_cursor],
            "flow_id": ["conformance-flow", "builtin:abandoned_checkout", "builtin:welcome"],
            "template_id": ["thanks", "builtin:abandoned_checkout_1", "builtin:welcome_1"],
            "step_id": ["email_1"],  # a step of both built-in flows in flow_id
            "day": [str(today - timedelta(days=7)), str(today)],
            "report": ["revenue", "repeat_rate", "cohorts", "rfm", "channels", "abandonment", "predictions"]}


def _config(known: dict[str, list[str]]) -> str:
    """schemathesis.toml: the seeded ids mixed into half of the path parameters drawn; a cursor is always one
    the API returned (any other string is rightly a 400, and OpenAPI cannot describe "a token we issued")."""
    lines = [f'hooks = "{HOOKS}"', "", "[cache]", "enabled = false  # no crash files left in the checkout", ""]
    for name, values in known.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}'
              for name in ("profile_id", "segment_id", "run_id", "flow_id", "template_id", "step_id")]
    lines += ["", "[[operations]]", 'include-path = "/flows/{flow_id}/runs"',
              'parameters = { "query.profile_id" = { dictionary = "profile_id", probability = 0.5 } }']
    for path, cursors in (("/customers/{profile_id}/timeline", "timeline_cursor"),
                          ("/segments/{segment_id}/members", "members_cursor")):
        lines += ["", "[[operations]]", f'include-path = "{path}"',
                  f'parameters = {{ "query.cursor" = {{ dictionary = "{cursors}", probability = 1.0 }} }}']
    # The coverage phase enumerates the branches of a schema's anyOf, and the recursive definition language has
    # more combinations than a test can wait for: those operations are fuzzed only.
    for method, path in SEGMENT_DOCUMENTS:
        lines += ["", "[[operations]]", f'include-path = "{path}"', f'include-method = "{method}"',
                  "phases = { coverage = { enabled = false } }"]
    # A flow definition valid by its schema may still be one the engine refuses with a 400 for what JSON Schema
    # cannot say (a filter on a property the event lacks, a step id used twice, weights adding up to 0, a step
    # after an exit): the operation's description states those, so a 400 is accepted there. Its answers are held
    # to every other check, and tests/unit/test_openapi_doc.py holds the schema to the models' shape.
    for method, path in FLOW_DOCUMENTS:
        lines += ["", "[[operations]]", f'include-path = "{path}"', f'include-method = "{method}"',
                  "phases = { coverage = { enabled = false } }",
                  'checks = { positive_data_acceptance = { expected-statuses = ["2XX", "400", "401", "404", "409"] } }']
    # Two valid dates may still be a period refused with a 400 (from after to, more than 366 days): JSON Schema
    # cannot relate two parameters, the operations' descriptions say so.
    # Days near today are mixed in, so that most periods are ones the API answers.
    for path in STATS:
        lines += ["", "[[operations]]", f'include-path = "{path}"',
                  'parameters = { "query.from" = { dictionary = "day", probability = 0.5 }, '
                  '"query.to" = { dictionary = "day", probability = 0.5 } }',
                  'checks = { positive_data_acceptance = { expected-statuses = ["2XX", "400", "401", "404"] } }']
    # An ad platform's audience file has the platform's columns: `fields` beside format=meta_audience or
    # google_audience is refused with a 400 (the operation's description says so; one parameter's value cannot
    # forbid another parameter in JSON Schema).
    lines += ["", "[[operations]]", 'include-path = "/segments/{segment_id}/export"', 'include-method = "GET"',
              'checks = { positive_data_acceptance = { expected-statuses = ["2XX", "400", "401", "404", "409"] } }']
    # The same for a report's period (and a cohorts report asked by day or week); its names are the seven.
    lines += ["", "[[operations]]", 'include-path = "/reports/{name}"',
              'parameters = { "path.name" = { dictionary = "report", probability = 0.7 }, '
              '"query.from" = { dictionary = "day", probability = 0.5 }, '
              '"query.to" = { dictionary = "day", probability = 0.5 } }',
              'checks = { positive_data_acceptance = { expected-statuses = ["2XX", "400", "401", "404"] } }']
    return "\n".join(lines) + "\n"


def test_every_documented_operation_holds_to_the_document(conformance_stack: LocalStack, tmp_path: Path) -> None:
    store = json.loads(conformance_stack.crm("store", "add", "--platform", "shopify", "--domain", DOMAIN,
                                             "--webhook-secret", SECRET))
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(_seed(conformance_stack, store["api_key"])))
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(DOC),
               "--url", conformance_stack.api_url, "--header", f"x-api-key: {store['api_key']}",
               "--checks", ",".join(CHECKS), "--mode", "all", "--max-examples", str(MAX_EXAMPLES),
               "--generation-deterministic",
               "--workers", "1", "--phases", "examples,coverage,fuzzing", "--no-color",
               "--report", "json", "--report-json-path", str(report)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    # schemathesis's own report: per failing operation ("POST /segments"), the check, the answer and a curl command.
    print(done.stdout[-30000:], done.stderr[-5000:])
    assert done.returncode == 0, "schemathesis found failures: see its report above"
    figures = json.loads(report.read_text())
    assert figures["operations"]["tested"] == figures["operations"]["total"], "an operation was not exercised"
