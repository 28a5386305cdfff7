"""The flow ports held in memory: what a backtest or ``crm flows test`` runs the real flows service on (no
AWS, nothing sent), and what unit tests use. Each behaves as its DynamoDB adapter does (the contract tests in
tests/contract run the same cases over both)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from crm.contact import normalise_email
from crm.flows.ports import StepAlreadyClaimed
from crm.messaging.shortlinks import ShortLink
from crm.models.flow_stats import ALL_STEPS, Attribution, CounterRow, MessageEvent, MessageRecord
from crm.models.flows import FlowRecord, FlowRun, StepOutcome, StepRecord, WakeUp, schedule_name
from crm.models.messaging import (
    EmailTemplate,
    MessagingSettings,
    OutgoingEmail,
    OutgoingSms,
    SmsTemplate,
    TemplateRecord,
)
from crm.models.profile import Profile
from crm.ports import ConcurrentUpdate


@dataclass
class MemoryMessageLedger:
    messages: dict[str, MessageRecord] = field(default_factory=dict)
    # Found by id alone (as the DynamoDB ledger's pointers find them): SMS, and messages a merge moved.
    pointed: set[str] = field(default_factory=set)

    def record_sent(self, message: MessageRecord) -> None:
        self.messages.setdefault(message.message_id, message)
        if message.channel != "email":
            self.pointed.add(message.message_id)

    def find(self, message_id: str, workspace_id: str | None = None, profile_id: str | None = None,
             sent_at: datetime | None = None) -> MessageRecord | None:
        found = self.messages.get(message_id)
        if found is None or (workspace_id is not None and found.workspace_id != workspace_id):
            return None
        if message_id not in self.pointed and (found.workspace_id, found.profile_id) != (workspace_id, profile_id):
            return None
        return found

    def note_event(self, message: MessageRecord, event: MessageEvent) -> MessageRecord | None:
        stored = self.messages.get(message.message_id)
        if stored is None or event.type in stored.events:
            return None
        links = stored.clicked_links
        if event.link is not None and event.link not in links:
            links = (*links, event.link)
        updated = stored.model_copy(update={"events": {**stored.events, event.type: event.at},
                                            "clicked_links": links})
        self.messages[message.message_id] = updated
        return updated

    def touches(self, workspace_id: str, profile_id: str, since: datetime) -> list[MessageRecord]:
        return sorted((m for m in self.messages.values()
                       if m.workspace_id == workspace_id and m.profile_id == profile_id and m.sent_at >= since),
                      key=lambda m: (m.sent_at, m.message_id))

    def message_of_step(self, workspace_id: str, profile_id: str, run_id: str, step_id: str,
                        claimed_at: datetime) -> MessageRecord | None:
        return next((m for m in self.touches(workspace_id, profile_id, claimed_at)
                     if (m.run_id, m.step_id) == (run_id, step_id)), None)

    def move_messages(self, workspace_id: str, from_profile_id: str, to_profile_id: str) -> int:
        moving = [m for m in self.messages.values()
                  if m.workspace_id == workspace_id and m.profile_id == from_profile_id]
        for message in moving:
            self.messages[message.message_id] = message.model_copy(update={"profile_id": to_profile_id})
            self.pointed.add(message.message_id)
        return len(moving)


@dataclass
class MemoryFlowCounters:
    items: dict[tuple[str, str, date, str, str], dict[str, Decimal]] = field(default_factory=dict)

    def add(self, workspace_id: str, flow_id: str, day: date, counts: Mapping[str, int | Decimal],
            step_id: str = ALL_STEPS, variant: str = ALL_STEPS) -> None:
        held = self.items.setdefault((workspace_id, flow_id, day, step_id, variant), {})
        for name, value in counts.items():
            held[name] = held.get(name, Decimal(0)) + Decimal(value)

    def add_rows(self, workspace_id: str, flow_id: str, day: date,
                 rows: Mapping[tuple[str, str], Mapping[str, int | Decimal]]) -> None:
        for (step_id, variant), counts in rows.items():
            self.add(workspace_id, flow_id, day, counts, step_id, variant)

    def rows(self, workspace_id: str, flow_id: str, first_day: date, last_day: date) -> list[CounterRow]:
        return [CounterRow(workspace_id=ws, flow_id=flow, day=day, step_id=step, variant=variant,
                           counts=dict(counts))
                for (ws, flow, day, step, variant), counts in sorted(self.items.items())
                if ws == workspace_id and flow == flow_id and first_day <= day <= last_day]


@dataclass
class MemoryAttributions:
    items: dict[tuple[str, str, str], Attribution] = field(default_factory=dict)

    def claim(self, attribution: Attribution) -> bool:
        key = (attribution.workspace_id, attribution.store_id, attribution.order_id)
        if key in self.items:
            return False
        self.items[key] = attribution
        return True

    def get(self, workspace_id: str, store_id: str, order_id: str) -> Attribution | None:
        return self.items.get((workspace_id, store_id, order_id))

    def add_refund(self, workspace_id: str, store_id: str, order_id: str, refund_id: str,
                   amount: Decimal) -> Attribution | None:
        held = self.items.get((workspace_id, store_id, order_id))
        if held is None or refund_id in held.refund_ids:
            return None
        updated = held.model_copy(update={"refunded": held.refunded + amount,
                                          "refund_ids": (*held.refund_ids, refund_id)})
        self.items[(workspace_id, store_id, order_id)] = updated
        return updated


@dataclass
class MemorySplitWinners:
    items: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def winners(self, workspace_id: str, flow_id: str) -> dict[str, int]:
        return dict(self.items.get((workspace_id, flow_id), {}))

    def decide(self, workspace_id: str, flow_id: str, split_id: str, path: int, at: datetime) -> int:
        return self.items.setdefault((workspace_id, flow_id), {}).setdefault(split_id, path)

    def due_for_check(self, workspace_id: str, flow_id: str, split_id: str) -> bool:
        return True


@dataclass
class MemoryShortLinks:
    """crm.messaging.shortlinks.ShortLinks in memory."""

    items: dict[str, ShortLink] = field(default_factory=dict)

    def save(self, link: ShortLink) -> None:
        self.items.setdefault(link.code, link)

    def get(self, code: str) -> ShortLink | None:
        return self.items.get(code)


# ---- runs, schedules, definitions, sends (tests/fakes.py re-exports these under their Fake* names) ----


class MemoryRunStore:
    """Runs, step claims and last sends in dicts, with the DynamoDB adapter's conditions."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str, str], FlowRun] = {}  # (workspace, profile, run id)
        self.claims: dict[tuple[str, str, str, str], tuple[datetime, StepRecord | None]] = {}
        # run ids by (workspace, profile): a backtest holds every run of a month, and a profile's are read per event
        self._by_profile: dict[tuple[str, str], set[str]] = {}

    def create_run(self, run: FlowRun) -> bool:
        key = (run.workspace_id, run.profile_id, run.run_id)
        if key in self.runs:
            return False
        self.runs[key] = run
        self._by_profile.setdefault((run.workspace_id, run.profile_id), set()).add(run.run_id)
        return True

    def get_run(self, workspace_id: str, profile_id: str, run_id: str) -> FlowRun | None:
        return self.runs.get((workspace_id, profile_id, run_id))

    def save_run(self, run: FlowRun, expected_revision: int) -> None:
        key = (run.workspace_id, run.profile_id, run.run_id)
        held = self.runs.get(key)
        if held is None or held.revision != expected_revision:
            raise ConcurrentUpdate(f"flow run {run.run_id} changed since revision {expected_revision}")
        self.runs[key] = run

    def runs_of_profile(self, workspace_id: str, profile_id: str, flow_id: str | None = None, *,
                        consistent: bool = True) -> list[FlowRun]:
        """As fresh as a strongly consistent read, whichever is asked for."""
        held = (self.runs[(workspace_id, profile_id, run_id)]
                for run_id in sorted(self._by_profile.get((workspace_id, profile_id), ())))
        return [run for run in held if flow_id is None or run.flow_id == flow_id]

    def delete_runs(self, workspace_id: str, profile_id: str) -> list[FlowRun]:
        doomed = self.runs_of_profile(workspace_id, profile_id)
        for run in doomed:
            del self.runs[(workspace_id, profile_id, run.run_id)]
        self._by_profile.pop((workspace_id, profile_id), None)
        for key in [k for k in self.claims if k[:2] == (workspace_id, profile_id)]:
            del self.claims[key]
        return doomed

    def claim_step(self, run: FlowRun, step_id: str, at: datetime) -> None:
        key = (run.workspace_id, run.profile_id, run.run_id, step_id)
        if key in self.claims:
            raise StepAlreadyClaimed(f"step {step_id} of run {run.run_id}")
        self.claims[key] = (at, None)

    def step_claim(self, run: FlowRun, step_id: str) -> StepRecord | None:
        found = self.claims.get((run.workspace_id, run.profile_id, run.run_id, step_id))
        if found is None:
            return None
        at, record = found
        return record or StepRecord(step_id=step_id, outcome=StepOutcome.UNKNOWN, at=at)

    def record_step(self, run: FlowRun, record: StepRecord) -> None:
        key = (run.workspace_id, run.profile_id, run.run_id, record.step_id)
        at, _ = self.claims.get(key, (record.at, None))
        self.claims[key] = (at, record)



