"""The flow catalogue (and the A/B winners, ``HeldWinners``; the messaging settings and templates,
``MessagingCache``) as the flows function reads them: once per workspace per short while, not once per event.

Every bus event of a workspace that ever saved a flow used to Query the workspace's flows first. A container
now holds a workspace's listing for ``ttl`` seconds (``HeldCatalogue``), which is safe because:

- a flow paused, or changed, is read again (``get_flow``, strongly consistent) before a run of it starts
  (crm.flows.service ``_start``), and a wake-up always reads its flow: a paused flow never starts a run late;
- a listing with no saved flow is never held: a workspace's first flow is seen by the very next event;
- the marketer API's writes in the same container forget the workspace's listing at once.

What a held listing can delay, by at most ``ttl``: a second flow going live in a workspace that already has
one (its first triggers in that while start nothing), and a changed definition's exits and waits reaching the
runs it already has (the engine checks the profile's exit facts again before every step, crm.flows.engine
``exit_from_profile``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from crm import clock
from crm.flows.actions import FlowEvent
from crm.flows.definition import walk_steps
from crm.flows.engine import triggers
from crm.flows.ports import FlowCatalogue, MessagingStore, SplitWinners
from crm.models.flows import FlowDefinition, FlowRecord, FlowStatus, SegmentTrigger, WaitForEvent
from crm.models.messaging import MessagingSettings, TemplateRecord

T = TypeVar("T")
# Long enough that a busy store's events share one listing, short enough that a marketer who turns a second
# flow on sees it work within the minute.
HELD_FOR_SECONDS = 30.0
# Bounds what a container holds (a listing is a few KB): the least recently listed workspaces go first.
MAX_WORKSPACES = 2_000


def ever_saved(flows: Iterable[FlowRecord]) -> bool:
    """A workspace that never saved a flow has only built-in drafts (version 0): no run, no message of a flow
    can exist there, so its events and orders need nothing more read."""
    return any(flow.version > 0 for flow in flows)


def event_types(definition: FlowDefinition) -> frozenset[str]:
    """The bus events a flow reacts to: its trigger (or its segment's entry or exit), its exits, and the events
    its wait_for steps wait for. A run also exits when its trigger's kind comes again (superseded)."""
    trigger = definition.trigger
    if isinstance(trigger, SegmentTrigger):
        kinds = {"SegmentEntered" if trigger.on == "entered" else "SegmentExited"}
    else:
        kinds = {trigger.event}
    return frozenset(kinds) | ends_or_resumes(definition)


def ends_or_resumes(definition: FlowDefinition) -> frozenset[str]:
    """The bus events that may end or resume a run under way: its exits (the trigger's own kind among them
    supersedes) and the events its wait_for steps wait for."""
    kinds = {exit_event.event for exit_event in definition.exits}
    kinds |= {step.event for _, step in walk_steps(definition.steps) if isinstance(step, WaitForEvent)}
    return frozenset(kinds)


def hears(flows: Iterable[FlowRecord], event: FlowEvent) -> bool:
    """Whether any saved flow may start, end or resume a run on ``event``. A start is decided on the event
    alone: a live flow whose trigger it is (its type and filter, or entering or leaving its very segment),
    since a trigger's filter cannot refer to a run. An exit or a wait_for may refer to the run's trigger, so
    only its type can be checked before the runs are read; a draft's runs go on, so its exits and waits count.
    Built-ins never saved start nothing and hold no runs."""
    return any((flow.status is FlowStatus.LIVE and triggers(flow.definition, event))
               or event.type in ends_or_resumes(flow.definition) for flow in flows if flow.version > 0)


@dataclass
class _Listing:
    flows: list[FlowRecord]
    read_at: float


@dataclass
class CatalogueCache:
    """A FlowCatalogue for the marketer API (every read fresh; a write forgets the workspace's held listing)
    whose ``held()`` view is what the flows function reads."""

    source: FlowCatalogue
    ttl: float = HELD_FOR_SECONDS
    monotonic: Callable[[], float] = time.monotonic
    _listings: dict[str, _Listing] = field(default_factory=dict, init=False, repr=False)

    def list_flows(self, workspace_id: str) -> list[FlowRecord]:
        return self.source.list_flows(workspace_id)

    def get_flow(self, workspace_id: str, flow_id: str) -> FlowRecord | None:
        return self.source.get_flow(workspace_id, flow_id)

    def put_flow(self, record: FlowRecord, expected_version: int | None) -> None:
        self._listings.pop(record.workspace_id, None)
        self.source.put_flow(record, expected_version)

    def delete_flow(self, workspace_id: str, flow_id: str) -> bool:
        self._listings.pop(workspace_id, None)
        return self.source.delete_flow(workspace_id, flow_id)

    def held_list(self, workspace_id: str) -> list[FlowRecord]:
        now = self.monotonic()
        listing = self._listings.get(workspace_id)
        if listing is not None and now - listing.read_at < self.ttl:
            return listing.flows
        flows = self.source.list_flows(workspace_id)
        self._listings.pop(workspace_id, None)
        if ever_saved(flows):
            if len(self._listings) >= MAX_WORKSPACES:
                del self._listings[next(iter(self._listings))]
            self._listings[workspace_id] = _Listing(flows, now)
        return flows

    def held(self) -> HeldCatalogue:
        return HeldCatalogue(self)


@dataclass(frozen=True)
class HeldCatalogue:
    """The flows function's FlowCatalogue: listings held (CatalogueCache), single flows read fresh."""

    cache: CatalogueCache

    def list_flows(self, workspace_id: str) -> list[FlowRecord]:
        return self.cache.held_list(workspace_id)

    def get_flow(self, workspace_id: str, flow_id: str) -> FlowRecord | None:
        return self.cache.get_flow(workspace_id, flow_id)

    def put_flow(self, record: FlowRecord, expected_version: int | None) -> None:
        self.cache.put_flow(record, expected_version)

    def delete_flow(self, workspace_id: str, flow_id: str) -> bool:
        return self.cache.delete_flow(workspace_id, flow_id)


@dataclass
class _Winners:
    paths: dict[str, int]
    read_at: float


@dataclass
class HeldWinners:
    """The flows function's SplitWinners: a flow's A/B winners held ``ttl`` seconds per container, and a split
    without one checked against the counters at most once per ``ttl`` (every run at the split used to read the
    winners and, until a winner existed, every day's counters of the flow). Safe: a winner is stored once and
    never changes (``decide`` answers the stored one, whoever decided first), and until it is decided a run
    takes a random path, so deciding up to ``ttl`` later only sends a few more runs down a random path."""

    source: SplitWinners
    ttl: float = HELD_FOR_SECONDS
    # The injected clock, not the container's: a split is checked again once ``ttl`` has passed for the flows
    # (a fast-forwarded local runtime, a backtest), as it is decided by their time.
    monotonic: Callable[[], float] = field(default=lambda: clock.utc_now().timestamp())
    _held: dict[tuple[str, str], _Winners] = field(default_factory=dict, init=False, repr=False)
    _checked: dict[tuple[str, str, str], float] = field(default_factory=dict, init=False, repr=False)

    def winners(self, workspace_id: str, flow_id: str) -> dict[str, int]:
        now, key = self.monotonic(), (workspace_id, flow_id)
        held = self._held.get(key)
        if held is None or now - held.read_at >= self.ttl:
            if len(self._held) >= MAX_WORKSPACES:
                del self._held[next(iter(self._held))]
            held = self._held[key] = _Winners(self.source.winners(workspace_id, flow_id), now)
        return dict(held.paths)

    def decide(self, workspace_id: str, flow_id: str, split_id: str, path: int, at: datetime) -> int:
        stored = self.source.decide(workspace_id, flow_id, split_id, path, at)
        held = self._held.get((workspace_id, flow_id))
        if held is not None:
            held.paths[split_id] = stored
        return stored

    def due_for_check(self, workspace_id: str, flow_id: str, split_id: str) -> bool:
        now, key = self.monotonic(), (workspace_id, flow_id, split_id)
        last = self._checked.get(key)
        if last is not None and now - last < self.ttl:
            return False
        if len(self._checked) >= MAX_WORKSPACES:
            del self._checked[next(iter(self._checked))]
        self._checked[key] = now
        return True


@dataclass
class _Held(Generic[T]):
    value: T
    read_at: float


@dataclass
class MessagingCache:
    """A MessagingStore for the marketer API (every read fresh; a write forgets what is held of the workspace)
    whose ``held()`` view is what the flows function reads: a workspace's messaging settings and each template
    held ``ttl`` seconds per container. Every run that started or woke read the settings (and every send its
    template) afresh, a read unit each, for what a marketer changes a few times a year. What holding can
    delay, by at most ``ttl`` in another container: a new sender, postal address, quiet hours or Smart Sending
    window, or a template's new text, reaching the sends (the flows' own checks, consent and suppression, are
    read afresh for every send). Settings with no sender and a template not found are not held: a workspace
    setting up its first sender or template is read afresh until it has them, so its first sends are not held
    back."""

    source: MessagingStore
    ttl: float = HELD_FOR_SECONDS
    monotonic: Callable[[], float] = time.monotonic
    _settings: dict[str, _Held[MessagingSettings]] = field(default_factory=dict, init=False, repr=False)
    _templates: dict[tuple[str, str], _Held[TemplateRecord | None]] = field(default_factory=dict, init=False,
                                                                             repr=False)

    def messaging_settings(self, workspace_id: str) -> MessagingSettings:
        return self.source.messaging_settings(workspace_id)

    def put_messaging_settings(self, workspace_id: str, settings: MessagingSettings) -> None:
        self._forget(workspace_id)
        self.source.put_messaging_settings(workspace_id, settings)

    def list_templates(self, workspace_id: str) -> list[TemplateRecord]:
        return list(self.source.list_templates(workspace_id))

    def get_template(self, workspace_id: str, template_id: str) -> TemplateRecord | None:
        return self.source.get_template(workspace_id, template_id)

    def put_template(self, record: TemplateRecord) -> None:
        self._forget(record.workspace_id)
        self.source.put_template(record)

    def delete_template(self, workspace_id: str, template_id: str) -> bool:
        self._forget(workspace_id)
        return self.source.delete_template(workspace_id, template_id)

    def _forget(self, workspace_id: str) -> None:
        self._settings.pop(workspace_id, None)
        for key in [key for key in self._templates if key[0] == workspace_id]:
            del self._templates[key]

    def held_settings(self, workspace_id: str) -> MessagingSettings:
        now, held = self.monotonic(), self._settings.get(workspace_id)
        if held is None or now - held.read_at >= self.ttl:
            if len(self._settings) >= MAX_WORKSPACES:
                del self._settings[next(iter(self._settings))]
            settings = self.source.messaging_settings(workspace_id)
            if settings.from_address is None and settings.sms_sender is None:
                return settings
            held = self._settings[workspace_id] = _Held(settings, now)
        return held.value

    def held_template(self, workspace_id: str, template_id: str) -> TemplateRecord | None:
        now, key = self.monotonic(), (workspace_id, template_id)
        held = self._templates.get(key)
        if held is None or now - held.read_at >= self.ttl:
            if len(self._templates) >= MAX_WORKSPACES:
                del self._templates[next(iter(self._templates))]
            record = self.source.get_template(workspace_id, template_id)
            if record is None:
                return None
            held = self._templates[key] = _Held(record, now)
        return held.value

    def held(self) -> HeldMessaging:
        return HeldMessaging(self)


@dataclass(frozen=True)
class HeldMessaging:
    """The flows function's MessagingStore: settings and templates held (MessagingCache), writes passed on."""

    cache: MessagingCache

    def messaging_settings(self, workspace_id: str) -> MessagingSettings:
        return self.cache.held_settings(workspace_id)

    def put_messaging_settings(self, workspace_id: str, settings: MessagingSettings) -> None:
        self.cache.put_messaging_settings(workspace_id, settings)

    def list_templates(self, workspace_id: str) -> list[TemplateRecord]:
        return self.cache.list_templates(workspace_id)

    def get_template(self, workspace_id: str, template_id: str) -> TemplateRecord | None:
        return self.cache.held_template(workspace_id, template_id)

    def put_template(self, record: TemplateRecord) -> None:
        self.cache.put_template(record)

    def delete_template(self, workspace_id: str, template_id: str) -> bool:
        return self.cache.delete_template(workspace_id, template_id)
