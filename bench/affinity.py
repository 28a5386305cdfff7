"""`make bench`: products bought together (crm.affinity, docs/affinity.md) on the scale of the reference store.

The daily predictions run computes every product's related products from the baskets of the profiles it
already read. This measures that computation alone, in memory: SHOPPERS baskets over PRODUCTS products whose
popularity falls off as 1/rank (a few bestsellers, a long tail), 1 to 8 products a shopper; and what a run
writes the day after, when a hundredth of the shoppers bought one product more (crm.affinity.changes).
Wall times on this shared machine: compare within one run.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from crm.affinity import changes, product_affinity
from figures import record

SHOPPERS = 100_000
PRODUCTS = 2_000
SEED = 13


def main() -> None:
    rng = random.Random(SEED)
    titles = [f"Product {i}" for i in range(PRODUCTS)]
    weights = [1 / (rank + 1) for rank in range(PRODUCTS)]
    baskets = [frozenset(rng.choices(titles, weights, k=rng.choice([1, 1, 2, 3, 5, 8]))) for _ in range(SHOPPERS)]
    now = datetime(2026, 12, 1, 2, tzinfo=UTC)
    started = time.perf_counter()
    first = product_affinity("ws", baskets, now)
    seconds = time.perf_counter() - started
    related = sum(len(a.related) for a in first.values())
    for index in rng.sample(range(SHOPPERS), SHOPPERS // 100):
        baskets[index] = baskets[index] | {rng.choices(titles, weights)[0]}
    second = product_affinity("ws", baskets, now + timedelta(days=1))
    put, deleted = changes(first, second)
    print(f"affinity: {SHOPPERS:,} shoppers, {len(first):,} products bought, {related:,} related entries: "
          f"{seconds:.2f} s")
    print(f"  the next day (1 % of shoppers bought one more product): {len(put):,} products rewritten, "
          f"{len(deleted):,} deleted, of {len(second):,}")
    record("affinity", {"shoppers": SHOPPERS, "products": len(first), "related_entries": related,
                        "seconds": round(seconds, 3), "rewritten_next_day": len(put), "deleted_next_day": len(deleted)})


if __name__ == "__main__":
    main()
