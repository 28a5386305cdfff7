"""A history for a backtest (crm.flows.simulate): bus events in time order, each with the profile as it stood.

``profile_after`` is what an event changes of what flows read of a profile: an order placed (``last_order_at``,
``first_order_at``, ``orders_count``), a checkout (``last_checkout``), a product view (``last_browse``), a consent
change (``consents``). ``scripted_history`` applies it event after event to a starting profile (``crm flows
test``).

``workspace_history`` rebuilds a real workspace's last days from what it stores, through the workspace index
(SegmentStore.profiles_with_segments: this workspace's profiles and the segments each is in, no Scan) and each
profile's timeline (ProfileRepository.timeline: one Query per profile, newest first, until the period's start):

- the events: the timeline lines the outbox turned into flow events when they were written (checkouts, product
  views of a reachable shopper, fulfilments, consent changes: crm.outbox.timeline_line_events), the orders
  (``order`` lines, as OrderPlaced: total, currency, paid), and, for a flow a segment triggers, the segment's
  current members who entered it in the period (SegmentEntered at their ``entered_at``).
- rebuilt as they stood at each event: the fields ``profile_after`` names, rolled back to the period's start
  (a consent changed in the period starts from the first change's old state; ``last_checkout``/``last_browse``
  from before the period are dropped; the last order before the period from the profile's recent order times),
  then carried forward event by event.
- current, not rebuilt: everything else (addresses, names, tags, spend, products, the segments the profile is
  in: a trigger segment entered after the event is left out), so a profile filter on them reads today's value.
- not replayed: merges (a merged profile's lines are read with its survivor's, as the survivor's events), double
  opt-in requests, members who left a trigger segment since (membership keeps no history), and bus events no
  line records (ContactCreated, CustomerCreated).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from crm.flows.engine import FlowEvent
from crm.flows.simulate import HistoryEvent
from crm.models.consent import Consent, ConsentState
from crm.models.flows import FlowDefinition, SegmentTrigger
from crm.models.profile import Activity, Profile, TimelineEntry
from crm.models.segments import HeldSegments, Member
from crm.outbox import timeline_line_events

_PAGE = 200  # timeline lines per Query
_MEMBERS_PAGE = 500


def profile_after(profile: Profile, event: FlowEvent) -> Profile:
    """The profile once ``event`` was applied, for the fields flows read of it (this module's docstring)."""
    detail, at = event.detail, event.occurred_at
    update: dict[str, Any] = {}
    if event.type == "OrderPlaced" and detail.get("paid") is not False:
        update = {"last_order_at": max(profile.last_order_at or at, at), "orders_count": profile.orders_count + 1,
                  "first_order_at": min(profile.first_order_at or at, at)}
    elif event.type in ("CheckoutStarted", "ProductViewed"):
        name, kind = (("last_checkout", "checkout_started") if event.type == "CheckoutStarted"
                      else ("last_browse", "product_viewed"))
        held: Activity | None = getattr(profile, name)
        if held is None or held.at <= at:
            update = {name: Activity(at=at, event_id=event.event_id, type=kind)}
    elif event.type == "ConsentChanged":
        channel = str(detail.get("channel"))
        consent = profile.consents.get(channel)
        if consent is None or consent.at <= at:
            stated = Consent(channel=channel, state=ConsentState(detail["new_state"]),
                             source=str(detail.get("source") or "history"), at=at)
            update = {"consents": {**profile.consents, channel: stated}}
    return profile.model_copy(update=update) if update else profile


def scripted_history(profile: Profile, events: Iterable[FlowEvent],
                     segments: frozenset[str] = frozenset()) -> list[HistoryEvent]:
    """Each event with the profile carried forward from ``profile`` (events sorted by time, stably)."""
    history = []
    for event in sorted(events, key=lambda e: e.occurred_at):
        profile = profile_after(profile, event)
        history.append(HistoryEvent(event=event, profile=profile, segments=segments))
    return history


# ---- a workspace's history ----------------------------------------------------------------------------------


class Timelines(Protocol):
    """crm.ports.ProfileRepository is one."""

    def timeline(self, workspace_id: str, profile_ids: Sequence[str], before: str | None,
                 limit: int) -> list[TimelineEntry]: ...


class WorkspaceSegments(Protocol):
    """crm.ports.SegmentStore is one."""

    def profiles_with_segments(self, workspace_id: str, share: int = 0,
                               shares: int = 1) -> Iterator[tuple[Profile, HeldSegments]]: ...
    def members(self, workspace_id: str, segment_id: str, after: str | None, limit: int) -> list[Member]: ...


def lines_since(reads: Timelines, profile: Profile, start: datetime) -> list[TimelineEntry]:
    """The profile's timeline lines (and those of profiles merged into it) at or after ``start``, oldest first."""
    lines: list[TimelineEntry] = []
    before: str | None = None
    ids = (profile.profile_id, *profile.merged_from)
    while True:
        page = reads.timeline(profile.workspace_id, ids, before, _PAGE)
        lines += [line for line in page if line.occurred_at >= start]
        if len(page) < _PAGE or page[-1].occurred_at < start:
            break
        before = page[-1].sort_key
    lines.sort(key=lambda line: (line.occurred_at, line.sort_key))
    return lines


def line_events(line: TimelineEntry) -> list[FlowEvent]:
    """The flow events a timeline line stands for: the outbox's, and an order line's OrderPlaced."""
    if line.type == "order":
        summary = line.summary
        store_id = line.store_id or ""
        order_id = line.ref[len(store_id) + 1:] if line.ref.startswith(f"{store_id}:") else line.ref
        detail = {"event_id": f"OrderPlaced:{line.workspace_id}:{store_id}:{order_id}",
                  "workspace_id": line.workspace_id, "profile_id": line.profile_id,
                  "occurred_at": line.occurred_at.isoformat(), "type": "OrderPlaced", "store_id": store_id,
                  "order_id": order_id, "currency": summary.get("currency") or "",
                  "total_price": str(summary.get("total") or "0.00"), "net_total": str(summary.get("net") or "0.00"),
                  "paid": not summary.get("unpaid"), "order_number": summary.get("number")}
        return [FlowEvent.of("OrderPlaced", detail)]
    return [FlowEvent.of(event.type, event.model_dump(mode="json"))
            for event in timeline_line_events(line)]


def profile_at(current: Profile, lines: Sequence[TimelineEntry], start: datetime) -> Profile:
    """``current`` rolled back to ``start`` for the fields ``profile_after`` carries forward (``lines``: the
    profile's lines at or after ``start``, oldest first)."""
    consents = dict(current.consents)
    for channel in {str(line.summary.get("channel")) for line in lines if line.type == "consent_changed"}:
        first = next(line for line in lines if line.type == "consent_changed"
                     and str(line.summary.get("channel")) == channel)
        old = first.summary.get("old")
        if old:
            consents[channel] = Consent(channel=channel, state=ConsentState(old),
                                        source="history", at=first.occurred_at)
        else:
            consents.pop(channel, None)
    counted_since = sum(1 for line in lines if line.type == "order" and line.summary.get("counted"))
    earlier = [moment for moment in _order_times(current) if moment < start]
    return current.model_copy(update={
        "consents": consents, "orders_count": max(current.orders_count - counted_since, 0),
        "last_order_at": max(earlier) if earlier else None,
        "first_order_at": current.first_order_at if current.first_order_at and current.first_order_at < start
        else None,
        "last_checkout": _before(current.last_checkout, start), "last_browse": _before(current.last_browse, start)})


def _order_times(profile: Profile) -> list[datetime]:
    times = [datetime.fromtimestamp(micros / 1_000_000, UTC) for micros in
             (profile.recent.order_times() if profile.recent else ())]
    if profile.first_order_at is not None:
        times.append(profile.first_order_at)
    return times


def _before(activity: Activity | None, start: datetime) -> Activity | None:
    return activity if activity is not None and activity.at < start else None


def workspace_history(reads: Timelines, segments: WorkspaceSegments, workspace_id: str, definition: FlowDefinition,
                      start: datetime, end: datetime, *, out_of_time: Callable[[], bool] = lambda: False
                      ) -> tuple[list[HistoryEvent], int, bool]:
    """The workspace's history in ``[start, end)`` (this module's docstring), in time order; with how many
    profiles were read and whether all were (``out_of_time`` asked between profiles)."""
    entered = _segment_entries(segments, workspace_id, definition, start, end)
    trigger = definition.trigger.segment_id if isinstance(definition.trigger, SegmentTrigger) else None
    history: list[HistoryEvent] = []
    read = 0
    for current, held_segments in segments.profiles_with_segments(workspace_id):
        if current.merged_into is not None:
            continue  # its lines are read with its survivor's
        if out_of_time():
            return _in_order(history), read, False
        read += 1
        lines = lines_since(reads, current, start)
        events = [_as_survivor(event, current.profile_id)
                  for line in lines if line.occurred_at < end for event in line_events(line)]
        joined = entered.get(current.profile_id)
        if joined is not None:
            events.append(FlowEvent.of("SegmentEntered", {
                "event_id": f"SegmentEntered:{workspace_id}:{trigger}:{current.profile_id}:{joined.isoformat()}",
                "workspace_id": workspace_id, "profile_id": current.profile_id, "occurred_at": joined.isoformat(),
                "segment_id": trigger}))
        if not events:
            continue
        profile = profile_at(current, lines, start)
        held = frozenset(held_segments.segment_ids)
        for event in sorted(events, key=lambda e: e.occurred_at):
            profile = profile_after(profile, event)
            stood = held if joined is None or event.occurred_at >= joined else held - {trigger}
            history.append(HistoryEvent(event=event, profile=profile, segments=stood))
    return _in_order(history), read, True


def _as_survivor(event: FlowEvent, profile_id: str) -> FlowEvent:
    """A line of a profile merged since is replayed as the survivor's (its runs would have moved there)."""
    if event.profile_id == profile_id:
        return event
    return event.model_copy(update={"profile_id": profile_id, "detail": {**event.detail, "profile_id": profile_id}})


def _in_order(history: list[HistoryEvent]) -> list[HistoryEvent]:
    return sorted(history, key=lambda h: (h.event.occurred_at, h.event.event_id))


def _segment_entries(members: WorkspaceSegments, workspace_id: str, definition: FlowDefinition, start: datetime,
                     end: datetime) -> dict[str, datetime]:
    trigger = definition.trigger
    if not isinstance(trigger, SegmentTrigger) or trigger.on != "entered":
        return {}
    found: dict[str, datetime] = {}
    after: str | None = None
    while True:
        page = members.members(workspace_id, trigger.segment_id, after, _MEMBERS_PAGE)
        found.update({m.profile_id: m.entered_at for m in page if start <= m.entered_at < end})
        if len(page) < _MEMBERS_PAGE:
            return found
        after = page[-1].profile_id


__all__ = ["Timelines", "WorkspaceSegments", "line_events", "lines_since", "profile_after", "profile_at",
           "scripted_history", "workspace_history"]
