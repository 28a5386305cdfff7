"""What the buy-till-you-die models say about a shopper and a workspace (issue 13's contract).

A profile carries one ``Prediction``; a workspace's scheduled run keeps one ``WorkspaceFit``, the parameters
every profile of the workspace is predicted with (also after each order, without fitting again). A figure the
models cannot give is absent, and ``status``/``reason`` say why: a profile with too little history, or a
workspace with too few repeat buyers to fit. Money is Decimal in the workspace's reporting currency;
probabilities and expected counts are Decimals rounded to 4 places.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crm.clock import UtcDateTime

ModelName = Literal["bgnbd", "mbgnbd"]
PredictionState = Literal["predicted", "insufficient_history", "workspace_not_fitted"]
FitState = Literal["fitted", "too_few_repeat_buyers", "no_orders"]


class PredictionSettings(BaseModel):
    """A workspace's settings for its predictions."""

    model_config = ConfigDict(frozen=True)

    monthly_discount_rate: Decimal = Field(default=Decimal("0.01"), ge=0, le=1)
    clv_months: int = Field(default=12, ge=1, le=60)
    min_repeat_buyers: int = Field(default=30, ge=2)  # fewer repeat buyers than this: no fit


class ModelParameters(BaseModel):
    """One fitted model: its parameters by name, and how well it fits."""

    model_config = ConfigDict(frozen=True)

    model: Literal["bgnbd", "mbgnbd", "gamma_gamma"]
    parameters: dict[str, float]
    log_likelihood: float
    customers: int


class WorkspaceFit(BaseModel):
    """A workspace's fit: the purchase models tried, the one chosen by holdout fit, and the spend model."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    status: FitState
    reason: str | None = None
    time_unit: Literal["days", "weeks"] = "days"
    fitted_at: datetime
    calibration_end: datetime | None = None
    chosen: ModelName | None = None
    why_chosen: str | None = None  # e.g. holdout: expected vs actual repeat purchases of each model
    purchase_models: tuple[ModelParameters, ...] = ()
    spend_model: ModelParameters | None = None
    customers: int = 0
    repeat_buyers: int = 0
    settings: PredictionSettings = PredictionSettings()


class Prediction(BaseModel):
    """One shopper's predictions, as of ``computed_at``, in ``currency``."""

    model_config = ConfigDict(frozen=True)

    status: PredictionState
    reason: str | None = None
    model: ModelName | None = None
    computed_at: datetime
    expected_orders_90d: Decimal | None = None
    expected_orders_365d: Decimal | None = None
    p_alive: Decimal | None = None
    churn_probability: Decimal | None = None  # 1 - p_alive
    expected_order_value: Decimal | None = None
    clv: Decimal | None = None  # over settings.clv_months, discounted monthly
    currency: str | None = None
    next_order_expected_at: datetime | None = None


class FitTask(BaseModel):
    """A message on the predictions queue: fit this workspace now (the schedule sends one per workspace)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fit_workspace: str
    reason: str = "schedule"
    # When the schedule queued it: the fit reads the profiles the day's segment run read after about then
    # (crm.predictions.daily); a task without it (queued by hand) reads the table at once.
    queued_at: UtcDateTime | None = None
    waited: int = Field(default=0, ge=0)  # how often it went back to its queue to wait for the segment run
    # The rest of a paced fit (crm.predictions.daily): the profiles after ``rest_after`` (in id order) still to
    # be written with the kept fit of ``fitted_at``, read again from segment run ``read_from``'s work files.
    rest_after: str | None = None
    fitted_at: UtcDateTime | None = None
    read_from: str | None = None
