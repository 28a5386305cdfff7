"""The flows part of `make demo`: the built-in flows turned live, a cast of shoppers of the Shopify store who
abandon checkouts, browse, order, unsubscribe and bounce (crm_local.simulation.simulate_flows), a month
fast-forwarded in a few steps, a report of what was sent (read back from moto's SES records), skipped and
exited, and the issue's checks computed from the simulation alone:

- every consenting shopper who abandoned a checkout without ordering got exactly the two reminders;
- no one who ordered within 4 h got one (and those who ordered later got only the first);
- no unsubscribed or bounced address got anything after that.

It runs on a runtime of its own (`python -m crm_local.demo_flows`; `make demo` runs it so, beside the main
stack once the history is sent, and prints its report after the main parts): on the main stack, each clock
stop would also recompute the main workspace's segments and move its flows, and its time would add to the
main parts' instead of running beside them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import boto3
from crm.adapters.flow_runs import run_of_item
from crm.clock import utc_now
from crm.models.flows import FlowRun, StepOutcome

from crm_local import outbound
from crm_local.runtime import LocalRuntime
from crm_local.simulation import (
    ABANDONED_CHECKOUT,
    DOMAINS,
    REMINDERS,
    SHOPIFY,
    STORE_CURRENCY,
    Fate,
    FlowAction,
    FlowShopper,
    FlowSimulation,
    Store,
    simulate_flows,
)

BUILTIN_FLOWS = ("builtin:abandoned_checkout", "builtin:browse_abandonment", "builtin:welcome",
                 "builtin:post_purchase", "builtin:win_back", "builtin:vip")
SENDER = {"from_address": "hello@demo-outfitters.example", "from_name": "Demo Outfitters",
          "postal_address": "Demo Outfitters, 1 Market Street, San Francisco, CA 94105, USA"}
IDLE_TIMEOUT_SECONDS = 300
STACK = "crm-demo-flows"
SENDERS = 8  # concurrent shoppers, as the history part sends
LEAD = timedelta(minutes=2)


@dataclass(frozen=True)
class SentEmail:
    """An email as moto's SES recorded it (crm_local.outbound), the parts the demo reads."""

    message_id: str
    to: tuple[str, ...]
    subject: str
    unsubscribe_url: str | None
    unsubscribe_post: str | None
    sent_at: datetime | None = None  # the runtime's clock
    flow_id: str | None = None  # SES message tags the flows function sets
    step_id: str | None = None


def sent_email(record: outbound.SentEmail) -> SentEmail:
    return SentEmail(record.message_id, tuple(a.lower() for a in record.to or record.destinations),
                     record.subject or "", record.unsubscribe_url, record.list_unsubscribe_post, record.sent_at,
                     record.tags.get("flow"), record.tags.get("step"))


def read_emails(aws_endpoint: str) -> list[SentEmail]:
    """Every email moto's SES "sent", by time of sending (/moto-api/data.json through crm_local.outbound)."""
    return [sent_email(record) for record in outbound.Outbox(aws_endpoint).read().emails]


def one_click_unsubscribe(url: str) -> int:
    """What Gmail does for a List-Unsubscribe-Post message (RFC 8058): POST the link, no cookies, no login."""
    from crm_local.demo import http

    status, _ = http("POST", url, b"List-Unsubscribe=One-Click",
                     {"Content-Type": "application/x-www-form-urlencoded"})
    return status


def flow_runs(table: str) -> list[FlowRun]:
    """Every flow run in the table (the demo's own scan; the functions never scan)."""
    runs: list[FlowRun] = []
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(
            TableName=table, FilterExpression="begins_with(sk, :run)",
            ExpressionAttributeValues={":run": {"S": "FLOWRUN#"}}):
        for item in page["Items"]:
            runs.append(run_of_item(item))
    return runs


def step_templates(definition: dict[str, Any]) -> dict[str, str]:
    """step id -> template id of every send step of a flow definition, splits' paths included."""
    found: dict[str, str] = {}

    def walk(steps: Iterable[dict[str, Any]]) -> None:
        for step in steps:
            if step.get("template_id"):
                found[str(step["id"])] = str(step["template_id"])
            for path in step.get("paths", ()):
                walk(path.get("steps", ()))

    walk(definition.get("steps", ()))
    return found


