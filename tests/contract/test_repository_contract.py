"""One contract, two implementations: the in-memory fakes and the DynamoDB adapters on moto.

The DynamoDB table is the one template.yaml defines, created by crm_local.provision; the fakes pass
exactly the cases the adapters pass, which is what lets the unit tests trust them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from crm.adapters.dynamodb import DynamoProfileRepository, DynamoStoreDirectory
from crm.ingestion import upsert_order
from crm.models.orders import LineItem
from crm.models.profile import OrderRecord, Profile, new_profile
from crm.models.stores import Platform
from crm.ports import ConcurrentUpdate, OrderContext, ProfileRepository, StoreDirectory, UnknownWorkspace
from crm.profiles import apply_order, primary_identity, profile_id_for
from crm.stores import register_store
from crm_local.provision import Provisioned

from tests.builders import NOW, order, store
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


def _first_save(repository: ProfileRepository, order_id: str = "1", total: str = "10.00") -> tuple[OrderRecord,
                                                                                                   Profile]:
    """Apply a first order of the shopper as ingestion would, and return what was saved."""
    placed = order(order_id, total=Decimal(total))
    applied = apply_order(new_profile(WS, CANDIDATE, NOW), None, placed, NOW)
    assert applied is not None
    repository.save_order(applied.record, None, applied.profile, None, IDENTITY)
    return applied.record, applied.profile


def _unchanged(repository: ProfileRepository, record: OrderRecord, profile: Profile) -> None:
    order_ = record.order
    context = repository.load_for_order(WS, order_.store_id, order_.order_id, IDENTITY, CANDIDATE)
    assert context == OrderContext(previous=record, profile=profile, profile_id=CANDIDATE, identity_exists=True)


# --- StoreDirectory ------------------------------------------------------------------------------


def test_registered_store_is_found_by_platform_and_domain(backend: Backend) -> None:
    registered = store(secrets=("old-secret", "new-secret"))
    backend.stores.register(registered, "crm_key_a")

    assert backend.stores.store_by_domain(Platform.SHOPIFY, registered.domain) == registered
    assert backend.stores.store_by_domain(Platform.SHOPIFY, "other.myshopify.com") is None


def test_api_key_resolves_to_its_workspace_only(backend: Backend) -> None:
    backend.stores.register(store(workspace_id="ws_a", domain="a.myshopify.com"), "crm_key_a")
    backend.stores.register(store(workspace_id="ws_b", store_id="st_b", domain="b.myshopify.com"), "crm_key_b")

    assert backend.stores.workspace_for_api_key("crm_key_a") == "ws_a"
    assert backend.stores.workspace_for_api_key("crm_key_b") == "ws_b"
    assert backend.stores.workspace_for_api_key("crm_key_c") is None
    assert backend.stores.workspace_for_api_key("CRM_KEY_A") is None


def test_a_domain_is_registered_once(backend: Backend) -> None:
    first = store(workspace_id="ws_a", domain="a.myshopify.com")
    backend.stores.register(first, "crm_key_a")

    with pytest.raises(ValueError, match="already registered"):
        backend.stores.register(store(workspace_id="ws_x", store_id="st_x", domain="a.myshopify.com"), "crm_key_x")

    assert backend.stores.store_by_domain(Platform.SHOPIFY, "a.myshopify.com") == first
    assert backend.stores.workspace_for_api_key("crm_key_x") is None  # nothing of the refused one was kept


def test_register_store_issues_a_key_for_a_new_workspace(backend: Backend) -> None:
    registration = register_store(backend.stores, Platform.SHOPIFY, "https://Shop.MyShopify.com/admin", "s3cret", NOW)

    assert registration.domain == "shop.myshopify.com"
    assert backend.stores.workspace_for_api_key(registration.api_key) == registration.workspace_id
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

    assert backend.stores.store_by_write_key("wk_a") == registered
    assert backend.stores.store_by_write_key("wk_b") is None


def test_a_write_key_is_registered_once(backend: Backend) -> None:
    backend.stores.register(store(write_key="wk_a"), "crm_key_a")
    with pytest.raises(ValueError, match="already registered"):
        backend.stores.register(store(workspace_id="ws_x", store_id="st_x", domain="x.myshopify.com",
                                      write_key="wk_a"), "crm_key_x")
    assert backend.stores.store_by_domain(Platform.SHOPIFY, "x.myshopify.com") is None
    assert backend.stores.workspace_for_api_key("crm_key_x") is None


def test_stores_join_an_existing_workspace_each_with_a_new_key(backend: Backend) -> None:
    first = register_store(backend.stores, Platform.SHOPIFY, "a.myshopify.com", "s", NOW)
    second = register_store(backend.stores, Platform.WOOCOMMERCE, "shop.example", "s", NOW,
                            workspace_id=first.workspace_id, origins=["https://Shop.Example/", "https://blog.example"])

    assert second.workspace_id == first.workspace_id
    assert second.api_key != first.api_key
    assert backend.stores.workspace_for_api_key(first.api_key) == first.workspace_id
    assert backend.stores.workspace_for_api_key(second.api_key) == first.workspace_id
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


def test_nothing_known_yet(backend: Backend) -> None:
    context = backend.profiles.load_for_order(WS, "st_a", "1", IDENTITY, CANDIDATE)
    assert context == OrderContext(previous=None, profile=None, profile_id=CANDIDATE, identity_exists=False)
    assert backend.profiles.get_profile(WS, CANDIDATE) is None
    assert backend.profiles.profile_id_for_identity(WS, IDENTITY) is None


def test_saved_order_profile_and_identity_read_back_equal(backend: Backend) -> None:
    record, profile = _first_save(backend.profiles)

    assert backend.profiles.get_profile(WS, CANDIDATE) == profile
    assert backend.profiles.profile_id_for_identity(WS, IDENTITY) == CANDIDATE
    _unchanged(backend.profiles, record, profile)


def test_a_new_order_finds_the_profile_through_its_identity(backend: Backend) -> None:
    _, profile = _first_save(backend.profiles)
    context = backend.profiles.load_for_order(WS, "st_a", "2", IDENTITY, "some-other-candidate")
    assert context == OrderContext(previous=None, profile=profile, profile_id=CANDIDATE, identity_exists=True)


def test_a_known_order_stays_with_its_profile_whatever_its_identity_now(backend: Backend) -> None:
    record, profile = _first_save(backend.profiles)
    context = backend.profiles.load_for_order(WS, "st_a", "1", "email#new@example.com",
                                              profile_id_for(WS, "email#new@example.com"))
    assert context == OrderContext(previous=record, profile=profile, profile_id=CANDIDATE, identity_exists=False)


def test_workspaces_are_isolated(backend: Backend) -> None:
    _first_save(backend.profiles)
    assert backend.profiles.get_profile("ws_b", CANDIDATE) is None
    assert backend.profiles.profile_id_for_identity("ws_b", IDENTITY) is None
    context = backend.profiles.load_for_order("ws_b", "st_a", "1", IDENTITY, profile_id_for("ws_b", IDENTITY))
    assert (context.previous, context.profile, context.identity_exists) == (None, None, False)


def test_orders_of_two_stores_with_the_same_platform_id_are_distinct(backend: Backend) -> None:
    _first_save(backend.profiles)
    context = backend.profiles.load_for_order(WS, "st_b", "1", IDENTITY, CANDIDATE)
    assert context.previous is None


def test_every_field_round_trips_exactly(backend: Backend) -> None:
    placed = order("820982911946154508", total=Decimal("404.95"), refunded=Decimal("0.05"),
                   phone="+12024561111", first_name="Jøn").model_copy(update={
                       "customer_id": "115310627314723954", "order_number": "#9999", "financial_status": "paid",
                       "cancelled_at": None, "landing_site": "/?utm_source=x", "referring_site": None,
                       "line_items": (LineItem(product_id="788032119674292922", sku=None, title="Aviator",
                                               quantity=3, price=Decimal("89.99")),)})
    applied = apply_order(new_profile(WS, CANDIDATE, NOW), None, placed, NOW)
    assert applied is not None
    backend.profiles.save_order(applied.record, None, applied.profile, None, IDENTITY)

    context = backend.profiles.load_for_order(WS, "st_a", "820982911946154508", IDENTITY, CANDIDATE)
    assert context.previous == applied.record
    assert context.previous.order.model_dump() == placed.model_dump()
    assert context.profile == applied.profile
    assert context.profile is not None
    assert context.profile.total_spent == Decimal("404.90")
    assert context.profile.phone == "+12024561111"
    assert context.profile.first_name == "Jøn"


# --- ProfileRepository: conditional writes -------------------------------------------------------


def test_update_at_the_version_and_revision_read(backend: Backend) -> None:
    record, profile = _first_save(backend.profiles)
    newer = order("1", total=Decimal("7.00"), updated_at=NOW)
    applied = apply_order(profile, record, newer, NOW + timedelta(minutes=1))
    assert applied is not None

    backend.profiles.save_order(applied.record, record, applied.profile, profile, None)

    _unchanged(backend.profiles, applied.record, applied.profile)
    assert applied.profile.revision == profile.revision + 1
    assert applied.profile.total_spent == Decimal("7.00")


def test_creating_an_order_that_exists_conflicts_and_writes_nothing(backend: Backend) -> None:
    record, profile = _first_save(backend.profiles)
    again = apply_order(profile, None, order("1", total=Decimal("99.00"), updated_at=NOW), NOW)
    assert again is not None

    with pytest.raises(ConcurrentUpdate):
        backend.profiles.save_order(again.record, None, again.profile, profile, None)
    _unchanged(backend.profiles, record, profile)


def test_order_at_another_version_conflicts_and_writes_nothing(backend: Backend) -> None:
    record, profile = _first_save(backend.profiles)
    stale_previous = OrderRecord(profile_id=CANDIDATE, order=order("1", updated_at=NOW - timedelta(days=30)))
    newer = apply_order(profile, stale_previous, order("1", total=Decimal("1.00"), updated_at=NOW), NOW)
    assert newer is not None

    with pytest.raises(ConcurrentUpdate):
        backend.profiles.save_order(newer.record, stale_previous, newer.profile, profile, None)
    _unchanged(backend.profiles, record, profile)


def test_profile_at_another_revision_conflicts_and_writes_nothing(backend: Backend) -> None:
    record, profile = _first_save(backend.profiles)
    stale = profile.model_copy(update={"revision": profile.revision + 5})
    second = apply_order(stale, None, order("2"), NOW)
    assert second is not None

    with pytest.raises(ConcurrentUpdate):
        backend.profiles.save_order(second.record, None, second.profile, stale, None)
    _unchanged(backend.profiles, record, profile)
    assert backend.profiles.load_for_order(WS, "st_a", "2", IDENTITY, CANDIDATE).previous is None


def test_creating_a_profile_that_exists_conflicts_and_writes_nothing(backend: Backend) -> None:
    record, profile = _first_save(backend.profiles)
    second = apply_order(new_profile(WS, CANDIDATE, NOW), None, order("2"), NOW)
    assert second is not None

    with pytest.raises(ConcurrentUpdate):
        backend.profiles.save_order(second.record, None, second.profile, None, None)
    _unchanged(backend.profiles, record, profile)
    assert backend.profiles.load_for_order(WS, "st_a", "2", IDENTITY, CANDIDATE).previous is None


def test_updating_a_profile_that_does_not_exist_conflicts(backend: Backend) -> None:
    ghost = new_profile(WS, CANDIDATE, NOW).model_copy(update={"revision": 3})
    applied = apply_order(ghost, None, order("1"), NOW)
    assert applied is not None
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.save_order(applied.record, None, applied.profile, ghost, IDENTITY)
    assert backend.profiles.get_profile(WS, CANDIDATE) is None
    assert backend.profiles.profile_id_for_identity(WS, IDENTITY) is None


def test_claiming_an_identity_that_exists_conflicts_and_writes_nothing(backend: Backend) -> None:
    record, profile = _first_save(backend.profiles)
    rival_id = profile_id_for(WS, "phone#+12024561111")
    rival = apply_order(new_profile(WS, rival_id, NOW), None, order("2"), NOW)
    assert rival is not None

    with pytest.raises(ConcurrentUpdate):
        backend.profiles.save_order(rival.record, None, rival.profile, None, IDENTITY)
    _unchanged(backend.profiles, record, profile)
    assert backend.profiles.get_profile(WS, rival_id) is None
    assert backend.profiles.load_for_order(WS, "st_a", "2", IDENTITY, CANDIDATE).previous is None


def test_of_two_writers_that_read_the_same_state_only_one_wins(backend: Backend) -> None:
    first, second = order("1", total=Decimal("3.00")), order("2", total=Decimal("4.00"))
    contexts = [backend.profiles.load_for_order(WS, "st_a", o.order_id, IDENTITY, CANDIDATE) for o in (first, second)]
    writes = []
    for placed, context in zip((first, second), contexts, strict=True):
        applied = apply_order(context.profile or new_profile(WS, context.profile_id, NOW), None, placed, NOW)
        assert applied is not None
        writes.append(applied)

    backend.profiles.save_order(writes[0].record, None, writes[0].profile, None, IDENTITY)
    with pytest.raises(ConcurrentUpdate):
        backend.profiles.save_order(writes[1].record, None, writes[1].profile, None, IDENTITY)

    assert upsert_order(backend.profiles, second, NOW)  # the loser reads again and succeeds
    profile = backend.profiles.get_profile(WS, CANDIDATE)
    assert profile is not None
    assert (profile.orders_count, profile.total_spent, profile.revision) == (2, Decimal("7.00"), 2)


# --- the ingestion service on top of the contract ------------------------------------------------


def test_upsert_is_idempotent_and_order_safe(backend: Backend) -> None:
    created = NOW - timedelta(days=2)
    v1 = order("1", total=Decimal("50.00"), created_at=created, updated_at=created)
    v2 = order("1", total=Decimal("50.00"), refunded=Decimal("20.00"), created_at=created,
               updated_at=created + timedelta(hours=1))
    other = order("2", total=Decimal("0.10"), created_at=NOW - timedelta(days=1))

    applied = [upsert_order(backend.profiles, o, NOW) for o in (v2, other, v1, v2, other)]

    assert applied == [True, True, False, False, False]
    profile = backend.profiles.get_profile(WS, backend.profiles.profile_id_for_identity(WS, primary_identity(v1))
                                           or "")
    assert profile is not None
    assert (profile.orders_count, profile.total_spent, profile.average_order_value) == (
        2, Decimal("30.10"), Decimal("15.05"))
    assert (profile.first_order_at, profile.last_order_at) == (created, other.created_at)
    assert profile.revision == 2


def test_empty_strings_round_trip(backend: Backend) -> None:
    """A custom line item may have no title; an order holding one must still read back."""
    placed = order("1", first_name="").model_copy(update={
        "line_items": (LineItem(title="", quantity=1, price=Decimal("1.00")),)})
    applied = apply_order(new_profile(WS, CANDIDATE, NOW), None, placed, NOW)
    assert applied is not None
    backend.profiles.save_order(applied.record, None, applied.profile, None, IDENTITY)

    context = backend.profiles.load_for_order(WS, "st_a", "1", IDENTITY, CANDIDATE)

    assert context.previous == applied.record
