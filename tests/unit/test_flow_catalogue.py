"""The flows function's held catalogue (crm.flows.catalogue): what is held, for how long, and what is not."""

from __future__ import annotations

from crm.flows.actions import FlowEvent
from crm.flows.builtin import ABANDONED_CHECKOUT, BUILTIN_FLOWS, POST_PURCHASE, VIP, VIP_SEGMENT, WELCOME
from crm.flows.catalogue import CatalogueCache, HeldWinners, MessagingCache, event_types, hears
from crm.flows.memory import MemoryFlowCatalogue, MemoryMessagingStore, MemorySplitWinners
from crm.models.flows import FlowDefinition, FlowRecord, FlowStatus, SegmentTrigger
from crm.models.messaging import EmailTemplate, MessagingSettings, TemplateRecord

from tests.builders import NOW

WS = "ws1"


class CountingCatalogue(MemoryFlowCatalogue):
    def __init__(self, *flows: FlowRecord) -> None:
        super().__init__(*flows)
        self.listings = 0

    def list_flows(self, workspace_id: str) -> list[FlowRecord]:
        self.listings += 1
        return super().list_flows(workspace_id)


def flow(flow_id: str = ABANDONED_CHECKOUT, version: int = 1, definition: FlowDefinition | None = None) -> FlowRecord:
    return FlowRecord(workspace_id=WS, flow_id=flow_id, status=FlowStatus.LIVE, version=version,
                      definition=definition or BUILTIN_FLOWS[ABANDONED_CHECKOUT], created_at=NOW, updated_at=NOW)


class Clock:
    def __init__(self) -> None:
        self.at = 0.0

    def __call__(self) -> float:
        return self.at


def test_a_listing_with_a_saved_flow_is_held_for_the_ttl_then_read_again() -> None:
    source, clock = CountingCatalogue(flow()), Clock()
    held = CatalogueCache(source, ttl=30, monotonic=clock).held()
    for _ in range(5):
        assert [f.flow_id for f in held.list_flows(WS)] == [ABANDONED_CHECKOUT]
    assert source.listings == 1
    clock.at = 29.9
    held.list_flows(WS)
    assert source.listings == 1
    clock.at = 30.0
    held.list_flows(WS)
    assert source.listings == 2


def test_a_workspace_that_never_saved_a_flow_is_never_held_so_its_first_flow_counts_at_once() -> None:
    source = CountingCatalogue(flow(version=0))
    cache = CatalogueCache(source, ttl=30, monotonic=Clock())
    held = cache.held()
    held.list_flows(WS)
    held.list_flows(WS)
    assert source.listings == 2
    source.put_flow(flow(version=1), 0)
    assert [f.version for f in held.list_flows(WS)] == [1]


def test_a_write_through_the_api_forgets_the_held_listing_and_single_flows_are_read_fresh() -> None:
    source = CountingCatalogue(flow())
    cache = CatalogueCache(source, ttl=30, monotonic=Clock())
    held = cache.held()
    held.list_flows(WS)
    cache.put_flow(flow(POST_PURCHASE, definition=BUILTIN_FLOWS[POST_PURCHASE]), None)
    assert [f.flow_id for f in held.list_flows(WS)] == sorted([ABANDONED_CHECKOUT, POST_PURCHASE])
    assert cache.list_flows(WS) == source.list_flows(WS)  # the API's listing is never held
    source.put_flow(flow(version=2).model_copy(update={"status": FlowStatus.DRAFT}), 1)  # another container
    got = held.get_flow(WS, ABANDONED_CHECKOUT)
    assert got is not None and got.version == 2 and got.status is FlowStatus.DRAFT


def test_the_events_a_flow_listens_to_are_its_trigger_exits_and_waits() -> None:
    assert event_types(BUILTIN_FLOWS[ABANDONED_CHECKOUT]) == {"CheckoutStarted", "OrderPlaced"}
    post_purchase = event_types(BUILTIN_FLOWS[POST_PURCHASE])
    assert "OrderPlaced" in post_purchase
    assert hears([flow()], event("OrderPlaced")) and not hears([flow()], event("ProductViewed"))
    assert not hears([flow(version=0)], event("CheckoutStarted"))  # a built-in never saved holds no run


def event(event_type: str, **detail: object) -> FlowEvent:
    return FlowEvent(type=event_type, event_id="e1", workspace_id=WS, profile_id="p1", occurred_at=NOW,
                     detail=dict(detail))


