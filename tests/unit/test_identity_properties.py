"""Identity resolution by property: any interleaving, duplication and reordering of the same deliveries
yields the same profiles (the same people, with the same totals to the cent) as in-order, once-only delivery;
so does a delivery whose writes end after any one of them, delivered again later.

Shoppers are generated with identities of their own (email, phone, platform account, browser id); their
events carry different subsets of them (guest checkouts by phone, anonymous browsing, an identify that
links a browser to an email, a checkout under an email, an account that ties email and phone together), so
profiles are created apart and must merge whatever the arrival order. Orders get newer versions,
cancellations, refunds that arrive on their own (even before their order) and removals. Profiles keep the
times of only the latest ``kept`` occurrences of each event (crm.recent), shrunk here so that merges of full
lists and orders leaving them are common: those lists must come out the same too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from unittest import mock

from crm import recent
from crm.adapters.timeline_items import line_groups
from crm.changes import distinct_entries
from crm.ingestion import apply_event, apply_events
from crm.models.canonical import ActivityEvent, ActivityType, CanonicalEvent, OrderRemoved, RefundRecord
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.orders import CanonicalOrder, LineItem
from crm.models.profile import Profile, TimelineEntry
from crm.models.stores import Platform
from crm.ports import Change
from crm.unwritten_orders import OrderWriteUnfinished, order_ref, order_state
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.builders import NOW, cents, customer_record, order
from tests.fakes import FakeProfileRepository

BASE = datetime(2024, 1, 1, tzinfo=UTC)
WS = "ws_a"


@dataclass(frozen=True)
class Shopper:
    number: int
    email: str | None
    phone: str | None
    anonymous_id: str | None
    customer_id: str | None


@dataclass(frozen=True)
class World:
    shoppers: tuple[Shopper, ...]
    events: tuple[CanonicalEvent, ...]
    net_by_order: dict[str, Decimal]


def _moment(draw: st.DrawFn) -> datetime:
    return BASE + timedelta(minutes=draw(st.integers(0, 200_000)))


@st.composite
def shoppers(draw: st.DrawFn, number: int) -> Shopper:
    email = draw(st.sampled_from([f"s{number}@example.com", None]))
    phone = draw(st.sampled_from([f"+1202555{number:04d}", None])) if email else f"+1202555{number:04d}"
    return Shopper(number, email, phone, draw(st.sampled_from([f"anon-{number}", None])),
                   draw(st.sampled_from([f"cust-{number}", None])))


def _storefront(draw: st.DrawFn, shopper: Shopper) -> list[CanonicalEvent]:
    """Views of the shopper's browser, an identify naming its email, a checkout under the email."""
    events: list[CanonicalEvent] = []
    if shopper.anonymous_id:
        for view in range(draw(st.integers(0, 2))):
            events.append(ActivityEvent(
                workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=f"v-{shopper.number}-{view}",
                type=ActivityType.PRODUCT_VIEWED, occurred_at=_moment(draw), anonymous_id=shopper.anonymous_id))
        if shopper.email and draw(st.booleans()):
            events.append(_identify(draw, shopper, "id", consent=draw(st.booleans())))
    if shopper.email and draw(st.booleans()):
        events.append(ActivityEvent(
            workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=f"co-{shopper.number}",
            type=ActivityType.CHECKOUT_STARTED, occurred_at=_moment(draw), anonymous_id=shopper.anonymous_id,
            email=shopper.email, checkout_token=f"tok-{shopper.number}"))
    return events


def _identify(draw: st.DrawFn, shopper: Shopper, name: str, consent: bool) -> ActivityEvent:
    """The browser signing in under the shopper's email (with or without a subscribe): it merges the browser's
    profile and the email's when both exist."""
    return ActivityEvent(
        workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=f"{name}-{shopper.number}",
        type=ActivityType.IDENTIFY, occurred_at=_moment(draw), anonymous_id=shopper.anonymous_id,
        email=shopper.email, consents=(Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED,
                                               source="track:identify", at=_moment(draw)),) if consent else ())


