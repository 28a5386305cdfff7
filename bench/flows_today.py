"""The flows function as it was before issue 12 (commit 0ccbb87), the labelled baseline bench/flows.py measures
in the same run: every event lists the workspace's flows (one Query, nothing held), and an event of a workspace
that ever saved a flow reads the profile and its runs whether or not a flow listens to it; every paid OrderPlaced
reads the messaging settings, the profile and its messages, whether or not a flow was ever saved. Its writes: a
run created, then saved; each doing counted by an ADD of its own; a run stored as plain JSON; every message's
pointer by id written; a timeline line as a transaction
(beside the message's record: bench/flows_ledger_before.py). SES's Delivery event of each email came to the flows
queue (bench/flows.py puts the rule's old pattern back while it measures this design) and was counted on the
message's two counter rows.

Only what changed is copied (``on_event``, ``_start``, ``_count``; the adapters' write of a run, a message and a
timeline line); the rest is today's service."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from crm import wiring
from crm.adapters import keys
from crm.adapters.flow_definitions import DynamoFlowCatalogue
from crm.adapters.flow_runs import PACKED_RUN, DynamoRunStore
from crm.adapters.items import Item, to_item
from crm.adapters.profiles import DynamoProfileRepository, _write_change
from crm.clock import utc_now
from crm.flows import counting, engine
from crm.flows.conversions import ConversionsService
from crm.flows.counting import message_rows
from crm.flows.engine import FlowEvent
from crm.flows.ports import FlowCounters
from crm.flows.service import FlowsService, Report, Shopper
from crm.messaging.feedback import FeedbackDeps, MessageEvents
from crm.models.flow_stats import CounterName, MessageEvent, MessageEventType, MessageRecord
from crm.models.flows import FlowDefinition, FlowRecord, FlowRun, FlowStatus, RunStatus, run_id_for
from crm.ports import Change
from flows_ledger_before import ThreeWritesLedger
from flows_reads_before import ReadsBeforeFlowsService


class TodayFlowsService(ReadsBeforeFlowsService):
    def on_event(self, event: FlowEvent) -> Report:
        report = Report()
        ws = event.workspace_id
        flows: dict[str, FlowRecord] = {}
        if event.type != "ConsentRequested":
            flows = {f.flow_id: f for f in self.catalogue.list_flows(ws)}
            if all(f.version == 0 for f in flows.values()):
                report.ignored.append("no flow ever saved in the workspace")
                return report
        if event.type == "ProfilesMerged":
            self.merge(ws, str(event.detail["merged_profile_id"]), event.profile_id, report)
            return report
        shopper = self._shopper(ws, event.profile_id)
        if shopper is None:
            report.ignored.append(f"no profile {event.profile_id}")
            return report
        if event.type == "ConsentRequested":
            self._confirm_request(event, shopper, report)
            return report
        runs = self.runs.runs_of_profile(ws, shopper.profile.profile_id)
        for run in runs:
            if run.status is RunStatus.ACTIVE:
                self._follow(run, flows.get(run.flow_id), shopper, event, report)
        for flow in flows.values():
            if flow.status is FlowStatus.LIVE:
                self._start(flow, [r for r in runs if r.flow_id == flow.flow_id], shopper, event, report)
        return report

    def _start(self, flow: FlowRecord, earlier: list[FlowRun], shopper: Shopper, event: FlowEvent,
               report: Report, *, read_now: bool = False) -> None:
        entry = engine.enter(flow, event, shopper.profile, earlier, self.clock(), segments=shopper.segments)
        if entry.refusal is engine.Refusal.DUPLICATE:
            report.duplicates.append(run_id_for(flow.flow_id, event.event_id))
        if entry.run is None:
            return
        if not self.runs.create_run(entry.run):
            report.duplicates.append(entry.run.run_id)
            return
        report.started.append(entry.run.run_id)
        self._count(counting.entry_counts(entry.run), entry.run)
        self.advance(entry.run, flow, shopper, report)

    def _count(self, adds: list[counting.CounterAdd], run: FlowRun) -> None:
        for add in adds:
            self.counters.add(run.workspace_id, run.flow_id, add.day, add.counts, add.step_id, add.variant)


class TodayRunStore(DynamoRunStore):
    """A run as plain JSON (today's store reads both)."""

    def _run_item(self, run: FlowRun) -> Item:
        item = {**super()._run_item(run), "run": {"S": run.model_dump_json()}}
        del item[PACKED_RUN]
        return item


class TodayLedger(ThreeWritesLedger):
    """Every message's pointer by id, emails' too; its record an item of its own beside its timeline line (written
    in a transaction by TodayProfiles)."""

    def record_sent(self, message: MessageRecord) -> None:
        super().record_sent(message)
        if message.channel == "email":
            self._point(message, legacy=True)


class TodayProfiles(DynamoProfileRepository):
    """A change of timeline lines alone written in a transaction, as every change was."""

    def commit(self, change: Change) -> None:
        if change.timeline and change == Change(change.workspace_id, timeline=change.timeline):
            writes: list[dict[str, Any]] = [{"Put": {"TableName": self.table, "Item": to_item(
                keys.timeline(change.workspace_id, e.profile_id, e.sort_key), "timeline", e)}} for e in change.timeline]
            _write_change(writes, self.backoff)
            return
        super().commit(change)


class _EverSaved:
    """Today's attribution read no catalogue: it went on as if every workspace had saved a flow."""

    def list_flows(self, workspace_id: str) -> list[FlowRecord]:
        return [FlowRecord(workspace_id=workspace_id, flow_id="today", version=1, status=FlowStatus.DRAFT,
                           definition=_ANY_DEFINITION, created_at=_SINCE, updated_at=_SINCE)]

    def get_flow(self, workspace_id: str, flow_id: str) -> FlowRecord | None:
        return None

    def put_flow(self, record: FlowRecord, expected_version: int | None) -> None:
        raise NotImplementedError("the baseline's stand-in catalogue is read only")

    def delete_flow(self, workspace_id: str, flow_id: str) -> bool:
        return False


_SINCE = datetime(2026, 1, 1, tzinfo=UTC)
_ANY_DEFINITION = FlowDefinition.model_validate({"name": "today", "steps": [{"kind": "exit", "id": "done"}],
                                                 "trigger": {"kind": "event", "event": "OrderFulfilled"}})


def flows_service(counters: FlowCounters | None = None) -> FlowsService:
    """wiring.flows_service as it was: the catalogue listed afresh by every event; every doing counted by a
    write of its own in the table (``counters``, the flows function's batch, left unused)."""
    return TodayFlowsService(
        catalogue=DynamoFlowCatalogue(), runs=TodayRunStore(), scheduler=wiring.wait_scheduler(),
        profiles=TodayProfiles(), segments=wiring.segment_store(), messaging=wiring.messaging_store(),
        suppressions=wiring.suppressions(), email=wiring.email_sender(), sms=wiring.sms_sender(),
        composer=wiring.message_composer(), clock=utc_now, ledger=TodayLedger(TodayProfiles()),
        counters=wiring.flow_counters(), winners=wiring.split_winners())


def conversions_service(counters: FlowCounters | None = None) -> ConversionsService:
    """wiring.conversions_service as it was: no check of the workspace's flows; counted in the table."""
    return ConversionsService(ledger=wiring.message_ledger(), attributions=wiring.attributions(),
                              counters=wiring.flow_counters(), runs=wiring.flow_runs(),
                              profiles=wiring.profile_repository(), messaging=wiring.messaging_store(),
                              currency=wiring.currency_store(), clock=utc_now, catalogue=_EverSaved())


class TodayMessageEvents(MessageEvents):
    """An email's Delivery event counted on its rows, as it was (today's send counts it, at no request)."""

    def _note(self, message: MessageRecord, event: MessageEvent) -> MessageRecord | None:
        updated = super()._note(message, event)
        if updated is not None and updated.channel == "email" and event.type is MessageEventType.DELIVERED:
            for step_id, variant in message_rows(updated):
                self.counters.add(updated.workspace_id, updated.flow_id, event.at.date(),
                                  {CounterName.DELIVERED.value: 1}, step_id=step_id, variant=variant)
        return updated


_FEEDBACK_DEPS = wiring.feedback_deps  # today's, before bench/flows.py puts feedback_deps below in its place


def feedback_deps(counters: FlowCounters | None = None) -> FeedbackDeps:
    built = _FEEDBACK_DEPS()  # counted in the table, an event at a time
    return replace(built, events=TodayMessageEvents(built.events.ledger, built.events.counters,
                                                    built.events.profiles))


# SesFeedbackRule's pattern as it was: every SES event of the configuration set but "Email Sent".
SES_EVENTS_TODAY = ["Email Bounced", "Email Complaint Received", "Email Delivered", "Email Opened", "Email Clicked",
                    "Email Delivery Delayed", "Email Rejected", "Email Rendering Failed"]
