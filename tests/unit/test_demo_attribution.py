"""The attribution part of `make demo`: the simulation's own attribution rule, its A/B arithmetic (checked here
against a Monte Carlo estimate and the winner rule's thresholds), its flow with the split (the real models
accept it), and that the shoppers' webhooks read, through the real Shopify connector, as the checks assume."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from crm.flows.builtin import BUILTIN_FLOWS
from crm.flows.manage import parse_definition
from crm.models.flows import RandomSplit, SendEmail
from crm_local.attribution_simulation import (
    FIRST_REMINDER,
    FLOW,
    OFFER_REMINDER,
    ORDER_AFTER,
    ORDER_TIMES,
    SECOND_REMINDER,
    SPLIT,
    TOO_LATE,
    AttributionSimulation,
    Order,
    Received,
    Touch,
    attribute,
    flow_definition,
    probability_best,
    simulate_attribution,
    winner,
)

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SHOPPER = "ada@example.com"


@pytest.fixture
def simulation() -> AttributionSimulation:
    return simulate_attribution(12, 4, seed=3, t0=T0, domain="shop.myshopify.com")


def _touch(kind: str, at: datetime, message: str = "m1", step: str = FIRST_REMINDER) -> Touch:
    return Touch(SHOPPER, message, step, kind, at)


def _order(at: datetime) -> Order:
    return Order(SHOPPER, "token", Decimal("50.00"), at)


RECEIVED = [Received(SHOPPER, "m1", FIRST_REMINDER, T0), Received(SHOPPER, "m2", SECOND_REMINDER, T0)]


@pytest.mark.parametrize(("kind", "after", "credited"), [
    ("click", timedelta(days=5), True), ("click", timedelta(days=5, seconds=1), False),
    ("open", timedelta(days=5), True), ("open", timedelta(days=5, seconds=1), False),
    ("open", timedelta(0), True), ("click", -timedelta(seconds=1), False),
])
def test_an_order_is_credited_within_5_days_of_a_touch_edges_included(kind: str, after: timedelta,
                                                                        credited: bool) -> None:
    touched = T0 + timedelta(hours=5)
    credits = attribute([_order(touched + after)], [_touch(kind, touched)], RECEIVED)
    assert len(credits) == (1 if credited else 0)


def test_the_last_touch_wins_and_a_click_beats_an_open_at_the_same_moment() -> None:
    first, second = T0 + timedelta(hours=5), T0 + timedelta(hours=25)
    touches = [_touch("click", first), _touch("open", second, "m2", SECOND_REMINDER)]
    [credit] = attribute([_order(T0 + timedelta(days=3))], touches, RECEIVED)
    assert (credit.touch.message_id, credit.recovered) == ("m2", True)
    same = [_touch("open", first, "m1"), _touch("click", first, "m2", SECOND_REMINDER)]
    [credit] = attribute([_order(T0 + timedelta(days=1))], same, RECEIVED)
    assert credit.touch.kind == "click"


def test_another_shoppers_touch_credits_nothing() -> None:
    other = Touch("grace@example.com", "m9", FIRST_REMINDER, "click", T0)
    assert attribute([_order(T0 + timedelta(hours=1))], [other], RECEIVED) == []


@pytest.mark.parametrize("arms", [[(3, 12), (9, 12)], [(0, 10), (0, 10)], [(5, 20), (4, 9)], [(14, 30), (2, 25)]])
def test_probability_best_is_exact_against_a_monte_carlo_estimate(arms: list[tuple[int, int]]) -> None:
    draws, rng, wins = 40_000, random.Random(5), 0
    for _ in range(draws):
        a, b = (rng.betavariate(1 + c, 1 + n - c) for c, n in arms)
        wins += b > a
    exact = probability_best(arms)
    assert exact[1] == pytest.approx(wins / draws, abs=0.01)
    assert sum(exact) == pytest.approx(1.0)


def test_the_winner_rule_needs_the_recipients_and_the_probability() -> None:
    assert winner([(2, 12), (10, 12)], min_recipients=8, probability=0.9) == 1
    assert winner([(10, 12), (2, 12)], min_recipients=8, probability=0.9) == 0
    assert winner([(2, 7), (10, 12)], min_recipients=8, probability=0.9) is None, "a variant short of recipients"
    assert winner([(5, 12), (6, 12)], min_recipients=8, probability=0.9) is None, "no variant clearly best"


def test_the_flow_with_its_split_is_a_valid_definition() -> None:
    builtin = BUILTIN_FLOWS[FLOW].model_dump(mode="json", exclude_none=True)
    definition = parse_definition(flow_definition(builtin, "offer-template"))
    [split] = [s for s in definition.steps if isinstance(s, RandomSplit)]
    assert split.id == SPLIT and split.winner is not None and split.winner.metric == "click"
    sends = [[s for s in path.steps if isinstance(s, SendEmail)] for path in split.paths]
    assert [[(s.id, s.template_id) for s in path] for path in sends] == [
        [(FIRST_REMINDER, "builtin:abandoned_checkout_1")], [(OFFER_REMINDER, "offer-template")]]
    assert [s.id for s in definition.steps if isinstance(s, SendEmail)] == [SECOND_REMINDER]


def test_the_clock_stops_cover_each_waves_reminders_and_the_orders(simulation: AttributionSimulation) -> None:
    stops = simulation.checkpoints()
    assert stops == sorted(set(stops)) and stops[0] == timedelta(0)
    due = [timedelta(hours=4, minutes=10), timedelta(days=2), timedelta(days=2, hours=4, minutes=10),
           timedelta(hours=24, minutes=10), *ORDER_TIMES]
    assert set(due) <= set(stops) and len(stops) == len(due) + 1
    # The orders between the reminders come before the second one; the others after it.
    assert ORDER_TIMES[0] < timedelta(hours=24) < ORDER_TIMES[1]


def test_a_shopper_orders_only_as_their_own_draws_and_touches_say(simulation: AttributionSimulation) -> None:
    """Untouched, a shopper orders a week later if at all (past every window); the same shopper after a click
    orders when their draws say, sooner."""
    for shopper in simulation.shoppers:
        assert simulation.order_after(shopper) in (None, TOO_LATE)
    keen = next(s for s in simulation.wave(1) if ORDER_AFTER["none"] <= s.draws["order"] < ORDER_AFTER["click"])
    assert simulation.order_after(keen) is None
    simulation.log.touches.append(Touch(keen.email, "m1", FIRST_REMINDER, "click", T0))
    assert simulation.order_after(keen) in ORDER_TIMES
    second = simulation.wave(2)[0]
    simulation.log.touches.append(Touch(second.email, "m2", FIRST_REMINDER, "click", T0))
    assert simulation.order_after(second) is None, "the second wave does not order"


def test_the_offer_is_clicked_more_than_the_plain_reminder_by_the_same_shoppers(
        simulation: AttributionSimulation) -> None:
    plain = sum(simulation.plan(s, FIRST_REMINDER).clicks for s in simulation.shoppers)
    offer = sum(simulation.plan(s, OFFER_REMINDER).clicks for s in simulation.shoppers)
    assert offer > plain


def test_the_shoppers_webhooks_are_checkouts_and_paid_orders_of_their_cart(simulation: AttributionSimulation) -> None:
    import json

    shopper = simulation.wave(2)[0]
    checkout = json.loads(simulation.checkout(shopper).body)
    assert checkout["token"] == shopper.cast.checkout_token and checkout["email"] == shopper.email
    assert datetime.fromisoformat(checkout["created_at"]) == T0 + timedelta(days=2)
    webhook, order = simulation.order(shopper, T0 + timedelta(days=3))
    body = json.loads(webhook.body)
    assert (body["checkout_token"], body["financial_status"]) == (shopper.cast.checkout_token, "paid")
    assert Decimal(body["total_price"]) == order.value == shopper.value > 0


def test_only_the_first_reminder_decides_an_order_and_so_the_reminders_due(simulation: AttributionSimulation) -> None:
    keen = next(s for s in simulation.wave(1)
                if ORDER_AFTER["none"] <= s.draws["order"] < ORDER_AFTER["open"] and s.draws["when"] < 1 / 3)
    simulation.log.touches.append(Touch(keen.email, "m2", SECOND_REMINDER, "click", T0 + timedelta(days=1)))
    assert simulation.order_after(keen) is None and simulation.reminders_due(keen) == 2
    simulation.log.touches.append(Touch(keen.email, "m1", OFFER_REMINDER, "open", T0 + timedelta(hours=4)))
    assert simulation.order_after(keen) == ORDER_TIMES[0], "an opener who orders soon orders before the second"
    assert simulation.reminders_due(keen) == 1
