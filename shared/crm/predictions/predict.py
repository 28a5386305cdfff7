"""The two pure entry points of issue 13: fit a workspace's models, then predict each profile from that fit.

``histories`` maps a profile id to its counted (paid) orders as ``(placed_at, amount)`` pairs, amounts in the
workspace's reporting currency. Time is counted in days (``WorkspaceFit.time_unit``).

Choosing the purchase model: the last half of the workspace's history (at most 365 days) is held out, both
models are fitted on what came before, and the one whose expected repeat purchases per customer over the
holdout are closer to what the customers did (lower root-mean-square error) is chosen; ``why_chosen`` gives
both models' figures. When the calibration part has too few repeat buyers to fit, the model with the higher
log-likelihood on the whole history is chosen instead (both have four parameters), and ``why_chosen`` says so.
Both are then fitted again on the whole history: those are the parameters stored and predicted with.

Per profile: a profile with at least one paid order up to ``now`` is predicted (under MBG/NBD a one-time buyer
gets a P(alive) below 1; under BG/NBD it is 1 by construction); one without says ``insufficient_history``.
Probabilities and expected counts are rounded half-up to 4 places, money to 2; ``churn_probability`` is exactly
``1 - p_alive``. ``next_order_expected_at`` is when the expected number of further orders reaches one, absent
when that is not within a year. ``currency`` is whatever the caller passes (the workspace's reporting currency).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

import numpy as np

from crm.models.predictions import ModelName, ModelParameters, Prediction, PredictionSettings, WorkspaceFit
from crm.predictions import btyd
from crm.predictions.summary import DAYS_PER_UNIT, Summaries, TimeUnit, repeat_purchases_between, summarise

Key = TypeVar("Key", bound=Hashable)
Histories = Mapping[Key, Sequence[tuple[datetime, Decimal]]]

TIME_UNIT: TimeUnit = "days"
MAX_HOLDOUT_DAYS = 365
MIN_HOLDOUT_DAYS = 14
NEXT_ORDER_HORIZON_DAYS = 365
DAYS_PER_MONTH = 365.25 / 12
PURCHASE_MODELS: tuple[ModelName, ...] = ("bgnbd", "mbgnbd")

FOUR_PLACES = Decimal("0.0001")
CENTS = Decimal("0.01")


def _rounded(value: float, places: Decimal) -> Decimal | None:
    return Decimal(value).quantize(places, rounding=ROUND_HALF_UP) if math.isfinite(value) else None


def _parameters(fit: btyd.PurchaseFit, customers: int) -> ModelParameters:
    return ModelParameters(model=fit.model, parameters=fit.parameters(), log_likelihood=fit.log_likelihood,
                           customers=customers)


def _purchase_fit(parameters: ModelParameters) -> btyd.PurchaseFit:
    values = parameters.parameters
    model: ModelName = "mbgnbd" if parameters.model == "mbgnbd" else "bgnbd"
    return btyd.PurchaseFit(model=model, r=values["r"], alpha=values["alpha"], a=values["a"], b=values["b"],
                            log_likelihood=parameters.log_likelihood)


def _spend_fit(parameters: ModelParameters) -> btyd.SpendFit:
    values = parameters.parameters
    return btyd.SpendFit(p=values["p"], q=values["q"], gamma=values["gamma"],
                         log_likelihood=parameters.log_likelihood)


def _fit_both(summaries: Summaries[Key]) -> dict[ModelName, btyd.PurchaseFit]:
    return {model: btyd.fit_purchases(model, summaries.x, summaries.t_x, summaries.T) for model in PURCHASE_MODELS}


def _choose_by_holdout(histories: Histories[Key], now: datetime, first_order: datetime,
                       settings: PredictionSettings) -> tuple[ModelName, str, datetime] | None:
    holdout_days = min(MAX_HOLDOUT_DAYS, (now.date() - first_order.date()).days // 2)
    if holdout_days < MIN_HOLDOUT_DAYS:
        return None
    calibration_end = now - timedelta(days=holdout_days)
    calibration = summarise(histories, calibration_end, TIME_UNIT)
    if calibration.repeat_buyers < settings.min_repeat_buyers:
        return None
    actual = repeat_purchases_between(histories, calibration.customers, calibration_end, now)
    errors: dict[ModelName, float] = {}
    totals: dict[ModelName, float] = {}
    lines = []
    for model, fit in _fit_both(calibration).items():
        expected = btyd.expected_purchases(fit, holdout_days / DAYS_PER_UNIT[TIME_UNIT],
                                           calibration.x, calibration.t_x, calibration.T)
        errors[model] = float(np.sqrt(np.mean((expected - actual) ** 2)))
        totals[model] = float(expected.sum())
        lines.append(f"{model} expected {totals[model]:.1f} (RMSE per customer {errors[model]:.4f})")
    chosen = min(PURCHASE_MODELS, key=lambda model: errors[model])
    why = (f"holdout of the last {holdout_days} days (fitted on orders to {calibration_end.date().isoformat()}, "
           f"{len(calibration)} customers): actual {actual.sum():.0f} repeat purchases; " + "; ".join(lines)
           + f"; {choice_note(chosen, totals, float(actual.sum()))}")
    return chosen, why, calibration_end


def choice_note(chosen: ModelName, totals: dict[ModelName, float], actual: float) -> str:
    """Why ``chosen`` won, with the criterion named: the lower RMSE per customer, since each profile is
    predicted on its own; when the other model's total came closer to the actual total, that is said too, so
    the figures beside it do not read as a contradiction."""
    note = f"chosen {chosen}: lower RMSE per customer (the criterion: each profile is predicted on its own)"
    other = next(model for model in PURCHASE_MODELS if model != chosen)
    if abs(totals[other] - actual) < abs(totals[chosen] - actual):
        note += f"; {other}'s total came closer to the actual total, which is not the criterion"
    return note


def fit_workspace(workspace_id: str, histories: Histories[Key], now: datetime,
                  settings: PredictionSettings) -> WorkspaceFit:
    """Fit BG/NBD and MBG/NBD (choosing one by holdout) and Gamma-Gamma on a workspace's paid orders."""
    summaries = summarise(histories, now, TIME_UNIT)
    common = {"workspace_id": workspace_id, "time_unit": TIME_UNIT, "fitted_at": now, "settings": settings,
              "customers": len(summaries), "repeat_buyers": summaries.repeat_buyers}
    if len(summaries) == 0:
        return WorkspaceFit(status="no_orders", reason="no paid orders yet", **common)
    if summaries.repeat_buyers < settings.min_repeat_buyers:
        return WorkspaceFit(status="too_few_repeat_buyers",
                            reason=f"{summaries.repeat_buyers} repeat buyers; the models need at least "
                                   f"{settings.min_repeat_buyers}", **common)
    if summaries.paying_repeat_buyers < settings.min_repeat_buyers:
        return WorkspaceFit(status="too_few_repeat_buyers",
                            reason=f"{summaries.paying_repeat_buyers} repeat buyers with a positive spend; the "
                                   f"spend model needs at least {settings.min_repeat_buyers}", **common)
    first_order = min(moment for orders in histories.values() for moment, _ in orders if moment <= now)
    fits = _fit_both(summaries)
    holdout = _choose_by_holdout(histories, now, first_order, settings)
    if holdout is None:
        chosen = max(PURCHASE_MODELS, key=lambda model: fits[model].log_likelihood)
        why = ("too little history for a holdout; higher log-likelihood on all orders: "
               + ", ".join(f"{model} {fits[model].log_likelihood:.1f}" for model in PURCHASE_MODELS))
        calibration_end = None
    else:
        chosen, why, calibration_end = holdout
    spend = btyd.fit_spend(summaries.x, summaries.zbar)
    return WorkspaceFit(status="fitted", chosen=chosen, why_chosen=why,
                        calibration_end=calibration_end,
                        purchase_models=tuple(_parameters(fits[model], len(summaries)) for model in PURCHASE_MODELS),
                        spend_model=ModelParameters(model="gamma_gamma", parameters=spend.parameters(),
                                                    log_likelihood=spend.log_likelihood,
                                                    customers=summaries.repeat_buyers),
                        **common)


