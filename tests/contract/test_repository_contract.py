"""One contract, two implementations: the in-memory fakes and the DynamoDB adapters on moto.

The DynamoDB table is the one template.yaml defines, created by crm_local.provision; the fakes pass
exactly the cases the adapters pass, which is what lets the unit tests trust them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

import pytest
from crm.adapters import keys
from crm.adapters.clients import client
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.api_keys import create_api_key
from crm.changes import ProfileHistory, activity_reads, fold, plan, reads_for
from crm.ingestion import apply_event, apply_events
from crm.models.canonical import ActivityEvent, ActivityType, CanonicalEvent, ProductRef, RefundRecord, Touch
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.orders import CanonicalOrder, LineItem
from crm.models.profile import new_profile
from crm.models.stores import Platform
from crm.ports import (
    Change,
    ConcurrentUpdate,
    Context,
    IdentityLink,
    ProfileRepository,
    Reads,
    StoreDirectory,
    UnknownWorkspace,
)
from crm.profiles import profile_id_for
from crm.stores import register_store
from crm.unwritten_orders import OrderWriteUnfinished, order_state
from crm_local.provision import Provisioned

from tests.builders import NOW, customer_record, order, store
from tests.fakes import FakeProfileRepository, FakeStoreDirectory

WS = "ws_a"
IDENTITY = "email#shopper@example.com"
CANDIDATE = profile_id_for(WS, IDENTITY)


@dataclass
class Backend:
    stores: StoreDirectory
    profiles: ProfileRepository


@pytest.fixture(params=["fake", pytest.param("dynamodb", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fake":
        return Backend(FakeStoreDirectory(), FakeProfileRepository())
    provisioned: Provisioned = request.getfixturevalue("provisioned")
    table = provisioned.outputs["TableName"]
    return Backend(DynamoStoreDirectory(table), DynamoProfileRepository(table))


# --- StoreDirectory ------------------------------------------------------------------------------


def _workspace_of(backend: Backend, api_key: str) -> str | None:
    found = backend.stores.api_key(api_key)
    return found.workspace_id if found is not None else None


def test_registered_store_is_found_by_platform_and_domain(backend: Backend) -> None:
    registered = store(secrets=("old-secret", "new-secret"))
    backend.stores.register(registered, "crm_key_a")

    assert backend.stores.store_by_domain(Platform.SHOPIFY, registered.domain) == registered
    assert backend.stores.store_by_domain(Platform.SHOPIFY, "other.myshopify.com") is None


def test_a_workspace_lists_its_own_stores_without_their_secrets(backend: Backend) -> None:
    first = register_store(backend.stores, Platform.SHOPIFY, "a.myshopify.com", "secret-a", NOW)
    second = register_store(backend.stores, Platform.WOOCOMMERCE, "b.example.com", "secret-b", NOW + timedelta(1),
                            workspace_id=first.workspace_id)
    register_store(backend.stores, Platform.SHOPIFY, "c.myshopify.com", "secret-c", NOW)  # another workspace's
    listed = backend.stores.workspace_stores(first.workspace_id)
    assert [(s.store_id, s.platform, s.domain) for s in listed] == [
        (first.store_id, Platform.SHOPIFY, "a.myshopify.com"), (second.store_id, Platform.WOOCOMMERCE, "b.example.com")]
    assert all(s.webhook_secrets == () and s.api_token is None for s in listed)
    assert backend.stores.workspace_stores("ws_none") == []


def test_api_key_resolves_to_its_workspace_only(backend: Backend) -> None:
    backend.stores.register(store(workspace_id="ws_a", domain="a.myshopify.com"), "crm_key_a")
    backend.stores.register(store(workspace_id="ws_b", store_id="st_b", domain="b.myshopify.com"), "crm_key_b")

    assert _workspace_of(backend, "crm_key_a") == "ws_a"
    assert _workspace_of(backend, "crm_key_b") == "ws_b"
    assert _workspace_of(backend, "crm_key_c") is None
    assert _workspace_of(backend, "CRM_KEY_A") is None


def test_keys_are_listed_by_id_and_revoked_once(backend: Backend) -> None:
    registration = register_store(backend.stores, Platform.SHOPIFY, "a.myshopify.com", "s", NOW)
    other = register_store(backend.stores, Platform.SHOPIFY, "b.myshopify.com", "s", NOW)
    later = create_api_key(backend.stores, registration.workspace_id, NOW + timedelta(hours=1),
                           expires_at=NOW + timedelta(days=30))

    listed = backend.stores.api_keys(registration.workspace_id)
    assert [k.key_id for k in listed] == [registration.api_key_id, later.key.key_id]
    assert listed[1] == later.key and listed[1].expires_at == NOW + timedelta(days=30)
    assert backend.stores.api_key(later.api_key) == later.key

    workspace, key_id = registration.workspace_id, registration.api_key_id
    revoked = backend.stores.revoke_api_key(workspace, key_id, NOW + timedelta(hours=2))
    again = backend.stores.revoke_api_key(workspace, key_id, NOW + timedelta(hours=3))
    assert revoked is not None and revoked.revoked_at == NOW + timedelta(hours=2)
    assert again == revoked  # the first revocation's time is kept
    found = backend.stores.api_key(registration.api_key)
    assert found is not None and found.revoked_at == NOW + timedelta(hours=2)
    assert backend.stores.api_key(later.api_key) == later.key  # the other key is untouched
    # Another workspace's key is not found by id, let alone revoked.
    assert backend.stores.revoke_api_key(registration.workspace_id, other.api_key_id, NOW) is None
    found_other = backend.stores.api_key(other.api_key)
    assert found_other is not None and found_other.revoked_at is None
    with pytest.raises(UnknownWorkspace):
        create_api_key(backend.stores, "ws_missing", NOW)


def test_a_domain_is_registered_once(backend: Backend) -> None:
    first = store(workspace_id="ws_a", domain="a.myshopify.com")
    backend.stores.register(first, "crm_key_a")

    with pytest.raises(ValueError, match="already registered"):
        backend.stores.register(store(workspace_id="ws_x", store_id="st_x", domain="a.myshopify.com"), "crm_key_x")

    assert backend.stores.store_by_domain(Platform.SHOPIFY, "a.myshopify.com") == first
    assert _workspace_of(backend, "crm_key_x") is None  # nothing of the refused one was kept


def test_register_store_issues_a_key_for_a_new_workspace(backend: Backend) -> None:
    registration = register_store(backend.stores, Platform.SHOPIFY, "https://Shop.MyShopify.com/admin", "s3cret", NOW)

    assert registration.domain == "shop.myshopify.com"
    assert _workspace_of(backend, registration.api_key) == registration.workspace_id
    found = backend.stores.store_by_domain(Platform.SHOPIFY, "shop.myshopify.com")
    assert found is not None
    assert (found.store_id, found.webhook_secrets, found.created_at) == (registration.store_id, ("s3cret",), NOW)


def test_a_store_api_token_round_trips_and_stays_absent_when_not_given(backend: Backend) -> None:
    bigcommerce = store(store_id="st_bc", domain="abc123", platform=Platform.BIGCOMMERCE).model_copy(
        update={"api_token": "bc_token"})
    backend.stores.register(bigcommerce, "crm_key_bc")
    backend.stores.register(store(), "crm_key_a")

    assert backend.stores.store_by_domain(Platform.BIGCOMMERCE, "abc123") == bigcommerce
    shopify = backend.stores.store_by_domain(Platform.SHOPIFY, store().domain)
    assert shopify is not None and shopify.api_token is None
    assert backend.stores.store_by_domain(Platform.SHOPIFY, "abc123") is None  # platform is part of the key


def test_a_store_is_found_by_its_write_key(backend: Backend) -> None:
    registered = store(write_key="wk_a", origins=("https://shop.example", "https://www.shop.example"))
    backend.stores.register(registered, "crm_key_a")

    # The tracking path reads the store without its secrets.
    assert backend.stores.store_by_write_key("wk_a") == registered.model_copy(update={"webhook_secrets": ()})
    assert backend.stores.store_by_write_key("wk_b") is None


def test_a_write_key_is_registered_once(backend: Backend) -> None:
    backend.stores.register(store(write_key="wk_a"), "crm_key_a")
    with pytest.raises(ValueError, match="already registered"):
        backend.stores.register(store(workspace_id="ws_x", store_id="st_x", domain="x.myshopify.com",
                                      write_key="wk_a"), "crm_key_x")
    assert backend.stores.store_by_domain(Platform.SHOPIFY, "x.myshopify.com") is None
    assert _workspace_of(backend, "crm_key_x") is None


def test_stores_join_an_existing_workspace_each_with_a_new_key(backend: Backend) -> None:
    first = register_store(backend.stores, Platform.SHOPIFY, "a.myshopify.com", "s", NOW)
    second = register_store(backend.stores, Platform.WOOCOMMERCE, "shop.example", "s", NOW,
                            workspace_id=first.workspace_id, origins=["https://Shop.Example/", "https://blog.example"])

    assert second.workspace_id == first.workspace_id
    assert second.api_key != first.api_key
    assert _workspace_of(backend, first.api_key) == first.workspace_id
    assert _workspace_of(backend, second.api_key) == first.workspace_id
    assert second.write_key.startswith("wk_") and len(second.write_key) == 27 and second.write_key != first.write_key
    assert first.allowed_origins == ("https://a.myshopify.com",)
    assert second.allowed_origins == ("https://shop.example", "https://blog.example")
    joined = backend.stores.store_by_write_key(second.write_key)
    assert joined is not None and (joined.store_id, joined.workspace_id) == (second.store_id, first.workspace_id)
    assert backend.stores.workspace_exists(first.workspace_id)


def test_joining_a_missing_workspace_is_refused_and_writes_nothing(backend: Backend) -> None:
    with pytest.raises(UnknownWorkspace, match="ws_missing"):
        register_store(backend.stores, Platform.SHOPIFY, "a.myshopify.com", "s", NOW, workspace_id="ws_missing")
    # The adapter checks it in the write too (the workspace may go between the check and the write).
    with pytest.raises(UnknownWorkspace):
        backend.stores.register(store(workspace_id="ws_missing", write_key="wk_m"), "crm_key_m", new_workspace=False)
    assert backend.stores.store_by_domain(Platform.SHOPIFY, store().domain) is None
    assert backend.stores.store_by_write_key("wk_m") is None
    assert not backend.stores.workspace_exists("ws_missing")


@pytest.mark.parametrize("origin", ["shop.example", "ftp://shop.example", "https://shop.example/path",
                                    "https://"])
def test_a_malformed_origin_is_refused_at_registration(backend: Backend, origin: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        register_store(backend.stores, Platform.SHOPIFY, "a.myshopify.com", "s", NOW, origins=[origin])


# --- ProfileRepository: reads --------------------------------------------------------------------


def _orders(repository: ProfileRepository, *placed: CanonicalOrder) -> None:
    for each in placed:
        assert apply_event(repository, each, NOW)


def _plan(repository: ProfileRepository, event: CanonicalEvent) -> Change:
    change = plan(event, repository.load(reads_for(event)), NOW, lambda profile, ref: ProfileHistory([], {}))
    assert change is not None
    return change


def _everything_about(event: CanonicalEvent) -> Reads:
    """The reads of an event, without its version: a load that reads profiles even for a held version."""
    return replace(reads_for(event), version=None)


def test_a_held_version_is_a_duplicate_and_reads_no_profile(backend: Backend) -> None:
    _orders(backend.profiles, order("1"))
    context = backend.profiles.load(reads_for(order("1")))
    assert (context.already_held, context.owners, context.order_owner) == (True, {}, None)
    assert not apply_event(backend.profiles, order("1"), NOW)
    assert not backend.profiles.load(reads_for(order("1", updated_at=NOW))).already_held


def test_nothing_known_yet(backend: Backend) -> None:
    context = backend.profiles.load(reads_for(order("1")))
    assert context == Context(owners={}, pointers={}, redacted=frozenset(), order=None, order_owner=None,
                              customer=None, event_seen=False)
    assert backend.profiles.get_profile(WS, CANDIDATE) is None
    assert backend.profiles.profile_id_for_identity(WS, IDENTITY) is None


def test_saved_order_profile_identities_and_timeline_read_back_equal(backend: Backend) -> None:
    change = _plan(backend.profiles, order("1"))
    backend.profiles.commit(change)
    (profile, _), = change.profiles
    assert change.order is not None
    context = backend.profiles.load(_everything_about(order("1")))
    assert context.order == change.order[0]
    assert context.order_owner == profile
    assert context.owners == {IDENTITY: profile, "order#st_a#1": profile}
    assert context.pointers == {IDENTITY: CANDIDATE, "order#st_a#1": CANDIDATE}
    assert backend.profiles.get_profile(WS, CANDIDATE) == profile
    assert backend.profiles.profile_id_for_identity(WS, IDENTITY) == CANDIDATE
    assert backend.profiles.timeline(WS, [CANDIDATE], None, 10) == list(change.timeline)


def test_every_field_round_trips_exactly(backend: Backend) -> None:
    rich = order("1", total=Decimal("404.90")).model_copy(update={
        "line_items": (LineItem(product_id="9", sku="S-1", title="Hat", category="Hats", quantity=2,
                                price=Decimal("10.10")),),
        "refunds": {"r1": Decimal("1.10")}, "discount_codes": ("WELCOME",), "landing_site": "/?utm_source=x",
        "consents": (Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="t", at=NOW),),
        "phone": "+12025550123", "anonymous_id": "a-1", "cart_token": "c-1", "country": "US"})
    viewed = ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id="e-1",
                           type=ActivityType.PRODUCT_VIEWED, occurred_at=NOW, anonymous_id="a-1",
                           products=(ProductRef(product_id="9", title="Hat", price=Decimal("10.10")),),
                           touch=Touch(source="google", medium="cpc", at=NOW), url="https://s.example/hat")
    _orders(backend.profiles, rich)
    assert apply_event(backend.profiles, viewed, NOW)
    context = backend.profiles.load(_everything_about(rich))
    assert context.order is not None and context.order.order == rich
    profile = context.order_owner
    assert profile is not None
    assert backend.profiles.get_profile(WS, profile.profile_id) == profile
    assert profile.total_spent == Decimal("403.80") and profile.products == {"Hat": 2}
    assert profile.last_browse is not None and profile.last_browse.products[0].price == Decimal("10.10")
    assert backend.profiles.load(_everything_about(viewed)).event_seen


def test_a_known_order_stays_with_its_profile_whatever_its_email_now(backend: Backend) -> None:
    _orders(backend.profiles, order("1"))
    context = backend.profiles.load(_everything_about(order("1", email="new@example.com")))
    assert context.order_owner is not None and context.order_owner.profile_id == CANDIDATE


def test_workspaces_are_isolated(backend: Backend) -> None:
    _orders(backend.profiles, order("1"))
    context = backend.profiles.load(reads_for(order("1", workspace_id="ws_b")))
    assert (context.owners, context.order) == ({}, None)


def test_orders_of_two_stores_with_the_same_platform_id_are_distinct(backend: Backend) -> None:
    _orders(backend.profiles, order("1"))
    assert backend.profiles.load(reads_for(order("1", store_id="st_b"))).order is None


def test_a_merged_profile_is_followed_to_its_survivor(backend: Backend) -> None:
    by_email = order("1")
    by_phone = order("2", email=None, phone="+12025550123")
    both = order("3", phone="+12025550123")
    _orders(backend.profiles, by_email, by_phone, both)
    email_owner = backend.profiles.profile_id_for_identity(WS, IDENTITY)
    phone_owner = backend.profiles.profile_id_for_identity(WS, "phone#+12025550123")
    assert email_owner is not None and phone_owner is not None
    survivor = backend.profiles.get_profile(WS, email_owner)
    assert survivor is not None and backend.profiles.get_profile(WS, phone_owner) == survivor
    assert survivor.orders_count == 3 and len(survivor.merged_from) == 1
    many = backend.profiles.get_profiles(WS, [email_owner, phone_owner, "nobody"])
    assert many == {email_owner: survivor, phone_owner: survivor}  # each id to its live profile, in one read
    entries = backend.profiles.timeline(WS, [survivor.profile_id, *survivor.merged_from], None, 10)
    assert sorted(e.ref for e in entries if e.type == "order") == ["st_a:1", "st_a:2", "st_a:3"]
    assert [e.type for e in entries].count("profile_merged") == 1


def test_timeline_pages_newest_first(backend: Backend) -> None:
    _orders(backend.profiles, *(order(str(n), created_at=NOW - timedelta(days=n)) for n in range(1, 6)))
    first = backend.profiles.timeline(WS, [CANDIDATE], None, 2)
    second = backend.profiles.timeline(WS, [CANDIDATE], first[-1].sort_key, 2)
    third = backend.profiles.timeline(WS, [CANDIDATE], second[-1].sort_key, 2)
    assert [e.ref for e in first + second + third] == ["st_a:1", "st_a:2", "st_a:3", "st_a:4", "st_a:5"]


def test_lines_of_some_types_page_past_the_others_and_their_orders_read_back(backend: Backend) -> None:
    hat = (LineItem(sku="H-1", title="Hat", quantity=2, price=Decimal("10.10")),)
    _orders(backend.profiles, *(order(str(n), created_at=NOW - timedelta(days=2 * n)).model_copy(
        update={"line_items": hat}) for n in range(1, 4)))
    for n in range(1, 8):  # views between and around the orders: read, not answered
        assert apply_event(backend.profiles, _view(f"e-{n}").model_copy(update={
            "occurred_at": NOW - timedelta(days=n), "email": "shopper@example.com"}), NOW)
    assert [e.type for e in backend.profiles.timeline(WS, [CANDIDATE], None, 2)] == ["product_viewed"] * 2
    if isinstance(backend.profiles, DynamoProfileRepository):
        backend.profiles.MOST_LINES_A_READ = 2  # a read finds fewer lines of the type than asked: it reads on
    first = backend.profiles.timeline_of(WS, [CANDIDATE], {"order"}, None, 2)
    rest = backend.profiles.timeline_of(WS, [CANDIDATE], {"order"}, first[-1].sort_key, 2)
    assert [e.ref for e in first + rest] == ["st_a:1", "st_a:2", "st_a:3"]
    found = backend.profiles.order_records(WS, [("st_a", "2"), ("st_a", "404"), ("st_b", "1")])
    assert list(found) == [("st_a", "2")]
    record = found[("st_a", "2")]
    assert record.order is not None and record.order.line_items == hat and record.profile_id == CANDIDATE



def test_a_folded_requests_lines_held_in_fewer_items_read_back_as_lines_newest_first_each_once(
        backend: Backend) -> None:
    """A /track request's views 4 minutes apart fold into one write: one item a LINES_SPAN of them
    (crm.adapters.timeline_items); an order placed among them keeps its own line, keyed after the group it is
    read among. Pages of every size read each line once, in order, and a typed read finds the views in their
    groups."""
    start = NOW - timedelta(days=1)
    _orders(backend.profiles, order("1", created_at=start + timedelta(minutes=6)))
    views = [_view(f"e-{n}").model_copy(update={"occurred_at": start + timedelta(minutes=4 * n),
                                                "email": "shopper@example.com"}) for n in range(8)]
    assert apply_events(backend.profiles, views, NOW).applied == 8
    every = backend.profiles.timeline(WS, [CANDIDATE], None, 100)
    assert [e.ref for e in every] == ["e-7", "e-6", "e-5", "e-4", "e-3", "e-2", "st_a:1", "e-1", "e-0"]
    assert [e.sort_key for e in every] == sorted((e.sort_key for e in every), reverse=True)
    for size in (1, 2, 3):
        read, before = [], None
        while page := backend.profiles.timeline(WS, [CANDIDATE], before, size):
            read, before = read + page, page[-1].sort_key
        assert read == every, f"pages of {size}"
        typed, before = [], None
        while page := backend.profiles.timeline_of(WS, [CANDIDATE], {"product_viewed"}, before, size):
            typed, before = typed + page, page[-1].sort_key
        assert typed == [e for e in every if e.type == "product_viewed"], f"typed pages of {size}"
    assert [e.ref for e in backend.profiles.timeline_of(WS, [CANDIDATE], {"order"}, None, 5)] == ["st_a:1"]
    if isinstance(backend.profiles, DynamoProfileRepository):  # 8 lines in 3 items: 0-8, 12-20, 24-28 minutes
        held = client("dynamodb").query(
            TableName=backend.profiles.table, KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": {"S": keys.profile(WS, CANDIDATE)["pk"]}, ":t": {"S": "T#"}})["Items"]
        assert sorted(item["entity"]["S"] for item in held) == ["timeline", "timeline_lines", "timeline_lines",
                                                                "timeline_lines"]


# --- ProfileRepository: conditional writes -------------------------------------------------------


def test_a_stale_plan_conflicts_and_writes_nothing(backend: Backend) -> None:
    _orders(backend.profiles, order("1"))
    stale = _plan(backend.profiles, order("2"))
    _orders(backend.profiles, order("3"))
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.commit(stale)
    assert backend.profiles.load(reads_for(order("2"))).order is None
    profile = backend.profiles.get_profile(WS, CANDIDATE)
    assert profile is not None and profile.orders_count == 2


def test_two_writers_of_a_new_shopper_only_one_wins(backend: Backend) -> None:
    first, second = _plan(backend.profiles, order("1")), _plan(backend.profiles, order("2"))
    backend.profiles.commit(first)
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.commit(second)
    assert apply_event(backend.profiles, order("2"), NOW)  # read again, it applies
    profile = backend.profiles.get_profile(WS, CANDIDATE)
    assert profile is not None and profile.orders_count == 2


def test_an_order_version_read_guards_the_write(backend: Backend) -> None:
    _orders(backend.profiles, order("1"))
    newer = order("1", updated_at=NOW, total=Decimal("5.00"))
    stale = _plan(backend.profiles, newer)
    _orders(backend.profiles, order("1", updated_at=NOW - timedelta(hours=1), total=Decimal("7.00")))
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.commit(stale)


def test_refunds_of_an_order_yet_to_come_read_at_once_are_both_kept(backend: Backend) -> None:
    """Refunds leave an order's version as it was (a record holding only refunds has none): the record is
    guarded by what it says, so the second of two refunds read together is refused and read again."""
    assert apply_event(backend.profiles, _refund("r-1", "1.00"), NOW)
    second, third = _plan(backend.profiles, _refund("r-2", "2.00")), _plan(backend.profiles, _refund("r-3", "3.00"))
    backend.profiles.commit(second)
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.commit(third)
    assert apply_event(backend.profiles, _refund("r-3", "3.00"), NOW)
    held = backend.profiles.load(reads_for(order("1"))).order
    assert held is not None and held.refunds == {"r-1": Decimal("1.00"), "r-2": Decimal("2.00"),
                                                 "r-3": Decimal("3.00")}


def test_a_refund_that_arrives_while_its_order_is_first_written_is_kept(backend: Backend) -> None:
    assert apply_event(backend.profiles, _refund("r-1", "1.00"), NOW)
    placed = order("1", total=Decimal("40.00"))
    stale = _plan(backend.profiles, placed)
    assert apply_event(backend.profiles, _refund("r-2", "2.50"), NOW)
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.commit(stale)
    assert apply_event(backend.profiles, placed, NOW)
    profile = backend.profiles.get_profile(WS, CANDIDATE)
    assert profile is not None and (profile.total_spent, profile.total_refunded) == (Decimal("36.50"),
                                                                                     Decimal("3.50"))


def test_an_activity_is_applied_once(backend: Backend) -> None:
    viewed = ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id="e-1",
                           type=ActivityType.PAGE_VIEWED, occurred_at=NOW, anonymous_id="a-1")
    change = _plan(backend.profiles, viewed)
    backend.profiles.commit(change)
    assert backend.profiles.load(reads_for(viewed)).event_seen  # its timeline line is its marker
    assert not apply_event(backend.profiles, viewed, NOW)


def _view(event_id: str) -> ActivityEvent:
    return ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=event_id,
                         type=ActivityType.PRODUCT_VIEWED, occurred_at=NOW, anonymous_id="a-1")


BROWSER = "anon#st_a#a-1"


def test_an_identity_without_a_link_item_leads_to_the_profile_named_after_it_until_a_link_says_otherwise(
        backend: Backend) -> None:
    named = profile_id_for(WS, BROWSER)
    first = _plan(backend.profiles, _view("e-1"))
    assert first.identities == () and first.profiles[0][0].profile_id == named  # a new browser's: no link written
    backend.profiles.commit(first)
    # First among the event's identities (read with the links) or not (once its link is found missing).
    for identities in ((BROWSER,), (IDENTITY, BROWSER)):
        context = backend.profiles.load(Reads(WS, identities))
        assert (context.pointers, context.owners[BROWSER].profile_id) == ({}, named)
    assert backend.profiles.profile_id_for_identity(WS, BROWSER) == named
    assert apply_event(backend.profiles, _view("e-2"), NOW)
    profile = backend.profiles.get_profile(WS, named)
    assert profile is not None and profile.activity_counts == {"product_viewed": 2}
    # A link item wins (an identity moved by a merge, say): the browser leads where it says.
    elsewhere = new_profile(WS, "p-elsewhere", NOW)
    backend.profiles.commit(Change(WS, profiles=((elsewhere, None),),
                                   identities=(IdentityLink(BROWSER, "p-elsewhere", None),)))
    assert backend.profiles.load(Reads(WS, (BROWSER,))).owners[BROWSER].profile_id == "p-elsewhere"
    assert backend.profiles.profile_id_for_identity(WS, BROWSER) == "p-elsewhere"


def test_a_profile_named_after_an_order_keeps_the_orders_link_and_a_later_version_lands_on_it(
        backend: Backend) -> None:
    """Per-purchase identities (order#, cart#, checkout#) are not looked for at their derived key: a new one comes
    with every purchase. The rare profile named after one (an order with no email) keeps that link."""
    anonymous = order("9", email=None)
    named = profile_id_for(WS, "order#st_a#9")
    change = _plan(backend.profiles, anonymous)
    assert change.identities == (IdentityLink("order#st_a#9", named, None),)
    backend.profiles.commit(change)
    assert backend.profiles.profile_id_for_identity(WS, "order#st_a#9") == named
    assert apply_event(backend.profiles, order("9", email=None, updated_at=NOW, total=Decimal("12.00")), NOW)
    profile = backend.profiles.get_profile(WS, named)
    assert profile is not None and (profile.orders_count, profile.spent_by_currency) == (1, {"USD": Decimal("12.00")})


def test_a_link_of_a_browser_with_no_profile_elsewhere_takes_its_name_and_its_first_view_is_refused(
        backend: Backend) -> None:
    """The browser has no link and no profile: an identify linking it to the shopper's profile writes the browser's
    name too (a tombstone into the shopper's). A first view planned before that (no link, no profile: its own
    profile, no link) is refused, and planned again lands on the shopper's profile."""
    named = profile_id_for(WS, BROWSER)
    assert apply_event(backend.profiles, order("1"), NOW)
    view = _plan(backend.profiles, _view("e-1"))
    assert view.identities == () and [(p.profile_id, revision) for p, revision in view.profiles] == [(named, None)]
    identify = ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id="id-1",
                             type=ActivityType.IDENTIFY, occurred_at=NOW, anonymous_id="a-1",
                             email="shopper@example.com")
    assert apply_event(backend.profiles, identify, NOW)
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.commit(view)
    assert apply_event(backend.profiles, _view("e-1"), NOW)
    shopper = backend.profiles.get_profile(WS, CANDIDATE)
    assert shopper is not None and shopper.activity_counts == {"identify": 1, "product_viewed": 1}
    assert backend.profiles.get_profile(WS, named) == shopper  # the tombstone leads there too
    assert backend.profiles.profile_id_for_identity(WS, BROWSER) == CANDIDATE


