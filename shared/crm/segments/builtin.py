"""The segments every store gets, with settings the workspace may change.

Each built-in is a pure membership test of one profile at a time ``now``. Two kinds need more than the
profile, and say so, so that a scheduler knows what to recompute and when:

- *time-relative* ones (churn risk, new customers, cart abandoners, the RFM groups) change while nothing
  happens to the profile, as ``now`` moves on: they are re-evaluated on a schedule;
- *population-relative* ones (VIP, the RFM groups) compare a profile with all the workspace's buyers:
  a run first summarises the buyers into a mergeable :class:`PopulationSketch` (one per worker, merged),
  derives :class:`PopulationStats` from it, then tests every profile against those.

Whoever is not a buyer (no counted order) is in no population-relative segment, and the population is
the buyers only: otherwise every anonymous visitor would sit at zero lifetime value and push the VIP
threshold and the quintiles down. A profile merged into another is in no segment at all.

VIP, ties and rounding: with n buyers the VIP seats are k = ceil(n * vip_top_percent / 100) (ceil, so a
store with a handful of buyers still has one VIP), the threshold is the k-th highest lifetime value, and a
buyer is VIP when their lifetime value is at least the threshold and above zero. Buyers tied with the
k-th are all in (two shoppers who spent the same are treated the same), so the set holds exactly k
buyers when the values at the threshold are distinct, and k plus the others tied with the k-th otherwise.
Above ``exact_limit`` distinct amounts the comparison is on amounts rounded up to 3 significant digits of
cents, exactly as the sketch counts them (see :mod:`crm.segments.rfm`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from crm.clock import as_utc
from crm.models.canonical import ActivityType
from crm.models.profile import Profile
from crm.models.segments import BuiltinSettings  # stored per workspace, so a model; re-exported here
from crm.segments.rfm import (
    DEFAULT_EXACT_LIMIT,
    GROUP_DESCRIPTIONS,
    GROUP_NAMES,
    RfmGroup,
    RfmInputs,
    RfmSketch,
    RfmThresholds,
    ValueSketch,
    group,
    round_up_significant,
    score,
    to_cents,
)

BROWSE_TYPES = (ActivityType.PAGE_VIEWED.value, ActivityType.PRODUCT_VIEWED.value)


class VipThreshold(BaseModel):
    """The least lifetime value (in cents, as the sketch counted it) that makes a buyer a VIP."""

    model_config = ConfigDict(frozen=True)

    min_cents: int
    rounded: bool = False

    def admits(self, profile: Profile) -> bool:
        cents = to_cents(profile.total_spent)
        key = round_up_significant(cents) if self.rounded else cents
        return cents > 0 and key >= self.min_cents


def vip_threshold(sketch: ValueSketch, top_percent: int) -> VipThreshold | None:
    """None when there are no buyers."""
    n = sketch.total
    if n == 0:
        return None
    seats = -(-n * top_percent // 100)
    return VipThreshold(min_cents=sketch.at_rank(n - seats + 1), rounded=sketch.rounded)


class PopulationSketch(BaseModel):
    """What one worker learns about its share of the buyers; merges with the other workers'."""

    model_config = ConfigDict(frozen=True)

    rfm: RfmSketch = Field(default_factory=RfmSketch)

    @classmethod
    def of_profiles(cls, profiles: Iterable[Profile], now: datetime,
                    exact_limit: int | None = DEFAULT_EXACT_LIMIT) -> PopulationSketch:
        return cls(rfm=RfmSketch.of_profiles(profiles, now, exact_limit))

    def merge(self, other: PopulationSketch) -> PopulationSketch:
        return PopulationSketch(rfm=self.rfm.merge(other.rfm))


class PopulationStats(BaseModel):
    """Thresholds for the population-relative built-ins; None when the workspace has no buyers yet."""

    model_config = ConfigDict(frozen=True)

    vip: VipThreshold | None = None
    rfm: RfmThresholds | None = None

    @classmethod
    def from_sketch(cls, sketch: PopulationSketch, settings: BuiltinSettings) -> PopulationStats:
        if sketch.rfm.buyers == 0:
            return cls()
        # Lifetime value is the RFM monetary value (net of refunds and cancellations): one sketch serves both.
        return cls(vip=vip_threshold(sketch.rfm.monetary, settings.vip_top_percent),
                   rfm=RfmThresholds.from_sketch(sketch.rfm))


class SegmentContext(BaseModel):
    model_config = ConfigDict(frozen=True)

    now: datetime
    settings: BuiltinSettings = Field(default_factory=BuiltinSettings)
    population: PopulationStats = Field(default_factory=PopulationStats)


Membership = Callable[[Profile, SegmentContext], bool]