@st.composite
def merging_worlds(draw: st.DrawFn) -> World:
    """Shoppers known by email (an account or an order first) who browse, then sign in from the browser, maybe
    twice, while their views, orders naming the browser and checkouts keep coming: most identifies merge two
    profiles, and the other events meet those merges half written."""
    people = tuple(Shopper(number, f"s{number}@example.com", None, f"anon-{number}", f"cust-{number}")
                   for number in range(draw(st.integers(1, 3))))
    events: list[CanonicalEvent] = []
    net_by_order: dict[str, Decimal] = {}
    for shopper in people:
        if draw(st.booleans()):
            events.append(customer_record(shopper.customer_id or "", email=shopper.email, updated_at=_moment(draw),
                                          first_name=f"Name{shopper.number}"))
        for index in range(draw(st.integers(0, 2))):
            order_id, total = f"{shopper.number}-{index}", cents(draw(st.integers(0, 50_000)))
            created = _moment(draw)
            events.append(order(order_id, created_at=created, updated_at=created, total=total,
                                email=shopper.email).model_copy(update={
                                    "anonymous_id": shopper.anonymous_id if draw(st.booleans()) else None}))
            net_by_order[order_id] = total
        for view in range(draw(st.integers(1, 3))):
            events.append(ActivityEvent(
                workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=f"v-{shopper.number}-{view}",
                type=ActivityType.PRODUCT_VIEWED, occurred_at=_moment(draw), anonymous_id=shopper.anonymous_id))
        for name in ("id", "id2")[:draw(st.integers(1, 2))]:
            events.append(_identify(draw, shopper, name, consent=draw(st.booleans()) and draw(st.booleans())))
        if draw(st.booleans()):
            events.append(ActivityEvent(
                workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=f"co-{shopper.number}",
                type=ActivityType.CHECKOUT_STARTED, occurred_at=_moment(draw), anonymous_id=shopper.anonymous_id,
                email=shopper.email, checkout_token=f"tok-{shopper.number}"))
    return World(people, tuple(events), net_by_order)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    people = tuple(draw(shoppers(n)) for n in range(draw(st.integers(1, 4))))
    events: list[CanonicalEvent] = []
    net_by_order: dict[str, Decimal] = {}
    for shopper in people:
        for index in range(draw(st.integers(0, 3))):
            order_id = f"{shopper.number}-{index}"
            created = _moment(draw)
            # A guest checkout may carry only the phone, or only the browser id the storefront passed on.
            use_email = shopper.email if draw(st.booleans()) or not shopper.phone else None
            contact = {"email": use_email, "phone": shopper.phone if draw(st.booleans()) or not use_email else None}
            total = cents(draw(st.integers(0, 500_000)))
            versions = draw(st.integers(1, 3))
            cancelled = draw(st.booleans()) and draw(st.booleans())
            item = LineItem(title=f"product-{draw(st.integers(0, 3))}", sku="SKU", quantity=draw(st.integers(1, 3)),
                            price=Decimal("1.00"))
            latest: CanonicalOrder | None = None
            for version in range(versions):
                latest = order(order_id, created_at=created, updated_at=created + timedelta(minutes=version),
                               total=total, **contact).model_copy(update={
                                   "anonymous_id": shopper.anonymous_id if draw(st.booleans()) else None,
                                   "customer_id": shopper.customer_id if draw(st.booleans()) else None,
                                   "cancelled_at": created if cancelled and version == versions - 1 else None,
                                   "line_items": (item,), "discount_codes": ("SAVE",) if index == 0 else ()})
                events.append(latest)
            assert latest is not None
            refunded = Decimal("0.00")
            for refund in range(draw(st.integers(0, 2))):
                amount = cents(draw(st.integers(0, 10_000)))
                refunded += amount
                events.append(RefundRecord(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY,
                                           order_id=order_id, refund_id=f"r{refund}", amount=amount,
                                           created_at=created + timedelta(hours=1)))
            removed = draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans())
            if removed:
                events.append(OrderRemoved(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY,
                                           order_id=order_id, removed_at=created + timedelta(days=1)))
            counts = not cancelled and not removed
            net_by_order[order_id] = max(total - refunded, Decimal("0.00")) if counts else Decimal("0.00")
        events += _storefront(draw, shopper)
        if shopper.customer_id and draw(st.booleans()):
            events.append(customer_record(shopper.customer_id, email=shopper.email, phone=shopper.phone,
                                          updated_at=_moment(draw), first_name=f"Name{shopper.number}"))
    return World(people, tuple(events), net_by_order)


