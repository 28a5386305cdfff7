"""The attribution part of `make demo` (issue 11): a store of its own (its own workspace, so its counters are
only this part's), the abandoned-checkout flow with its first reminder an A/B split (the built-in reminder or
an offer) and a winner rule on clicks, two waves of shoppers (crm_local.attribution_simulation) who open and
click the real sent messages through the runtime's tracking links (as SES's open pixel and click redirects
would be hit) and some of whom order; then GET /flows/{id}/stats, reported and checked, figure by figure,
against what the simulated shoppers did: sends, deliveries, opens, clicks and their rates, orders attributed
per message and their revenue, recovered checkouts, each variant's recipients and probability of being best,
and the winner every second-wave run took.

Kept short (well under a minute): a few dozen shoppers, one clock stop per thing that happens.
It runs on a runtime of its own (`python -m crm_local.demo_attribution`; `make demo` runs it so, beside the
main stack once the history is sent, and prints its report last): on a stack holding the main demo's
workspace, each clock stop would also recompute that workspace's segments and move its flows.
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
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from crm.clock import utc_now

from crm_local import outbound
from crm_local.attribution_simulation import (
    FIRST_REMINDER,
    FLOW,
    OFFER_REMINDER,
    OFFER_TEMPLATE,
    SECOND_REMINDER,
    SPLIT,
    STEP_VARIANT,
    WINNER_RULE,
    AttributionSimulation,
    Received,
    Shopper,
    Touch,
    flow_definition,
    probability_best,
    simulate_attribution,
)
from crm_local.runtime import LocalRuntime
from crm_local.simulation import Store

DOMAIN = "demo-attribution.myshopify.com"
SECRET = "demo-attribution-webhook-secret"
SENDER = {"from_address": "hello@demo-outfitters.example", "from_name": "Demo Outfitters",
          "postal_address": "Demo Outfitters, 1 Market Street, San Francisco, CA 94105, USA"}
LEAD = timedelta(minutes=2)
SENDERS = 8  # concurrent deliveries, as the main demo sends
IDLE_TIMEOUT_SECONDS = 120
RATE_TOLERANCE = Decimal("0.0005")  # the rates' rounding
PROBABILITY_TOLERANCE = 0.02  # crm.flows.abtest may estimate by (seeded) Monte Carlo
STEPS = (FIRST_REMINDER, OFFER_REMINDER, SECOND_REMINDER)
RECOVERY_LINK = "/recover"  # the cart's recovery link (Shopify's abandoned_checkout_url) is what shoppers click

def flow_step(email: outbound.SentEmail) -> str | None:
    """The flow step a message was sent by (SES's message tags; a tag value allows no ":")."""
    flow = (email.tags.get("flow") or "").replace("builtin_", "builtin:", 1)
    return email.tags.get("step") if flow == FLOW else None


def money(value: Any) -> Decimal:
    return Decimal(str(value or "0"))


@dataclass
class Figure:
    """One reported figure beside what the simulation says it must be."""

    what: str
    got: Any
    want: Any
    close: Any = None  # a tolerance, for rates and probabilities

    @property
    def fine(self) -> bool:
        if self.close is not None:
            return self.got is not None and abs(self.got - self.want) <= self.close
        return bool(self.got == self.want)

    def line(self) -> str:
        return f"  {self.what:<44}{self.got!s:>12}  (simulation: {self.want}){'' if self.fine else '  MISMATCH'}"


class AttributionDemo:
    def __init__(self, runtime: LocalRuntime, api: Any, store: Store) -> None:
        self.runtime, self.api, self.store = runtime, api, store
        self.outbox = outbound.Outbox(runtime.aws_endpoint)
        self.mark = self.outbox.mark()
        self.unread: list[tuple[Received, outbound.SentEmail]] = []
        self.due_orders: list[tuple[datetime, Shopper]] = []

    def idle(self) -> None:
        if not self.runtime.wait_idle(timeout=IDLE_TIMEOUT_SECONDS):
            raise RuntimeError(f"the stack did not go idle within {IDLE_TIMEOUT_SECONDS} s")

    def deliver(self, webhooks: Iterable[Any]) -> None:
        from crm_local.demo import send

        batch = list(webhooks)
        with ThreadPoolExecutor(max_workers=SENDERS) as pool:
            answers = list(pool.map(lambda w: send(self.runtime.api_url, {"shopify": self.store}, w), batch))
        for webhook, sent in zip(batch, answers, strict=True):
            if sent.status != 200:
                raise RuntimeError(f"a {webhook.topic} delivery answered {sent.status}")

    def set_up(self) -> None:
        """The offer template, the flow with its A/B split, live."""
        self.api.ok("PUT", "/settings/messaging", SENDER)
        offer = self.api.ok("POST", "/templates", OFFER_TEMPLATE)
        path = f"/flows/{quote(FLOW, safe=':')}"
        builtin = self.api.ok("GET", path)["definition"]
        self.api.ok("PUT", path, flow_definition(builtin, offer.get("template_id") or offer["id"]))
        self.api.ok("PUT", f"{path}/status", {"status": "live"})

    def run(self, first_wave: int, second_wave: int, seed: int) -> list[str]:
        began, cpu = time.perf_counter(), time.process_time()
        simulation = simulate_attribution(first_wave, second_wave, seed, utc_now() + LEAD, self.store.domain)
        self.set_up()
        for stop in simulation.checkpoints():
            self.idle()  # what the shoppers did at the last stop happens at its time, not the next one's
            ahead = simulation.t0 + stop - utc_now()
            if ahead > timedelta(0):
                self.runtime.advance_clock(ahead)
            self.idle()
            self.deliver(simulation.checkout(s) for s in simulation.shoppers if s.checkout_at == stop)
            self.collect(simulation)
            self.read(simulation)
            self.order(simulation)
        self.idle()
        print(f"\n== attribution ==\nsimulated                {first_wave} + {second_wave} shoppers (seed {seed}) "
              f"through {len(simulation.checkpoints())} clock stops in {time.perf_counter() - began:.0f} s",
              flush=True)
        stats = self.api.ok("GET", f"/flows/{quote(FLOW, safe=':')}/stats?"
                                   f"from={(simulation.t0 - timedelta(days=1)).date()}&to={utc_now().date()}")
        wrong = report(simulation, stats)
        # CPU time too: the stack runs in this process, so it is what the part costs whatever else the machine does.
        print(f"attribution part         {time.perf_counter() - began:.0f} s wall, "
              f"{time.process_time() - cpu:.0f} s CPU (the stack's and the demo's)", flush=True)
        return wrong

    def collect(self, simulation: AttributionSimulation) -> None:
        """The flow's messages sent since the last stop, to the simulation's shoppers."""
        sent = self.outbox.since(self.mark)
        self.mark = sent.mark
        emails = {s.email for s in simulation.shoppers}
        for email in sent.emails:
            step = flow_step(email)
            for address in email.to:
                if step in STEPS and address.lower() in emails:
                    received = Received(address.lower(), email.message_id, step, email.sent_at or utc_now())
                    simulation.log.received.append(received)
                    self.unread.append((received, email))

    def read(self, simulation: AttributionSimulation) -> None:
        """Each shopper opens (the pixel) and clicks (a tracked link) what they got, as the simulation plans."""
        now = utc_now()
        for received, email in self.unread:
            shopper = simulation.by_email(received.shopper)
            plan = simulation.plan(shopper, received.step_id)
            try:
                for _ in range(plan.opens):  # a second open of the same message counts once
                    outbound.open_email(email)
                if plan.clicks:
                    outbound.click(email, containing=RECOVERY_LINK)
            except (LookupError, OSError) as error:
                raise RuntimeError(f"reading {email.message_id}: {error}") from None
            if plan.opens:
                simulation.log.touches.append(Touch(shopper.email, email.message_id, received.step_id, "open", now))
            if plan.clicks:
                simulation.log.touches.append(Touch(shopper.email, email.message_id, received.step_id, "click", now))
            if received.step_id in STEP_VARIANT:
                after = simulation.order_after(shopper)
                if after is not None:
                    self.due_orders.append((simulation.t0 + shopper.checkout_at + after, shopper))
        self.unread = []

    def order(self, simulation: AttributionSimulation) -> None:
        now = utc_now()
        due = [(at, s) for at, s in self.due_orders if at <= now]
        self.due_orders = [(at, s) for at, s in self.due_orders if at > now]
        placed = [simulation.order(shopper, now) for _, shopper in due]
        self.deliver(webhook for webhook, _ in placed)
        simulation.log.orders += [order for _, order in placed]


def expected_counts(simulation: AttributionSimulation, steps: Iterable[str]) -> dict[str, Any]:
    """Sends, opens, clicks, conversions and revenue of the given steps' messages, from the simulation's log."""
    wanted = set(steps)
    got = {r.message_id for r in simulation.log.received if r.step_id in wanted}
    opened = {t.message_id for t in simulation.log.touches if t.kind == "open" and t.message_id in got}
    clicked = {t.message_id for t in simulation.log.touches if t.kind == "click" and t.message_id in got}
    credits = [c for c in simulation.credits() if c.touch.message_id in got]
    recovered = [c for c in credits if c.recovered]
    return {"sent": len(got), "delivered": len(got), "opened": len(opened), "clicked": len(clicked),
            "converted": len(credits), "revenue": sum((c.order.value for c in credits), Decimal("0")),
            "recovered": len(recovered), "recovered_revenue": sum((c.order.value for c in recovered), Decimal("0"))}


def rate(part: int, whole: int) -> Decimal:
    return Decimal(part) / Decimal(whole) if whole else Decimal("0")


def compare(label: str, counts: dict[str, Any], want: dict[str, Any], names: Iterable[str]) -> list[Figure]:
    figures = []
    for name in names:
        value = counts.get(name)
        got = money(value) if name.endswith("revenue") else value
        figures.append(Figure(f"{label} {name}", got, want[name]))
    return figures


def report(simulation: AttributionSimulation, stats: dict[str, Any]) -> list[str]:
    """Print the flow's figures beside the simulation's; the mismatches."""
    figures: list[Figure] = []
    totals, want = stats["totals"], expected_counts(simulation, STEPS)
    currency = stats.get("currency", "")
    figures.append(Figure("flow entered (one run per checkout)", totals.get("entered"), len(simulation.shoppers)))
    figures += compare("flow", totals, want, ("sent", "delivered", "opened", "clicked", "converted", "revenue",
                                             "recovered", "recovered_revenue"))
    figures.append(Figure("flow open rate (opened / delivered)", money(totals.get("open_rate")),
                          rate(want["opened"], want["delivered"]), RATE_TOLERANCE))
    figures.append(Figure("flow click rate (clicked / delivered)", money(totals.get("click_rate")),
                          rate(want["clicked"], want["delivered"]), RATE_TOLERANCE))
    for step_id in STEPS:
        counts = stats.get("steps", {}).get(step_id, {})
        figures += compare(f"step {step_id}", counts, expected_counts(simulation, [step_id]),
                           ("sent", "opened", "clicked", "converted", "revenue"))
    reminders = Counter(r.shopper for r in simulation.log.received)
    figures.append(Figure("shoppers who got the reminders they should", sum(
        reminders[s.email] == simulation.reminders_due(s) for s in simulation.shoppers), len(simulation.shoppers)))
    split, summary = split_figures(simulation, stats)
    figures += split
    print(f"flow {FLOW}: attributed revenue {money(totals.get('revenue')):.2f} {currency}, "
          f"{totals.get('converted')} orders, recovered checkouts {totals.get('recovered')} "
          f"({money(totals.get('recovered_revenue')):.2f} {currency}); GET /flows/{FLOW}/stats against the simulation:")
    for figure in figures:
        print(figure.line())
    print(summary)
    orders = len(simulation.log.orders)
    credited = len(simulation.credits())
    print(f"orders                   {orders} placed by the simulated shoppers, {credited} after an open or a click "
          f"within 5 days (attributed), {orders - credited} not (no touch, or a week later)")
    wrong = [f"{f.what}: reported {f.got}, the simulation says {f.want}" for f in figures if not f.fine]
    print(f"checked                  {len(figures)} figures: "
          f"{'all as the simulation says' if not wrong else f'{len(wrong)} MISMATCHES'}")
    return wrong


def split_figures(simulation: AttributionSimulation, stats: dict[str, Any]) -> tuple[list[Figure], str]:
    """The split's variants (recipients, clicks, probability best on clicks), its winner, and the second
    wave's first reminders: all the winner's once it was decided."""
    split = next((s for s in stats.get("splits", ()) if s.get("split_id") == SPLIT), None)
    if split is None:
        return [Figure(f"split {SPLIT}", None, "reported")], ""
    arms = [(0, 0), (0, 0)]
    for wave in (1, 2):
        arms = [(a + c, b + n) for (a, b), (c, n) in zip(arms, simulation.arms(wave), strict=True)]
    best = probability_best(arms)
    figures = []
    variants = {int(v["path"]): v for v in split.get("variants", ())}
    for path, (clicks, recipients) in enumerate(arms):
        variant = variants.get(path, {})
        figures.append(Figure(f"variant {SPLIT}:{path} recipients", variant.get("recipients"), recipients))
        figures.append(Figure(f"variant {SPLIT}:{path} clicked", variant.get("counts", {}).get("clicked"), clicks))
        figures.append(Figure(f"variant {SPLIT}:{path} P(best on clicks)", variant.get("probability_best"),
                              round(best[path], 4), PROBABILITY_TOLERANCE))
    expected = simulation.expected_winner()
    rule = WINNER_RULE
    summary = (f"A/B split {SPLIT!r}       winner rule: {rule['metric']}, {rule['min_recipients']} recipients per "
               f"variant, P(best) >= {rule['probability']}; the first wave's (clicks, recipients) by variant "
               f"{simulation.arms(1)} -> winner {expected if expected is not None else 'none yet'}")
    figures.append(Figure(f"split {SPLIT} winner", split.get("winner"), expected))
    if expected is not None:
        second = Counter(r.step_id for r in simulation.log.received
                         if r.step_id in STEP_VARIANT and simulation.by_email(r.shopper).wave == 2)
        took = {STEP_VARIANT[step]: count for step, count in second.items()}
        figures.append(Figure("second wave's first reminders, by variant", took,
                              {expected: len(simulation.wave(2))}))
    return figures, summary


def demo_attribution(runtime: LocalRuntime, stack_name: str, first_wave: int = 14, second_wave: int = 3,
                     seed: int = 11) -> list[str]:
    """The attribution part on a running runtime; the mismatches (empty when every check holds)."""
    from crm_local.demo import Api
    from crm_local.operations import add_store

    try:
        registered = add_store(stack_name, "shopify", DOMAIN, SECRET, currency="USD")
        store = Store("shopify", DOMAIN, SECRET, registered.write_key or "")
        return AttributionDemo(runtime, Api(runtime.api_url, registered.api_key), store).run(
            first_wave, second_wave, seed)
    except RuntimeError as error:
        print(f"  MISMATCH attribution could not run: {error}")
        return [str(error)]


def main(argv: Sequence[str] | None = None) -> int:
    """This part on a runtime of its own (`make demo` runs it so, with --wait)."""
    from crm_local.demo import free_port

    parser = argparse.ArgumentParser(prog="python -m crm_local.demo_attribution", description=__doc__)
    parser.add_argument("--wait", action="store_true", help="once the stack is up, wait for a line on stdin")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with LocalRuntime(port=free_port(), aws_port=free_port(), stack_name="crm-demo-attribution") as runtime:
        print(f"attribution stack up in {time.perf_counter() - started:.0f} s", flush=True)
        if args.wait and not sys.stdin.readline():
            return 1  # the input ended without a line: the demo is gone
        wrong = demo_attribution(runtime, "crm-demo-attribution")
    print(f"attribution part finished {time.perf_counter() - started:.0f} s after the start of its stack", flush=True)
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
