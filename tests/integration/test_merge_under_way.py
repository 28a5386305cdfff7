"""A merge written guard last that an erasure meets half written (crm.changes._merge_guard_last): the shopper's
erasure takes the profile marked as merging into theirs too, and what it leaves behind keeps working."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from crm.adapters.items import from_item
from crm.adapters.privacy import DynamoPrivacyStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.changes import ProfileHistory, plan, reads_for
from crm.ingestion import apply_event
from crm.models.canonical import ActivityEvent, ActivityType, ComplianceKind, ComplianceRequest
from crm.models.stores import Platform
from crm.ports import Change
from crm.privacy import carry_out
from crm_local.provision import Provisioned

from tests.aws import client
from tests.builders import NOW, order
from tests.fakes import FakeArchiveStore

pytestmark = pytest.mark.integration

WS = "ws_a"
EMAIL = "shopper@example.com"


class _Queue:
    def __init__(self) -> None:
        self.requests: list[ComplianceRequest] = []

    def enqueue(self, request: ComplianceRequest) -> None:
        self.requests.append(request)


def _activity(event_id: str, kind: ActivityType, browser: str, email: str | None = None) -> ActivityEvent:
    return ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=event_id, type=kind,
                         occurred_at=NOW, anonymous_id=browser, email=email)


def _items(provisioned: Provisioned) -> list[dict[str, object]]:
    table = provisioned.outputs["TableName"]
    return [from_item(item) for item in client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]]


@pytest.mark.parametrize("browser", ["b-1", "b-2", "b-3", "b-4"])
def test_an_erasure_during_a_merge_takes_what_is_the_shoppers_and_leaves_the_browser_working(
        provisioned: Provisioned, browser: str) -> None:
    """The identify ends after marking the merged profile: the browser's or the email's, as their ids fall. The
    shopper's erasure by email finds the email's profile, and the marked one when the email leads through it:
    nothing naming the shopper is left. When the browser's profile was marked and the email did not lead through
    it, it stays and is live again (crm.profiles.unmerged): its next view counts on it, as if the identify had
    never come. Otherwise the browser is erased with the shopper and its next view is refused."""
    table = provisioned.outputs["TableName"]
    repository = DynamoProfileRepository(table)
    assert apply_event(repository, _activity("v-1", ActivityType.PRODUCT_VIEWED, browser), NOW)
    assert apply_event(repository, order("1", total=Decimal("40.00"), email=EMAIL), NOW)
    browser_profile = repository.profile_id_for_identity(WS, f"anon#st_a#{browser}")
    identify = _activity("i-1", ActivityType.IDENTIFY, browser, EMAIL)
    change = plan(identify, repository.load(reads_for(identify)), NOW, lambda p, ref: ProfileHistory([], {}))
    assert change is not None and change.guard_last and len(change.merging) == 1
    repository.commit(Change(WS, profiles=change.merging))  # the invocation ends here
    browser_marked = change.merging[0][0].profile_id == browser_profile

    request = ComplianceRequest(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY,
                                request=ComplianceKind.CUSTOMER_REDACT, request_id="r-1", email=EMAIL,
                                order_ids=("1",), requested_at=NOW)
    job = carry_out(request, repository, DynamoPrivacyStore(table), FakeArchiveStore(), _Queue(),
                    NOW + timedelta(minutes=1), lambda: False)
    assert job.profiles_erased == (1 if browser_marked else 2)
    left = _items(provisioned)
    assert not [item for item in left if EMAIL in repr(item) or item.get("entity") == "order"]
    # The identify delivered again: its email is erased, so it writes nothing.
    assert not apply_event(repository, identify, NOW + timedelta(minutes=2))

    view = _activity("v-2", ActivityType.PRODUCT_VIEWED, browser)
    assert apply_event(repository, view, NOW + timedelta(minutes=3)) is browser_marked
    if browser_marked:
        profile = repository.get_profile(WS, browser_profile or "")
        assert profile is not None and (profile.merged_into, profile.merging, profile.email) == (None, False, None)
        assert profile.activity_counts == {"product_viewed": 2}