def test_a_start_is_heard_on_the_event_alone_an_end_or_a_resume_by_its_type() -> None:
    vip = flow(VIP, definition=BUILTIN_FLOWS[VIP])  # starts on entering builtin:vip; no exits
    assert hears([vip], event("SegmentEntered", segment_id=VIP_SEGMENT))
    assert not hears([vip], event("SegmentEntered", segment_id="builtin:window_shoppers"))
    assert not hears([vip], event("SegmentExited", segment_id=VIP_SEGMENT))
    # A trigger's filter is checked on the event (the welcome series starts on a subscription).
    welcome = flow(WELCOME, definition=BUILTIN_FLOWS[WELCOME])
    trigger = BUILTIN_FLOWS[WELCOME].trigger
    assert not isinstance(trigger, SegmentTrigger) and trigger.where
    assert not hears([welcome], event("ConsentChanged"))  # none of the filter's properties: it fails
    # A draft starts nothing, but its runs go on: its exits are heard, whatever their filters.
    assert not hears([vip.model_copy(update={"status": FlowStatus.DRAFT})],
                     event("SegmentEntered", segment_id=VIP_SEGMENT))  # the trigger: only a live flow starts
    draft = flow().model_copy(update={"status": FlowStatus.DRAFT})
    # The abandoned checkout's exits: any order, and a checkout other than the trigger's (a filter on the run).
    assert hears([draft], event("OrderPlaced")) and hears([draft], event("CheckoutStarted", checkout_id="c9"))


class CountingWinners(MemorySplitWinners):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def winners(self, workspace_id: str, flow_id: str) -> dict[str, int]:
        self.reads += 1
        return super().winners(workspace_id, flow_id)


def test_winners_are_held_and_an_undecided_split_is_checked_once_per_ttl() -> None:
    source, clock = CountingWinners(), Clock()
    held = HeldWinners(source, ttl=30, monotonic=clock)
    assert held.winners(WS, "f") == {} and held.winners(WS, "f") == {} and source.reads == 1
    assert held.due_for_check(WS, "f", "split") and not held.due_for_check(WS, "f", "split")
    assert held.due_for_check(WS, "f", "other")  # each split its own
    source.decide(WS, "f", "split", 2, NOW)  # another container decided
    assert held.decide(WS, "f", "split", 1, NOW) == 2  # the stored winner stands, and is held at once
    assert held.winners(WS, "f") == {"split": 2} and source.reads == 1
    clock.at = 30.0
    assert held.due_for_check(WS, "f", "split")
    held.winners(WS, "f")
    assert source.reads == 2


class CountingMessaging(MemoryMessagingStore):
    def __init__(self, *templates: TemplateRecord) -> None:
        super().__init__(*templates)
        self.reads = 0

    def messaging_settings(self, workspace_id: str) -> MessagingSettings:
        self.reads += 1
        return super().messaging_settings(workspace_id)

    def get_template(self, workspace_id: str, template_id: str) -> TemplateRecord | None:
        self.reads += 1
        return super().get_template(workspace_id, template_id)


def template(subject: str) -> TemplateRecord:
    return TemplateRecord(workspace_id=WS, template_id="t1", created_at=NOW, updated_at=NOW,
                          template=EmailTemplate(name="t", subject=subject, html="<p>hi</p>"))


def test_settings_and_templates_are_held_for_the_ttl_and_the_apis_reads_are_fresh() -> None:
    source, clock = CountingMessaging(template("one")), Clock()
    source.put_messaging_settings(WS, MessagingSettings(from_address="shop@example.com"))
    cache = MessagingCache(source, ttl=30, monotonic=clock)
    held = cache.held()
    for _ in range(3):
        held.messaging_settings(WS)
        assert (found := held.get_template(WS, "t1")) is not None and found.template.subject == "one"
    assert source.reads == 2
    source.put_template(template("two"))  # another container's write: seen once the ttl has passed
    assert (found := held.get_template(WS, "t1")) is not None and found.template.subject == "one"
    assert (fresh := cache.get_template(WS, "t1")) is not None and fresh.template.subject == "two"
    cache.messaging_settings(WS)
    assert source.reads == 4
    clock.at = 30.0
    assert (found := held.get_template(WS, "t1")) is not None and found.template.subject == "two"


def test_a_workspace_without_a_sender_or_a_template_is_read_afresh_until_it_has_them() -> None:
    source = CountingMessaging()
    source.put_messaging_settings(WS, MessagingSettings())
    cache = MessagingCache(source, ttl=30, monotonic=Clock())
    held = cache.held()
    assert held.messaging_settings(WS).from_address is None and held.get_template(WS, "t1") is None
    source.put_messaging_settings(WS, MessagingSettings(from_address="shop@example.com"))  # another container
    source.put_template(template("one"))
    assert held.messaging_settings(WS).from_address == "shop@example.com"
    assert held.get_template(WS, "t1") is not None
    reads = source.reads
    held.messaging_settings(WS)
    held.get_template(WS, "t1")
    assert source.reads == reads  # held from now on


def test_a_write_through_the_api_forgets_the_workspaces_held_settings_and_templates() -> None:
    source = CountingMessaging(template("one"))
    cache = MessagingCache(source, ttl=30, monotonic=Clock())
    held = cache.held()
    held.messaging_settings(WS)
    held.get_template(WS, "t1")
    cache.put_messaging_settings(WS, MessagingSettings(from_address="new@example.com"))
    assert held.messaging_settings(WS).from_address == "new@example.com"
    cache.put_template(template("two"))
    assert (found := held.get_template(WS, "t1")) is not None and found.template.subject == "two"
    assert cache.delete_template(WS, "t1")
    assert held.get_template(WS, "t1") is None