class MemoryWaitScheduler:
    """One-time schedules by name; ``fire_due(now)`` are those a Scheduler would have fired by then."""

    def __init__(self) -> None:
        self.schedules: dict[str, WakeUp] = {}
        self.created = 0
        self.cancelled: list[str] = []
        # (due, name, wake): a cancelled or replaced entry stays in the heap and is skipped when it surfaces
        self._due: list[tuple[datetime, str, WakeUp]] = []

    def schedule(self, wake: WakeUp) -> None:
        name = schedule_name(wake.run_id, wake.step_id)
        if name not in self.schedules:
            self.schedules[name] = wake
            self.created += 1
            heapq.heappush(self._due, (wake.due_at, name, wake))

    def cancel(self, run_id: str, step_id: str) -> None:
        name = schedule_name(run_id, step_id)
        if self.schedules.pop(name, None) is not None:
            self.cancelled.append(name)

    def next_due(self) -> WakeUp | None:
        """The pending wake-up that falls due first (ties by schedule name), left in place."""
        while self._due:
            _, name, wake = self._due[0]
            if self.schedules.get(name) is wake:
                return wake
            heapq.heappop(self._due)
        return None

    def fire_due(self, now: datetime) -> list[WakeUp]:
        """The wake-ups due by ``now`` in time order, deleted as ActionAfterCompletion DELETE does."""
        due: list[WakeUp] = []
        while (wake := self.next_due()) is not None and wake.due_at <= now:
            heapq.heappop(self._due)
            del self.schedules[schedule_name(wake.run_id, wake.step_id)]
            due.append(wake)
        return due