def test_an_old_tables_link_to_the_profile_named_after_it_still_leads_there_and_is_not_written_again(
        backend: Backend) -> None:
    named = profile_id_for(WS, BROWSER)
    backend.profiles.commit(Change(WS, profiles=((new_profile(WS, named, NOW), None),),
                                   identities=(IdentityLink(BROWSER, named, None),)))
    context = backend.profiles.load(reads_for(_view("e-1")))
    assert (context.pointers, context.owners[BROWSER].profile_id) == ({BROWSER: named}, named)
    change = _plan(backend.profiles, _view("e-1"))
    assert change.identities == () and change.profiles[0][0].profile_id == named


def test_an_activity_on_a_known_profile_is_written_guard_last_and_applied_once(backend: Backend) -> None:
    assert apply_event(backend.profiles, _view("e-1"), NOW)
    change = _plan(backend.profiles, _view("e-2"))
    assert change.guard_last and len(change.profiles) == 1
    backend.profiles.commit(change)
    assert not apply_event(backend.profiles, _view("e-2"), NOW)
    profile = backend.profiles.get_profile(WS, change.profiles[0][0].profile_id)
    assert profile is not None and profile.activity_counts == {"product_viewed": 2}


def test_a_guard_last_write_that_lost_its_marker_is_completed_not_counted_again(backend: Backend) -> None:
    assert apply_event(backend.profiles, _view("e-1"), NOW)
    change = _plan(backend.profiles, _view("e-2"))
    # The invocation ends between the profile's write and the marker's: only the profile is in the table.
    backend.profiles.commit(replace(change, timeline=(), event=None, guard_last=False))
    assert apply_event(backend.profiles, _view("e-2"), NOW)  # the retry writes the line and the marker
    assert not apply_event(backend.profiles, _view("e-2"), NOW)
    profile_id = change.profiles[0][0].profile_id
    profile = backend.profiles.get_profile(WS, profile_id)
    assert profile is not None and profile.activity_counts == {"product_viewed": 2}
    views = [e.ref for e in backend.profiles.timeline(WS, [profile_id], None, 10) if e.type == "product_viewed"]
    assert sorted(views) == ["e-1", "e-2"]


