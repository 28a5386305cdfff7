"""A/B splits (crm.flows.abtest, crm.flows.engine.random_path, the service at a split): runs spread over the
paths as the weights say, the probability that each path is best, and the winner rule."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from crm.flows.abtest import Arm, probability_best, sampled, split_probabilities, winner
from crm.flows.abtest import _integrated as integrated
from crm.flows.engine import random_path
from crm.models.flows import FlowDefinition, RandomSplit, WinnerRule, run_id_for
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.unit.test_flow_service import WS, World, _live, checkout


def _split(*weights: int, rule: WinnerRule | None = None) -> RandomSplit:
    return RandomSplit(id="ab", paths=tuple({"weight": w} for w in weights), winner=rule)  # type: ignore[arg-type]


# --- allocation ----------------------------------------------------------------------------------------------

RUNS = 3000


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.integers(0, 100), min_size=2, max_size=5).filter(lambda w: sum(w) > 0),
       flow_id=st.text("abcdefghij:_", min_size=1, max_size=12), event_prefix=st.text("0123456789abcdef", max_size=8))
def test_runs_spread_over_the_paths_within_tolerance_of_the_weights(weights: list[int], flow_id: str,
                                                                     event_prefix: str) -> None:
    """Each path's share of many runs is within 5 standard deviations of its weight's share (a false alarm
    about once in a million paths), and a path of weight 0 gets none."""
    split = _split(*weights)
    drawn = Counter(random_path(split, run_id_for(flow_id, f"{event_prefix}-{n}")) for n in range(RUNS))
    total = sum(weights)
    for number, weight in enumerate(weights):
        expected = weight / total
        if weight == 0:
            assert drawn[number] == 0
            continue
        tolerance = 5 * math.sqrt(expected * (1 - expected) / RUNS) + 1e-9
        assert abs(drawn[number] / RUNS - expected) <= tolerance, (number, drawn, weights)


@given(winning=st.integers(0, 2), run=st.text(min_size=1, max_size=20))
def test_once_a_winner_is_decided_every_run_takes_it(winning: int, run: str) -> None:
    assert random_path(_split(45, 45, 10), run, winning) == winning


def test_a_winner_the_split_no_longer_has_is_ignored() -> None:
    split = _split(50, 50)
    assert random_path(split, "run-1", 7) == random_path(split, "run-1")


# --- probability that each path is best ------------------------------------------------------------------------

arms = st.builds(lambda trials, share: Arm(trials, round(trials * share)), st.integers(0, 400), st.floats(0, 1))


@settings(max_examples=25, deadline=None)
@given(first=arms, second=arms)
def test_the_exact_two_path_answer_agrees_with_sampling(first: Arm, second: Arm) -> None:
    exact = probability_best([first, second])
    assert math.isclose(sum(exact), 1.0, abs_tol=1e-9)
    assert all(0.0 <= p <= 1.0 for p in exact)
    # 5 000 draws: a standard error of at most 0.0071.
    assert abs(exact[0] - sampled([first, second], 5_000, 7)[0]) < 0.036
    # Swapping the paths swaps the answer.
    assert probability_best([second, first]) == pytest.approx(exact[::-1], abs=1e-9)


def test_equal_evidence_is_a_coin_toss_and_more_successes_is_better() -> None:
    assert probability_best([Arm(500, 40), Arm(500, 40)]) == pytest.approx((0.5, 0.5), abs=1e-9)
    _, better = probability_best([Arm(500, 40), Arm(500, 41)])
    assert better > 0.5
    assert probability_best([Arm(500, 40), Arm(500, 60)])[1] > better
    # No evidence at all: a coin toss too.
    assert probability_best([Arm(0, 0), Arm(0, 0)]) == pytest.approx((0.5, 0.5))


@settings(max_examples=8, deadline=None)
@given(three=st.lists(arms, min_size=3, max_size=3))
def test_three_paths_are_integrated_as_sampling_says_and_sum_to_one(three: list[Arm]) -> None:
    answer = probability_best(three)
    assert math.isclose(sum(answer), 1.0, abs_tol=1e-9) and answer == probability_best(three)
    check = sampled(three, 4_000, 11)
    assert all(abs(a - b) < 0.04 for a, b in zip(answer, check, strict=True)), (answer, check)


def test_two_paths_integrated_equal_the_exact_sum() -> None:
    """The grid integration (three or more paths, very large counts) against Miller's exact sum."""
    for pair in ([Arm(500, 50), Arm(500, 60)], [Arm(10, 0), Arm(10, 3)], [Arm(3000, 2900), Arm(2000, 1950)]):
        assert integrated(pair) == pytest.approx(probability_best(pair), abs=1e-4)


def test_a_path_of_weight_zero_takes_no_part() -> None:
    split = _split(50, 0, 50)
    probabilities = split_probabilities(split, [Arm(100, 10), Arm(0, 0), Arm(100, 10)])
    assert probabilities[1] == 0.0 and probabilities[0] == pytest.approx(0.5)


# --- the winner rule -------------------------------------------------------------------------------------------

RULE = WinnerRule(metric="conversion", min_recipients=500, probability=0.9)


def test_no_winner_before_every_path_has_its_recipients() -> None:
    split = _split(50, 50, rule=RULE)
    # Path 1 is far better, but path 0 has 499 recipients.
    assert winner(split, [Arm(499, 10), Arm(800, 100)]) is None
    assert winner(split, [Arm(500, 10), Arm(800, 100)]) == 1


