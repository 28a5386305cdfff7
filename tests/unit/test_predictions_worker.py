"""The predictions worker's batch, without AWS: a batch's orders refreshed a workspace at a time, and what
failed reported by message, so the queue delivers exactly those again."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from crm_local.lambdas import LambdaContext, load_handler

from tests.builders import NOW

ROOT = Path(__file__).resolve().parents[2]


def _record(message_id: str, body: dict[str, Any] | str) -> dict[str, Any]:
    return {"messageId": message_id, "body": body if isinstance(body, str) else json.dumps(body)}


def _order(workspace_id: str, profile_id: str) -> dict[str, Any]:
    return {"detail-type": "OrderPlaced", "source": "crm", "detail": {"workspace_id": workspace_id,
                                                                        "profile_id": profile_id}}


def test_each_workspace_is_refreshed_once_and_its_failure_names_its_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    on_message = load_handler(ROOT / "functions" / "predictions", "app.on_message", "PredictionsFunction")
    worker = sys.modules["crm_function_PredictionsFunction"]
    refreshed: list[tuple[str, list[str]]] = []

    def refresh_profiles(store: Any, profiles: Any, models: Any, workspace_id: str, profile_ids: list[str],
                         now: Any) -> Any:
        refreshed.append((workspace_id, profile_ids))
        if workspace_id == "ws_broken":
            raise RuntimeError("the table is away")
        return type("Outcome", (), {"written": len(profile_ids)})()

    monkeypatch.setattr(worker, "refresh_profiles", refresh_profiles)
    monkeypatch.setattr(worker, "models", lambda: None)
    monkeypatch.setattr(worker, "utc_now", lambda: NOW)
    for name in ("prediction_store", "profile_repository"):
        monkeypatch.setattr(worker.wiring, name, lambda: None)
    answer = on_message({"Records": [
        _record("m1", _order("ws_a", "p1")), _record("m2", _order("ws_broken", "p9")),
        _record("m3", _order("ws_a", "p2")), _record("m4", "not json"), _record("m5", _order("ws_a", "p1")),
        _record("m6", _order("ws_broken", "p8"))]}, LambdaContext(function_name="PredictionsFunction"))
    assert refreshed == [("ws_a", ["p1", "p2"]), ("ws_broken", ["p9", "p8"])]
    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == ["m2", "m4", "m6"]