def test_a_stale_guard_last_write_conflicts_and_writes_nothing(backend: Backend) -> None:
    assert apply_event(backend.profiles, _view("e-1"), NOW)
    stale = _plan(backend.profiles, _view("e-2"))
    assert apply_event(backend.profiles, _view("e-3"), NOW)
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.commit(stale)
    assert backend.profiles.load(reads_for(_view("e-2"))).event_seen is False
    profile_id = stale.profiles[0][0].profile_id
    assert sorted(e.ref for e in backend.profiles.timeline(WS, [profile_id], None, 10)
                  if e.type == "product_viewed") == ["e-1", "e-3"]


def test_a_shoppers_activities_fold_into_one_write_and_each_is_applied_once(backend: Backend) -> None:
    views = [_view(f"e-{n}") for n in range(1, 6)]
    assert apply_events(backend.profiles, views, NOW).applied == 5
    again = apply_events(backend.profiles, [*views, _view("e-6")], NOW)
    assert (again.applied, again.unchanged) == (1, 5)
    profile_id = backend.profiles.profile_id_for_identity(WS, "anon#st_a#a-1")
    assert profile_id is not None
    profile = backend.profiles.get_profile(WS, profile_id)
    assert profile is not None and profile.activity_counts == {"product_viewed": 6}
    assert sorted(e.ref for e in backend.profiles.timeline(WS, [profile_id], None, 10)) == [
        f"e-{n}" for n in range(1, 7)]


