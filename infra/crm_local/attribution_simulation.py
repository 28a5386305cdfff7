"""The attribution part of `make demo`, simulated: shoppers of a Shopify store who abandon checkouts, get the
abandoned-checkout flow's reminders (its first reminder an A/B split of two variants with a winner rule),
open and click them or not, and order or not. What the CRM must then report (revenue per flow and per
message, recovered checkouts, open and click rates, the A/B winner) is computed here from what the shoppers
did, never with the CRM's code nor read back from its stats.

A shopper reacts to the message they actually got: which variant a run takes is the CRM's draw, so the
demo tells the simulation what arrived (its step, from SES's message tags) and the simulation answers what
the shopper does with it, from draws fixed when the shopper was made (the same seed, the same behaviour for
the same variant). Two waves of checkouts: the first fills both variants; the second starts after the
first's clicks are in, so its runs reach the split after the winner rule could decide, and all take the
winner if there is one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from crm_local.simulation import FIRST_NAMES, LAST_NAMES, PRODUCTS, Fate, FlowShopper, Webhook, _FlowGenerator

FLOW = "builtin:abandoned_checkout"
SPLIT = "reminder"  # the random split's id: variants are "reminder:0" and "reminder:1"
FIRST_REMINDER = "email_1"  # path 0: the built-in reminder
OFFER_REMINDER = "email_1_offer"  # path 1: a reminder with an offer (the demo's own template)
SECOND_REMINDER = "email_2"  # after the split, every run
STEP_VARIANT = {FIRST_REMINDER: 0, OFFER_REMINDER: 1}
OFFER_TEMPLATE = {
    "channel": "email", "name": "Abandoned checkout: reminder with an offer",
    "subject": "10% off the cart you left",
    "html": "<!DOCTYPE html><html><body><h1>10% off, today only</h1>"
            "<p>Hi{% if profile.first_name %} {{ profile.first_name }}{% endif %}, your cart is still here.</p>"
            "{% if trigger.recovery_url %}<p><a href=\"{{ trigger.recovery_url }}\">Take 10% off your cart</a></p>"
            "{% endif %}<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p></body></html>",
}
MIN_RECIPIENTS, WIN_PROBABILITY = 4, 0.9  # the split's winner rule: on clicks
WINNER_RULE: dict[str, Any] = {"metric": "click", "min_recipients": MIN_RECIPIENTS, "probability": WIN_PROBABILITY}
CLICK_WINDOW = OPEN_WINDOW = timedelta(days=5)  # the workspace's attribution windows (the defaults)

# How shoppers answer each message: (open, click given an open). The offer is the better reminder.
RESPONSE = {FIRST_REMINDER: (0.5, 0.15), OFFER_REMINDER: (0.85, 0.8), SECOND_REMINDER: (0.45, 0.35)}
# Who orders: after a click, after an open only, after neither.
ORDER_AFTER = {"click": 0.7, "open": 0.35, "none": 0.1}
# When, from their checkout: before the second reminder (the run exits), days later (within 5 days of the
# first reminder's touches), or a week later (past every window). Shoppers who touched nothing order late.
ORDER_TIMES = (timedelta(hours=12), timedelta(days=3, hours=12), timedelta(days=7))
TOO_LATE = ORDER_TIMES[2]
# Shoppers read a message at the clock stop that sent it: just after the reminder is due.
FIRST_REMINDER_DUE, SECOND_REMINDER_DUE = timedelta(hours=4), timedelta(hours=24)
MARGIN = timedelta(minutes=10)
# The second wave's checkouts, from T0: its shoppers read (so that the winner shows in who got what) and do not
# order (fewer clock stops: the demo stays well under a minute); their second reminders go out and are read at
# the first wave's later orders' stop.
SECOND_WAVE = timedelta(days=2)


@dataclass(frozen=True)
class Shopper:
    """One shopper, with every draw their behaviour depends on made up front."""

    cast: FlowShopper  # their account, cart and checkout token (crm_local.simulation's flow shopper)
    wave: int
    checkout_at: timedelta  # from T0
    draws: dict[str, float]  # "open:<step>", "click:<step>", "order", "when"

    @property
    def email(self) -> str:
        return self.cast.email

    @property
    def value(self) -> Decimal:
        return self.cast.value


@dataclass(frozen=True)
class Touch:
    """A shopper opened or clicked one message (at the runtime's clock when the demo made the request)."""

    shopper: str  # email
    message_id: str
    step_id: str
    kind: str  # "open" or "click"
    at: datetime


@dataclass(frozen=True)
class Order:
    shopper: str
    checkout_token: str
    value: Decimal
    at: datetime


@dataclass(frozen=True)
class Received:
    """A message the shopper got (read from SES's record: its id, its step tag, when it was sent)."""

    shopper: str
    message_id: str
    step_id: str
    at: datetime


@dataclass(frozen=True)
class Plan:
    """What a shopper does with one message: open it (a clicker opens it twice: a repeat counts once), click."""

    opens: int
    clicks: bool


@dataclass
class Log:
    """What the simulated shoppers did, as they did it: the demo's ground truth."""

    received: list[Received] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)