class MemoryFlowCatalogue:
    def __init__(self, *flows: FlowRecord) -> None:
        self.flows = {(f.workspace_id, f.flow_id): f for f in flows}

    def list_flows(self, workspace_id: str) -> list[FlowRecord]:
        return sorted((f for (ws, _), f in self.flows.items() if ws == workspace_id), key=lambda f: f.flow_id)

    def get_flow(self, workspace_id: str, flow_id: str) -> FlowRecord | None:
        return self.flows.get((workspace_id, flow_id))

    def put_flow(self, record: FlowRecord, expected_version: int | None) -> None:
        held = self.flows.get((record.workspace_id, record.flow_id))
        if (held.version if held else None) != expected_version:
            raise ConcurrentUpdate(f"flow {record.flow_id} changed since it was read")
        self.flows[(record.workspace_id, record.flow_id)] = record

    def delete_flow(self, workspace_id: str, flow_id: str) -> bool:
        return self.flows.pop((workspace_id, flow_id), None) is not None


class MemoryMessagingStore:
    def __init__(self, *templates: TemplateRecord, settings: MessagingSettings | None = None) -> None:
        self.templates = {(t.workspace_id, t.template_id): t for t in templates}
        self.settings: dict[str, MessagingSettings] = {}
        self.default = settings or MessagingSettings(from_address="shop@example.com")

    def messaging_settings(self, workspace_id: str) -> MessagingSettings:
        return self.settings.get(workspace_id, self.default)

    def put_messaging_settings(self, workspace_id: str, settings: MessagingSettings) -> None:
        self.settings[workspace_id] = settings

    def list_templates(self, workspace_id: str) -> list[TemplateRecord]:
        return [t for (ws, _), t in sorted(self.templates.items()) if ws == workspace_id]

    def get_template(self, workspace_id: str, template_id: str) -> TemplateRecord | None:
        return self.templates.get((workspace_id, template_id))

    def put_template(self, record: TemplateRecord) -> None:
        self.templates[(record.workspace_id, record.template_id)] = record

    def delete_template(self, workspace_id: str, template_id: str) -> bool:
        return self.templates.pop((workspace_id, template_id), None) is not None