def test_a_fold_that_lost_its_lines_is_completed_not_counted_again(backend: Backend) -> None:
    assert apply_event(backend.profiles, _view("e-1"), NOW)
    views = [_view(f"e-{n}") for n in range(2, 5)]
    taken, change, applied = fold(views, backend.profiles.load(activity_reads(views)), NOW,
                                  lambda profile, ref: ProfileHistory([], {}))
    assert (taken, applied) == (3, 3) and change is not None and len(change.folded) == 2
    backend.profiles.commit(replace(change, timeline=(), event=None, folded=(), guard_last=False))
    assert apply_events(backend.profiles, views, NOW).applied == 3  # their lines only
    assert apply_events(backend.profiles, views, NOW).applied == 0
    profile = backend.profiles.get_profile(WS, change.profiles[0][0].profile_id)
    assert profile is not None and profile.activity_counts == {"product_viewed": 4}


def _refund(refund_id: str, amount: str) -> RefundRecord:
    return RefundRecord(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, order_id="1",
                        refund_id=refund_id, amount=Decimal(amount), created_at=NOW)


def test_an_order_change_of_a_known_profile_is_written_guard_last_the_record_last(backend: Backend) -> None:
    _orders(backend.profiles, order("1", total=Decimal("40.00")))
    update = order("1", total=Decimal("40.00"), updated_at=NOW)
    change = _plan(backend.profiles, update)
    assert change.guard_last and len(change.profiles) == 1 and change.order is not None
    record = change.order[0]
    assert change.profiles[0][0].unwritten_orders["st_a:1"].state == order_state(record)
    backend.profiles.commit(change)
    assert not apply_event(backend.profiles, update, NOW)
    assert apply_event(backend.profiles, _refund("r-1", "15.50"), NOW)
    assert not apply_event(backend.profiles, _refund("r-1", "15.50"), NOW)
    profile = backend.profiles.get_profile(WS, change.profiles[0][0].profile_id)
    assert profile is not None and (profile.orders_count, profile.total_spent) == (1, Decimal("24.50"))


