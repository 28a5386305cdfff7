"""bench/predictions.py's simulated store: what the models assume, so that fitting it gives its parameters back.
The speed figures are measured by `make bench`, never asserted here."""

from __future__ import annotations

import numpy as np
import pytest
from crm.predictions import btyd

from tests.unit.test_bench_cost import _load

TRUE_PURCHASES = btyd.PurchaseFit(model="bgnbd", r=0.25, alpha=4.8, a=0.72, b=2.2, log_likelihood=0.0)
TRUE_SPEND = btyd.SpendFit(p=6.3, q=3.6, gamma=15.0, log_likelihood=0.0)


@pytest.fixture(scope="module")
def store() -> dict[str, np.ndarray]:
    simulate = _load("predictions").simulate
    return simulate(TRUE_PURCHASES, TRUE_SPEND, 40_000, 5)  # type: ignore[no-any-return]


def test_simulated_customers_are_consistent(store: dict[str, np.ndarray]) -> None:
    x, t_x, T, zbar = store["x"], store["t_x"], store["T"], store["zbar"]
    assert np.array_equal(x, np.round(x)) and (x >= 0).all()
    assert ((t_x >= 0) & (t_x <= T)).all()
    assert np.allclose(t_x * 7, np.round(t_x * 7), atol=1e-9) and np.allclose(T * 7, np.round(T * 7), atol=1e-9)
    assert (t_x[x == 0] == 0).all() and (zbar[x == 0] == 0).all() and (zbar[x > 0] > 0).all()


def test_fitting_the_simulated_store_gives_its_parameters_back(store: dict[str, np.ndarray]) -> None:
    fit = btyd.fit_purchases("bgnbd", store["x"], store["t_x"], store["T"])
    for name, true in TRUE_PURCHASES.parameters().items():
        assert fit.parameters()[name] == pytest.approx(true, rel=0.15), name
    spend = btyd.fit_spend(store["x"], store["zbar"])
    for name, true in TRUE_SPEND.parameters().items():
        assert spend.parameters()[name] == pytest.approx(true, rel=0.15), name