def predict(fit: WorkspaceFit, histories: Histories[Key], now: datetime, *,
            currency: str | None = None) -> dict[Key, Prediction]:
    """Every profile of ``histories`` predicted as of ``now`` with the workspace's fit (no fitting here)."""
    summaries = summarise(histories, now, fit.time_unit)
    with_orders = set(summaries.customers)
    predictions: dict[Key, Prediction] = {
        profile: Prediction(status="insufficient_history", reason="no paid order yet", computed_at=now)
        for profile in histories if profile not in with_orders}
    purchase = next((model for model in fit.purchase_models if model.model == fit.chosen), None)
    if fit.status != "fitted" or purchase is None or fit.spend_model is None:
        reason = fit.reason or "the workspace has no fitted model"
        predictions.update({profile: Prediction(status="workspace_not_fitted", reason=reason, computed_at=now)
                            for profile in summaries.customers})
        return predictions
    purchases, spend = _purchase_fit(purchase), _spend_fit(fit.spend_model)
    per_unit = DAYS_PER_UNIT[fit.time_unit]
    x, t_x, T = summaries.x, summaries.t_x, summaries.T
    orders_90 = btyd.expected_purchases(purchases, 90 / per_unit, x, t_x, T)
    orders_365 = btyd.expected_purchases(purchases, 365 / per_unit, x, t_x, T)
    p_alive = btyd.probability_alive(purchases, x, t_x, T)
    order_value = btyd.expected_order_value(spend, x, summaries.zbar)
    clv = btyd.customer_lifetime_value(purchases, order_value, x, t_x, T, months=fit.settings.clv_months,
                                       monthly_discount_rate=float(fit.settings.monthly_discount_rate),
                                       units_per_month=DAYS_PER_MONTH / per_unit)
    next_order = btyd.time_to_one_expected_purchase(purchases, x, t_x, T,
                                                    horizon=NEXT_ORDER_HORIZON_DAYS / per_unit)
    for i, profile in enumerate(summaries.customers):
        alive = _rounded(float(p_alive[i]), FOUR_PLACES)
        wait = float(next_order[i])
        predictions[profile] = Prediction(
            status="predicted", model=purchases.model, computed_at=now, currency=currency,
            expected_orders_90d=_rounded(float(orders_90[i]), FOUR_PLACES),
            expected_orders_365d=_rounded(float(orders_365[i]), FOUR_PLACES),
            p_alive=alive, churn_probability=None if alive is None else 1 - alive,
            expected_order_value=_rounded(float(order_value[i]), CENTS),
            clv=_rounded(float(clv[i]), CENTS),
            next_order_expected_at=(now + timedelta(days=wait * per_unit)).replace(microsecond=0)
            if math.isfinite(wait) else None)
    return predictions