def test_an_order_write_that_ended_after_its_profile_is_finished_by_its_retry_and_others_wait(
        backend: Backend) -> None:
    _orders(backend.profiles, order("1", total=Decimal("40.00")))
    assert apply_event(backend.profiles, _refund("r-1", "10.00"), NOW)
    refund = _refund("r-2", "5.25")
    change = _plan(backend.profiles, refund)
    assert change.guard_last
    # The invocation ends after the profile's write: the record still says r-2 never came.
    backend.profiles.commit(replace(change, order=None, timeline=(), guard_last=False))
    with pytest.raises(OrderWriteUnfinished):
        apply_event(backend.profiles, order("1", total=Decimal("40.00"), updated_at=NOW), NOW)
    retry = _plan(backend.profiles, refund)
    assert retry.profiles == () and retry.order is not None and len(retry.timeline) == 2
    assert apply_event(backend.profiles, refund, NOW)  # the lines and the record, not the profile again
    assert not apply_event(backend.profiles, refund, NOW)
    assert apply_event(backend.profiles, order("1", total=Decimal("40.00"), updated_at=NOW), NOW)
    profile = backend.profiles.get_profile(WS, change.profiles[0][0].profile_id)
    assert profile is not None and (profile.orders_count, profile.total_spent, profile.total_refunded) == (
        1, Decimal("24.75"), Decimal("15.25"))
    refunds = [e.ref for e in backend.profiles.timeline(WS, [profile.profile_id], None, 10) if e.type == "refund"]
    assert sorted(refunds) == ["st_a:1:r-1", "st_a:1:r-2"]


