"""`make bench`, part 6: backtest speed (crm.flows.simulate), in events per second over a generated 30-day
history of DESIGN.md's reference store, with a baseline measured in the same run.

The reference store has 100k profiles, 300k orders and 3M storefront events a month. Its flow events (what the
outbox puts on the bus for flows) are generated for a sample of it (``--scale``, default 0.01: 1,000 profiles,
so that the script stays within a minute on a shared two-core machine), in the same proportions: per month
300k orders, each after a checkout started 5 to 90 minutes before it and 90 % fulfilled 20 to 120 hours after
it, 300k checkouts more that were abandoned, and product views of shoppers with an address (40 % of 2.1M
views; the rest are anonymous, and the outbox never publishes them). Shoppers: 70 % with an email, 80 % of those
subscribed; the events are spread uniformly over the 30 days, orders over the shoppers by a Pareto draw (repeat
buyers).

Measured, one after another on the same history (the profiles as they stood at each event already built, as
the workspace history source hands them over, and timed apart):

- each built-in flow the history triggers (abandoned checkout, browse abandonment, post-purchase): the real
  flows service on memory ports with the simulated clock (``Backtest.play``);
- the baseline: the same history through the same service with a flow no event triggers but every event is
  heard by (its exits: each event still reads the catalogue, the profile and its runs, and is turned away by
  the engine's ``enter``): the per-event
  cost of the service without any run; the ratio says what running a flow adds.

The projected time of a backtest of the whole reference store's month is its flow events over the measured
rate. Times are this machine's (printed, never asserted); counts are deterministic for a seed.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crm.flows.builtin import ABANDONED_CHECKOUT, BROWSE_ABANDONMENT, BUILTIN_FLOWS, POST_PURCHASE
from crm.flows.engine import FlowEvent
from crm.flows.history import scripted_history
from crm.flows.simulate import Backtest, BacktestReport, HistoryEvent, messaging_of
from crm.models.consent import Consent, ConsentState
from crm.models.flows import EventTrigger, ExitEvent, FilterOp, FlowRecord, FlowStatus, PropertyFilter
from crm.models.profile import new_profile
from figures import record

WS = "bench"
END = datetime(2026, 12, 1, tzinfo=UTC)
START = END - timedelta(days=30)
REFERENCE_PROFILES = 100_000
REFERENCE_ORDERS = 300_000
ABANDONED_CHECKOUTS = 300_000  # a month, besides the checkout before each order
REACHABLE_VIEWS = 840_000  # 40 % of the 2.1M product views among the 3M storefront events
FULFILLED_SHARE = 0.9  # of orders, 20 to 120 hours after them
REFERENCE_FLOW_EVENTS = round(REFERENCE_ORDERS * (2 + FULFILLED_SHARE)) + ABANDONED_CHECKOUTS + REACHABLE_VIEWS


@dataclass(frozen=True)
class Measured:
    name: str
    events: int
    seconds: float
    report: BacktestReport

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _event(kind: str, profile_id: str, at: datetime, ref: str) -> FlowEvent:
    detail: dict[str, object] = {"event_id": f"{kind}:{ref}", "workspace_id": WS, "profile_id": profile_id,
                                 "occurred_at": at.isoformat(), "store_id": "shop"}
    if kind == "CheckoutStarted":
        detail |= {"checkout_id": ref, "items": [{"title": "Mug", "price": "24.00"}]}
    elif kind == "OrderFulfilled":
        detail |= {"order_id": ref}
    elif kind == "OrderPlaced":
        detail |= {"order_id": ref, "currency": "USD", "total_price": "48.00", "net_total": "48.00", "paid": True,
                   "checkout_token": ref}
    else:
        detail |= {"product": {"title": "Mug"}}
    return FlowEvent.of(kind, detail)


def generate(scale: float, seed: int) -> list[HistoryEvent]:
    """The sample's 30 days: each shopper's events with the profile carried forward, then all in time order."""
    rng = random.Random(seed)
    shoppers = max(1, round(REFERENCE_PROFILES * scale))
    per: dict[int, list[FlowEvent]] = {index: [] for index in range(shoppers)}

    def moment() -> datetime:
        return START + timedelta(seconds=rng.randrange(30 * 86_400))

    def buyer() -> int:  # repeat buyers: a long tail of shoppers with many orders, none with a huge share
        return min(int((rng.paretovariate(1.5) - 1) * shoppers / 20), shoppers - 1)

    for number in range(round(REFERENCE_ORDERS * scale)):
        index, at = buyer(), moment()
        ref = f"o{number}"
        per[index] += [_event("CheckoutStarted", f"p{index}", at - timedelta(minutes=rng.randint(5, 90)), ref),
                       _event("OrderPlaced", f"p{index}", at, ref)]
        if rng.random() < FULFILLED_SHARE:
            per[index].append(_event("OrderFulfilled", f"p{index}", at + timedelta(hours=rng.randint(20, 120)), ref))
    for number in range(round(ABANDONED_CHECKOUTS * scale)):
        index = rng.randrange(shoppers)
        per[index].append(_event("CheckoutStarted", f"p{index}", moment(), f"a{number}"))
    for number in range(round(REACHABLE_VIEWS * scale)):
        index = rng.randrange(shoppers)
        per[index].append(_event("ProductViewed", f"p{index}", moment(), f"v{number}"))
    history: list[HistoryEvent] = []
    for index, events in per.items():
        email = f"shopper{index}@example.com" if rng.random() < 0.7 else None
        state = ConsentState.SUBSCRIBED if email and rng.random() < 0.8 else ConsentState.NOT_SUBSCRIBED
        profile = new_profile(WS, f"p{index}", START - timedelta(days=400)).model_copy(update={
            "email": email, "consents": {"email": Consent(channel="email", state=state, source="shopify",
                                                          at=START - timedelta(days=400))}})
        history += scripted_history(profile, events)
    history.sort(key=lambda h: (h.event.occurred_at, h.event.event_id))
    return history


def _flow(flow_id: str, *, never_triggered: bool = False) -> FlowRecord:
    definition = BUILTIN_FLOWS[flow_id]
    if never_triggered:  # an event the history never has: the service's per-event cost without any run
        # Exits on every kind of event the history has (a run would end on none: there is none), so that each
        # event is heard and reads the profile and its runs (crm.flows.catalogue.hears) as a live store's do.
        heard = tuple(ExitEvent(event=kind, where=(PropertyFilter(property="no_such_property", op=FilterOp.EXISTS),))
                      for kind in ("CheckoutStarted", "ProductViewed", "OrderPlaced", "OrderFulfilled"))
        definition = definition.model_copy(update={"trigger": EventTrigger(event="ContactCreated"), "exits": heard})
    return FlowRecord(workspace_id=WS, flow_id=flow_id, status=FlowStatus.LIVE, version=1, definition=definition,
                      created_at=START, updated_at=START)


def measure(name: str, flow: FlowRecord, history: list[HistoryEvent]) -> Measured:
    backtest = Backtest(flow, START, END, messaging=messaging_of(WS))
    began = time.perf_counter()
    report = backtest.play(history)
    return Measured(name, report.events_replayed, time.perf_counter() - began, report)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.01, help="share of the reference store (default 0.01)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    began = time.perf_counter()
    history = generate(args.scale, args.seed)
    built = time.perf_counter() - began
    print(f"# Backtest speed: 30 days of the reference store at scale {args.scale:g} (seed {args.seed})")
    print(f"history: {len(history):,} flow events of {round(REFERENCE_PROFILES * args.scale):,} shoppers, "
          f"built with the profiles as they stood in {built:.1f} s ({len(history) / built:,.0f} events/s)")
    baseline = measure("baseline: no event triggers the flow", _flow(ABANDONED_CHECKOUT, never_triggered=True),
                       history)
    runs = [measure(flow_id, _flow(flow_id), history)
            for flow_id in (ABANDONED_CHECKOUT, BROWSE_ABANDONMENT, POST_PURCHASE)]
    print(f"{'flow':<38} {'events':>9} {'s':>6} {'events/s':>9} {'vs base':>8} {'entered':>8} {'wake-ups':>9} "
          f"{'sent':>7} {'skipped':>8} {'orders':>7}")
    for measured in (baseline, *runs):
        report = measured.report
        print(f"{measured.name:<38} {measured.events:>9,} {measured.seconds:>6.1f} {measured.rate:>9,.0f} "
              f"{measured.rate / baseline.rate:>7.2f}x {report.entered:>8,} {report.wake_ups:>9,} "
              f"{sum(report.sent.values()):>7,} {sum(report.skipped.values()):>8,} {report.orders:>7,}")
    slowest = min(runs, key=lambda m: m.rate)
    print(f"a whole reference month ({REFERENCE_FLOW_EVENTS:,} flow events) at the slowest flow's rate "
          f"({slowest.name}): {REFERENCE_FLOW_EVENTS / slowest.rate:,.0f} s")
    record("backtest", {"events_per_s": {m.name: m.rate for m in (baseline, *runs)}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
