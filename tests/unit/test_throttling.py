"""Throttling (issue 9, finding 7): unprocessed batch items are asked again after growing, jittered delays, a
bounded number of times; a transaction cancelled for want of capacity is sent again after a backoff, one
cancelled by a failed condition is a conflict at once. A stub DynamoDB client stands in for AWS (the
adapters reach it through crm.adapters.clients), and the sleeper is injected: nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from crm.adapters import clients, keys
from crm.adapters.items import wire_key
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.segments import DynamoSegmentStore
from crm.adapters.throttling import Backoff, CapacityExceeded, batch_get, batch_write, transact_write
from crm.models.profile import Profile
from crm.models.segments import MembershipChange
from crm.ports import Change, ConcurrentUpdate

from tests.builders import NOW

TABLE = "crm-table"


def cancelled(*codes: str) -> ClientError:
    return ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                        "CancellationReasons": [{"Code": code} for code in codes]}, "TransactWriteItems")


class StubDynamoDB:
    """Leaves the first ``unprocessed`` batch calls' work unprocessed; raises ``failures`` from transactions
    in turn, then succeeds. Records every call."""

    def __init__(self, unprocessed: int = 0, failures: tuple[ClientError, ...] = ()) -> None:
        self.unprocessed = unprocessed
        self.failures = list(failures)
        self.calls: list[str] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("BatchGetItem")
        wanted = RequestItems[TABLE]["Keys"]
        if len(self.calls) <= self.unprocessed:
            return {"Responses": {TABLE: []}, "UnprocessedKeys": RequestItems}
        return {"Responses": {TABLE: [{**key, "entity": {"S": "x"}} for key in wanted]}}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("BatchWriteItem")
        if len(self.calls) <= self.unprocessed:
            return {"UnprocessedItems": RequestItems}
        return {"UnprocessedItems": {}}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append("TransactWriteItems")
        if self.failures:
            raise self.failures.pop(0)
        return {}

    def put_item(self, **request: Any) -> dict[str, Any]:
        self.calls.append("PutItem")
        if self.failures:
            raise self.failures.pop(0)
        return {}


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubDynamoDB]:
    found = StubDynamoDB()
    monkeypatch.setitem(clients._clients, "dynamodb", found)
    yield found


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def backoff(sleeps: Sleeps, jitter: float = 1.0, **bounds: Any) -> Backoff:
    return Backoff(sleep=sleeps, jitter=lambda: jitter, **bounds)


KEYS = [wire_key({"pk": f"WS#a#PROFILE#p{i}", "sk": "PROFILE"}) for i in range(3)]


def test_unprocessed_keys_are_asked_again_after_growing_delays(stub: StubDynamoDB) -> None:
    stub.unprocessed = 3
    sleeps = Sleeps()
    found = list(batch_get(TABLE, KEYS, consistent=True, backoff=backoff(sleeps, base=0.1)))
    assert len(found) == 3 and stub.calls == ["BatchGetItem"] * 4
    assert sleeps.delays == pytest.approx([0.1, 0.2, 0.4])


def test_the_delay_is_jittered_and_capped(stub: StubDynamoDB) -> None:
    stub.unprocessed = 5
    sleeps = Sleeps()
    batch_write(TABLE, [{"DeleteRequest": {"Key": k}} for k in KEYS], backoff(sleeps, jitter=0.5, base=1, cap=3))
    # Full jitter: a uniform draw (here fixed at half) of min(cap, base * 2**n).
    assert sleeps.delays == pytest.approx([0.5, 1.0, 1.5, 1.5, 1.5])


def test_work_left_unprocessed_after_every_attempt_is_a_clear_error(stub: StubDynamoDB) -> None:
    stub.unprocessed = 100
    sleeps = Sleeps()
    with pytest.raises(CapacityExceeded, match=r"left 3 keys .* unprocessed after 4 attempts"):
        list(batch_get(TABLE, KEYS, consistent=False, backoff=backoff(sleeps, attempts=4)))
    assert len(stub.calls) == 4 and len(sleeps.delays) == 3
    with pytest.raises(CapacityExceeded, match="BatchWriteItem left 3 items"):
        batch_write(TABLE, [{"DeleteRequest": {"Key": k}} for k in KEYS], backoff(sleeps, attempts=4))


def test_the_profile_repository_backs_off_on_unprocessed_keys(stub: StubDynamoDB) -> None:
    stub.unprocessed = 2
    sleeps = Sleeps()
    repository = DynamoProfileRepository(TABLE, backoff=backoff(sleeps, base=0.05))
    found = repository._batch_get([keys.profile("a", f"p{i}") for i in range(3)])
    assert len(found) == 3 and sleeps.delays == pytest.approx([0.05, 0.1])


@pytest.mark.parametrize("reason", ["ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded",
                                    "TransactionConflict"])
def test_a_transaction_cancelled_for_want_of_capacity_backs_off_and_is_sent_again(stub: StubDynamoDB,
                                                                                  reason: str) -> None:
    stub.failures = [cancelled("None", reason), cancelled(reason, "None")]
    sleeps = Sleeps()
    transact_write([{"Put": {}}], backoff(sleeps, base=0.2))
    assert stub.calls == ["TransactWriteItems"] * 3 and sleeps.delays == pytest.approx([0.2, 0.4])


def test_a_failed_condition_is_a_conflict_at_once_even_beside_throttling(stub: StubDynamoDB) -> None:
    stub.failures = [cancelled("ThrottlingError", "ConditionalCheckFailed")]
    sleeps = Sleeps()
    with pytest.raises(ClientError):
        transact_write([{"Put": {}}], backoff(sleeps))
    assert stub.calls == ["TransactWriteItems"] and sleeps.delays == []


def _change() -> Change:
    profile = Profile(workspace_id="a", profile_id="p1", created_at=NOW, updated_at=NOW)
    return Change(workspace_id="a", profiles=((profile, None),))


def test_a_profile_commit_tells_throttling_from_a_conflict(stub: StubDynamoDB) -> None:
    sleeps = Sleeps()
    repository = DynamoProfileRepository(TABLE, backoff=backoff(sleeps, attempts=3))
    stub.failures = [cancelled("ThrottlingError")]
    repository.commit(_change())  # backed off once, then written: no re-plan
    assert sleeps.delays and len(stub.calls) == 2

    stub.failures = [cancelled("ConditionalCheckFailed")]
    with pytest.raises(ConcurrentUpdate):
        repository.commit(_change())
    assert len(sleeps.delays) == 1  # a conflict is re-planned by the caller at once

    stub.failures = [cancelled("ThrottlingError")] * 3
    with pytest.raises(CapacityExceeded):  # not a conflict: the queue retries the message later
        repository.commit(_change())


def test_a_membership_write_throttled_is_not_taken_for_a_changed_set(stub: StubDynamoDB) -> None:
    store = DynamoSegmentStore(TABLE, backoff=backoff(Sleeps()))
    change = MembershipChange(workspace_id="a", profile_id="p1", at=NOW, entered=("builtin:vip",), exited=(),
                              segment_ids=frozenset({"builtin:vip"}), expected_version=0, revision=1)
    stub.failures = [ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                                 "PutItem")]
    with pytest.raises(ClientError):  # the queue retries the message; a changed set would have been settled
        store.apply_membership(change)
    assert stub.calls == ["BatchWriteItem", "PutItem"]

