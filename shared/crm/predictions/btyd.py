"""Buy-till-you-die models as vectorised numpy/scipy functions: BG/NBD, MBG/NBD and Gamma-Gamma.

Every function takes arrays of customers' summaries (``x`` repeat purchases, ``t_x`` time of the last one since
the first, ``T`` age since the first purchase; all in one time unit) and returns one value per customer.

- BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way".
- MBG/NBD: Batislam, Denizel & Filiztekin (2007): a customer may also drop out right after the first purchase,
  so a one-time buyer's P(alive) is below 1 (under BG/NBD it is always 1).
- Gamma-Gamma: Fader, Hardie & Lee (2005b), "RFM and CLV": the mean spend of a customer's repeat purchases.

The conditional expectations need a Gauss hypergeometric term ``(1-z)^(r+x) 2F1(r+x, b+x; c; z)`` whose first
two parameters grow with the frequency ``x``, where the series converges slowly and overflows. Euler's
transformation ``2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)`` turns it into ``(1-z)^(a-1) 2F1(small,
small; c; z)``: the large parameter is left only in ``c``, where it makes the series converge faster.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

Array = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike
PurchaseModel = Literal["bgnbd", "mbgnbd"]

# Parameters are fitted on the log scale within these bounds: wide enough for days or weeks, narrow enough that
# gammaln and the power terms stay finite.
LOG_BOUNDS = (-9.0, 9.0)
_NEAR_ONE = 1e-7  # a == 1 is a removable singularity of E[Y(t)]: step just off it


@dataclass(frozen=True)
class PurchaseFit:
    """A fitted BG/NBD or MBG/NBD model."""

    model: PurchaseModel
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def parameters(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class SpendFit:
    """A fitted Gamma-Gamma spend model."""

    p: float
    q: float
    gamma: float
    log_likelihood: float

    def parameters(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}

    @property
    def population_mean(self) -> float:
        """The mean spend per order of a customer the model knows nothing about (needs q > 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("nan")


def _arrays(*values: ArrayLike) -> tuple[Array, ...]:
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


# ---------------------------------------------------------------------------------------------------------------
# Log-likelihoods (per customer)


def bgnbd_log_likelihood(r: float, alpha: float, a: float, b: float,
                         x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:
    x, t_x, T = _arrays(x, t_x, T)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    # the second term exists only for a repeat buyer (b + x - 1 > 0 there)
    a4 = np.where(repeat, np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
                  -np.inf)
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4), dtype=np.float64)


def mbgnbd_log_likelihood(r: float, alpha: float, a: float, b: float,
                          x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:
    x, t_x, T = _arrays(x, t_x, T)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x + 1) - gammaln(b) - gammaln(a + b + x + 1)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.log(a) - np.log(b + x) - (r + x) * np.log(alpha + t_x)
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4), dtype=np.float64)


def gamma_gamma_log_likelihood(p: float, q: float, gamma: float, x: ArrayLike, zbar: ArrayLike) -> Array:
    """Per repeat buyer (x > 0, zbar > 0): the likelihood of the mean of the x repeat purchases' values."""
    x, zbar = _arrays(x, zbar)
    px = p * x
    return np.asarray(gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(gamma) + (px - 1) * np.log(zbar)
                      + px * np.log(x) - (px + q) * np.log(gamma + x * zbar), dtype=np.float64)


_PURCHASE_LOG_LIKELIHOOD = {"bgnbd": bgnbd_log_likelihood, "mbgnbd": mbgnbd_log_likelihood}