def test_a_new_shoppers_order_keeps_the_transaction(backend: Backend) -> None:
    change = _plan(backend.profiles, order("1"))
    assert not change.guard_last and change.profiles[0][1] is None


def test_a_customer_version_read_guards_the_write(backend: Backend) -> None:
    account = customer_record("1", updated_at=NOW)
    stale = _plan(backend.profiles, account)
    assert apply_event(backend.profiles, customer_record("1", updated_at=NOW - timedelta(days=1)), NOW)
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.commit(stale)
    assert apply_event(backend.profiles, account, NOW)
    assert not apply_event(backend.profiles, account, NOW)


def test_empty_strings_round_trip(backend: Backend) -> None:
    _orders(backend.profiles, order("1", first_name=""))
    context = backend.profiles.load(reads_for(order("1")))
    assert context.order is not None and context.order.order is not None
    assert context.order.order.first_name == ""


def test_a_view_whose_line_is_on_a_profile_merged_since_is_not_counted_again(backend: Backend) -> None:
    """A line is the activity's marker, and it stays on the profile it was written to: after that profile is
    merged, a late duplicate of the view finds it there."""
    view = _view("e-1")
    assert apply_event(backend.profiles, view, NOW)
    assert apply_event(backend.profiles, order("1"), NOW)
    # The browser's order: its email's profile and the browser's merge.
    assert apply_event(backend.profiles, order("2").model_copy(update={"anonymous_id": "a-1"}), NOW)
    profile_id = backend.profiles.profile_id_for_identity(WS, "anon#st_a#a-1")
    assert profile_id is not None
    survivor = backend.profiles.get_profile(WS, profile_id)
    assert survivor is not None and survivor.merged_from
    assert backend.profiles.load(reads_for(view)).event_seen
    assert not apply_event(backend.profiles, view, NOW)
    profile = backend.profiles.get_profile(WS, profile_id)
    assert profile is not None and profile.activity_counts == {"product_viewed": 1}


