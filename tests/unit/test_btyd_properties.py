"""Invariants of the models for any parameters and any customer: probabilities, monotonicity, non-negative CLV."""

from __future__ import annotations

import numpy as np
import pytest
from crm.predictions import btyd
from hypothesis import given, settings
from hypothesis import strategies as st

positive = st.floats(min_value=0.01, max_value=50)
purchase_fits = st.builds(btyd.PurchaseFit, model=st.sampled_from(["bgnbd", "mbgnbd"]), r=positive, alpha=positive,
                          a=positive, b=positive, log_likelihood=st.just(0.0))
spend_fits = st.builds(btyd.SpendFit, p=positive, q=st.floats(min_value=1.01, max_value=50), gamma=positive,
                       log_likelihood=st.just(0.0))


@st.composite
def customers(draw: st.DrawFn) -> tuple[float, float, float]:
    x = draw(st.integers(min_value=0, max_value=500))
    T = draw(st.floats(min_value=0, max_value=1000))
    t_x = 0.0 if x == 0 else draw(st.floats(min_value=0, max_value=T))
    return float(x), t_x, T


def close_or_below(later: np.ndarray, earlier: np.ndarray) -> bool:
    return bool(np.all(later <= earlier + 1e-9 * np.maximum(1, np.abs(earlier))))


@settings(max_examples=300, deadline=None)
@given(purchase_fits, customers(), st.lists(st.floats(min_value=0, max_value=2000), min_size=2, max_size=8))
def test_p_alive_is_a_probability_non_increasing_in_the_time_since_the_last_order(
        fit: btyd.PurchaseFit, customer: tuple[float, float, float], waits: list[float]) -> None:
    x, t_x, _ = customer
    ages = t_x + np.sort(np.array(waits))  # the same purchases, observed ever longer after the last one
    p_alive = btyd.probability_alive(fit, x, t_x, ages)
    assert np.all((p_alive >= 0) & (p_alive <= 1))
    assert close_or_below(p_alive[1:], p_alive[:-1])


@settings(max_examples=300, deadline=None)
@given(purchase_fits, customers(), st.lists(st.floats(min_value=0, max_value=5000), min_size=2, max_size=8))
def test_expected_purchases_do_not_decrease_with_the_horizon(
        fit: btyd.PurchaseFit, customer: tuple[float, float, float], horizons: list[float]) -> None:
    x, t_x, T = customer
    expected = btyd.expected_purchases(fit, np.sort(np.array(horizons)), x, t_x, T)
    assert np.all(np.isfinite(expected)) and np.all(expected >= -1e-12)
    assert close_or_below(expected[:-1], expected[1:])


@settings(max_examples=200, deadline=None)
@given(purchase_fits, spend_fits, customers(), st.floats(min_value=0.01, max_value=10_000),
       st.integers(min_value=1, max_value=60), st.floats(min_value=0, max_value=1))
def test_clv_is_never_negative(fit: btyd.PurchaseFit, spend: btyd.SpendFit, customer: tuple[float, float, float],
                               zbar: float, months: int, rate: float) -> None:
    x, t_x, T = customer
    order_value = btyd.expected_order_value(spend, x, zbar if x > 0 else 0.0)
    clv = btyd.customer_lifetime_value(fit, order_value, x, t_x, T, months=months, monthly_discount_rate=rate,
                                       units_per_month=30.4375)
    assert float(order_value) > 0 and float(clv) >= -1e-9


def test_large_frequencies_stay_finite() -> None:
    """2F1 with parameters in the thousands overflows unless rewritten (Euler's transformation in btyd)."""
    fit = btyd.PurchaseFit(model="bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
    x = np.array([1e3, 1e4, 1e5])
    expected = btyd.expected_purchases(fit, 39, x, x / 20, x / 20 + 0.5)
    assert np.all(np.isfinite(expected)) and np.all(expected > 0)
    # a customer buying 20 times a week until last week keeps buying at that rate: about 20 * 39
    assert expected[-1] == np.float64(expected[-1]) and 600 < expected[-1] < 800


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 400)), min_size=1, max_size=300),
       st.sampled_from([1.0, 7.0, 0.37]))
