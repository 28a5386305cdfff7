"""The reports a store looks at (GET /reports/{name}, crm report NAME; docs/reports.md): each one's data.

Money is Decimal in the workspace's reporting currency (each order converted and rounded to the cent, then
added: every sum is exact and the parts add up to the whole); rates and shares are Decimals rounded to 4
places; days are UTC. A period bucket is named by its first day (a week starts on Monday).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

_MODEL = ConfigDict(frozen=True)

Interval = Literal["day", "week", "month"]
ReportName = Literal["revenue", "repeat_rate", "cohorts", "rfm", "channels", "abandonment", "predictions"]
REPORT_NAMES: tuple[ReportName, ...] = ("revenue", "repeat_rate", "cohorts", "rfm", "channels", "abandonment",
                                         "predictions")


class OrderFact(BaseModel):
    """One counted (paid, not cancelled) order as the reports read it, in its own currency."""

    model_config = _MODEL

    profile_id: str
    placed_at: datetime
    currency: str
    net: Decimal  # what the shopper paid and kept, in ``currency``
    last_touch_channel: str | None = None  # the touch that led to the order


class RevenuePoint(BaseModel):
    model_config = _MODEL

    start: date
    orders: int
    revenue: Decimal
    average_order_value: Decimal | None  # None without orders


class RevenueData(BaseModel):
    model_config = _MODEL

    orders: int
    revenue: Decimal
    average_order_value: Decimal | None
    points: tuple[RevenuePoint, ...]


class RepeatPoint(BaseModel):
    model_config = _MODEL

    start: date
    customers: int  # who placed a counted order in the bucket
    returning_customers: int  # of them, those with a counted order before it
    repeat_rate: Decimal | None  # returning / customers


class RepeatData(BaseModel):
    model_config = _MODEL

    customers: int  # who ordered in the period
    repeat_customers: int  # of them, those with two counted orders or more by the period's end
    repeat_rate: Decimal | None
    points: tuple[RepeatPoint, ...]


class CohortRow(BaseModel):
    model_config = _MODEL

    cohort: date  # the month of the customers' first counted order
    customers: int
    # Month k (0 = the first month) -> the share of the cohort who ordered in it; months after the period
    # are left out.
    retention: tuple[Decimal, ...]


class CohortsData(BaseModel):
    model_config = _MODEL

    cohorts: tuple[CohortRow, ...]


class RfmCell(BaseModel):
    model_config = _MODEL

    recency: int = Field(ge=1, le=5)
    frequency_monetary: int = Field(ge=1, le=5)
    group: str
    profiles: int


class RfmGroupSize(BaseModel):
    model_config = _MODEL

    group: str
    name: str
    profiles: int


class RfmData(BaseModel):
    model_config = _MODEL

    buyers: int
    cells: tuple[RfmCell, ...]  # all 25, empty ones too
    groups: tuple[RfmGroupSize, ...]  # every group, largest first


class ChannelRevenue(BaseModel):
    model_config = _MODEL

    touch: Literal["first", "last"]
    channel: str
    orders: int
    revenue: Decimal


class ChannelsData(BaseModel):
    model_config = _MODEL

    revenue: Decimal  # of every order in the period: each touch's rows add up to it
    rows: tuple[ChannelRevenue, ...]


class AbandonmentPoint(BaseModel):
    model_config = _MODEL

    start: date
    checkouts: int  # checkouts started in the bucket
    abandoned: int  # of them, not followed by a counted order of the same shopper within the window
    abandonment_rate: Decimal | None
    recovered_orders: int  # checkouts the flows recovered (their attribution), by the order's day
    recovered_revenue: Decimal


class AbandonmentData(BaseModel):
    model_config = _MODEL

    completion_window_hours: int
    checkouts: int
    abandoned: int
    abandonment_rate: Decimal | None
    recovered_orders: int
    recovered_revenue: Decimal
    points: tuple[AbandonmentPoint, ...]


class ClvBin(BaseModel):
    model_config = _MODEL

    lower: Decimal  # included
    upper: Decimal  # excluded (the last bin: included)
    profiles: int
    # The last bin holds every CLV >= lower when a few shoppers' CLV would squash the others' bars
    # (crm.reports.compute.CLV_CLIP_PERCENTILE); its upper is then the highest CLV.
    overflow: bool = False


class SegmentChurn(BaseModel):
    model_config = _MODEL

    segment_id: str
    name: str
    predicted: int  # members with a prediction
    mean_churn_probability: Decimal
    at_risk: int  # churn probability >= AT_RISK
    mean_clv: Decimal | None


class PredictionsData(BaseModel):
    model_config = _MODEL

    at_risk_threshold: Decimal
    statuses: dict[str, int]  # prediction status (or "none": not predicted yet) -> profiles
    predicted: int
    total_clv: Decimal
    clv_bins: tuple[ClvBin, ...]
    segments: tuple[SegmentChurn, ...]  # the workspace's segments with predicted members, riskiest first


ReportData = RevenueData | RepeatData | CohortsData | RfmData | ChannelsData | AbandonmentData | PredictionsData


class Report(BaseModel):
    """One report: what it covers and its data. ``from``/``to``/``interval`` are those asked for (rfm and
    predictions are as of ``generated_at`` whatever the period)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    name: ReportName
    title: str
    from_: date = Field(alias="from")
    to: date
    interval: Interval
    currency: str | None
    unconverted_currencies: tuple[str, ...] = ()  # orders in these had no rate: left out of the sums
    generated_at: datetime
    data: SerializeAsAny[BaseModel]


__all__ = ["REPORT_NAMES", "AbandonmentData", "AbandonmentPoint", "ChannelRevenue", "ChannelsData", "ClvBin",
           "CohortRow", "CohortsData", "Interval", "OrderFact", "PredictionsData", "RepeatData", "RepeatPoint",
           "Report", "ReportData", "ReportName", "RevenueData", "RevenuePoint", "RfmCell", "RfmData",
           "RfmGroupSize", "SegmentChurn"]
