"""The two entry points: fit_workspace (both purchase models, one chosen by holdout, Gamma-Gamma) and predict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache

import pytest
from crm.models.predictions import PredictionSettings, WorkspaceFit
from crm.predictions.predict import choice_note, fit_workspace, predict

from tests.unit.test_btyd_cdnow import sample_history

NOW = datetime(1998, 6, 30, 23, 0, tzinfo=UTC)
SETTINGS = PredictionSettings()


@cache
def cdnow_histories() -> dict[str, list[tuple[datetime, Decimal]]]:
    return {f"profile-{customer}": [(datetime(day.year, day.month, day.day, 15, tzinfo=UTC), amount)
                                    for day, amount in orders]
            for customer, orders in sample_history().items()}


@cache
def cdnow_fit() -> WorkspaceFit:
    return fit_workspace("ws-cdnow", cdnow_histories(), NOW, SETTINGS)


def test_a_workspace_without_orders_is_not_fitted_and_says_why() -> None:
    fit = fit_workspace("ws", {"p1": [], "p2": []}, NOW, SETTINGS)
    assert (fit.status, fit.reason, fit.chosen) == ("no_orders", "no paid orders yet", None)
    predictions = predict(fit, {"p1": [], "p2": [(NOW, Decimal("5"))]}, NOW)
    assert predictions["p1"].status == "insufficient_history" and predictions["p1"].reason == "no paid order yet"
    assert predictions["p2"].status == "workspace_not_fitted" and predictions["p2"].clv is None


def test_too_few_repeat_buyers_is_stated_with_the_count() -> None:
    histories = {f"p{i}": [(NOW - timedelta(days=40), Decimal("10")), (NOW - timedelta(days=3), Decimal("12"))]
                 for i in range(29)}
    fit = fit_workspace("ws", histories, NOW, SETTINGS)
    assert fit.status == "too_few_repeat_buyers"
    assert fit.reason == "29 repeat buyers; the models need at least 30"
    assert (fit.customers, fit.repeat_buyers, fit.purchase_models) == (29, 29, ())
    assert {p.status for p in predict(fit, histories, NOW).values()} == {"workspace_not_fitted"}


def test_cdnow_fit_chooses_by_holdout_and_says_how() -> None:
    fit = cdnow_fit()
    assert fit.status == "fitted" and fit.time_unit == "days"
    assert [m.model for m in fit.purchase_models] == ["bgnbd", "mbgnbd"]
    assert fit.chosen in ("bgnbd", "mbgnbd")
    assert fit.why_chosen is not None and fit.why_chosen.startswith("holdout of the last 272 days")
    assert f"chosen {fit.chosen}: lower RMSE per customer" in fit.why_chosen

    assert fit.calibration_end == NOW - timedelta(days=272)
    assert fit.spend_model is not None and fit.spend_model.model == "gamma_gamma"
    assert (fit.customers, fit.repeat_buyers) == (2357, fit.spend_model.customers)
    # in days the BG/NBD alpha is about 7 times the weekly one; the shape parameters do not depend on the unit
    bgnbd = fit.purchase_models[0].parameters
    assert 0.1 < bgnbd["r"] < 1 and bgnbd["alpha"] > 7


def test_the_choice_names_its_criterion_and_a_closer_total_of_the_other_model() -> None:
    assert choice_note("mbgnbd", {"bgnbd": 1638.9, "mbgnbd": 1564.3}, 1877) == (
        "chosen mbgnbd: lower RMSE per customer (the criterion: each profile is predicted on its own); "
        "bgnbd's total came closer to the actual total, which is not the criterion")
    assert choice_note("bgnbd", {"bgnbd": 1638.9, "mbgnbd": 1564.3}, 1877) == (
        "chosen bgnbd: lower RMSE per customer (the criterion: each profile is predicted on its own)")


def test_a_short_history_chooses_by_log_likelihood() -> None:
    histories = {customer: [(NOW - timedelta(days=20) + (moment - min(m for m, _ in orders)) / 40, amount)
                            for moment, amount in orders]
                 for customer, orders in cdnow_histories().items()}
    fit = fit_workspace("ws", histories, NOW, SETTINGS)
    assert fit.status == "fitted" and fit.calibration_end is None
    assert fit.why_chosen is not None and fit.why_chosen.startswith("too little history for a holdout")


def test_predictions_per_profile() -> None:
    histories = {**cdnow_histories(), "no-orders": [], "only-later": [(NOW + timedelta(days=2), Decimal("30"))]}
    predictions = predict(cdnow_fit(), histories, NOW, currency="USD")
    assert predictions["no-orders"].status == "insufficient_history"
    assert predictions["only-later"].status == "insufficient_history"  # orders after `now` do not count
    predicted = [predictions[profile] for profile in cdnow_histories()]
    assert {p.status for p in predicted} == {"predicted"}
    for p in predicted:
        assert p.model == cdnow_fit().chosen and p.currency == "USD" and p.computed_at == NOW
        assert p.p_alive is not None and p.churn_probability == 1 - p.p_alive
        assert p.p_alive.as_tuple().exponent == -4 and p.clv is not None and p.clv.as_tuple().exponent == -2
        assert p.expected_orders_90d is not None and p.expected_orders_365d is not None
        assert 0 <= p.expected_orders_90d <= p.expected_orders_365d
        assert p.clv >= 0 and p.expected_order_value is not None and p.expected_order_value > 0
        if p.next_order_expected_at is not None:
            assert NOW < p.next_order_expected_at <= NOW + timedelta(days=365)
            assert p.expected_orders_365d >= Decimal("0.9999")
    # a frequent recent buyer is worth more and more likely alive than a one-time buyer of long ago
    recent = [profile for profile, orders in cdnow_histories().items()
              if max(m for m, _ in orders) > NOW - timedelta(30)]
    frequent = max(recent, key=lambda profile: len(cdnow_histories()[profile]))
    once = next(profile for profile, orders in cdnow_histories().items() if len(orders) == 1)
    assert predictions[frequent].clv > predictions[once].clv  # type: ignore[operator]
    assert predictions[frequent].p_alive > predictions[once].p_alive  # type: ignore[operator]


def test_the_settings_drive_the_clv() -> None:
    fit = cdnow_fit()
    longer = fit.model_copy(update={"settings": PredictionSettings(clv_months=24)})
    steeper = fit.model_copy(update={"settings": PredictionSettings(monthly_discount_rate=Decimal("0.05"))})
    profile = {"p": cdnow_histories()["profile-1"]}
    base = predict(fit, profile, NOW)["p"].clv
    assert base is not None
    assert predict(longer, profile, NOW)["p"].clv > base  # type: ignore[operator]
    assert predict(steeper, profile, NOW)["p"].clv < base  # type: ignore[operator]


@pytest.mark.parametrize("days_since_last", [0, 30, 400])
def test_the_chosen_model_predicts_a_repeat_buyer(days_since_last: int) -> None:
    last = NOW - timedelta(days=days_since_last)
    history = {"p": [(last - timedelta(days=200), Decimal("20")), (last, Decimal("40"))]}
    prediction = predict(cdnow_fit(), history, NOW)["p"]
    assert prediction.status == "predicted" and prediction.expected_order_value is not None


def test_repeat_buyers_who_paid_nothing_do_not_count_for_the_spend_model() -> None:
    paid = {f"p{i}": [(NOW - timedelta(days=90), Decimal("10")), (NOW - timedelta(days=9), Decimal("12"))]
            for i in range(20)}
    free = {f"f{i}": [(NOW - timedelta(days=90), Decimal("10")), (NOW - timedelta(days=9), Decimal("0"))]
            for i in range(20)}
    fit = fit_workspace("ws", {**paid, **free}, NOW, SETTINGS)
    assert fit.status == "too_few_repeat_buyers" and fit.repeat_buyers == 40
    assert fit.reason == "20 repeat buyers with a positive spend; the spend model needs at least 30"


def test_days_are_utc_days() -> None:
    from zoneinfo import ZoneInfo

    from crm.predictions.summary import summarise

    tokyo = ZoneInfo("Asia/Tokyo")
    # 08:00 and 23:00 in Tokyo on one local day are two UTC days (the day before and that day)
    history = {"p": [(datetime(2026, 3, 2, 8, tzinfo=tokyo), Decimal("5")),
                     (datetime(2026, 3, 2, 23, tzinfo=tokyo), Decimal("7"))]}
    summary = summarise(history, datetime(2026, 3, 10, tzinfo=UTC))
    assert (summary.x[0], summary.t_x[0], summary.T[0], summary.zbar[0]) == (1, 1, 9, 7)