@dataclass
class FlowsOutcome:
    """What happened, read back: each email's flow and step (through the run that sent it), skips, exits."""

    emails: list[SentEmail]
    sent_at: dict[str, datetime]  # message id -> when its step was recorded
    sent_by: dict[str, tuple[str, str]]  # message id -> (flow id, template id or step id)
    runs: list[FlowRun]
    unsubscribed: dict[str, int]  # address -> the one-click POST's status
    sms: int = 0  # SNS SMS moto recorded

    def to(self, address: str) -> list[SentEmail]:
        return [m for m in self.emails if address.lower() in m.to]


def check(simulation: FlowSimulation, outcome: FlowsOutcome, t0: datetime) -> list[str]:
    """The issue's three checks, each shopper against what the simulation says they must get."""
    wrong: list[str] = []
    for shopper in simulation.shoppers:
        mine = outcome.to(shopper.email)
        reminders = sorted(outcome.sent_by.get(m.message_id, ("?", "?"))[1] for m in mine
                           if outcome.sent_by.get(m.message_id, ("?",))[0] == ABANDONED_CHECKOUT)
        expected = sorted(shopper.expected_reminders())
        if shopper.checkout_token and reminders != expected:
            wrong.append(f"{shopper.email} ({shopper.fate}, {'consents' if shopper.consents else 'no consent'}): "
                         f"expected reminders {expected or 'none'}, got {reminders or 'none'}")
        if shopper.silenced_at is not None:
            # A bounce or complaint comes back with the first message the address gets: from then on, nothing;
            # an unsubscribe is the demo's click, at its time.
            when = sorted(outcome.sent_at.get(m.message_id, t0) for m in mine)
            silenced = when[0] if shopper.bounces and when else t0 + shopper.silenced_at
            late = [m for m in mine if outcome.sent_at.get(m.message_id, t0) > silenced]
            if late:
                wrong.append(f"{shopper.email} ({shopper.fate}): {len(late)} message(s) after being silenced at "
                             f"T0+{silenced - t0}: {', '.join(m.subject for m in late)}")
        if shopper.fate == Fate.UNSUBSCRIBES and outcome.unsubscribed.get(shopper.email) not in (200, 202, 204):
            wrong.append(f"{shopper.email}: the one-click unsubscribe answered "
                         f"{outcome.unsubscribed.get(shopper.email, 'nothing (no link received)')}")
    runs = Counter(r.profile_id for r in outcome.runs if r.flow_id == ABANDONED_CHECKOUT)
    total = sum(runs.values())
    if total != simulation.runs_expected():
        wrong.append(f"abandoned-checkout runs: expected {simulation.runs_expected()} (one per checkout, a "
                     f"duplicated webhook included), found {total}")
    return wrong


def report(simulation: FlowSimulation, outcome: FlowsOutcome, wrong: list[str]) -> None:
    print("\n== flows ==")
    print("cast                     " + ", ".join(f"{simulation.count(f)} {f}" for f in Fate.ALL)
          + f"; {sum(s.consents for s in simulation.shoppers)} consenting, "
            f"{sum(s.duplicated for s in simulation.shoppers)} checkout webhooks delivered twice")
    by_step = Counter(outcome.sent_by.get(m.message_id, ("(not a flow's)", "?")) for m in outcome.emails)
    print(f"emails sent              {len(outcome.emails)} (read back from moto's SES), by flow and step:")
    for (flow_id, step_name), count in sorted(by_step.items()):
        print(f"  {flow_id:<32}{step_name:<36}{count:>5}")
    print(f"sms sent                 {outcome.sms} (read back from moto's SNS; the built-in flows send email, "
          "tests/e2e/test_flows.py shows SMS)")
    skips: Counter[tuple[str, str]] = Counter()
    exits: Counter[tuple[str, str]] = Counter()
    for run in outcome.runs:
        for step in run.steps:
            if step.outcome == StepOutcome.SKIPPED:
                skips[run.flow_id, step.reason or "?"] += 1
        if run.exit_reason:
            exits[run.flow_id, run.exit_reason] += 1
    status = Counter((r.flow_id, r.status.value) for r in outcome.runs)
    print("runs                     " + (", ".join(f"{f} {s} {n}" for (f, s), n in sorted(status.items()))
                                         or "none"))
    print("skips                    " + (", ".join(f"{f} {r} {n}" for (f, r), n in sorted(skips.items())) or "none"))
    print("exits                    " + (", ".join(f"{f} {r} {n}" for (f, r), n in sorted(exits.items())) or "none"))
    abandoners = [s for s in simulation.shoppers if s.checkout_token]
    print(f"checked                  {len(abandoners)} abandoned checkouts: "
          f"{sum(1 for s in abandoners if s.expected_reminders() == REMINDERS)} must get both reminders, "
          f"{sum(1 for s in abandoners if s.fate == Fate.ORDERS_SOON)} ordered within 4 h (none), "
          f"{sum(1 for s in simulation.shoppers if s.silenced_at is not None)} unsubscribed or bounced "
          f"(nothing after); {'all as expected' if not wrong else f'{len(wrong)} MISMATCHES'}")
    for line in wrong[:50]:
        print(f"  MISMATCH {line}")