class RecordingEmailSender:
    """Keeps what it was given and sends nothing; the message id names the message's place in ``sent``."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []

    def send(self, email: OutgoingEmail) -> str:
        self.sent.append(email)
        return f"ses-{len(self.sent)}"


class RecordingSmsSender:
    def __init__(self, opted_out: Iterable[str] = ()) -> None:
        self.sent: list[OutgoingSms] = []
        self.opted_out = set(opted_out)

    def is_opted_out(self, phone: str) -> bool:
        return phone in self.opted_out

    def send(self, sms: OutgoingSms) -> str:
        self.sent.append(sms)
        return f"sns-{len(self.sent)}"


class UnrenderedComposer:
    """Addresses the template's subject and body as they are (rendering is crm.messaging.render's): a backtest
    needs whom and when, not the words, and reads no link signing key."""

    def email(self, template: TemplateRecord, settings: MessagingSettings, profile: Profile, run: FlowRun,
              step_id: str, to: str, now: datetime) -> OutgoingEmail:
        if not isinstance(template.template, EmailTemplate):
            raise ValueError(f"template {template.template_id} is not an email")
        return OutgoingEmail(workspace_id=run.workspace_id, profile_id=profile.profile_id, to=to,
                             from_address=settings.from_address or "shop@example.com",
                             subject=template.template.subject, html=template.template.html,
                             text=template.template.text or "", tags={"flow": run.flow_id, "step": step_id})

    def sms(self, template: TemplateRecord, settings: MessagingSettings, profile: Profile, run: FlowRun,
            step_id: str, to: str, now: datetime) -> OutgoingSms:
        if not isinstance(template.template, SmsTemplate):
            raise ValueError(f"template {template.template_id} is not a text message")
        return OutgoingSms(workspace_id=run.workspace_id, profile_id=profile.profile_id, to=to,
                           body=template.template.body, sender=settings.sms_sender)

    def double_opt_in(self, template: TemplateRecord | None, settings: MessagingSettings, profile: Profile,
                      now: datetime) -> OutgoingEmail | None:
        """Nothing to confirm here: crm.messaging.optin.OptInMessages makes the real one."""
        return None


class MemorySuppressions:
    """The workspace suppression list (crm.flows.ports.Suppressions), as crm.adapters.suppressions keeps it: by
    normalised address, the first reason and time kept."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], tuple[str, datetime]] = {}

    def is_suppressed(self, workspace_id: str, address: str) -> bool:
        return (workspace_id, _listed(address)) in self.held

    def suppress(self, workspace_id: str, address: str, reason: str, at: datetime) -> None:
        self.held.setdefault((workspace_id, _listed(address)), (reason, at))

    def suppression(self, workspace_id: str, address: str) -> tuple[str, datetime] | None:
        return self.held.get((workspace_id, _listed(address)))


def _listed(address: str) -> str:
    # crm.adapters.suppressions.suppression_address's rule (not imported: it would bring boto3 into a backtest)
    return normalise_email(address) or address.strip().lower()