def purchase_log_likelihood_gradient(model: PurchaseModel, r: float, alpha: float, a: float, b: float,
                                     x: Array, t_x: Array, T: Array) -> tuple[Array, Array]:
    """Per customer: the log-likelihood and its derivatives by r, alpha, a, b (rows of a 4 x n array).

    The likelihood's last factor is a sum of two terms, exp(A3) + exp(A4); w3 and w4 are their shares, so
    each term's derivative enters weighted by its share (A4 is absent for a BG/NBD customer without repeats).
    """
    shift = 0 if model == "bgnbd" else 1  # MBG/NBD's drop-out may also follow the first purchase
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x + shift) - gammaln(b) - gammaln(a + b + x + shift)
    a3 = -(r + x) * np.log(alpha + T)
    second = (x > 0) if model == "bgnbd" else np.ones(x.shape, dtype=bool)
    b_x = np.where(second, b + x - 1 + shift, 1.0)
    a4 = np.where(second, np.log(a) - np.log(b_x) - (r + x) * np.log(alpha + t_x), -np.inf)
    total = np.logaddexp(a3, a4)
    w3, w4 = np.exp(a3 - total), np.exp(a4 - total)
    gradient = np.stack([
        digamma(r + x) - digamma(r) + np.log(alpha) - w3 * np.log(alpha + T) - w4 * np.log(alpha + t_x),
        r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x)),
        digamma(a + b) - digamma(a + b + x + shift) + w4 / a,
        digamma(a + b) + digamma(b + x + shift) - digamma(b) - digamma(a + b + x + shift) - w4 / b_x,
    ])
    return np.asarray(a1 + a2 + total, dtype=np.float64), np.asarray(gradient, dtype=np.float64)