class FlowsDemo:
    """Drives the flows part on a running LocalRuntime, in the demo's process (so its clock is the runtime's)."""

    def __init__(self, runtime: LocalRuntime, api: Any, stores: dict[str, Store], table: str) -> None:
        self.runtime, self.api, self.stores, self.table = runtime, api, stores, table
        self.unsubscribed: dict[str, int] = {}

    def idle(self) -> bool:
        return self.runtime.wait_idle(timeout=IDLE_TIMEOUT_SECONDS)

    def deliver(self, messages: Iterable[Any]) -> None:
        from crm_local.demo import send

        for message in messages:
            sent = send(self.runtime.api_url, self.stores, message)
            if sent.status not in (200, 202):
                print(f"  a {sent.kind} delivery answered {sent.status}", flush=True)

    def deliver_side_by_side(self, sequences: Iterable[list[Any]]) -> None:
        """Each shopper's messages in order (a duplicated webhook right after the first), the shoppers side by side
        as a store's webhooks and browsers arrive: one shopper's deliveries never race each other."""
        with ThreadPoolExecutor(max_workers=SENDERS) as pool:
            list(pool.map(self.deliver, sequences))

    def act(self, actions: list[FlowAction]) -> None:
        by_shopper: dict[str, list[Any]] = {}
        for action in actions:
            if action.message is not None:
                by_shopper.setdefault(action.shopper.email, []).append(action.message)
        self.deliver_side_by_side(by_shopper.values())
        unsubscribing = [a.shopper for a in actions if a.kind == "unsubscribe"]
        if unsubscribing:
            self.idle()
            self.unsubscribe(unsubscribing)

    def unsubscribe(self, shoppers: list[FlowShopper]) -> None:
        """Each shopper clicks "unsubscribe" in the newest message they received (the List-Unsubscribe link)."""
        emails = read_emails(self.runtime.aws_endpoint)
        for shopper in shoppers:
            links = [m.unsubscribe_url for m in emails if shopper.email in m.to and m.unsubscribe_url]
            if links:
                self.unsubscribed[shopper.email] = one_click_unsubscribe(links[-1])

    def go_live(self) -> list[str]:
        """PUT /flows/{id}/status live for every built-in flow (they are drafts until then)."""
        problems = []
        for flow_id in BUILTIN_FLOWS:
            status, answer = self.api.call("PUT", f"/flows/{quote(flow_id, safe=':')}/status", {"status": "live"})
            if status != 200:
                problems.append(f"PUT /flows/{flow_id}/status answered {status}: {answer}")
        return problems

    def templates_by_step(self) -> dict[str, dict[str, str]]:
        found = {}
        for flow_id in BUILTIN_FLOWS:
            status, flow = self.api.call("GET", f"/flows/{quote(flow_id, safe=':')}")
            if status == 200:
                found[flow_id] = step_templates(flow.get("definition", flow))
        return found

    def run(self, shoppers: int, seed: int) -> list[str]:
        began = time.perf_counter()
        self.api.ok("PUT", "/settings/messaging", SENDER)
        # T0 a little ahead: the accounts and ties come first (two hours "before"), then the flows go live, then
        # the clock moves to T0 and the checkouts start.
        simulation = simulate_flows(shoppers, seed, utc_now() + LEAD, self.stores["shopify"].domain)
        t0 = simulation.t0
        self.deliver_side_by_side(simulation.before_live_by_shopper)
        if not self.idle():
            return ["the accounts and ties before the flows went live did not drain"]
        accounts = time.perf_counter() - began
        wrong = self.go_live()
        print(f"flows live               {', '.join(BUILTIN_FLOWS)} (PUT /flows/{{id}}/status); T0 "
              f"{t0:%Y-%m-%d %H:%M} UTC on the runtime's clock", flush=True)
        stepped = time.perf_counter()
        if t0 > utc_now():
            self.runtime.advance_clock(t0 - utc_now())
        pending = list(simulation.actions)
        self.act([a for a in pending if a.at <= timedelta(0)])
        pending = [a for a in pending if a.at > timedelta(0)]
        self.idle()
        steps = [f"accounts {accounts:.1f} s", f"T0 {time.perf_counter() - stepped:.1f} s"]
        for stop in simulation.checkpoints():
            stepped = time.perf_counter()
            ahead = t0 + stop - utc_now()
            if ahead > timedelta(0):
                self.runtime.advance_clock(ahead)
            self.idle()
            due = [a for a in pending if a.at <= stop]
            pending = [a for a in pending if a.at > stop]
            self.act(due)
            self.idle()
            steps.append(f"T0+{_span_text(stop)} {time.perf_counter() - stepped:.1f} s")
        print(f"fast-forwarded           {len(simulation.checkpoints())} clock steps to T0+30 days in "
              f"{time.perf_counter() - began:.0f} s ({', '.join(steps)})", flush=True)
        outcome = self.outcome()
        wrong += check(simulation, outcome, t0)
        report(simulation, outcome, wrong)
        return wrong

    def outcome(self) -> FlowsOutcome:
        outbox = outbound.Outbox(self.runtime.aws_endpoint).read()  # moto's whole record: read once
        emails = [sent_email(record) for record in outbox.emails]
        runs = flow_runs(self.table)
        templates = self.templates_by_step()
        sent_at: dict[str, datetime] = {}
        sent_by: dict[str, tuple[str, str]] = {}
        # Each email's flow and step: from its SES tags, else from the run that recorded its message id; its time
        # from moto's record (the runtime's clock), else from the run's step record.
        for run in runs:
            for step in run.steps:
                if step.message_id:
                    sent_at[step.message_id] = step.at
                    sent_by[step.message_id] = (run.flow_id, step.step_id)
        for sent in emails:
            if sent.flow_id and sent.step_id and sent.message_id not in sent_by:
                # SES tag values allow no ":": the composer writes builtin:x as builtin_x.
                flow_id = sent.flow_id.replace("builtin_", "builtin:", 1) if sent.flow_id.startswith("builtin_") \
                    else sent.flow_id
                sent_by[sent.message_id] = (flow_id, sent.step_id)
            if sent.sent_at:
                sent_at[sent.message_id] = sent.sent_at
        named = {m: (flow, templates.get(flow, {}).get(step, step)) for m, (flow, step) in sent_by.items()}
        return FlowsOutcome(emails, sent_at, named, runs, dict(self.unsubscribed), len(outbox.sms))


