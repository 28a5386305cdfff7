"""Eventually consistent reads by property (docs/profile-writes.md, "What is read, and how consistently"): the
first read of an event sees each identity and profile as any earlier write left it (or absent), the order and
account records and the activities' lines as they are; a refused write, a plan that writes nothing, or a profile
read at newer currency settings than those read is read again consistently. Whatever the reads show, the
profiles come out as in-order, consistent, uninterrupted delivery's: counted once, nothing dropped."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

from crm.ingestion import apply_event, apply_events
from crm.models.canonical import ActivityEvent, ActivityType, CanonicalEvent
from crm.models.currency import CurrencySettings
from crm.models.profile import Profile
from crm.models.stores import Platform
from crm.ports import Change, Context, Reads
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW, order
from tests.unit.test_identity_properties import (
    WS,
    InterruptibleRepository,
    World,
    _deliver,
    _deliver_interrupted,
    _people,
    deliveries,
    merging_worlds,
    worlds,
)

Key = TypeVar("Key")
Value = TypeVar("Value")


class StaleReads(InterruptibleRepository):
    """An eventually consistent read (``Reads.consistent`` False) sees each identity, each profile and the
    currency settings at a version ``pick`` chooses among those the fake held since it was first written (absent
    before that), each item on its own; a profile absent there is read again as it is, as the adapter does
    (DynamoProfileRepository._profile_items). Records and lines are read as they are."""

    def __init__(self, pick: Callable[[str, int], int]) -> None:
        super().__init__()
        self.pick = pick  # given the item's kind and how many versions it had, which one a stale read sees
        self.past_profiles: dict[tuple[str, str], list[Profile | None]] = {}
        self.past_identities: dict[tuple[str, str], list[str | None]] = {}
        self.past_currency: dict[str, list[CurrencySettings | None]] = {}
        self.stale_loads = 0

    def _remember(self) -> None:
        for past, now in ((self.past_profiles, self.profiles), (self.past_identities, self.identities),
                          (self.past_currency, self.currency)):  # the versions each item held, oldest first
            for key in {*past, *now}:
                versions = past.setdefault(key, [None])  # type: ignore[attr-defined]
                if versions[-1] != now.get(key):  # type: ignore[attr-defined]
                    versions.append(now.get(key))  # type: ignore[attr-defined]

    def _seen(self, kind: str, past: dict[Key, list[Value | None]]) -> dict[Key, Value]:
        chosen = {key: versions[self.pick(kind, len(versions))] for key, versions in past.items()}
        return {key: value for key, value in chosen.items() if value is not None}

    def commit(self, change: Change) -> None:
        try:
            super().commit(change)
        finally:
            self._remember()

    def load(self, reads: Reads) -> Context:
        self._remember()
        if reads.consistent:
            return super().load(reads)
        with self._lock:
            held = self.profiles, self.identities, self.currency
            self.profiles = self._seen("profile", self.past_profiles)
            self.profiles.update({key: held[0][key] for key in held[0] if key not in self.profiles})
            self.identities = self._seen("identity", self.past_identities)
            self.currency = self._seen("currency", self.past_currency)
            self.stale_loads += 1
            try:
                context = super().load(reads)
                named = {*context.pointers.values(), *(record.profile_id for record in (context.order, context.customer)
                                                       if record is not None and record.profile_id)}
                dangling = any(self._live(reads.workspace_id, pid) is None for pid in named)
            finally:
                self.profiles, self.identities, self.currency = held
        if dangling and not context.already_held:  # as the adapter does: a profile named is not there
            return super().load(replace(reads, consistent=True))
        return context


def _any_version(rng: random.Random) -> Callable[[str, int], int]:
    """Half the reads see the latest version, the rest any earlier one."""
    return lambda kind, versions: versions - 1 if rng.random() < 0.5 else rng.randrange(versions)


@settings(max_examples=120, deadline=None)
@given(delivered=deliveries(), rng=st.randoms(use_true_random=False))
def test_stale_reads_of_any_interleaving_with_duplicates_give_the_in_order_profiles(
        delivered: tuple[World, list[CanonicalEvent]], rng: random.Random) -> None:
    world, arrival = delivered
    repository = StaleReads(_any_version(rng))
    for step, event in enumerate(arrival):
        apply_event(repository, event, NOW + timedelta(seconds=step))
    assert _people(repository) == _people(_deliver(list(world.events)))
    assert repository.stale_loads >= len(arrival)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), world=worlds(), rng=st.randoms(use_true_random=False))
def test_stale_reads_and_writes_interrupted_anywhere_give_the_uninterrupted_profiles(
        data: st.DataObject, world: World, rng: random.Random) -> None:
    _deliver_interrupted(data, world, StaleReads(_any_version(rng)))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), world=merging_worlds(), rng=st.randoms(use_true_random=False))
def test_stale_reads_of_merges_interrupted_anywhere_give_the_uninterrupted_profiles(
        data: st.DataObject, world: World, rng: random.Random) -> None:
    _deliver_interrupted(data, world, StaleReads(_any_version(rng)))


def _first_written(kind: str, versions: int) -> int:
    return min(1, versions - 1)


def test_a_duplicate_view_read_stale_finds_its_line_and_counts_once() -> None:
    """Every identity and profile read at its first version: the line, read consistently, says a view delivered
    again is applied; a new view planned on the profile's first version is refused by its guard and read again."""
    views = [ActivityEvent(workspace_id=WS, store_id="st_a", platform=Platform.SHOPIFY, event_id=f"sv-{n}",
                           type=ActivityType.PRODUCT_VIEWED, occurred_at=NOW + timedelta(minutes=n),
                           anonymous_id="a-stale") for n in range(3)]
    repository = StaleReads(_first_written)
    for view in [*views, *views, views[0]]:
        apply_events(repository, [view], NOW)
    (profile,) = repository.live_profiles()
    assert profile.activity_counts == {"product_viewed": 3}
    assert repository.conflicts == 1  # the third view, planned on the profile as the first left it


def test_a_profile_at_newer_currency_settings_than_read_is_read_again() -> None:
    """Settings read stale (absent) while the profile states its figures at version 1: derived at no settings they
    would replace the right ones unguarded, so the event is read again and derived at version 1."""
    repository = StaleReads(lambda kind, versions: 0 if kind == "currency" else versions - 1)
    repository.currency[WS] = CurrencySettings(workspace_id=WS, reporting_currency="EUR", rates={"USD": Decimal("0.5")},
                                               version=1)
    first = order("o-1", total=Decimal("10.00"))
    apply_event(repository, first, NOW, consistent=True)
    second = order("o-2", total=Decimal("30.00"), created_at=first.created_at + timedelta(days=1))
    stale = repository.stale_loads
    assert apply_event(repository, second, NOW + timedelta(seconds=1))
    assert repository.stale_loads == stale + 1  # read once eventually consistent, then consistently
    (profile,) = repository.live_profiles()
    assert (profile.currency, profile.total_spent, profile.currency_settings_version) == ("EUR", Decimal("20.00"), 1)
