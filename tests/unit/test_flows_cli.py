"""`crm flows test FILE` (a flow against a scripted timeline, for a store's CI) and `crm flows backtest`'s
refusals before it reads anything."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from crm_local.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flow-tests" / "abandoned-checkout.yaml"

CHECKOUT = """
flow: builtin:abandoned_checkout
profile: {email: ann@example.com, consents: {email: subscribed}}
events:
  - at: 2026-03-02T12:00:00Z
    event: {type: CheckoutStarted, store_id: shop, checkout_id: c1}
"""


def _run(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    script = tmp_path / "flow-test.yaml"
    script.write_text(text)
    code = main(["flows", "test", str(script)])
    out, err = capsys.readouterr()
    return code, out, err.replace(str(script), "FILE")


def test_the_example_prints_what_would_be_sent_when(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "test", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-03-02T16:00:00+00:00  send email email_1 (builtin:abandoned_checkout_1) to ann@example.com",
        "entered 1; exited exit_event:OrderPlaced 1",
        "2026-03-02T19:30:00+00:00  order 1001 12.00 USD followed email_1 (sent 2026-03-02T16:00:00+00:00)",
    ]


def test_both_reminders_without_an_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(tmp_path, CHECKOUT, capsys)
    assert code == 0
    assert out.splitlines()[:2] == [
        "2026-03-02T16:00:00+00:00  send email email_1 (builtin:abandoned_checkout_1) to ann@example.com",
        "2026-03-03T12:00:00+00:00  send email email_2 (builtin:abandoned_checkout_2) to ann@example.com",
    ]
    assert out.splitlines()[2] == "entered 1; completed 1"


def test_a_shopper_without_consent_is_skipped_with_the_reason(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(tmp_path, CHECKOUT.replace("subscribed", "unsubscribed"), capsys)
    assert code == 0
    assert out.splitlines() == ["2026-03-02T16:00:00+00:00  skip email_1: no_consent",
                                "2026-03-03T12:00:00+00:00  skip email_2: no_consent",
                                "entered 1; completed 1"]


def test_an_inline_definition_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inline = CHECKOUT.replace("flow: builtin:abandoned_checkout", """flow:
  name: Nudge
  trigger: {kind: event, event: CheckoutStarted}
  steps:
    - {kind: delay, id: wait, duration: PT1H}
    - {kind: email, id: nudge, template_id: builtin:abandoned_checkout_1}""")
    code, out, _ = _run(tmp_path, inline, capsys)
    assert code == 0
    assert out.splitlines()[0].startswith("2026-03-02T13:00:00+00:00  send email nudge (builtin:abandoned_checkout_1)")


@pytest.mark.parametrize(("text", "message"), [
    (CHECKOUT.replace("checkout_id: c1", "checkout: c1"), "FILE:6: events[0].event.checkout_id: Field required"),
    (CHECKOUT.replace("type: CheckoutStarted", "type: Teleported"),
     "FILE:6: events[0].event.type: 'Teleported' is not a bus event"),
    (CHECKOUT.replace("2026-03-02T12:00:00Z", "tomorrow"), "FILE:5: events[0].at:"),
    (CHECKOUT.replace("builtin:abandoned_checkout", "builtin:nope"),
     "FILE:2: flow: 'builtin:nope' is not a built-in"),
    (CHECKOUT.replace("ann@example.com", "[1, 2]"), "FILE:3: profile.email:"),
    (CHECKOUT.replace("events:", "event:"), "FILE:2: events: Field required"),
    (CHECKOUT + "until: 2026-03-01T00:00:00Z\n", "FILE:7: until: 2026-03-01T00:00:00+00:00 is not after"),
    ("flow: [", "FILE: not YAML or JSON"),
    ("- 1", "FILE: expected a mapping with flow, profile and events"),
])
def test_an_invalid_file_exits_2_naming_the_file_and_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                text: str, message: str) -> None:
    code, out, err = _run(tmp_path, text, capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"crm: {message}"), err


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "test", str(tmp_path / "nope.yaml")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_backtest_needs_a_workspace_or_an_api_key(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CRM_API_KEY", raising=False)
    assert main(["flows", "backtest", "builtin:abandoned_checkout"]) == 2
    assert "--workspace" in capsys.readouterr().err
    assert main(["flows", "backtest", "builtin:abandoned_checkout", "--api", "http://127.0.0.1:9"]) == 2
    assert "--key or CRM_API_KEY" in capsys.readouterr().err


class _Api(BaseHTTPRequestHandler):
    """The marketer API's POST /flows/backtest as far as the CLI sees it: the request kept, a canned answer."""

    seen: ClassVar[list[tuple[str, str | None, dict[str, object]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        _Api.seen.append((self.path, self.headers.get("x-api-key"), body))
        status, answer = (400, {"Message": "days: too many"}) if body.get("days") == 99 else (200, {"report": {}})
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Api.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_backtest_through_the_api_posts_the_definition_file(api: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "nudge.yaml"
    flow.write_text("name: Nudge\ntrigger: {kind: event, event: CheckoutStarted}\nsteps:\n"
                    "  - {kind: email, id: nudge, template_id: builtin:abandoned_checkout_1}\n")
    assert main(["flows", "backtest", str(flow), "--days", "7", "--api", api, "--key", "k1"]) == 0
    assert json.loads(capsys.readouterr().out) == {"report": {}}
    [(path, key, body)] = _Api.seen
    assert (path, key, body["days"]) == ("/flows/backtest", "k1", 7)
    assert body["definition"]["steps"][0]["id"] == "nudge" and "flow_id" not in body


def test_backtest_through_the_api_names_a_flow_id_and_reports_a_refusal(api: str, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CRM_API_KEY", "k2")
    assert main(["flows", "backtest", "builtin:welcome", "--api", api]) == 0
    assert _Api.seen[-1][1:] == ("k2", {"flow_id": "builtin:welcome", "days": 30})
    capsys.readouterr()
    assert main(["flows", "backtest", "builtin:welcome", "--days", "99", "--api", api]) == 2
    assert "400" in capsys.readouterr().err
