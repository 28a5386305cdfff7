"""An identity without a link item leads to the profile named after it (docs/profile-writes.md, "No link item for
a browser's own profile"). Whatever links that identity to another profile must be refused when the named profile
is written at the same moment, and the other way round: otherwise the profile's events lead nowhere.

The interleaving: an event read, then another event applied whole, then the first event's write (the fake's
``before_save``), at any point, among shoppers' first views, identifies, checkouts and orders naming the browser.
(The same interleaving over the whole of test_identity_properties.py's ``worlds`` is a test there.)"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from crm.ingestion import apply_event
from crm.models.canonical import ActivityEvent, ActivityType, CanonicalEvent
from crm.models.stores import Platform
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.builders import NOW, order
from tests.fakes import FakeProfileRepository
from tests.unit.test_identity_properties import WS, World, _deliver, _deliver_interleaved, _people


@st.composite
def browsing_worlds(draw: st.DrawFn) -> World:
    """Shoppers known by email or not yet, whose browsers are new: views, an identify, a checkout under the email,
    an order naming the browser, each maybe."""
    events: list[CanonicalEvent] = []
    net_by_order = {}
    for number in range(draw(st.integers(1, 3))):
        anonymous_id, email = f"anon-{number}", f"s{number}@example.com"
        for view in range(draw(st.integers(0, 2))):
            events.append(ActivityEvent(
                workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=f"v-{number}-{view}",
                type=ActivityType.PRODUCT_VIEWED, occurred_at=NOW + timedelta(minutes=view), anonymous_id=anonymous_id))
        if draw(st.booleans()):
            events.append(_identify(anonymous_id, email).model_copy(update={"event_id": f"id-{number}"}))
        if draw(st.booleans()):
            events.append(ActivityEvent(
                workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=f"co-{number}",
                type=ActivityType.CHECKOUT_STARTED, occurred_at=NOW + timedelta(minutes=5), email=email,
                anonymous_id=anonymous_id if draw(st.booleans()) else None, checkout_token=f"tok-{number}"))
        if draw(st.booleans()):
            placed = order(f"o-{number}", email=email).model_copy(
                update={"anonymous_id": anonymous_id if draw(st.booleans()) else None})
            events.append(placed)
            net_by_order[placed.order_id] = placed.total_price
    return World((), tuple(events), net_by_order)


def _first_view(anonymous_id: str) -> ActivityEvent:
    return ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id="v-first",
                         type=ActivityType.PRODUCT_VIEWED, occurred_at=NOW, anonymous_id=anonymous_id)


def _identify(anonymous_id: str, email: str) -> ActivityEvent:
    return ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id="id-1",
                         type=ActivityType.IDENTIFY, occurred_at=NOW + timedelta(minutes=1),
                         anonymous_id=anonymous_id, email=email)


def _known_shopper_then_a_new_browser(linker: CanonicalEvent) -> World:
    known = order("k-1", email="r@example.com")
    return World((), (known, _first_view("anon-r"), linker), {"k-1": known.total_price})


@settings(max_examples=150, deadline=None)
@given(world=browsing_worlds(), between=st.lists(st.booleans(), min_size=1, max_size=8), arrival=st.randoms(
    use_true_random=False))
@example(world=_known_shopper_then_a_new_browser(_identify("anon-r", "r@example.com")), between=[False, True],
         arrival=None)
def test_an_event_applied_between_anothers_read_and_write_gives_the_in_order_profiles(
        world: World, between: list[bool], arrival: object) -> None:
    events = list(world.events)
    if arrival is not None:
        arrival.shuffle(events)  # type: ignore[attr-defined]
    assert _people(_deliver_interleaved(events, between)) == _people(_deliver(list(world.events)))


def test_a_new_browsers_first_view_and_an_identify_linking_it_elsewhere_at_once_keep_the_view() -> None:
    """The view plans the browser's own profile (no link), the identify, read before that profile was written,
    links the browser to the shopper's: one of the two is refused and planned again, the view is on the shopper's
    profile whichever wins."""
    for view_first in (True, False):
        repository = FakeProfileRepository()
        assert apply_event(repository, order("k-1", email="r@example.com"), NOW)
        view, identify = _first_view("anon-r"), _identify("anon-r", "r@example.com")
        first, second = (view, identify) if view_first else (identify, view)
        repository.before_save = partial(apply_event, repository, second, NOW)
        apply_event(repository, first, NOW)
        [shopper] = repository.live_profiles()
        assert shopper.activity_counts == {"product_viewed": 1, "identify": 1}, f"view first: {view_first}"
        assert shopper.orders_count == 1