def _identify(event_id: str) -> ActivityEvent:
    """The browser a-1 signing in as shopper@example.com: it merges the browser's profile and the email's."""
    return ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=event_id,
                         type=ActivityType.IDENTIFY, occurred_at=NOW, anonymous_id="a-1",
                         email="shopper@example.com")


def _browser_and_shopper(repository: ProfileRepository) -> None:
    assert apply_event(repository, _view("e-1"), NOW)
    assert apply_event(repository, order("1", total=Decimal("40.00")), NOW)


def test_an_identify_that_merges_a_browser_is_written_guard_last_the_merged_profile_marked_first(
        backend: Backend) -> None:
    _browser_and_shopper(backend.profiles)
    change = _plan(backend.profiles, _identify("i-1"))
    ((marked, read), ) = change.merging
    (survivor, _), (stone, marked_revision) = change.profiles
    assert change.guard_last and marked.merging and marked.merged_into == survivor.profile_id == stone.merged_into
    assert marked_revision == (read or 0) + 1 and marked.profile_id in survivor.merged_from
    backend.profiles.commit(change)
    assert not apply_event(backend.profiles, _identify("i-1"), NOW)
    context = backend.profiles.load(reads_for(_view("e-2")))
    assert context.merging == {} and {p.profile_id for p in context.owners.values()} == {survivor.profile_id}
    profile = backend.profiles.get_profile(WS, marked.profile_id)
    assert profile is not None and (profile.orders_count, profile.activity_counts) == (
        1, {"identify": 1, "product_viewed": 1})