def _span_text(span: timedelta) -> str:
    """4h10m, 30d: a clock stop as the report names it."""
    minutes = int(span.total_seconds()) // 60
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    return "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n) or "0m"


def demo_flows(runtime: LocalRuntime, api: Any, stores: dict[str, Store], table: str, shoppers: int = 60,
               seed: int = 7) -> list[str]:
    """The flows part; the mismatches (empty when every check holds)."""
    try:
        return FlowsDemo(runtime, api, stores, table).run(shoppers, seed)
    except RuntimeError as error:
        print(f"  MISMATCH flows could not run: {error}")
        return [str(error)]



def main(argv: Sequence[str] | None = None) -> int:
    """This part on a runtime of its own, for the Shopify store of a workspace of its own (`make demo` runs it
    so, with the demo's seed)."""
    from crm_local.demo import SECRETS, Api, free_port
    from crm_local.operations import add_store, stack_outputs

    parser = argparse.ArgumentParser(prog="python -m crm_local.demo_flows", description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--wait", action="store_true", help="once the stack is up, wait for a line on stdin")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with LocalRuntime(port=free_port(), aws_port=free_port(), stack_name=STACK) as runtime:
        print(f"flows stack up in {time.perf_counter() - started:.0f} s", flush=True)
        if args.wait and not sys.stdin.readline():
            return 1  # the input ended without a line: the demo is gone
        began, cpu = time.perf_counter(), time.process_time()
        shop = add_store(STACK, SHOPIFY, DOMAINS[SHOPIFY], SECRETS[SHOPIFY], currency=STORE_CURRENCY[SHOPIFY])
        stores = {SHOPIFY: Store(SHOPIFY, shop.domain, SECRETS[SHOPIFY], shop.write_key or "")}
        wrong = demo_flows(runtime, Api(runtime.api_url, shop.api_key), stores, stack_outputs(STACK)["TableName"],
                           seed=args.seed)
        # CPU time too: the stack runs in this process, so it is what the part costs whatever else the machine does.
        print(f"flows part               {time.perf_counter() - began:.0f} s wall, "
              f"{time.process_time() - cpu:.0f} s CPU (the stack's and the demo's)", flush=True)
    print(f"flows part finished {time.perf_counter() - started:.0f} s after the start of its stack", flush=True)
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