def gamma_gamma_log_likelihood_gradient(p: float, q: float, gamma: float, x: Array, zbar: Array
                                        ) -> tuple[Array, Array]:
    """Per repeat buyer: the Gamma-Gamma log-likelihood and its derivatives by p, q, gamma (3 x n)."""
    px = p * x
    spent = np.log(gamma + x * zbar)
    value = gamma_gamma_log_likelihood(p, q, gamma, x, zbar)
    gradient = np.stack([
        x * (digamma(px + q) - digamma(px) + np.log(zbar) + np.log(x) - spent),
        digamma(px + q) - digamma(q) + np.log(gamma) - spent,
        q / gamma - (px + q) / (gamma + x * zbar),
    ])
    return value, np.asarray(gradient, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------------
# Maximum likelihood


def _maximise(log_likelihood: Callable[[Array], tuple[Array, Array]], weight: Array, start: Array) -> Array:
    """The log parameters maximising the weighted log-likelihood (per customer, with its gradient by the
    parameters): L-BFGS-B on the mean negative log-likelihood, the gradient by the chain rule d/dlog p = p d/dp."""
    total = float(weight.sum())

    def negative(log_params: Array) -> tuple[float, Array]:
        values, gradient = log_likelihood(np.exp(log_params))
        value = -float(np.dot(weight, values)) / total
        if not np.isfinite(value):
            return 1e300, np.zeros_like(log_params)
        return value, -(gradient @ weight) * np.exp(log_params) / total

    best = minimize(negative, start, jac=True, method="L-BFGS-B", bounds=[LOG_BOUNDS] * len(start))
    return np.asarray(best.x, dtype=np.float64)


def _compress(*columns: Array) -> tuple[tuple[Array, ...], Array]:
    """Identical customers counted once with a weight: a shop's summaries repeat a lot (whole days, few orders)."""
    rows, inverse = _distinct(*columns)
    return rows, np.bincount(inverse, minlength=len(rows[0])).astype(np.float64)


def fit_purchases(model: PurchaseModel, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> PurchaseFit:
    """Maximum-likelihood r, alpha, a, b (L-BFGS-B on the log parameters, within ``LOG_BOUNDS``)."""
    x, t_x, T = _arrays(x, t_x, T)
    if x.size == 0:
        raise ValueError("no customers to fit")
    (ux, ut_x, uT), weight = _compress(x, t_x, T)

    def per_customer(params: Array) -> tuple[Array, Array]:
        r, alpha, a, b = params
        return purchase_log_likelihood_gradient(model, r, alpha, a, b, ux, ut_x, uT)

    # alpha is on the scale of the time unit: start it at the mean age, the rest at 1
    start = np.array([0.0, np.log(max(float(T.mean()), 1e-3)), 0.0, 0.0])
    r, alpha, a, b = (float(v) for v in np.exp(_maximise(per_customer, weight, start)))
    ll = float(_PURCHASE_LOG_LIKELIHOOD[model](r, alpha, a, b, x, t_x, T).sum())
    return PurchaseFit(model=model, r=r, alpha=alpha, a=a, b=b, log_likelihood=ll)


def fit_spend(x: ArrayLike, zbar: ArrayLike) -> SpendFit:
    """Maximum-likelihood p, q, gamma on the repeat buyers (x > 0) and their mean repeat spend zbar > 0."""
    x, zbar = _arrays(x, zbar)
    keep = (x > 0) & (zbar > 0)
    x, zbar = x[keep], zbar[keep]
    if x.size == 0:
        raise ValueError("no repeat buyers with a positive spend to fit")
    (ux, uz), weight = _compress(x, zbar)

    def per_customer(params: Array) -> tuple[Array, Array]:
        p, q, gamma = params
        return gamma_gamma_log_likelihood_gradient(p, q, gamma, ux, uz)

    start = np.array([0.0, 0.0, np.log(max(float(zbar.mean()), 1e-3))])
    p, q, gamma = (float(v) for v in np.exp(_maximise(per_customer, weight, start)))
    ll = float(gamma_gamma_log_likelihood(p, q, gamma, x, zbar).sum())
    return SpendFit(p=p, q=q, gamma=gamma, log_likelihood=ll)


# ---------------------------------------------------------------------------------------------------------------
# Per-customer predictions


def _hyp2f1(a: float | Array, b: float | Array, c: Array, z: Array) -> Array:
    """scipy's 2F1, except where its special case for an integer c - a - b (or c) gives inf or NaN: there the
    function is continuous in c, so c nudged by a relative 1e-9 gives the value to about that precision."""
    value = np.asarray(hyp2f1(a, b, c, z), dtype=np.float64)
    bad = ~np.isfinite(value)
    if bad.any():
        a, b, c, z = np.broadcast_arrays(a, b, c, z)
        value = np.array(value, copy=True)
        value[bad] = hyp2f1(a[bad], b[bad], c[bad] * (1 + 1e-9) + 1e-9, z[bad])
    return value


def _off_one(a: float) -> float:
    return a + _NEAR_ONE if abs(a - 1) < _NEAR_ONE else a


def _log_alive_odds_against(fit: PurchaseFit, x: Array, t_x: Array, T: Array) -> Array:
    """log of (P(dead) / P(alive)) given the summary; -inf when the model says surely alive."""
    r, alpha, a, b = fit.r, fit.alpha, fit.a, fit.b
    if fit.model == "bgnbd":
        repeat = x > 0
        odds = (np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0))
                + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
        return np.asarray(np.where(repeat, odds, -np.inf), dtype=np.float64)
    return np.asarray(np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
                      dtype=np.float64)


def probability_alive(fit: PurchaseFit, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:
    x, t_x, T = _arrays(x, t_x, T)
    return np.asarray(expit(-_log_alive_odds_against(fit, x, t_x, T)), dtype=np.float64)


def _distinct(*columns: Array) -> tuple[tuple[Array, ...], npt.NDArray[np.int64]]:
    """The distinct rows of equal-length columns and, per row, the index of its distinct row.

    A shop's customers share few (x, T) pairs (whole days, few orders), and the hypergeometric term costs far
    more than finding them: columns are factorised one at a time and their codes combined (faster than a sort
    of rows)."""
    code = np.zeros(columns[0].shape, dtype=np.int64)
    values = []
    for column in columns:
        distinct, codes = np.unique(column, return_inverse=True)
        values.append(distinct)
        code = code * len(distinct) + codes.reshape(code.shape)
    combinations = math.prod(len(v) for v in values)
    if combinations > 4 * code.size:
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        return tuple(column[first] for column in columns), np.asarray(inverse, dtype=np.int64).reshape(code.shape)
    # few combinations: mark the codes present instead of sorting a million of them
    present = np.zeros(combinations, dtype=bool)
    present[code] = True
    remaining = np.flatnonzero(present)
    inverse = np.asarray((np.cumsum(present) - 1)[code], dtype=np.int64)
    rows = []
    for distinct in reversed(values):
        remaining, index = np.divmod(remaining, len(distinct))
        rows.append(distinct[index])
    return tuple(reversed(rows)), inverse


DISTINCT_FROM = 20_000  # below this many customers the term is cheaper than finding the distinct ones


def _purchases_if_alive(fit: PurchaseFit, t: Array, x: Array, T: Array) -> Array:
    """E[Y(t) | alive, x, T] (t_x matters only to P(alive))."""
    r, alpha, b = fit.r, fit.alpha, fit.b
    a = _off_one(fit.a)
    z = t / (alpha + T + t)
    one_minus_z = (alpha + T) / (alpha + T + t)
    if fit.model == "bgnbd":
        c = a + b + x - 1
        # Euler: (1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z)
        tail = one_minus_z ** (a - 1) * _hyp2f1(a + b - 1 - r, a - 1, c, z)
    else:
        c = a + b + x
        # Euler: (1-z)^(r+x) 2F1(r+x, b+x+1; c; z) = (1-z)^(a-1) 2F1(a+b-r, a-1; c; z)
        tail = one_minus_z ** (a - 1) * _hyp2f1(a + b - r, a - 1, c, z)
    return np.asarray(c / (a - 1) * (1 - tail), dtype=np.float64)


def _purchases_if_alive_over(fit: PurchaseFit, horizons: list[float], x: Array, T: Array) -> list[Array]:
    """E[Y(t) | alive, x, T] for each horizon t, computed once per distinct (x, T)."""
    x, T = np.broadcast_arrays(x, T)
    if x.size < DISTINCT_FROM:
        return [_purchases_if_alive(fit, np.array(t), x, T) for t in horizons]
    (dx, dT), inverse = _distinct(x.ravel(), T.ravel())
    return [_purchases_if_alive(fit, np.array(t), dx, dT)[inverse].reshape(x.shape) for t in horizons]


def expected_purchases(fit: PurchaseFit, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:
    """E[Y(t) | x, t_x, T]: the expected number of purchases in the next ``t`` time units."""
    t, x, t_x, T = _arrays(t, x, t_x, T)
    # one horizon for all (the usual case): computed once per distinct (x, T)
    if_alive = _purchases_if_alive_over(fit, [float(t)], x, T)[0] if t.ndim == 0 else _purchases_if_alive(fit, t, x, T)
    return np.asarray(if_alive * probability_alive(fit, x, t_x, T), dtype=np.float64)


def expected_order_value(spend: SpendFit, x: ArrayLike, zbar: ArrayLike) -> Array:
    """E[Z | x, zbar]: a customer's expected spend per order; the population mean for one without repeats."""
    x, zbar = _arrays(x, zbar)
    p, q, gamma = spend.p, spend.q, spend.gamma
    conditional = p * (gamma + x * zbar) / (p * x + q - 1)
    return np.asarray(np.where(x > 0, conditional, spend.population_mean), dtype=np.float64)


def customer_lifetime_value(fit: PurchaseFit, spend_per_order: ArrayLike, x: ArrayLike, t_x: ArrayLike,
                            T: ArrayLike, *, months: int, monthly_discount_rate: float,
                            units_per_month: float) -> Array:
    """Expected spend over the next ``months``, each month's expected orders discounted to today.

    Month m's orders are E[Y(m)] - E[Y(m-1)], discounted by (1 + rate)^m (end of month), as lifetimes does.
    """
    spend_per_order, x, t_x, T = _arrays(spend_per_order, x, t_x, T)
    # E[Y(t)] = P(alive) * E[Y(t) | alive]: the discounted sum is taken over the second factor
    if_alive = _purchases_if_alive_over(fit, [m * units_per_month for m in range(months + 1)], x, T)
    orders = sum((if_alive[m] - if_alive[m - 1]) / (1 + monthly_discount_rate) ** m for m in range(1, months + 1))
    return np.asarray(orders * probability_alive(fit, x, t_x, T) * spend_per_order, dtype=np.float64)


def time_to_one_expected_purchase(fit: PurchaseFit, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *,
                                  horizon: float, iterations: int = 24) -> Array:
    """The time until one more purchase is expected (E[Y(t)] = 1), or NaN when not within ``horizon``.

    E[Y(t)] rises with t, so a bisection per customer (all customers at once) finds it.
    """
    x, t_x, T = _arrays(x, t_x, T)
    reached = expected_purchases(fit, horizon, x, t_x, T) >= 1
    low = np.zeros(x.shape)
    high = np.full(x.shape, float(horizon))
    for _ in range(iterations):
        middle = (low + high) / 2
        above = expected_purchases(fit, middle, x, t_x, T) >= 1
        high = np.where(above, middle, high)
        low = np.where(above, low, middle)
    return np.asarray(np.where(reached, high, np.nan), dtype=np.float64)
