"""Product affinity (crm.affinity): a hand-worked example, the measures' invariants, and an independent
Apriori (efficient-apriori) on the same baskets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from crm.affinity import basket_of, cross_sell, lift, product_affinity, shown_products
from crm.models.affinity import ProductAffinity, ProductShown
from crm.models.canonical import ProductRef
from crm.models.profile import Activity, Profile
from crm.related import ProductNotFound, find_product, parse_query, related_view
from efficient_apriori import apriori
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2026, 3, 1, tzinfo=UTC)

# Ten shoppers. By hand: N = 10; n(shirt) = 6, n(tie) = 4, n(belt) = 5, n(socks) = 2;
# n(shirt, tie) = 4, n(shirt, belt) = 3, n(tie, belt) = 1, n(belt, socks) = 2.
HAND = [frozenset(b) for b in (
    {"shirt", "tie"}, {"shirt", "tie"}, {"shirt", "tie", "belt"}, {"shirt", "tie"},
    {"shirt", "belt"}, {"shirt", "belt"}, {"belt", "socks"}, {"belt", "socks"}, set(), {"hat"})]


def test_the_hand_worked_example() -> None:
    found = product_affinity("ws", HAND, NOW, min_buyers=2)
    # The empty basket is no buying shopper: N = 9, not 10.
    shirt = found["shirt"]
    assert (shirt.buyers, shirt.shoppers, shirt.support) == (6, 9, Decimal("0.6667"))
    # shirt -> tie: 4 together; support 4/9; confidence 4/6; lift 4*9 / (6*4) = 1.5.
    # shirt -> belt: 3 together; lift 3*9 / (6*5) = 0.9 (< 1: not related).
    assert [(r.title, r.buyers_together, r.support, r.confidence, r.lift) for r in shirt.related] == [
        ("tie", 4, Decimal("0.4444"), Decimal("0.6667"), Decimal("1.5000"))]
    tie = found["tie"]
    assert [(r.title, r.confidence, r.lift) for r in tie.related] == [("shirt", Decimal("1.0000"), Decimal("1.5000"))]
    # belt -> socks: 2 together; lift 2*9 / (5*2) = 1.8, above belt -> tie's 1*9/(5*4) = 0.45.
    assert [(r.title, r.confidence, r.lift) for r in found["belt"].related] == [
        ("socks", Decimal("0.4000"), Decimal("1.8000"))]
    assert found["hat"].related == ()
    assert set(found) == {"shirt", "tie", "belt", "socks", "hat"}


def test_a_pair_bought_by_fewer_than_the_minimum_is_not_related() -> None:
    found = product_affinity("ws", HAND, NOW, min_buyers=3)
    assert [r.title for r in found["shirt"].related] == ["tie"]
    assert found["belt"].related == ()  # socks: only 2 shoppers together


def test_each_product_keeps_its_best_few_best_lift_first() -> None:
    baskets = [frozenset({"a", other}) for other in "bcdefgh" for _ in range(3)] + [frozenset({"b"})] * 3
    related = product_affinity("ws", baskets, NOW, kept=3)["a"].related
    assert [r.title for r in related] == ["c", "d", "e"]  # b is bought alone too: a lower lift
    assert all(r.lift > 1 for r in related)


baskets_strategy = st.lists(st.frozensets(st.sampled_from("abcdefg"), max_size=5), min_size=1, max_size=40)


@given(baskets_strategy, st.integers(min_value=1, max_value=3))
def test_the_measures_hold_their_bounds(baskets: list[frozenset[str]], min_buyers: int) -> None:
    found = product_affinity("ws", baskets, NOW, min_buyers=min_buyers, kept=10)
    for title, affinity in found.items():
        assert 0 <= affinity.support <= 1
        for other in affinity.related:
            assert 0 <= other.support <= min(affinity.support, found[other.title].support)
            assert 0 <= other.confidence <= 1
            assert other.lift > 1 and other.buyers_together >= min_buyers
            # Symmetric: B's list holds A at the same lift (every pair is kept, kept=10 > 6 others).
            back = {r.title: r for r in found[other.title].related}[title]
            assert back.lift == other.lift and back.support == other.support


@given(st.integers(1, 50), st.integers(1, 50), st.integers(1, 50), st.integers(1, 200))
def test_lift_is_symmetric_and_is_confidence_over_support(both: int, first: int, second: int, extra: int) -> None:
    first, second = max(first, both), max(second, both)
    baskets = first + second + extra
    assert lift(both, first, second, baskets) == lift(both, second, first, baskets)
    assert lift(both, first, second, baskets) == Fraction(both, first) / Fraction(second, baskets)


def test_the_same_figures_as_an_independent_apriori() -> None:
    baskets = [b for b in HAND if b] * 3 + [frozenset({"shirt", "socks", "hat"})] * 2
    found = product_affinity("ws", baskets, NOW, min_buyers=1, kept=10)
    _, rules = apriori([tuple(b) for b in baskets], min_support=1e-9, min_confidence=1e-9, max_length=2)
    checked = 0
    for rule in rules:
        (a,), (b,) = rule.lhs, rule.rhs
        ours = {r.title: r for r in found[a].related}.get(b)
        if rule.lift <= 1:
            assert ours is None
            continue
        assert ours is not None
        assert float(ours.support) == round(rule.support, 4)
        assert float(ours.confidence) == round(rule.confidence, 4)
        assert float(ours.lift) == round(rule.lift, 4)
        checked += 1
    assert checked >= 6


def _profile(products: dict[str, int], orders: int = 1, **fields: object) -> Profile:
    return Profile(workspace_id="ws", profile_id="p", orders_count=orders, products=products, created_at=NOW,
                   updated_at=NOW, **fields)  # type: ignore[arg-type]


def test_a_basket_is_what_a_live_buyer_bought() -> None:
    assert basket_of(_profile({"shirt": 2, "tie": 1})) == {"shirt", "tie"}
    assert basket_of(_profile({"shirt": 2}, orders=0)) == frozenset()
    assert basket_of(_profile({"shirt": 2}, merged_into="q")) == frozenset()


def test_a_product_is_shown_as_its_latest_sighting() -> None:
    old = Activity(at=NOW - timedelta(days=2), event_id="e1", type="product_viewed", url="https://s/old",
                   products=(ProductRef(title="tie", product_id="1"),))
    new = Activity(at=NOW, event_id="e2", type="product_viewed", url="https://s/tie",
                   products=(ProductRef(title="tie", product_id="1"),))
    carted = Activity(at=NOW, event_id="e3", type="added_to_cart", url="https://s/cart",
                      products=(ProductRef(title="belt", product_id="2"),))
    shown = shown_products([_profile({}, last_browse=new), _profile({}, last_browse=old, last_cart=carted)])
    assert (shown["tie"].product_id, shown["tie"].url) == ("1", "https://s/tie")
    assert (shown["belt"].product_id, shown["belt"].url) == ("2", None)  # a cart's page is not the product's
    found = product_affinity("ws", HAND, NOW, shown=shown, min_buyers=2)
    assert found["shirt"].related[0].url == "https://s/tie"


def test_cross_sell_suggests_what_the_shopper_has_not_bought() -> None:
    found = product_affinity("ws", HAND, NOW, min_buyers=2)
    assert [p.title for p in cross_sell([found["belt"]], bought=[])] == ["socks"]
    assert cross_sell([found["belt"]], bought=["socks"]) == []
    # The products asked about are never suggested for one another.
    assert [p.title for p in cross_sell([found["shirt"], found["tie"]], bought=[])] == []
    assert [p.title for p in cross_sell([found["shirt"], found["belt"]], bought=[])] == ["socks", "tie"]


class _Store:
    def __init__(self, held: dict[str, ProductAffinity]) -> None:
        self.held = held

    def product(self, workspace_id: str, title: str) -> ProductAffinity | None:
        return self.held.get(title)

    def product_by_id(self, workspace_id: str, product_id: str) -> ProductAffinity | None:
        return next((a for a in self.held.values() if a.product_id == product_id), None)


def test_the_route_finds_a_product_by_title_even_still_encoded_or_by_id_and_refuses_bad_parameters() -> None:
    shown = {"Silk tie": ProductShown(title="Silk tie", product_id="42")}
    found = product_affinity("ws", [frozenset({"Silk tie", "shirt"})] * 3 + [frozenset({"hat"})], NOW, shown=shown)
    store = _Store(found)
    for asked in ("Silk tie", "Silk%20tie", "42"):
        assert find_product(store, "ws", asked).title == "Silk tie"  # type: ignore[arg-type]
    with pytest.raises(ProductNotFound, match="'Umbrella'"):
        find_product(store, "ws", "Umbrella")  # type: ignore[arg-type]
    view = related_view(found["shirt"], parse_query({"limit": "1"}))
    assert [r["title"] for r in view["related"]] == ["Silk tie"] and "workspace_id" not in view
    for bad in ({"limit": "0"}, {"limit": "6"}, {"limit": "x"}, {"colour": "red"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            parse_query(bad)
