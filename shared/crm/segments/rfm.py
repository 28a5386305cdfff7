"""RFM scoring: recency, frequency and monetary value scored 1-5 by quintiles of the workspace's own buyers.

The population statistics are built for a fan-out: each worker summarises its share of the profiles into
a :class:`RfmSketch`, the sketches merge (by adding counts, so in any order and any grouping), and the
quintile thresholds come from the merged sketch. Merging the sketches of any split of the buyers gives
exactly the sketch of all of them, so N workers score every buyer exactly as one worker would. Every
worker must use the same ``now`` (the run's), since recency is counted from it.

Quintiles, ties and rounding
----------------------------
For n values sorted ascending x_1 <= ... <= x_n, threshold t_k is x at rank ceil(k * n / 5) (k = 1..4),
the lower ("inverted CDF") quintile. A value v falls in bucket 1 + #{k : v > t_k}: a value *equal* to a
threshold always falls in the bucket of the smaller values. So F and M give a tie at a threshold the
lower score, and R (where fewer days is better) gives it the higher score. With distinct values bucket k
holds exactly ceil(k n / 5) - ceil((k - 1) n / 5) buyers; heavy ties (most buyers have 1 order) move
whole groups of equal values into one bucket, which then holds more than 20 %, never splits them.

Memory
------
A sketch holds one counter per distinct value. Recency is whole days (at most the store's age in days,
some thousands) and frequency is an order count (fewer distinct values than sqrt(2 * orders)), so both
stay exact. Monetary value is counted in cents, exactly, up to ``exact_limit`` distinct amounts (50,000
by default: a few MB); beyond that the sketch switches for good to amounts rounded *up* to 3 significant
digits of cents (amounts under $10.00 stay exact), at most 900 counters per power of ten of amounts, so
under 10,000 counters up to $100M. The rounding is monotone and idempotent, so rounding commutes with
adding counts (merges stay exact over rounded keys) and a threshold is compared with the buyer's rounded
amount: an M score is then off by at most one and only for a buyer whose amount lies within 1 % of a
threshold (the relative width of a rounding bucket).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crm.clock import as_utc
from crm.models.profile import Profile
from crm.money import CENT

SIGNIFICANT_DIGITS = 3
DEFAULT_EXACT_LIMIT = 50_000
QUINTILES = 5


def to_cents(amount: Decimal) -> int:
    return int(amount.quantize(CENT) * 100)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def round_up_significant(value: int, digits: int = SIGNIFICANT_DIGITS) -> int:
    """``value`` rounded up (away from zero) to ``digits`` significant digits, in exact integer arithmetic."""
    magnitude = abs(value)
    excess = len(str(magnitude)) - digits
    if excess <= 0:
        return value
    step: int = 10**excess
    rounded = -(-magnitude // step) * step
    return rounded if value >= 0 else -rounded


class ValueSketch(BaseModel):
    """How many times each integer value occurs: exact while small, merged by adding counts.

    ``rounded`` is set once more than ``exact_limit`` distinct values were seen (never when the limit is
    None); from then on values are counted by :func:`round_up_significant` and stay so through merges.
    """

    model_config = ConfigDict(frozen=True)

    counts: dict[int, int] = Field(default_factory=dict)
    exact_limit: int | None = Field(default=None, ge=1)
    rounded: bool = False

    @classmethod
    def of(cls, values: Iterable[int], exact_limit: int | None = None) -> ValueSketch:
        return cls._settled(Counter(values), exact_limit, rounded=False)

    @classmethod
    def _settled(cls, counts: Counter[int], exact_limit: int | None, rounded: bool) -> ValueSketch:
        # Deciding from the total alone (not from the way it was reached) is what makes any split of the
        # population merge into the very sketch of the whole.
        rounded = rounded or (exact_limit is not None and len(counts) > exact_limit)
        if rounded:
            collapsed: Counter[int] = Counter()
            for value, count in counts.items():
                collapsed[round_up_significant(value)] += count
            counts = collapsed
        return cls(counts={v: counts[v] for v in sorted(counts) if counts[v]}, exact_limit=exact_limit,
                   rounded=rounded)

    def merge(self, other: ValueSketch) -> ValueSketch:
        if self.exact_limit != other.exact_limit:
            raise ValueError("sketches with different exact limits do not merge")
        total = Counter(self.counts)
        total.update(other.counts)
        return self._settled(total, self.exact_limit, self.rounded or other.rounded)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def key(self, value: int) -> int:
        """The value as this sketch counts it."""
        return round_up_significant(value) if self.rounded else value

    def at_rank(self, rank: int) -> int:
        """The value (as counted) at 1-based ``rank`` in ascending order."""
        if not 1 <= rank <= self.total:
            raise ValueError(f"rank {rank} outside 1..{self.total}")
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value
        raise AssertionError("unreachable: rank checked against total")


class Quintiles(BaseModel):
    """The four quintile thresholds of one measure; ``rounded`` as in the sketch they came from."""

    model_config = ConfigDict(frozen=True)

    t1: int
    t2: int
    t3: int
    t4: int
    rounded: bool = False

    @property
    def edges(self) -> tuple[int, int, int, int]:
        return (self.t1, self.t2, self.t3, self.t4)

    def bucket(self, value: int) -> int:
        """1 for the smallest fifth .. 5 for the largest; a value equal to a threshold takes the lower bucket."""
        key = round_up_significant(value) if self.rounded else value
        return 1 + sum(key > edge for edge in self.edges)


def quintile_thresholds(sketch: ValueSketch) -> Quintiles:
    n = sketch.total
    if n == 0:
        raise ValueError("no values: quintiles of an empty population")
    t1, t2, t3, t4 = (sketch.at_rank(-(-k * n // QUINTILES)) for k in range(1, QUINTILES))
    return Quintiles(t1=t1, t2=t2, t3=t3, t4=t4, rounded=sketch.rounded)


class RfmInputs(BaseModel):
    """What RFM scores one buyer on: whole days since the last order, orders, and net lifetime value."""

    model_config = ConfigDict(frozen=True)

    profile_id: str
    recency_days: int = Field(ge=0)
    frequency: int = Field(ge=1)
    monetary: Decimal = Field(ge=0)

    @field_validator("monetary")
    @classmethod
    def _cents(cls, value: Decimal) -> Decimal:
        return value.quantize(CENT)

    @classmethod
    def from_profile(cls, profile: Profile, now: datetime) -> RfmInputs | None:
        """None for anyone who is not a buyer (no counted order) and for a profile merged into another."""
        if profile.merged_into is not None or profile.orders_count < 1 or profile.last_order_at is None:
            return None
        # An order stamped slightly ahead of ``now`` (a store clock running fast) is today's, not negative.
        days = max((as_utc(now) - as_utc(profile.last_order_at)).days, 0)
        return cls(profile_id=profile.profile_id, recency_days=days, frequency=profile.orders_count,
                   monetary=max(profile.total_spent, Decimal("0.00")))


class RfmSketch(BaseModel):
    """One worker's (or, merged, the whole population's) summary of its buyers."""

    model_config = ConfigDict(frozen=True)

    recency: ValueSketch = Field(default_factory=ValueSketch)
    frequency: ValueSketch = Field(default_factory=ValueSketch)
    monetary: ValueSketch = Field(default_factory=lambda: ValueSketch(exact_limit=DEFAULT_EXACT_LIMIT))

    @classmethod
    def of(cls, inputs: Iterable[RfmInputs], exact_limit: int | None = DEFAULT_EXACT_LIMIT) -> RfmSketch:
        buyers = list(inputs)
        return cls(recency=ValueSketch.of(b.recency_days for b in buyers),
                   frequency=ValueSketch.of(b.frequency for b in buyers),
                   monetary=ValueSketch.of((to_cents(b.monetary) for b in buyers), exact_limit))

    @classmethod
    def of_profiles(cls, profiles: Iterable[Profile], now: datetime,
                    exact_limit: int | None = DEFAULT_EXACT_LIMIT) -> RfmSketch:
        return cls.of((i for p in profiles if (i := RfmInputs.from_profile(p, now)) is not None), exact_limit)

    def merge(self, other: RfmSketch) -> RfmSketch:
        return RfmSketch(recency=self.recency.merge(other.recency), frequency=self.frequency.merge(other.frequency),
                         monetary=self.monetary.merge(other.monetary))

    @property
    def buyers(self) -> int:
        return self.recency.total


class RfmThresholds(BaseModel):
    model_config = ConfigDict(frozen=True)

    recency: Quintiles  # in days
    frequency: Quintiles  # in orders
    monetary: Quintiles  # in cents

    @classmethod
    def from_sketch(cls, sketch: RfmSketch) -> RfmThresholds:
        return cls(recency=quintile_thresholds(sketch.recency), frequency=quintile_thresholds(sketch.frequency),
                   monetary=quintile_thresholds(sketch.monetary))

    @property
    def monetary_edges(self) -> tuple[Decimal, ...]:
        return tuple(from_cents(edge) for edge in self.monetary.edges)


class RfmScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    r: int = Field(ge=1, le=5)
    f: int = Field(ge=1, le=5)
    m: int = Field(ge=1, le=5)

    @property
    def code(self) -> str:
        return f"{self.r}{self.f}{self.m}"

    @property
    def fm(self) -> int:
        """The average of F and M; a half point rounds down, so a row must be earned on both."""
        return (self.f + self.m) // 2


def score(inputs: RfmInputs, thresholds: RfmThresholds) -> RfmScore:
    # Fewer days since the last order is better: the bucket of the fewest days scores 5.
    return RfmScore(r=6 - thresholds.recency.bucket(inputs.recency_days),
                    f=thresholds.frequency.bucket(inputs.frequency),
                    m=thresholds.monetary.bucket(to_cents(inputs.monetary)))


class RfmGroup(StrEnum):
    CHAMPIONS = "champions"
    LOYAL = "loyal"
    POTENTIAL_LOYALISTS = "potential_loyalists"
    NEW_CUSTOMERS = "new_customers"
    PROMISING = "promising"
    NEED_ATTENTION = "need_attention"
    ABOUT_TO_SLEEP = "about_to_sleep"
    AT_RISK = "at_risk"
    CANNOT_LOSE_THEM = "cannot_lose_them"
    HIBERNATING = "hibernating"
    LOST = "lost"


G = RfmGroup
# The widely used R x FM grid (R against the average of F and M), as published with overlapping ranges,
# e.g. Putler, "RFM Analysis For Successful Customer Segmentation" (putler.com/rfm-analysis), and
# docs.churned.io "RFM-Model": Champions R4-5/FM4-5, Loyal R2-5/FM3-5, Potential loyalist R3-5/FM1-3,
# New R4-5/FM<=1, Promising R3-4/FM<=1, Need attention R2-3/FM2-3, About to sleep R2-3/FM<=2,
# At risk R<=2/FM2-5, Can't lose them R<=1/FM4-5, Hibernating R1-2/FM1-2, Lost R<=2/FM<=2.
# Read first-match in that order, the ranges leave New, Promising, Can't lose them, Hibernating and Lost
# empty, so we fix one group per cell, giving an overlap to the narrower, more specific range, and split
# the identical Hibernating/Lost ranges by recency (Lost = the oldest fifth). Rows: FM 1..5; columns: R 1..5.
GRID: dict[int, tuple[RfmGroup, RfmGroup, RfmGroup, RfmGroup, RfmGroup]] = {
    #     R=1                 R=2             R=3                R=4                    R=5
    5: (G.CANNOT_LOSE_THEM, G.AT_RISK, G.LOYAL, G.CHAMPIONS, G.CHAMPIONS),
    4: (G.CANNOT_LOSE_THEM, G.AT_RISK, G.LOYAL, G.CHAMPIONS, G.CHAMPIONS),
    3: (G.AT_RISK, G.AT_RISK, G.NEED_ATTENTION, G.LOYAL, G.LOYAL),
    2: (G.LOST, G.HIBERNATING, G.ABOUT_TO_SLEEP, G.POTENTIAL_LOYALISTS, G.POTENTIAL_LOYALISTS),
    1: (G.LOST, G.HIBERNATING, G.ABOUT_TO_SLEEP, G.PROMISING, G.NEW_CUSTOMERS),
}

GROUP_NAMES: dict[RfmGroup, str] = {
    G.CHAMPIONS: "Champions",
    G.LOYAL: "Loyal",
    G.POTENTIAL_LOYALISTS: "Potential loyalists",
    G.NEW_CUSTOMERS: "New customers",
    G.PROMISING: "Promising",
    G.NEED_ATTENTION: "Need attention",
    G.ABOUT_TO_SLEEP: "About to sleep",
    G.AT_RISK: "At risk",
    G.CANNOT_LOSE_THEM: "Cannot lose them",
    G.HIBERNATING: "Hibernating",
    G.LOST: "Lost",
}

GROUP_DESCRIPTIONS: dict[RfmGroup, str] = {
    G.CHAMPIONS: "Bought recently, buy often and spend the most (R 4-5, FM 4-5).",
    G.LOYAL: "Buy often and spend well, recently or fairly recently (R 3 with FM 4-5, R 4-5 with FM 3).",
    G.POTENTIAL_LOYALISTS: "Recent buyers with some orders and spend (R 4-5, FM 2).",
    G.NEW_CUSTOMERS: "Bought most recently, few orders, low spend (R 5, FM 1).",
    G.PROMISING: "Bought recently, few orders, low spend (R 4, FM 1).",
    G.NEED_ATTENTION: "Middling recency, frequency and spend (R 3, FM 3).",
    G.ABOUT_TO_SLEEP: "Middling recency, low frequency and spend (R 3, FM 1-2).",
    G.AT_RISK: "Bought often or spent well, but long ago (R 2 with FM 3-5, R 1 with FM 3).",
    G.CANNOT_LOSE_THEM: "Among the biggest buyers, but the longest since their last order (R 1, FM 4-5).",
    G.HIBERNATING: "Long since the last order, few orders, low spend (R 2, FM 1-2).",
    G.LOST: "The longest since the last order, few orders, low spend (R 1, FM 1-2).",
}


def group(rfm: RfmScore) -> RfmGroup:
    return GRID[rfm.fm][rfm.r - 1]


__all__ = ["DEFAULT_EXACT_LIMIT", "GRID", "GROUP_DESCRIPTIONS", "GROUP_NAMES", "Quintiles", "RfmGroup",
           "RfmInputs", "RfmScore", "RfmSketch", "RfmThresholds", "ValueSketch", "from_cents", "group",
           "quintile_thresholds", "round_up_significant", "score", "to_cents"]