def _deliver(events: list[CanonicalEvent]) -> FakeProfileRepository:
    repository = FakeProfileRepository()
    for step, event in enumerate(events):
        apply_event(repository, event, NOW + timedelta(seconds=step))
    return repository


def _person(profile: Profile) -> tuple[object, ...]:
    """A profile as a person: who (identities) and what they did, not which generated id it landed on."""
    return (profile.identities, profile.email, profile.phone, profile.first_name, profile.orders_count,
            profile.cancelled_count, profile.total_spent, profile.total_refunded, profile.first_order_at,
            profile.last_order_at, profile.products, profile.skus, profile.coupons, profile.activity_counts,
            profile.consents, profile.last_browse, profile.average_order_value, profile.recent)


def _people(repository: FakeProfileRepository) -> list[tuple[object, ...]]:
    return sorted((_person(p) for p in repository.live_profiles()), key=repr)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[World, list[CanonicalEvent]]:
    """A world, and its events as they arrive: in any order, some of them twice."""
    world = draw(worlds())
    every = list(world.events)
    duplicates = draw(st.lists(st.sampled_from(every), max_size=6)) if every else []
    return world, draw(st.permutations(every + duplicates))


def _deliver_interleaved(events: list[CanonicalEvent], between: list[bool]) -> FakeProfileRepository:
    """Each event in turn; where ``between`` says so, the next event is applied between this one's read and its
    write (after it, if this one writes nothing), and is not delivered again."""
    repository = FakeProfileRepository()
    queue = list(events)
    step = 0
    while queue:
        event = queue.pop(0)
        if queue and between[step % len(between)]:
            other, at = queue.pop(0), NOW + timedelta(seconds=step, milliseconds=1)
            repository.before_save = partial(apply_event, repository, other, at)
        apply_event(repository, event, NOW + timedelta(seconds=step))
        unused, repository.before_save = repository.before_save, None
        if unused is not None:
            unused()
        step += 1
    return repository


def _refund_between_its_orders_read_and_write() -> tuple[World, list[CanonicalEvent]]:
    """Found by the test below (every second event applied between its predecessor's read and write): a refund of
    an order yet to come, then the order, read; a second refund written before the order is. The order's write
    was guarded by the record's version, which refunds leave as it was (empty here), so it overwrote the record
    and the second refund was lost."""
    placed = order("o-1", email="r@example.com", total=Decimal("40.00"))
    refunds = [RefundRecord(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, order_id="o-1",
                            refund_id=refund_id, amount=Decimal(amount), created_at=BASE)
               for refund_id, amount in (("r0", "1.00"), ("r1", "0.01"))]
    world = World((), (refunds[0], placed, refunds[1]), {"o-1": Decimal("38.99")})
    return world, list(world.events)


@settings(max_examples=150, deadline=None)
@given(delivered=deliveries(), between=st.lists(st.booleans(), min_size=1, max_size=8))
@example(delivered=_refund_between_its_orders_read_and_write(), between=[False, True])
def test_an_event_applied_between_anothers_read_and_write_gives_the_in_order_profiles(
        delivered: tuple[World, list[CanonicalEvent]], between: list[bool]) -> None:
    world, arrival = delivered
    interleaved = _deliver_interleaved(arrival, between)
    assert _people(interleaved) == _people(_deliver(list(world.events)))
    assert sum((p.total_spent for p in interleaved.live_profiles()), Decimal("0.00")) == sum(
        world.net_by_order.values(), Decimal("0.00"))


