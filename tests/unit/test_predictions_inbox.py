"""The predictions worker's batch sorted: fits one by one, orders by workspace and profile (a workspace's kept
fit is then read once a batch), unreadable bodies apart, each with the ids of its messages."""

from __future__ import annotations

import json

from crm.models.predictions import FitTask
from crm.predictions.inbox import sort_batch


def _order(detail_type: str, workspace_id: str, profile_id: str) -> str:
    return json.dumps({"detail-type": detail_type, "source": "crm",
                       "detail": {"workspace_id": workspace_id, "profile_id": profile_id, "order_id": "o1"}})


def test_orders_are_grouped_by_workspace_and_profile_with_their_message_ids() -> None:
    batch = sort_batch([
        ("m1", _order("OrderPlaced", "ws_a", "p1")),
        ("m2", json.dumps({"fit_workspace": "ws_b"})),
        ("m3", _order("OrderRefunded", "ws_a", "p1")),
        ("m4", _order("OrderPlaced", "ws_b", "p2")),
        ("m5", _order("OrderPlaced", "ws_a", "p3")),
        ("m6", "{not json"),
        ("m7", _order("OrderFulfilled", "ws_a", "p4")),
    ])
    assert batch.fits == [("m2", FitTask(fit_workspace="ws_b"))]
    assert batch.orders == {"ws_a": {"p1": ["m1", "m3"], "p3": ["m5"]}, "ws_b": {"p2": ["m4"]}}
    assert [message_id for message_id, _ in batch.unreadable] == ["m6", "m7"]


def test_an_empty_batch_has_nothing_to_do() -> None:
    batch = sort_batch([])
    assert (batch.fits, batch.orders, batch.unreadable) == ([], {}, [])