@dataclass(frozen=True)
class Credit:
    """An order credited to a message by the attribution rule, as the simulation applies it."""

    order: Order
    touch: Touch
    recovered: bool


def attribute(orders: Iterable[Order], touches: Sequence[Touch], received: Sequence[Received]) -> list[Credit]:
    """The last open or click of a flow message before each order, within its window (an order with none is
    not credited). Recovered: the order is the abandoned cart's, and came after a reminder of its run."""
    credits = []
    for order in orders:
        eligible = [t for t in touches if t.shopper == order.shopper and t.at <= order.at
                    and order.at - t.at <= (CLICK_WINDOW if t.kind == "click" else OPEN_WINDOW)]
        if not eligible:
            continue
        # The latest touch; at the same moment a click is the stronger signal.
        last = max(eligible, key=lambda t: (t.at, t.kind == "click"))
        reminded = any(r.shopper == order.shopper and r.at <= order.at for r in received)
        credits.append(Credit(order, last, recovered=reminded))
    return credits


def probability_best(arms: Sequence[tuple[int, int]]) -> list[float]:
    """P(each arm's rate is the highest) for two arms of (successes, trials), under uniform Beta(1, 1) priors:
    the exact sum for P(B > A) (Evan Miller, "Formulas for Bayesian A/B testing"), computed here rather than
    taken from the CRM (crm.flows.abtest) so that the demo checks it."""
    if len(arms) != 2:
        raise ValueError("the demo's split has two arms")
    (clicks_a, trials_a), (clicks_b, trials_b) = arms
    alpha_a, beta_a = clicks_a + 1, trials_a - clicks_a + 1
    alpha_b, beta_b = clicks_b + 1, trials_b - clicks_b + 1

    def log_beta(a: float, b: float) -> float:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    b_wins = sum(math.exp(log_beta(alpha_a + i, beta_a + beta_b) - math.log(beta_b + i)
                          - log_beta(1 + i, beta_b) - log_beta(alpha_a, beta_a)) for i in range(alpha_b))
    return [1.0 - b_wins, b_wins]


def winner(arms: Sequence[tuple[int, int]], min_recipients: int, probability: float) -> int | None:
    """The rule: every arm has ``min_recipients`` and one is best with at least ``probability``."""
    if any(trials < min_recipients for _, trials in arms):
        return None
    best = probability_best(arms)
    return next((arm for arm, p in enumerate(best) if p >= probability), None)