def _removed_after_a_merge() -> tuple[World, list[CanonicalEvent]]:
    """Found by a long search (20,000 examples): a guest's order by phone is removed after the browser's profile
    took the phone's in, then another order stops counting. Its dates are recomputed from the timeline, where the
    removed order's line is on both profiles at the same version: the merged one's still counted it."""
    shopper = Shopper(2, None, "+12025550002", "anon-2", None)
    by_phone = order("2-2", email=None, phone=shopper.phone, created_at=BASE, total=Decimal("0.00"))
    browsed = order("2-0", email=None, phone=shopper.phone, created_at=BASE + timedelta(minutes=1),
                    total=Decimal("0.00")).model_copy(update={"anonymous_id": shopper.anonymous_id})
    placed = order("2-1", email=None, phone=shopper.phone, created_at=BASE, updated_at=BASE + timedelta(minutes=1),
                   total=Decimal("0.00"))
    cancelled = order("2-1", email=None, phone=shopper.phone, created_at=BASE,
                      updated_at=BASE + timedelta(minutes=2), total=Decimal("0.00")).model_copy(
                          update={"cancelled_at": BASE})
    removal = OrderRemoved(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, order_id="2-2",
                           removed_at=BASE + timedelta(days=1))
    view = ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id="v-2-0",
                         type=ActivityType.PRODUCT_VIEWED, occurred_at=BASE, anonymous_id=shopper.anonymous_id)
    world = World((shopper,), (browsed, placed, cancelled, by_phone, removal, view),
                  {"2-0": Decimal("0.00"), "2-1": Decimal("0.00"), "2-2": Decimal("0.00")})
    return world, [view, by_phone, browsed, placed, removal, cancelled]


@settings(max_examples=120, deadline=None)
@given(delivered=deliveries(), kept=st.sampled_from((1, 2, 50)))
@example(delivered=_removed_after_a_merge(), kept=1)
def test_any_interleaving_with_duplicates_gives_the_in_order_profiles(
        delivered: tuple[World, list[CanonicalEvent]], kept: int) -> None:
    world, arrival = delivered
    every = list(world.events)

    with mock.patch.object(recent, "RECENT_KEPT", kept):
        in_order = _deliver(every)
        shuffled = _deliver(arrival)

    assert _people(shuffled) == _people(in_order)
    live = in_order.live_profiles()
    for profile in live:
        assert profile.recent is not None
        assert len(profile.recent.order_times()) == min(profile.orders_count, kept)
        assert {kind: len(times) for kind, times in profile.recent.activity_times().items()} == {
            kind: min(count, kept) for kind, count in profile.activity_counts.items()}
    assert sum((p.total_spent for p in live), Decimal("0.00")) == sum(world.net_by_order.values(), Decimal("0.00"))


def test_an_order_removed_after_its_profile_merged_stops_counting_in_the_dates_recomputed_later() -> None:
    """The removal rewrites the order's line on the survivor at the same version; the merged profile keeps the
    line that counted it. The dates recomputed when the other first order is cancelled must not count it."""
    _, arrival = _removed_after_a_merge()
    profile, = _deliver(arrival).live_profiles()
    placed = BASE + timedelta(minutes=1)  # the one order still counted
    assert (profile.orders_count, profile.first_order_at, profile.last_order_at) == (1, placed, placed)
    assert profile.merged_from  # the phone's profile was merged into the browser's


def test_of_an_orders_line_on_a_merged_profile_and_its_survivor_at_one_version_the_survivors_is_read() -> None:
    """A refund or a removal rewrites the line at the same version on the survivor, which has the smaller id:
    whichever order the copies are read in, the survivor's is kept (recomputed dates, the customer's timeline, a
    privacy export)."""
    def line(profile_id: str, counted: bool) -> TimelineEntry:
        return TimelineEntry(workspace_id=WS, profile_id=profile_id, store_id="st_a", occurred_at=BASE, type="order",
                             ref="st_a:2-2", summary={"version": "v1", "counted": counted, "net": "0.00"})
    merged, survivor = line("e-merged", counted=True), line("1-survivor", counted=False)
    for read in ([merged, survivor], [survivor, merged]):
        assert distinct_entries(read) == [survivor]
    newer = line("e-merged", counted=True).model_copy(update={"summary": {"version": "v2", "counted": True}})
    assert distinct_entries([survivor, newer]) == [newer]  # a newer version wins wherever it is


class Interrupted(Exception):
    """The invocation ended between two writes (a timeout, a crash): the queue delivers the message again."""