def test_a_merge_that_ended_after_its_mark_is_finished_by_whoever_reads_the_marked_profile(
        backend: Backend) -> None:
    """The identify's invocation ends after its first write: the merged profile is marked, the survivor does not
    hold it yet. A view of the browser, whose link still leads through the marked profile, reads the mark and
    finishes the merge; the identify delivered again is applied once, and the view seen before the
    merge is still seen."""
    _browser_and_shopper(backend.profiles)
    change = _plan(backend.profiles, _identify("i-1"))
    backend.profiles.commit(Change(WS, profiles=change.merging))
    ((marked, _), ) = change.merging
    survivor_id = change.profiles[0][0].profile_id
    context = backend.profiles.load(reads_for(_view("e-1")))
    assert context.event_seen  # its line is on the marked profile
    assert [p.profile_id for p in context.merging[survivor_id]] == [marked.profile_id]
    assert apply_event(backend.profiles, _view("e-2"), NOW)
    assert backend.profiles.load(reads_for(_view("e-2"))).merging == {}
    assert apply_event(backend.profiles, _identify("i-1"), NOW)
    assert not apply_event(backend.profiles, _identify("i-1"), NOW)
    assert not apply_event(backend.profiles, _view("e-1"), NOW)
    profile = backend.profiles.get_profile(WS, survivor_id)
    assert profile is not None and (profile.orders_count, profile.total_spent, profile.activity_counts) == (
        1, Decimal("40.00"), {"identify": 1, "product_viewed": 2})
    assert set(profile.merged_from) == {marked.profile_id}
    merges = [e for e in backend.profiles.timeline(WS, [survivor_id], None, 20) if e.type == "profile_merged"]
    assert [e.summary["merged"] for e in merges] == [[marked.profile_id]]
