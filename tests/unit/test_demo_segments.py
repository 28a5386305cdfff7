"""The demo's segment checks: what it expects of the simulation, and the RFM regions it prints."""

from __future__ import annotations

from decimal import Decimal

from crm.segments.rfm import RfmGroup
from crm_local.demo import SegmentFacts, rfm_regions
from crm_local.simulation import SHOPIFY, WOOCOMMERCE, Expected, ShopperOutcome, catalogue


def shopper(key: str, orders: int, net: str, *stores: str) -> ShopperOutcome:
    return ShopperOutcome(key, "email", orders=orders, net=Decimal(net), known=True, stores=set(stores))


def test_vip_seats_are_rounded_up_and_ties_with_the_last_seat_are_in() -> None:
    expected = Expected()
    for outcome in [shopper("a", 1, "10.00", SHOPIFY), shopper("b", 2, "50.00", SHOPIFY, WOOCOMMERCE),
                    shopper("c", 3, "50.00", WOOCOMMERCE), shopper("d", 1, "70.00", SHOPIFY),
                    shopper("e", 0, "0.00"), shopper("f", 1, "0.00", SHOPIFY)]:
        expected.shoppers[outcome.key] = outcome
    facts = SegmentFacts.of(expected, 30)  # 5 buyers: ceil(1.5) = 2 seats, 70 and 50; c ties with b
    assert (facts.buyers, facts.one_time, facts.repeat, facts.in_both) == (5, 3, 2, 1)
    assert facts.vip_seats == 2 and facts.vip == {"d": Decimal("70.00"), "b": Decimal("50.00"),
                                                  "c": Decimal("50.00")}
    assert SegmentFacts.of(expected, 10).vip == {"d": Decimal("70.00")}


def test_the_rfm_regions_are_the_grid_read_back() -> None:
    g = RfmGroup
    assert rfm_regions() == {
        g.CHAMPIONS: "R4-5 FM4-5", g.LOYAL: "R3 FM4-5; R4-5 FM3", g.POTENTIAL_LOYALISTS: "R4-5 FM2",
        g.NEW_CUSTOMERS: "R5 FM1", g.PROMISING: "R4 FM1", g.NEED_ATTENTION: "R3 FM3", g.ABOUT_TO_SLEEP: "R3 FM1-2",
        g.AT_RISK: "R1 FM3; R2 FM3-5", g.CANNOT_LOSE_THEM: "R1 FM4-5", g.HIBERNATING: "R2 FM1-2", g.LOST: "R1 FM1-2"}


def test_the_two_stores_sell_different_products() -> None:
    assert catalogue(SHOPIFY) and catalogue(WOOCOMMERCE)
    assert not set(catalogue(SHOPIFY)) & set(catalogue(WOOCOMMERCE))