class InterruptibleRepository(FakeProfileRepository):
    """Writes a guard-last change one item at a time in DynamoProfileRepository's order (a new profile, or an
    order's, after its links, an existing activity's or account's before them, a merge's marked profiles, survivor
    and tombstones before them; lines unconditionally, each the marker of its activity, a fold's in one item; an
    account item or an order record last), and ends the invocation once ``writes_left`` writes are done."""

    writes_left: int | None = None

    def _spend(self) -> None:
        if self.writes_left is not None:
            if self.writes_left == 0:
                raise Interrupted
            self.writes_left -= 1

    def commit(self, change: Change) -> None:
        if not change.guard_last:
            self._spend()
            super().commit(change)
            return
        ws = change.workspace_id
        profiles = [Change(ws, profiles=(profile,)) for profile in (*change.merging, *change.profiles)]
        # A link that takes its identity's name writes that tombstone first (DynamoProfileRepository._link_puts).
        links = [step for link in change.identities for step in (
            *([Change(ws, profiles=((link.named_tombstone, None),))] if link.named_tombstone else []),
            Change(ws, identities=(replace(link, named_tombstone=None),)))]
        first_links = change.order is not None or any(revision is None for _, revision in change.profiles)
        for step in [*links, *profiles] if first_links else [*profiles, *links]:
            self._spend()
            super().commit(step)
        for group in line_groups(change.timeline) if change.folded else [(entry,) for entry in change.timeline]:
            self._spend()
            self.put_line_item(ws, group)
        if change.customer is not None:
            self._spend()
            super().commit(Change(ws, customer=change.customer))
        if change.order is not None:
            self._spend()
            super().commit(Change(ws, order=change.order))


@settings(max_examples=120, deadline=None)
@given(data=st.data(), world=worlds())
def test_writes_interrupted_anywhere_and_delivered_again_later_give_the_uninterrupted_profiles(
        data: st.DataObject, world: World) -> None:
    """Messages of one to three events (a /track request's activities fold into one write); each delivery may
    end after any of its writes, and the queue delivers the message again, maybe after others. A change of an
    order whose earlier change was counted on its profile but whose record is not written yet waits: the queue
    delivers it again after the others."""
    _deliver_interrupted(data, world)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), world=merging_worlds())
def test_merges_interrupted_anywhere_are_finished_by_whoever_comes_next(data: st.DataObject, world: World) -> None:
    """An identify's merge written guard last (crm.changes._merge_guard_last) ended after any of its writes: the
    identify delivered again, another identify of the same browser, a view of it, an order naming it or a
    checkout under the email finishes it, each counted once, and the profiles equal in-order delivery's."""
    _deliver_interrupted(data, world)


def _deliver_interrupted(data: st.DataObject, world: World,
                         repository: InterruptibleRepository | None = None) -> None:
    arrival = list(data.draw(st.permutations(world.events), label="arrival"))
    queue: list[list[CanonicalEvent]] = []
    while arrival:
        size = data.draw(st.integers(1, 3), label="events in the message")
        queue.append(arrival[:size])
        arrival = arrival[size:]
    repository = repository or InterruptibleRepository()
    step = 0
    while queue:
        message = queue.pop(0)
        repository.writes_left = data.draw(st.none() | st.integers(0, 5), label="writes before the end")
        try:
            apply_events(repository, message, NOW + timedelta(seconds=step))
        except Interrupted:
            queue.insert(data.draw(st.integers(0, len(queue)), label="delivered again at"), message)
        except OrderWriteUnfinished:
            queue.append(message)
        step += 1
    repository.writes_left = None
    assert _people(repository) == _people(_deliver(list(world.events)))
    records = {order_ref(store_id, order_id): record for (_, store_id, order_id), record in repository.orders.items()}
    for profile in repository.live_profiles():  # every order write finished: each record is at the state counted
        assert {ref: held.state for ref, held in profile.unwritten_orders.items()} == {
            ref: order_state(records[ref]) for ref in profile.unwritten_orders}


def _view(number: int, anonymous_id: str = "a-new") -> ActivityEvent:
    return ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=f"nv-{number}",
                         type=ActivityType.PRODUCT_VIEWED, occurred_at=NOW + timedelta(minutes=number),
                         anonymous_id=anonymous_id)


def test_a_new_browsers_request_ended_after_any_write_and_delivered_again_counts_each_view_once() -> None:
    """The identity link of a new profile is written before the profile: a retry that finds the link and no
    profile plans the profile anew, with every view of the request on it."""
    views = [_view(0), _view(1)]
    for writes in range(6):
        repository = InterruptibleRepository()
        repository.writes_left = writes
        try:
            apply_events(repository, views, NOW)
        except Interrupted:
            repository.writes_left = None
            apply_events(repository, views, NOW + timedelta(seconds=1))
        assert _people(repository) == _people(_deliver(list(views))), f"ended after {writes} writes"