def test_no_winner_below_the_rule_s_probability() -> None:
    split = _split(50, 50, rule=RULE)
    evidence = [Arm(500, 50), Arm(500, 55)]
    assert probability_best(evidence)[1] < 0.9
    assert winner(split, evidence) is None
    # The same evidence wins under a looser rule.
    loose = WinnerRule(metric="conversion", min_recipients=500, probability=0.6)
    assert winner(split, evidence, loose) == 1


def test_no_rule_no_winner_and_a_weight_zero_path_needs_no_recipients() -> None:
    assert winner(_split(50, 50), [Arm(5000, 10), Arm(5000, 900)]) is None
    split = _split(50, 0, 50, rule=RULE)
    assert winner(split, [Arm(600, 10), Arm(0, 0), Arm(600, 90)]) == 2


# --- the service at a split ------------------------------------------------------------------------------------

AB_FLOW = "ab_reminder"


def _ab_definition(rule: WinnerRule | None) -> FlowDefinition:
    paths = [{"weight": 50, "steps": [{"kind": "email", "id": f"email_{name}",
                                       "template_id": f"builtin:abandoned_checkout_{number}"}]}
             for number, name in ((1, "a"), (2, "b"))]
    return FlowDefinition.model_validate({
        "name": "A/B reminder", "trigger": {"kind": "event", "event": "CheckoutStarted"},
        "steps": [{"kind": "random", "id": "ab", "winner": rule.model_dump() if rule else None, "paths": paths}]})


def _world(rule: WinnerRule | None, recipients: int) -> World:
    world = World(_live(AB_FLOW, _ab_definition(rule)))
    for path, converted in ((0, recipients // 50), (1, recipients // 5)):
        world.counters.add(WS, AB_FLOW, NOW.date(), {"recipients": recipients}, step_id="ab",
                           variant=f"ab:{path}")
        world.counters.add(WS, AB_FLOW, NOW.date(), {"sent": recipients, "converted": converted},
                           step_id=f"email_{'ab'[path]}", variant=f"ab:{path}")
    return world


def _template_sent_to(world: World, profile_ids: list[str]) -> list[str]:
    for profile_id in profile_ids:
        world.shopper(profile_id, email=f"{profile_id}@example.com")
        world.deliver(checkout(profile_id, checkout_id=profile_id))
    return [email.subject.removeprefix("subject of ") for email in world.email.sent]


def test_the_service_decides_the_winner_at_the_split_and_every_run_then_takes_it() -> None:
    world = _world(WinnerRule(metric="conversion", min_recipients=100, probability=0.9), recipients=100)
    sent = _template_sent_to(world, [f"p{n}" for n in range(12)])
    assert world.winners.winners(WS, AB_FLOW) == {"ab": 1}
    assert sent == ["builtin:abandoned_checkout_2"] * 12


def test_no_winner_is_decided_before_the_minimum_so_runs_still_spread() -> None:
    world = _world(WinnerRule(metric="conversion", min_recipients=200, probability=0.9), recipients=100)
    sent = _template_sent_to(world, [f"p{n}" for n in range(24)])
    assert world.winners.winners(WS, AB_FLOW) == {}
    assert set(sent) == {"builtin:abandoned_checkout_1", "builtin:abandoned_checkout_2"}


def test_a_split_without_a_rule_never_gets_a_winner_but_a_stored_one_is_followed() -> None:
    world = _world(None, recipients=10_000)
    _template_sent_to(world, ["p1", "p2", "p3"])
    assert world.winners.winners(WS, AB_FLOW) == {}
    world.winners.decide(WS, AB_FLOW, "ab", 0, NOW)
    sent = _template_sent_to(world, [f"q{n}" for n in range(10)])
    assert sent[3:] == ["builtin:abandoned_checkout_1"] * 10


def test_the_winner_comes_from_the_recipients_the_service_counts_itself() -> None:
    """No seeded recipients: the service's own counters (crm.flows.counting) count the runs that take each
    path; the clicks are as the feedback counts them on the steps' rows. Once both paths have 20 runs, path 1
    wins and every later run takes it."""
    world = World(_live(AB_FLOW, _ab_definition(WinnerRule(metric="click", min_recipients=20, probability=0.9))))
    world.counters.add(WS, AB_FLOW, NOW.date(), {"clicked": 1}, step_id="email_a", variant="ab:0")
    world.counters.add(WS, AB_FLOW, NOW.date(), {"clicked": 15}, step_id="email_b", variant="ab:1")
    sent = _template_sent_to(world, [f"p{n}" for n in range(80)])
    assert world.winners.winners(WS, AB_FLOW) == {"ab": 1}
    recipients = {row.variant: row.counts["recipients"] for row in world.counters.rows(WS, AB_FLOW, NOW.date(),
                                                                                        NOW.date())
                  if row.step_id == "ab" and row.variant != "-"}
    # Path 0 stopped at the 20 runs that decided it; every run after the decision took path 1.
    assert recipients["ab:0"] == 20 and recipients["ab:0"] + recipients["ab:1"] == len(sent) == 80
    last_a = max(n for n, template in enumerate(sent) if template.endswith("_1"))
    assert all(template.endswith("_2") for template in sent[last_a + 1:]) and len(sent) - last_a > 30
