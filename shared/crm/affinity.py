"""Products bought together: per workspace, the pairs its shoppers buy, with support, confidence and lift.

A basket is the set of products one shopper bought in paid, counted orders (``Profile.products``: titles,
net of cancellations), so "bought together" means "bought by the same shopper", as in "customers who bought
this also bought". The scheduled predictions run reads every profile of the workspace anyway; the baskets
come from the same pass, with no read of orders or timelines (docs/affinity.md says what that gives up).

For products A and B over N baskets, with n(A) baskets holding A and n(AB) holding both:

- support(A) = n(A) / N, support(A, B) = n(AB) / N
- confidence(A -> B) = n(AB) / n(A): the share of A's buyers who bought B too
- lift(A, B) = n(AB) * N / (n(A) * n(B)) = confidence(A -> B) / support(B): symmetric; above 1 when the
  pair is bought together more often than if buying one said nothing about buying the other.

A pair bought together by fewer than ``min_buyers`` shoppers is left out: with 1 or 2 shoppers a rare
pair's lift is huge and means nothing. Of the rest, only pairs with lift above 1 are related, best lift
first (ties: more shoppers together, then the title), and each product keeps its ``kept`` best.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from itertools import combinations

from crm.models.affinity import ProductAffinity, ProductShown, RelatedProduct
from crm.models.canonical import ActivityType, ProductRef
from crm.models.profile import Profile

MIN_BUYERS_TOGETHER = 3
RELATED_KEPT = 5
# A shopper with more products than this counts with these only (the most bought first): the pairs of one
# basket grow with its square, and a wholesale buyer says little about what goes with what.
BASKET_LIMIT = 200
_PLACES = Decimal("0.0001")

Basket = frozenset[str]


def basket_of(profile: Profile) -> Basket:
    """The products a live profile bought in counted orders (empty for a merged profile or one without)."""
    if profile.merged_into is not None or profile.orders_count <= 0:
        return frozenset()
    bought = sorted(((units, title) for title, units in profile.products.items() if units > 0),
                    key=lambda pair: (-pair[0], pair[1]))
    return frozenset(title for _, title in bought[:BASKET_LIMIT])


def shown_products(profiles: Iterable[Profile]) -> dict[str, ProductShown]:
    """Each product's id and link as the profiles' latest browse, cart and checkout show it (the latest
    sighting wins): what a cross-sell block links to. A profile keeps no product's link or picture (they stay
    on the timeline: crm.profiles.apply_activity), but a view of one product was on that product's page. A
    product no one browsed lately has its title only."""
    seen: dict[str, tuple[datetime, ProductShown]] = {}
    for profile in profiles:
        for activity in (profile.last_browse, profile.last_cart, profile.last_checkout):
            if activity is None:
                continue
            page = activity.url if activity.type == ActivityType.PRODUCT_VIEWED and len(activity.products) == 1 \
                else None
            for ref in activity.products:
                if ref.title and (ref.title not in seen or seen[ref.title][0] < activity.at):
                    seen[ref.title] = (activity.at, _shown(ref, page))
    return {title: shown for title, (_, shown) in seen.items()}


def _shown(ref: ProductRef, page: str | None) -> ProductShown:
    return ProductShown(title=ref.title or "", product_id=ref.product_id, url=ref.url or page,
                        image_url=ref.image_url)


def lift(both: int, first: int, second: int, baskets: int) -> Fraction:
    """lift(A, B), exact: n(AB) * N / (n(A) * n(B))."""
    return Fraction(both * baskets, first * second)


def _ratio(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(_PLACES, rounding=ROUND_HALF_EVEN)


def product_affinity(workspace_id: str, baskets: Iterable[Basket], now: datetime,
                     shown: dict[str, ProductShown] | None = None, min_buyers: int = MIN_BUYERS_TOGETHER,
                     kept: int = RELATED_KEPT) -> dict[str, ProductAffinity]:
    """Every product bought, by title, with its ``kept`` best related products (empty baskets do not count)."""
    counts: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    total = 0
    for basket in baskets:
        if not basket:
            continue
        total += 1
        counts.update(basket)
        pairs.update(combinations(sorted(basket), 2))
    related: dict[str, list[tuple[Fraction, int, str]]] = {title: [] for title in counts}
    for (first, second), both in pairs.items():
        if both < min_buyers:
            continue
        ratio = lift(both, counts[first], counts[second], total)
        if ratio > 1:
            related[first].append((ratio, both, second))
            related[second].append((ratio, both, first))
    shown = shown or {}
    found = {}
    for title, buyers in counts.items():
        best = sorted(related[title], key=lambda entry: (-entry[0], -entry[1], entry[2]))[:kept]
        found[title] = ProductAffinity(
            **_looks(title, shown), workspace_id=workspace_id, buyers=buyers,
            support=_ratio(Fraction(buyers, total)), shoppers=total, computed_at=now,
            related=tuple(RelatedProduct(**_looks(other, shown), buyers_together=both,
                                         support=_ratio(Fraction(both, total)),
                                         confidence=_ratio(Fraction(both, buyers)), lift=_ratio(ratio))
                          for ratio, both, other in best))
    return found


def _looks(title: str, shown: dict[str, ProductShown]) -> dict[str, str | None]:
    known = shown.get(title)
    return (known.model_dump() if known else {}) | {"title": title}


def cross_sell(affinities: Iterable[ProductAffinity], bought: Iterable[str], kept: int = RELATED_KEPT
               ) -> list[RelatedProduct]:
    """What to suggest beside these products (a last order's, a cart's): their related products the shopper
    has not bought, each once at its best lift, best first."""
    given = list(affinities)
    owned = {*bought, *(affinity.title for affinity in given)}
    best: dict[str, RelatedProduct] = {}
    for affinity in given:
        for product in affinity.related:
            if product.title in owned:
                continue
            held = best.get(product.title)
            if held is None or (product.lift, product.buyers_together) > (held.lift, held.buyers_together):
                best[product.title] = product
    return sorted(best.values(), key=lambda p: (-p.lift, -p.buyers_together, p.title))[:kept]


def cross_sell_basis(profile: Profile, trigger_titles: Iterable[str], kept: int = RELATED_KEPT) -> list[str]:
    """The products a cross-sell block suggests beside: the trigger's lines (an order's, a cart's), else the
    profile's latest cart or checkout, else what the shopper bought most (a profile keeps no order's lines)."""
    basis = list(dict.fromkeys(title for title in trigger_titles if title))
    for activity in (profile.last_cart, profile.last_checkout):
        if not basis and activity is not None:
            basis = list(dict.fromkeys(ref.title for ref in activity.products if ref.title))
    if not basis:
        basis = [title for _, title in sorted((-units, title) for title, units in profile.products.items())]
    return basis[:kept]


def changes(held: Mapping[str, ProductAffinity], found: Mapping[str, ProductAffinity]
            ) -> tuple[list[ProductAffinity], list[str]]:
    """What a run writes: the products whose figures moved or are new, and the titles no longer bought."""
    moved = [a for title, a in found.items() if title not in held or not held[title].same_figures(a)]
    return moved, [title for title in held if title not in found]


__all__ = ["BASKET_LIMIT", "MIN_BUYERS_TOGETHER", "RELATED_KEPT", "Basket", "basket_of", "changes", "cross_sell",
           "cross_sell_basis", "lift", "product_affinity", "shown_products"]