class BuiltinSegment(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    description: str
    time_relative: bool
    population_relative: bool
    member: Membership

    def contains(self, profile: Profile, context: SegmentContext) -> bool:
        return profile.merged_into is None and self.member(profile, context)


def _age(now: datetime, then: datetime) -> timedelta:
    return as_utc(now) - as_utc(then)


def is_vip(profile: Profile, context: SegmentContext) -> bool:
    threshold = context.population.vip
    return profile.orders_count >= 1 and threshold is not None and threshold.admits(profile)


def is_churn_risk(profile: Profile, context: SegmentContext) -> bool:
    """Bought before and nothing for ``churn_after_days``: exactly that long ago already counts."""
    last = profile.last_order_at
    return (profile.orders_count >= 1 and last is not None
            and _age(context.now, last) >= timedelta(days=context.settings.churn_after_days))


def views(profile: Profile) -> int:
    return sum(profile.activity_counts.get(kind, 0) for kind in BROWSE_TYPES)


def is_window_shopper(profile: Profile, context: SegmentContext) -> bool:
    return profile.orders_count == 0 and views(profile) >= context.settings.window_shopper_min_views


def is_one_time_buyer(profile: Profile, context: SegmentContext) -> bool:
    return profile.orders_count == 1


def is_repeat_buyer(profile: Profile, context: SegmentContext) -> bool:
    return profile.orders_count >= 2


def is_new_customer(profile: Profile, context: SegmentContext) -> bool:
    """First order within the last ``new_customer_days``, the boundary included (and any clock skew ahead)."""
    first = profile.first_order_at
    return (profile.orders_count >= 1 and first is not None
            and _age(context.now, first) <= timedelta(days=context.settings.new_customer_days))


def is_cart_abandoner(profile: Profile, context: SegmentContext) -> bool:
    """A checkout within the last ``cart_abandon_days`` (boundary included) and no order placed since."""
    checkout = profile.last_checkout
    if checkout is None or _age(context.now, checkout.at) > timedelta(days=context.settings.cart_abandon_days):
        return False
    return profile.last_order_at is None or as_utc(profile.last_order_at) < as_utc(checkout.at)


def rfm_group_of(profile: Profile, context: SegmentContext) -> RfmGroup | None:
    thresholds = context.population.rfm
    inputs = RfmInputs.from_profile(profile, context.now)
    if thresholds is None or inputs is None:
        return None
    return group(score(inputs, thresholds))


def _in_rfm_group(wanted: RfmGroup) -> Membership:
    def member(profile: Profile, context: SegmentContext) -> bool:
        return rfm_group_of(profile, context) is wanted

    return member


def _rfm_builtin(rfm_group: RfmGroup) -> BuiltinSegment:
    return BuiltinSegment(
        id=f"builtin:rfm:{rfm_group.value}", name=f"RFM: {GROUP_NAMES[rfm_group]}",
        description=GROUP_DESCRIPTIONS[rfm_group] + " Scored 1-5 by quintiles of the workspace's buyers.",
        time_relative=True, population_relative=True, member=_in_rfm_group(rfm_group))


BUILTINS: tuple[BuiltinSegment, ...] = (
    BuiltinSegment(id="builtin:vip", name="VIP",
                   description="The top vip_top_percent (10 % by default) of buyers by lifetime value.",
                   time_relative=False, population_relative=True, member=is_vip),
    BuiltinSegment(id="builtin:churn_risk", name="Churn risk",
                   description="Bought before, nothing for churn_after_days (180 by default).",
                   time_relative=True, population_relative=False, member=is_churn_risk),
    BuiltinSegment(id="builtin:window_shoppers", name="Window shoppers",
                   description="Viewed pages or products at least window_shopper_min_views times (3 by "
                               "default), never bought.",
                   time_relative=False, population_relative=False, member=is_window_shopper),
    BuiltinSegment(id="builtin:one_time_buyers", name="One-time buyers", description="Exactly one order.",
                   time_relative=False, population_relative=False, member=is_one_time_buyer),
    BuiltinSegment(id="builtin:repeat_buyers", name="Repeat buyers", description="Two orders or more.",
                   time_relative=False, population_relative=False, member=is_repeat_buyer),
    BuiltinSegment(id="builtin:new_customers", name="New customers",
                   description="First order in the last new_customer_days (30 by default).",
                   time_relative=True, population_relative=False, member=is_new_customer),
    BuiltinSegment(id="builtin:cart_abandoners", name="Cart abandoners",
                   description="Started a checkout in the last cart_abandon_days (7 by default), no order since.",
                   time_relative=True, population_relative=False, member=is_cart_abandoner),
    *(_rfm_builtin(g) for g in RfmGroup),
)

BY_ID: dict[str, BuiltinSegment] = {segment.id: segment for segment in BUILTINS}


def builtin(segment_id: str) -> BuiltinSegment:
    return BY_ID[segment_id]


def memberships(profile: Profile, context: SegmentContext) -> frozenset[str]:
    """The ids of every built-in segment the profile is in."""
    return frozenset(s.id for s in BUILTINS if s.contains(profile, context))


__all__ = ["BUILTINS", "BY_ID", "BuiltinSegment", "BuiltinSettings", "Membership", "PopulationSketch",
           "PopulationStats", "SegmentContext", "VipThreshold", "builtin", "is_cart_abandoner", "is_churn_risk",
           "is_new_customer", "is_one_time_buyer", "is_repeat_buyer", "is_vip", "is_window_shopper",
           "memberships", "rfm_group_of", "views", "vip_threshold"]