@dataclass
class AttributionSimulation:
    shoppers: list[Shopper]
    t0: datetime
    log: Log = field(default_factory=Log)
    generator: _FlowGenerator | None = None

    def by_email(self, email: str) -> Shopper:
        return next(s for s in self.shoppers if s.email == email)

    def wave(self, number: int) -> list[Shopper]:
        return [s for s in self.shoppers if s.wave == number]

    def checkpoints(self) -> list[timedelta]:
        """The clock's stops, from T0: each wave's checkouts and first reminders (plus a margin); the first
        wave's second reminders and orders."""
        stops = {timedelta(0), MARGIN + FIRST_REMINDER_DUE, MARGIN + SECOND_REMINDER_DUE, *ORDER_TIMES}
        return sorted(stops | {SECOND_WAVE, SECOND_WAVE + FIRST_REMINDER_DUE + MARGIN})

    def plan(self, shopper: Shopper, step_id: str) -> Plan:
        """What the shopper does with the message of ``step_id``: from their draws and the message's appeal."""
        opens, clicks = RESPONSE[step_id]
        opened = shopper.draws[f"open:{step_id}"] < opens
        clicked = opened and shopper.draws[f"click:{step_id}"] < clicks
        return Plan(opens=(2 if clicked else 1) if opened else 0, clicks=clicked)

    def order_after(self, shopper: Shopper) -> timedelta | None:
        """Whether and when the shopper orders, from what they did with the first reminder (the simulation's
        own log; the same answer before and after the second): a clicker or opener orders sooner; someone who
        touched nothing, if at all, a week later. The second wave does not order."""
        if shopper.wave != 1:
            return None
        mine = {t.kind for t in self.log.touches if t.shopper == shopper.email and t.step_id in STEP_VARIANT}
        engaged = "click" if "click" in mine else "open" if "open" in mine else "none"
        if shopper.draws["order"] >= ORDER_AFTER[engaged]:
            return None
        if engaged == "none":
            return TOO_LATE
        return ORDER_TIMES[min(int(shopper.draws["when"] * len(ORDER_TIMES)), len(ORDER_TIMES) - 1)]

    def reminders_due(self, shopper: Shopper) -> int:
        """Both reminders, but one when the shopper ordered before the second (the order ends the run)."""
        return 1 if self.order_after(shopper) == ORDER_TIMES[0] else 2

    def checkout(self, shopper: Shopper) -> Webhook:
        assert self.generator is not None
        body = self.generator.checkout_body(shopper.cast)
        at = self.t0 + shopper.checkout_at
        body.update(created_at=at.isoformat(), updated_at=at.isoformat(), buyer_accepts_marketing=True)
        return self.generator.webhook("checkouts/create", body, at)

    def order(self, shopper: Shopper, at: datetime) -> tuple[Webhook, Order]:
        assert self.generator is not None
        webhook = self.generator.webhook("orders/create", self.generator.order_body(shopper.cast, at), at)
        return webhook, Order(shopper.email, shopper.cast.checkout_token or "", shopper.value, at)

    # --- what the CRM must report, from the log alone -------------------------------------------------------

    def credits(self) -> list[Credit]:
        return attribute(self.log.orders, self.log.touches, self.log.received)

    def arms(self, wave: int = 1) -> list[tuple[int, int]]:
        """(shoppers who clicked, shoppers who got it) per variant, among the ``wave``'s first reminders."""
        emails = {s.email for s in self.wave(wave)}
        arms = []
        for step_id in (FIRST_REMINDER, OFFER_REMINDER):
            got = {r.message_id for r in self.log.received if r.step_id == step_id and r.shopper in emails}
            clicked = {t.message_id for t in self.log.touches if t.kind == "click" and t.message_id in got}
            arms.append((len(clicked), len(got)))
        return arms

    def expected_winner(self) -> int | None:
        return winner(self.arms(1), MIN_RECIPIENTS, WIN_PROBABILITY)


def flow_definition(builtin: dict[str, Any], offer_template_id: str) -> dict[str, Any]:
    """The built-in abandoned-checkout flow (as GET /flows/{id} answers it) with its first reminder made an A/B
    split: the built-in reminder or the offer, half and half, and a winner rule on clicks."""
    steps = []
    for step in builtin["steps"]:
        if step.get("id") == FIRST_REMINDER:
            steps.append({"kind": "random", "id": SPLIT, "winner": WINNER_RULE, "paths": [
                {"weight": 1, "steps": [step]},
                {"weight": 1, "steps": [{**step, "id": OFFER_REMINDER, "template_id": offer_template_id}]}]})
        else:
            steps.append(step)
    return {**builtin, "steps": steps}


def simulate_attribution(first_wave: int, second_wave: int, seed: int, t0: datetime, domain: str
                         ) -> AttributionSimulation:
    """``first_wave`` + ``second_wave`` shoppers who each abandon a checkout (at T0, and at T0 + 2 days)."""
    rng = random.Random(seed)
    generator = _FlowGenerator(0, seed, t0, domain)
    shoppers = []
    for index in range(first_wave + second_wave):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        label = f"a{index}"
        items = tuple((pid, title, price, rng.randint(1, 2)) for pid, title, price in rng.sample(PRODUCTS,
                                                                                             rng.randint(1, 3)))
        # Guests who tick "email me news and offers" at checkout: their consent comes with the checkout.
        cast = FlowShopper(10_000 + index, first, last, f"{first}.{last}.{label}@example.com".lower().replace(" ", ""),
                           None, Fate.ABANDONS, True,
                           checkout_token=f"{rng.getrandbits(128):032x}", items=items)
        draws = {f"{kind}:{step}": rng.random() for kind in ("open", "click") for step in RESPONSE}
        draws |= {"order": rng.random(), "when": rng.random()}
        wave = 1 if index < first_wave else 2
        shoppers.append(Shopper(cast, wave, timedelta(0) if wave == 1 else SECOND_WAVE, draws))
    return AttributionSimulation(shoppers, t0, generator=generator)