def _request_of(draw: st.DrawFn, name: str, size: int, anonymous_id: str) -> list[CanonicalEvent]:
    """A /track request's activities of one browser, some minutes apart (a group holds a span of LINES_SPAN)."""
    at = BASE
    events: list[CanonicalEvent] = []
    for number in range(size):
        at += timedelta(minutes=draw(st.integers(0, 12), label="minutes since the last"))
        kind = draw(st.sampled_from((ActivityType.PRODUCT_VIEWED, ActivityType.PAGE_VIEWED,
                                     ActivityType.PRODUCT_ADDED_TO_CART)), label="activity")
        events.append(ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY,
                                    event_id=f"{name}-{number}", type=kind, occurred_at=at, anonymous_id=anonymous_id))
    return events


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_browsers_requests_ended_after_any_write_and_delivered_again_hold_each_line_in_one_item(
        data: st.DataObject) -> None:
    """A browser's /track requests (their lines written as one item a profile, split by time), an identify that
    merges the browser into a shopper's profile, and a checkout, each delivery ended after any write and delivered
    again later, in any order: the profile is the uninterrupted one's, and each activity's line is held by exactly
    one item of the shopper's partitions, however differently a retry split its request into writes. (At most 10
    activities with digests in all: past that, a view whose write ended before its line may be counted twice, the
    digests' documented limit, docs/profile-writes.md.)"""
    messages: list[list[CanonicalEvent]] = [
        _request_of(data.draw, "a", data.draw(st.integers(2, 5), label="views in a"), "anon-r"),
        _request_of(data.draw, "b", data.draw(st.integers(1, 4), label="views in b"), "anon-r")]
    if data.draw(st.booleans(), label="identified"):
        messages.append([ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id="id-r",
                                       type=ActivityType.IDENTIFY, occurred_at=BASE, anonymous_id="anon-r",
                                       email="r@example.com")])
        messages.append([ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id="co-r",
                                       type=ActivityType.CHECKOUT_STARTED, occurred_at=BASE + timedelta(minutes=1),
                                       email="r@example.com", checkout_token="tok-r")])
    every = [event for message in messages for event in message]
    queue = list(data.draw(st.permutations(messages), label="arrival"))
    repository = InterruptibleRepository()
    step = 0
    while queue:
        message = queue.pop(0)
        repository.writes_left = data.draw(st.none() | st.integers(0, 4), label="writes before the end")
        try:
            apply_events(repository, message, NOW + timedelta(seconds=step))
        except Interrupted:
            queue.insert(data.draw(st.integers(0, len(queue)), label="delivered again at"), message)
        step += 1
    repository.writes_left = None
    assert _people(repository) == _people(_deliver(every))
    held = [event for items in repository.line_items.values() for events in items.values() for event in events]
    assert sorted(held) == sorted(("st_a", event.event_id) for event in every if isinstance(event, ActivityEvent))


def test_a_request_delivered_again_whose_first_write_took_one_event_alone_holds_each_line_once() -> None:
    """A request of 12 views whose first carries a consent statement (a transaction, written alone): its runs are
    the first 10 and the last 2 whatever the first write took, so a delivery again finds the group of views 1-9
    (keyed by view 1) from the first run and writes no line again (were the next run to begin after the first
    write, at view 1, it would hold views 1-10, and a delivery again would read view 10's key alone)."""
    subscribe = (Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="track:subscribe", at=BASE),)
    views = [_view(n, "anon-c").model_copy(update={"occurred_at": BASE + timedelta(seconds=n),
                                                   "consents": subscribe if n == 0 else ()}) for n in range(12)]
    repository = FakeProfileRepository()
    assert apply_events(repository, views, NOW).applied == 12
    assert apply_events(repository, views, NOW + timedelta(seconds=1)).applied == 0
    held = [event for items in repository.line_items.values() for events in items.values() for event in events]
    assert sorted(held) == sorted(("st_a", view.event_id) for view in views)
    [profile] = repository.live_profiles()
    assert profile.activity_counts == {"product_viewed": 12}
    assert len(repository.line_items[(WS, profile.profile_id)]) == 4  # view 0, its consent, views 1-9, views 10-11