def test_distinct_rows_give_back_every_row(rows: list[tuple[int, int]], scale: float) -> None:
    x = np.array([row[0] for row in rows], dtype=np.float64)
    T = np.array([row[1] for row in rows], dtype=np.float64) / scale
    (dx, dT), inverse = btyd._distinct(x, T)
    assert np.array_equal(dx[inverse], x) and np.array_equal(dT[inverse], T)
    assert len(dx) == len(set(zip(x.tolist(), T.tolist(), strict=True)))


def test_many_customers_get_the_same_figures_as_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    n = btyd.DISTINCT_FROM + 5000
    x = rng.integers(0, 20, n).astype(np.float64)
    T = rng.integers(0, 700, n) / 7
    t_x = np.where(x > 0, T * rng.uniform(0, 1, n), 0)
    fit = btyd.PurchaseFit(model="mbgnbd", r=0.52, alpha=6.18, a=0.89, b=1.61, log_likelihood=0.0)
    clv = btyd.customer_lifetime_value(fit, 30.0, x, t_x, T, months=12, monthly_discount_rate=0.01,
                                       units_per_month=4.345)
    expected = btyd.expected_purchases(fit, 39, x, t_x, T)
    few = slice(0, 500)
    assert np.allclose(expected[few], btyd.expected_purchases(fit, 39, x[few], t_x[few], T[few]), rtol=1e-12)
    assert np.allclose(clv[few], btyd.customer_lifetime_value(fit, 30.0, x[few], t_x[few], T[few], months=12,
                                                              monthly_discount_rate=0.01, units_per_month=4.345),
                       rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["bgnbd", "mbgnbd"]), st.lists(st.floats(min_value=0.05, max_value=20), min_size=4,
                                                      max_size=4))
def test_the_fits_gradient_is_the_log_likelihoods_slope(model: btyd.PurchaseModel, params: list[float]) -> None:
    """The maximum likelihood follows the analytic gradient: it must be the slope of the log-likelihood."""
    rng = np.random.default_rng(11)
    x = rng.integers(0, 15, 300).astype(np.float64)
    T = rng.uniform(1, 60, 300)
    t_x = np.where(x > 0, T * rng.uniform(0, 1, 300), 0)
    values, gradient = btyd.purchase_log_likelihood_gradient(model, *params, x, t_x, T)
    assert np.allclose(values, btyd._PURCHASE_LOG_LIKELIHOOD[model](*params, x, t_x, T))
    for k in range(4):
        step = 1e-6 * params[k]
        up, down = list(params), list(params)
        up[k] += step
        down[k] -= step
        slope = (btyd._PURCHASE_LOG_LIKELIHOOD[model](*up, x, t_x, T).sum()
                 - btyd._PURCHASE_LOG_LIKELIHOOD[model](*down, x, t_x, T).sum()) / (2 * step)
        assert gradient[k].sum() == pytest.approx(slope, rel=1e-4, abs=1e-4)


def test_the_spend_gradient_is_the_log_likelihoods_slope() -> None:
    rng = np.random.default_rng(12)
    x = rng.integers(1, 10, 300).astype(np.float64)
    zbar = rng.uniform(5, 80, 300)
    params = [4.0, 2.5, 12.0]
    values, gradient = btyd.gamma_gamma_log_likelihood_gradient(*params, x, zbar)
    assert np.allclose(values, btyd.gamma_gamma_log_likelihood(*params, x, zbar))
    for k in range(3):
        step = 1e-6 * params[k]
        up, down = list(params), list(params)
        up[k] += step
        down[k] -= step
        slope = (btyd.gamma_gamma_log_likelihood(*up, x, zbar).sum()
                 - btyd.gamma_gamma_log_likelihood(*down, x, zbar).sum()) / (2 * step)
        assert gradient[k].sum() == pytest.approx(slope, rel=1e-5)
